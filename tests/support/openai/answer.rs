//! What every answer route shares: the input it answers, recording, delay and scripted
//! failures, the model it reports, and the SSE response.

use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::Value;

use super::errors::error;
use super::{OpenAiState, Request, authorised};

pub(super) fn input_of(body: &Value) -> String {
    if let Some(input) = body["input"].as_str() {
        return input.to_string();
    }
    body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// The common part of an answer: record, delay, scripted failures; the answer text on success.
pub(super) async fn serve_answer(
    state: &Arc<Mutex<OpenAiState>>,
    headers: &HeaderMap,
    body: &Value,
) -> Result<(String, String), Response> {
    if !authorised(headers) {
        return Err(error(401, "Incorrect API key provided"));
    }
    let (delay, failure, answer) = {
        let mut s = state.lock();
        s.requests.push(Request {
            body: body.clone(),
            started: Instant::now(),
        });
        s.in_flight += 1;
        let failure = s.fail_next.pop_front().or(s.fail_always);
        (s.delay, failure, Arc::clone(&s.answer))
    };
    tokio::time::sleep(delay).await;
    let held = state.lock().held.subscribe();
    super::sse::released(held).await;
    state.lock().in_flight -= 1;
    if let Some(status) = failure {
        return Err(error(
            status,
            "The server had an error while processing your request. secret-upstream-detail",
        ));
    }
    let input = input_of(body);
    let output = answer(&input);
    Ok((input, output))
}

pub(super) fn sse(body: axum::body::Body) -> Response {
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
        body,
    )
        .into_response()
}

/// What the answer says its model was: the configured report, else the request's model.
pub(super) fn reported_model(s: &OpenAiState, body: &Value) -> Value {
    s.model_reported
        .as_ref()
        .map_or_else(|| body["model"].clone(), |m| Value::String(m.clone()))
}
