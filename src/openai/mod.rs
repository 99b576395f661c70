//! OpenAI on the wire: the Responses + Conversations and Chat Completions APIs, their types
//! and errors, behind one HTTP client with the retry policy. No per-user state lives here
//! (that is `conversation`'s).

pub mod chat;
mod error;
mod http;
pub mod responses;
pub mod stream;

pub use error::{ApiError, OpenAiError};
pub use http::OpenAi;

/// Who said a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    /// The role's name in OpenAI's APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Turn {
    pub role: Role,
    pub text: String,
}

/// The `usage` object of a response or completion (the fields the bot reads).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub total_tokens: Option<u64>,
}

/// The model's answer and what it cost.
#[derive(Debug, Clone)]
pub struct Reply {
    pub text: String,
    /// `usage.total_tokens`, when the upstream reported it.
    pub total_tokens: Option<u64>,
}
