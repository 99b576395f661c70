//! The assistant: OpenAI behind one type with two implementations — Responses +
//! Conversations (OpenAI keeps the conversation) and Chat Completions (the bot keeps it).

mod chat;
mod http;
mod responses;
mod usage;

use std::sync::Arc;

pub use chat::ChatAssistant;
pub use http::{OpenAi, OpenAiError};
pub use responses::ResponsesAssistant;
pub use usage::TokenUsage;

use crate::config::{ApiMode, Config};
use crate::store::kv::Kv;

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

/// The model's answer and what it cost.
#[derive(Debug, Clone)]
pub struct Reply {
    pub text: String,
    /// The upstream's `usage`, when it reported one.
    pub usage: Option<TokenUsage>,
    /// The model the upstream says answered (its `model` field, often a dated snapshot).
    pub model: Option<String>,
}

/// The assistant in the mode configured. Cheap to clone.
#[derive(Clone)]
pub enum Assistant {
    Responses(Arc<ResponsesAssistant>),
    Chat(Arc<ChatAssistant>),
}

impl Assistant {
    /// The assistant for `config`, keeping per-user state in `kv`.
    pub fn new(config: &Config, kv: Kv) -> Self {
        let api = OpenAi::new(config);
        let ns = config.kv_namespace();
        match config.openai_api_mode {
            ApiMode::Responses => {
                Assistant::Responses(Arc::new(ResponsesAssistant::new(api, kv, ns, config)))
            }
            ApiMode::Chat => Assistant::Chat(Arc::new(ChatAssistant::new(api, kv, ns, config))),
        }
    }

    /// Answers `text` from `user`, continuing their conversation.
    pub async fn reply(&self, user: i64, text: &str) -> Result<Reply, OpenAiError> {
        match self {
            Assistant::Responses(a) => a.reply(user, text).await,
            Assistant::Chat(a) => a.reply(user, text).await,
        }
    }

    /// The current conversation, oldest first; at most the last `limit` turns when given.
    pub async fn history(&self, user: i64, limit: Option<usize>) -> Result<Vec<Turn>, OpenAiError> {
        match self {
            Assistant::Responses(a) => a.history(user, limit).await,
            Assistant::Chat(a) => a.history(user, limit).await,
        }
    }

    /// Forgets the current conversation; the next message starts a new one.
    pub async fn reset(&self, user: i64) -> Result<(), OpenAiError> {
        match self {
            Assistant::Responses(a) => a.reset(user).await,
            Assistant::Chat(a) => a.reset(user).await,
        }
    }

    /// Checks that the key and model answer (for `subgpt check`): `GET /models/{model}`.
    pub async fn check_model(&self) -> Result<(), OpenAiError> {
        match self {
            Assistant::Responses(a) => a.api().check_model().await,
            Assistant::Chat(a) => a.api().check_model().await,
        }
    }
}
