//! Background responses (`background: true`), streamed or not, and `GET /responses/{id}`
//! that polls them or resumes their stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::answer::{input_of, sse};
use super::errors::error;
use super::responses::finish_response;
use super::{OpenAiState, Request, Shared, authorised};

/// `background: true`: answered at once with the queued response (or, with `stream: true`,
/// its events as they come); it completes after the fake's delay and pacing, as
/// `GET /responses/{id}` then shows (the spec's asynchronous mode). It completes whether or
/// not the client is still listening, as OpenAI's background mode does.
pub(super) async fn create_background_response(
    state: Arc<Mutex<OpenAiState>>,
    headers: HeaderMap,
    body: Value,
    conversation: String,
) -> Response {
    if !authorised(&headers) {
        return error(401, "Incorrect API key provided");
    }
    let (id, done, ready, finished, pace) = {
        let mut s = state.lock();
        s.requests.push(Request {
            body: body.clone(),
            started: Instant::now(),
        });
        if let Some(status) = s.fail_next.pop_front().or(s.fail_always) {
            return error(
                status,
                "The server had an error while processing your request. secret-upstream-detail",
            );
        }
        let id = format!("resp_bg{:08}", s.next_id);
        s.next_id += 1;
        s.in_flight += 1;
        let pending = json!({"id": id, "object": "response", "created_at": 1_760_000_000,
            "status": "in_progress", "background": true, "model": body["model"],
            "conversation": {"id": conversation}, "output": [], "usage": null, "error": null});
        s.responses.insert(id.clone(), pending);
        let input = input_of(&body);
        let output = (s.answer)(&input);
        let mut done = finish_response(&mut s, &body, &conversation, &input, &output);
        done["id"] = json!(id);
        done["background"] = json!(true);
        // The finished response stays hidden until its time.
        s.responses.insert(
            id.clone(),
            json!({"id": id, "object": "response", "status": "in_progress",
            "background": true, "output": [], "usage": null}),
        );
        let ready = Instant::now() + s.delay;
        let pieces = super::sse::pieces(&output).len() as u32;
        let finished = ready + s.token_every * pieces;
        let pace = super::sse::Pace {
            first: ready,
            every: s.token_every,
            chunk: s.chunk_bytes,
            stall_after: s.stall_after_pieces,
            drop_after: s.drop_after_pieces.take(),
            held: Some(s.held.subscribe()),
        };
        s.streams.insert(id.clone(), (done.clone(), ready));
        s.inputs_of.insert(id.clone(), input.clone());
        (id, done, ready, finished, pace)
    };
    let _ = ready;
    {
        let (state, id, done) = (Arc::clone(&state), id.clone(), done.clone());
        tokio::spawn(async move {
            tokio::time::sleep(finished.saturating_duration_since(Instant::now())).await;
            let held = state.lock().held.subscribe();
            super::sse::released(held).await;
            let mut s = state.lock();
            if !s.cancelled.contains(&id) {
                s.responses.insert(id, done);
                s.in_flight -= 1;
            } else if s.completes_despite_cancel {
                s.responses.insert(id, done);
            }
        });
    }
    if body["stream"] == true {
        state.lock().streams_opened += 1;
        return sse(super::sse::body(super::sse::response_frames(&done), pace));
    }
    let queued = json!({"id": id, "object": "response", "created_at": 1_760_000_000,
        "status": "queued", "background": true, "model": body["model"],
        "conversation": {"id": conversation}, "output": [], "usage": null, "error": null});
    axum::Json(queued).into_response()
}

pub(super) async fn get_response(
    State(state): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorised(&headers) {
        return error(401, "Incorrect API key provided");
    }
    let mut s = state.lock();
    s.response_gets += 1;
    if q.get("stream").map(String::as_str) == Some("true") {
        let Some((done, ready)) = s.streams.get(&id).cloned() else {
            return error(404, &format!("Response with id '{id}' not found."));
        };
        let after: Option<u64> = q.get("starting_after").and_then(|n| n.parse().ok());
        s.resumed_after.push(after);
        let frames: Vec<_> = super::sse::response_frames(&done)
            .into_iter()
            .filter(|f| after.is_none_or(|n| f.sequence.is_some_and(|seq| seq > n)))
            .collect();
        let pace = super::sse::Pace {
            first: ready,
            every: s.token_every,
            chunk: s.chunk_bytes,
            stall_after: None,
            drop_after: None,
            held: Some(s.held.subscribe()),
        };
        return sse(super::sse::body(frames, pace));
    }
    match s.responses.get(&id) {
        Some(response) => axum::Json(response.clone()).into_response(),
        None => error(404, &format!("Response with id '{id}' not found.")),
    }
}

/// `POST /responses/{id}/cancel`: a background response still running stops there, and its
/// object says `cancelled`, with `usage` for the input it read (the spec lets a cancelled
/// response carry usage; what OpenAI bills for it is the operator's to see in the ledger). A
/// finished one is returned as it is.
pub(super) async fn cancel_response(
    State(state): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorised(&headers) {
        return error(401, "Incorrect API key provided");
    }
    let mut s = state.lock();
    s.cancel_calls += 1;
    if let Some(status) = s.cancel_fails {
        return error(
            status,
            "The server had an error while processing your request.",
        );
    }
    let Some(response) = s.responses.get(&id).cloned() else {
        return error(404, &format!("Response with id '{id}' not found."));
    };
    if response["status"] != "in_progress" || s.cancelled.contains(&id) {
        return axum::Json(response).into_response();
    }
    let input_tokens = 10 + s.inputs_of.get(&id).map_or(0, |i| i.chars().count() as u64);
    let model = s
        .streams
        .get(&id)
        .map_or(Value::Null, |(done, _)| done["model"].clone());
    let cancelled = json!({"id": id, "object": "response", "created_at": 1_760_000_000,
        "status": "cancelled", "background": true, "model": model, "output": [], "error": null,
        "usage": {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 0, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens}});
    s.responses.insert(id.clone(), cancelled.clone());
    s.cancelled.push(id);
    s.in_flight -= 1;
    axum::Json(cancelled).into_response()
}
