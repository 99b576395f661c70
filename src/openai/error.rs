//! OpenAI's errors, parsed once: the `ErrorResponse` body (`error.code`, `type`, `param`,
//! `message`) of the OpenAPI spec, and what the bot needs to know about it.

use reqwest::StatusCode;
use serde::Deserialize;

/// The `error` object of an OpenAI `ErrorResponse`. Fields the body leaves out are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub param: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: ApiError,
}

/// The longest message kept from an error body (for logs; users never see it).
const MESSAGE_CHARS: usize = 300;

impl ApiError {
    /// The error in `body`; a body that is not an `ErrorResponse` becomes the message.
    pub fn parse(body: &[u8]) -> ApiError {
        let mut error = match serde_json::from_slice::<ErrorResponse>(body) {
            Ok(response) => response.error,
            Err(_) => ApiError {
                message: String::from_utf8_lossy(body).into_owned(),
                ..ApiError::default()
            },
        };
        if error.message.chars().count() > MESSAGE_CHARS {
            error.message = error.message.chars().take(MESSAGE_CHARS).collect();
        }
        error
    }
}

/// What went wrong talking to OpenAI. The user never sees these; logs do.
#[derive(Debug, thiserror::Error)]
pub enum OpenAiError {
    /// An error status (after the retries the policy allows).
    #[error("OpenAI {path}: HTTP {status}: {} (type {}, code {}, param {})",
        error.message,
        error.kind.as_deref().unwrap_or("-"),
        error.code.as_deref().unwrap_or("-"),
        error.param.as_deref().unwrap_or("-"))]
    Status {
        path: String,
        status: StatusCode,
        error: ApiError,
    },
    /// No answer (connection, time-out) after the retries the policy allows.
    #[error("OpenAI {path}: {source}")]
    Http {
        path: String,
        source: reqwest::Error,
    },
    /// An answer that doesn't match the API.
    #[error("OpenAI {path}: unexpected answer: {detail}")]
    Decode { path: String, detail: String },
    /// No answer within the time-out after the request was sent: it may still be running.
    #[error("OpenAI {path}: no answer within {seconds} s")]
    TimedOut { path: String, seconds: u64 },
    /// A stream that OpenAI ended with a failure (`response.failed`, an `error` event).
    #[error("OpenAI {path}: the stream failed: {detail}")]
    Stream { path: String, detail: String },
}

impl OpenAiError {
    /// The HTTP status, when there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            OpenAiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The parsed error body, when OpenAI answered with an error status.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            OpenAiError::Status { error, .. } => Some(error),
            _ => None,
        }
    }

    /// OpenAI does not know the model (`code: model_not_found`): a configuration error, not a
    /// lost conversation.
    pub fn is_model_not_found(&self) -> bool {
        self.api_error()
            .is_some_and(|e| e.code.as_deref() == Some("model_not_found"))
    }

    /// A 404 that says the conversation itself is unknown: on a `/conversations/{id}` path, or
    /// on `POST /responses` when the error names the `conversation` parameter, has a
    /// conversation code, or says the conversation was not found. Any other 404 (a model, a
    /// response, an unknown route) is not.
    pub fn is_conversation_not_found(&self) -> bool {
        let OpenAiError::Status {
            path,
            status: StatusCode::NOT_FOUND,
            error,
        } = self
        else {
            return false;
        };
        if self.is_model_not_found() {
            return false;
        }
        if path.starts_with("/conversations/") {
            return true;
        }
        let message = error.message.to_ascii_lowercase();
        error.param.as_deref() == Some("conversation")
            || error
                .code
                .as_deref()
                .is_some_and(|c| c.starts_with("conversation"))
            || (message.contains("conversation") && message.contains("not found"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(path: &str, code: u16, body: &str) -> OpenAiError {
        OpenAiError::Status {
            path: path.into(),
            status: StatusCode::from_u16(code).unwrap(),
            error: ApiError::parse(body.as_bytes()),
        }
    }

    const MODEL: &str = r#"{"error": {"message": "The model `gpt-9` does not exist or you do not have access to it.",
        "type": "invalid_request_error", "param": null, "code": "model_not_found"}}"#;
    const CONVERSATION: &str = r#"{"error": {"message": "Conversation with id 'conv_1' not found.",
        "type": "invalid_request_error", "param": "conversation", "code": null}}"#;

    #[test]
    fn the_error_body_is_parsed_once() {
        let e = status("/responses", 404, MODEL);
        let api = e.api_error().unwrap();
        assert_eq!(api.code.as_deref(), Some("model_not_found"));
        assert_eq!(api.kind.as_deref(), Some("invalid_request_error"));
        assert_eq!(api.param, None);
        assert!(e.to_string().contains("code model_not_found"), "{e}");
        let plain = status("/responses", 502, "<html>bad gateway</html>");
        assert_eq!(
            plain.api_error().unwrap().message,
            "<html>bad gateway</html>"
        );
        let long = status("/responses", 500, &"x".repeat(5000));
        assert_eq!(long.api_error().unwrap().message.len(), MESSAGE_CHARS);
    }

    #[test]
    fn only_an_unknown_conversation_is_a_lost_conversation() {
        let model = status("/responses", 404, MODEL);
        assert!(model.is_model_not_found() && !model.is_conversation_not_found());
        assert!(status("/responses", 404, CONVERSATION).is_conversation_not_found());
        assert!(status("/conversations/conv_1/items", 404, "{}").is_conversation_not_found());
        let other = r#"{"error": {"message": "Previous response with id 'resp_1' not found.",
            "type": "invalid_request_error", "param": "previous_response_id", "code": "previous_response_not_found"}}"#;
        assert!(!status("/responses", 404, other).is_conversation_not_found());
        assert!(!status("/responses", 400, CONVERSATION).is_conversation_not_found());
        assert!(!status("/responses", 404, "Not Found").is_conversation_not_found());
    }
}
