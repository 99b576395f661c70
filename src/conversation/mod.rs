//! Conversations: the per-user state above the wire clients. In `responses` mode OpenAI keeps
//! each user's conversation and the bot keeps the user → conversation id map; in `chat` mode
//! the bot keeps the history. Either lives in [`store::UserState`]: durable in the state
//! database, shared through Redis.

mod chat;
mod live;
mod responses;
pub mod store;

use std::sync::Arc;

pub use chat::ChatConversations;
pub use responses::ResponsesConversations;
pub use store::UserState;

use crate::config::{ApiMode, ConversationConfig};
use crate::intake::Receipt;
use crate::openai::{OpenAi, OpenAiError, Reply, Turn};

/// Why a conversation step failed. Users see the apology; logs see this.
#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    #[error(transparent)]
    OpenAi(#[from] OpenAiError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The response ended without an answer (failed, cancelled, or nothing in it).
    #[error("no answer from OpenAI: {0}")]
    NoAnswer(String),
    /// An answer stopped before its end; `partial` holds the text that arrived. `unsettled`:
    /// the background response (cancelled, or given up on) whose final usage only OpenAI can
    /// tell later, since it may still have finished, or gone on when the cancel failed.
    #[error("the answer was cut off: {reason}")]
    Interrupted {
        partial: Reply,
        reason: String,
        unsettled: Option<String>,
    },
}

/// The conversations in the mode configured. Cheap to clone.
#[derive(Clone)]
pub enum Conversations {
    Responses(Arc<ResponsesConversations>),
    Chat(Arc<ChatConversations>),
}

impl Conversations {
    /// The conversations for `config`, asking `api`, keeping per-user state in `state` under
    /// the keys prefix `ns`.
    pub fn new(config: &ConversationConfig, api: OpenAi, state: UserState, ns: String) -> Self {
        match config.api_mode {
            ApiMode::Responses => Conversations::Responses(Arc::new(ResponsesConversations::new(
                api, state, ns, config,
            ))),
            ApiMode::Chat => {
                Conversations::Chat(Arc::new(ChatConversations::new(api, state, ns, config)))
            }
        }
    }

    /// Answers `text` from `user`, continuing their conversation. `receipt` is the inbox row
    /// of the update being answered: what was already asked for it is not asked again, and
    /// an answer not in by its `answer_by` is cut off (cancelled upstream where OpenAI can).
    pub async fn reply(
        &self,
        user: i64,
        text: &str,
        receipt: &Receipt,
    ) -> Result<Reply, ConversationError> {
        match self {
            Conversations::Responses(c) => c.reply(user, text, receipt).await,
            Conversations::Chat(c) => c.reply(user, text, receipt.answer_by).await,
        }
    }

    /// Like [`Conversations::reply`], streamed: `on_text` gets the whole answer so far each time
    /// more of it arrives.
    pub async fn reply_live(
        &self,
        user: i64,
        text: &str,
        receipt: &Receipt,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Reply, ConversationError> {
        match self {
            Conversations::Responses(c) => c.reply_live(user, text, receipt, on_text).await,
            Conversations::Chat(c) => c.reply_live(user, text, receipt.answer_by, on_text).await,
        }
    }

    /// The current conversation, oldest first; at most the last `limit` turns when given.
    pub async fn history(
        &self,
        user: i64,
        limit: Option<usize>,
    ) -> Result<Vec<Turn>, ConversationError> {
        match self {
            Conversations::Responses(c) => c.history(user, limit).await,
            Conversations::Chat(c) => c.history(user, limit).await,
        }
    }

    /// Forgets the current conversation; the next message starts a new one.
    pub async fn reset(&self, user: i64) -> Result<(), ConversationError> {
        match self {
            Conversations::Responses(c) => c.reset(user).await,
            Conversations::Chat(c) => c.reset(user).await,
        }
    }
}
