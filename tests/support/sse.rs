//! Server-sent events as the fakes send them: frames written as `event:`/`data:` lines, cut
//! into small byte chunks (so lines and UTF-8 characters are split across reads), paced like a
//! model writing, and able to stall or drop mid-stream.

use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use futures::SinkExt;
use serde_json::{Value, json};

/// One event of a stream.
#[derive(Debug, Clone)]
pub struct Frame {
    pub event: Option<String>,
    pub data: String,
    /// A piece of the answer's text (paced, counted for stalls and drops).
    pub delta: bool,
    /// Responses: the event's sequence number.
    pub sequence: Option<u64>,
}

/// How a stream is sent.
#[derive(Debug, Clone)]
pub struct Pace {
    /// The first text is not sent before this.
    pub first: Instant,
    /// The wait between two pieces of text.
    pub every: Duration,
    /// Bytes per body chunk.
    pub chunk: usize,
    /// After this many pieces of text, nothing more is sent (the connection stays open).
    pub stall_after: Option<usize>,
    /// After this many pieces of text, the connection breaks.
    pub drop_after: Option<usize>,
    /// The first text also waits until this turns false (the fake OpenAI's hold).
    pub held: Option<tokio::sync::watch::Receiver<bool>>,
}

/// Waits until `held` turns (or is) false; at once if its sender is gone.
pub async fn released(mut held: tokio::sync::watch::Receiver<bool>) {
    let _ = held.wait_for(|held| !*held).await;
}

/// The answer cut into pieces of three characters, as a model's tokens would come.
pub fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(3).map(|c| c.iter().collect()).collect()
}

/// The events of a Responses stream for the completed response `done` (ResponseStreamEvent).
pub fn response_frames(done: &Value) -> Vec<Frame> {
    let text = done["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let item = done["output"][0]["id"].clone();
    let mut pending = done.clone();
    pending["status"] = json!("in_progress");
    pending["output"] = json!([]);
    pending["usage"] = Value::Null;
    let mut frames = Vec::new();
    let mut seq = 0u64;
    let mut push = |kind: &str, mut data: Value, delta: bool, frames: &mut Vec<Frame>| {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(seq);
        frames.push(Frame {
            event: Some(kind.to_string()),
            data: data.to_string(),
            delta,
            sequence: Some(seq),
        });
        seq += 1;
    };
    push(
        "response.created",
        json!({"response": pending.clone()}),
        false,
        &mut frames,
    );
    push(
        "response.in_progress",
        json!({"response": pending}),
        false,
        &mut frames,
    );
    push(
        "response.output_item.added",
        json!({"output_index": 0, "item": {"type": "message", "id": item, "status": "in_progress", "role": "assistant", "content": []}}),
        false,
        &mut frames,
    );
    for piece in pieces(&text) {
        push(
            "response.output_text.delta",
            json!({"item_id": item, "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []}),
            true,
            &mut frames,
        );
    }
    push(
        "response.output_text.done",
        json!({"item_id": item, "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
        false,
        &mut frames,
    );
    push(
        "response.completed",
        json!({"response": done}),
        false,
        &mut frames,
    );
    frames
}

/// The chunks of a chat completion stream (CreateChatCompletionStreamResponse), ending with
/// the usage chunk when asked for, then `[DONE]`.
pub fn chat_frames(model: &Value, text: &str, usage: Option<Value>) -> Vec<Frame> {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_760_000_000,
               "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
        .to_string()
    };
    let frame = |data: String, delta: bool| Frame {
        event: None,
        data,
        delta,
        sequence: None,
    };
    let mut frames = vec![frame(
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        false,
    )];
    for piece in pieces(text) {
        frames.push(frame(chunk(json!({"content": piece}), Value::Null), true));
    }
    frames.push(frame(chunk(json!({}), json!("stop")), false));
    if let Some(usage) = usage {
        let last = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_760_000_000,
                          "model": model, "choices": [], "usage": usage});
        frames.push(frame(last.to_string(), false));
    }
    frames.push(frame("[DONE]".into(), false));
    frames
}

/// A `text/event-stream` body sending `frames` at `pace`.
pub fn body(frames: Vec<Frame>, mut pace: Pace) -> Body {
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        let mut deltas = 0usize;
        for frame in frames {
            if frame.delta {
                if Some(deltas) == pace.stall_after {
                    // Silent but open, until the client gives up.
                    while !tx.is_closed() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    return;
                }
                if Some(deltas) == pace.drop_after {
                    let _ = tx.send(Err(std::io::Error::other("connection lost"))).await;
                    return;
                }
                let wait = if deltas == 0 {
                    pace.first.saturating_duration_since(Instant::now())
                } else {
                    pace.every
                };
                // A zero sleep still waits for the timer's next tick (~1 ms): with no pacing,
                // the pieces go out back to back, as the fake's latency alone promises.
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                if let Some(held) = pace.held.take() {
                    released(held).await;
                }
                deltas += 1;
            }
            let mut text = String::new();
            if let Some(event) = &frame.event {
                text.push_str(&format!("event: {event}\n"));
            }
            text.push_str(&format!("data: {}\n\n", frame.data));
            for piece in text.as_bytes().chunks(pace.chunk.max(1)) {
                if tx.send(Ok(Bytes::copy_from_slice(piece))).await.is_err() {
                    return;
                }
            }
        }
    });
    Body::from_stream(rx)
}
