//! Errors in the shape of the OpenAPI spec's `ErrorResponse`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An `ErrorResponse` of the OpenAPI spec: `error.message`, `type`, `param`, `code`.
fn api_error(
    status: u16,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    let status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    let mut response = (status_code, axum::Json(body)).into_response();
    if status == 429 {
        response
            .headers_mut()
            .insert("retry-after", "0".parse().unwrap());
    }
    response
}

/// An error whose type follows from the status, with no param or code.
pub(super) fn error(status: u16, message: &str) -> Response {
    let kind = match status {
        401 => "invalid_authentication_error",
        429 => "rate_limit_error",
        500.. => "server_error",
        _ => "invalid_request_error",
    };
    api_error(status, message, kind, None, None)
}

/// 404 for a conversation OpenAI does not know.
pub(super) fn conversation_not_found(id: &str) -> Response {
    api_error(
        404,
        &format!("Conversation with id '{id}' not found."),
        "invalid_request_error",
        Some("conversation"),
        None,
    )
}

/// 404 for a model OpenAI does not know (or the key may not use).
pub(super) fn model_not_found(model: &str) -> Response {
    api_error(
        404,
        &format!("The model `{model}` does not exist or you do not have access to it."),
        "invalid_request_error",
        None,
        Some("model_not_found"),
    )
}
