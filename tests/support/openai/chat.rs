//! `POST /chat/completions`, whole or streamed, with usage counted as OpenAI counts it.

use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::answer::{reported_model, serve_answer, sse};
use super::errors::error;
use super::{Shared, tokens_for};

pub(super) async fn chat_completion(
    State(state): Shared,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if body.get("model").is_none() || !body["messages"].is_array() {
        return error(400, "Missing required parameter: 'messages'.");
    }
    let (input, output) = match serve_answer(&state, &headers, &body).await {
        Ok(pair) => pair,
        Err(response) => return response,
    };
    let prompt: usize = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or("").chars().count())
        .sum();
    let (cached, reasoning, model) = {
        let s = state.lock();
        (
            s.cached_tokens,
            s.reasoning_tokens,
            reported_model(&s, &body),
        )
    };
    let base = tokens_for(&input, &output);
    let total = base + reasoning;
    let prompt = prompt as u64;
    // Completion tokens include the reasoning ones, as OpenAI counts them.
    let completion = base.saturating_sub(prompt) + reasoning;
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total,
        "prompt_tokens_details": {"cached_tokens": cached.min(prompt), "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}});
    if body["stream"] == true {
        let mut s = state.lock();
        s.streams_opened += 1;
        let with_usage = body["stream_options"]["include_usage"] == true && !s.omit_usage;
        let frames = super::sse::chat_frames(&model, &output, with_usage.then_some(usage));
        let pace = super::sse::Pace {
            first: Instant::now(),
            every: s.token_every,
            chunk: s.chunk_bytes,
            stall_after: s.stall_after_pieces,
            drop_after: s.drop_after_pieces.take(),
            // `serve_answer` has waited for the hold already.
            held: None,
        };
        return sse(super::sse::body(frames, pace));
    }
    axum::Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_760_000_000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": output, "refusal": null, "annotations": []},
                     "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total,
                  "prompt_tokens_details": {"cached_tokens": cached.min(prompt), "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
    }))
    .into_response()
}
