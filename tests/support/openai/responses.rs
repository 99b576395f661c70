//! `POST /responses` answered in the foreground, and the completed Response object every
//! answer (foreground or background) stores.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::answer::{reported_model, serve_answer};
use super::background::create_background_response;
use super::errors::{conversation_not_found, error, model_not_found};
use super::{Item, OpenAiState, Shared};

pub(super) async fn create_response(
    State(state): Shared,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let (model_missing, post_delay) = {
        let mut s = state.lock();
        s.responses_posted += 1;
        (s.model_missing, s.post_delay)
    };
    tokio::time::sleep(post_delay).await;
    for field in ["model", "conversation", "input", "instructions"] {
        if body.get(field).is_none() {
            return error(400, &format!("Missing required parameter: '{field}'."));
        }
    }
    let conversation = body["conversation"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if model_missing {
        return model_not_found(body["model"].as_str().unwrap_or_default());
    }
    if !state.lock().conversations.contains_key(&conversation) {
        return conversation_not_found(&conversation);
    }
    if body["background"] == true {
        return create_background_response(state, headers, body, conversation).await;
    }
    let (input, output) = match serve_answer(&state, &headers, &body).await {
        Ok(pair) => pair,
        Err(response) => return response,
    };
    let response = finish_response(&mut state.lock(), &body, &conversation, &input, &output);
    axum::Json(response).into_response()
}

/// Stores the exchange in the conversation; the completed Response object.
pub(super) fn finish_response(
    s: &mut OpenAiState,
    body: &Value,
    conversation: &str,
    input: &str,
    output: &str,
) -> Value {
    let n = s.next_id;
    s.next_id += 2;
    let omit_usage = s.omit_usage;
    let (input, output) = (input.to_string(), output.to_string());
    let (cached, reasoning) = (s.cached_tokens, s.reasoning_tokens);
    let model = reported_model(s, body);
    if let Some(items) = s.conversations.get_mut(conversation) {
        items.push(Item {
            id: format!("msg_{n:08}"),
            role: "user",
            text: input.clone(),
        });
        items.push(Item {
            id: format!("msg_{:08}", n + 1),
            role: "assistant",
            text: output.clone(),
        });
    }
    let input_tokens = 10 + input.chars().count() as u64;
    let output_tokens = output.chars().count() as u64 + reasoning;
    let usage = json!({"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": cached.min(input_tokens)},
        "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens});
    let mut response = json!({
        "id": format!("resp_{n:08}"), "object": "response", "created_at": 1_760_000_000, "status": "completed",
        "model": model, "conversation": {"id": conversation},
        "output": [{"type": "message", "id": format!("msg_{:08}", n + 1), "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": output, "annotations": []}]}],
        "usage": usage,
    });
    if omit_usage {
        response.as_object_mut().unwrap().remove("usage");
    }
    let id = response["id"].as_str().unwrap_or_default().to_string();
    s.responses.insert(id, response.clone());
    response
}
