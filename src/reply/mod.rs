//! How text reaches a chat, decided in one place: the bot's (and the gate's) own short HTML
//! texts, with plain text when Telegram refuses the HTML; answers as one rich message
//! (Markdown) when rich messages are on and the answer fits their limits, else as HTML parts
//! of at most 4096 characters (each re-sent as plain text if refused); and, while an answer
//! is being written, drafts (see [`draft`]) and "typing…" (see [`typing`]).

mod draft;
mod typing;

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;

pub use draft::Live;
pub use typing::Typing;
use typing::TypingClock;

use crate::config::TelegramConfig;
use crate::telegram::format::{self, TELEGRAM_LIMIT};
use crate::telegram::{Bot, ParseMode, TelegramError};

/// Telegram's limits for one rich message (Bot API "Rich Message Limits": 32,768 characters
/// and 500 blocks; core.telegram.org/bots/api#rich-message-formatting-options, read
/// 2026-12-03).
pub const RICH_MAX_CHARS: usize = 32_768;
/// See [`RICH_MAX_CHARS`].
pub const RICH_MAX_BLOCKS: usize = 500;

/// Sends to chats. Cheap to clone.
#[derive(Clone)]
pub struct Replier {
    inner: Arc<Inner>,
}

struct Inner {
    telegram: Bot,
    rich: bool,
    streaming: bool,
    /// Chats whose Telegram refused a draft (an older Bot API server): no more drafts there.
    no_drafts: Mutex<HashSet<i64>>,
    /// When each chat may next be sent "typing".
    typing: TypingClock,
}

impl Replier {
    /// Sends through `telegram`, as `config` says (`STREAMING`, `TELEGRAM_RICH_MESSAGES`).
    pub fn new(telegram: Bot, config: &TelegramConfig) -> Self {
        Replier {
            inner: Arc::new(Inner {
                telegram,
                rich: config.rich_messages,
                streaming: config.streaming,
                no_drafts: Mutex::new(HashSet::new()),
                typing: TypingClock::default(),
            }),
        }
    }

    /// Sends one of the bot's own short HTML texts; as plain text if Telegram refuses the HTML.
    /// A failure is logged, not returned: there is nobody else to tell.
    pub async fn say(&self, chat: i64, html: &str) {
        if let Err(e) = self
            .html_part(chat, html, || format::html_to_plain(html))
            .await
        {
            tracing::error!(error = %e, "could not send a message");
        }
    }

    async fn html_part(
        &self,
        chat: i64,
        html: &str,
        plain: impl FnOnce() -> String,
    ) -> Result<(), TelegramError> {
        let telegram = &self.inner.telegram;
        match telegram
            .send_message(chat, html, Some(ParseMode::Html))
            .await
        {
            Err(e) if e.is_parse_error() => {
                tracing::warn!(error = %e, "Telegram refused the formatting; sending plain text");
                telegram.send_message(chat, &plain(), None).await
            }
            other => other,
        }
    }

    /// Sends an answer (the model's Markdown): one rich message when they are on and it fits,
    /// else HTML parts.
    pub async fn answer(&self, chat: i64, markdown: &str) {
        if self.inner.rich && fits_rich(markdown) {
            match self.inner.telegram.send_rich_message(chat, markdown).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(
                    error = %e,
                    "Telegram refused the rich message; sending the answer as HTML parts"
                ),
            }
        }
        for part in format::render(markdown, TELEGRAM_LIMIT) {
            if let Err(e) = self
                .html_part(chat, &part.html, || part.plain.clone())
                .await
            {
                tracing::error!(error = %e, "could not send an answer part");
            }
        }
    }

    /// Drafts of an answer while it is written, or `None` when streaming is off (or this chat
    /// refused drafts before).
    pub fn live(&self, chat: i64) -> Option<Live> {
        if !self.inner.streaming || self.inner.no_drafts.lock().contains(&chat) {
            return None;
        }
        Some(Live::new(self.clone(), chat))
    }

    /// "typing…" in `chat` until the returned guard is dropped: at once, unless the chat got
    /// one for its previous answer less than a few seconds ago, then every few seconds; later
    /// when Telegram asks (429).
    pub fn keep_typing(&self, chat: i64) -> Typing {
        Typing::start(self.inner.telegram.clone(), self.inner.typing.clone(), chat)
    }

    fn telegram(&self) -> &Bot {
        &self.inner.telegram
    }

    fn rich(&self) -> bool {
        self.inner.rich
    }

    fn refuse_drafts(&self, chat: i64) {
        self.inner.no_drafts.lock().insert(chat);
    }
}

/// Whether `markdown` fits one rich message: its characters, and its blocks counted high
/// (every non-blank line as one; a table row, a list item and a paragraph line each are one).
pub fn fits_rich(markdown: &str) -> bool {
    markdown.chars().count() <= RICH_MAX_CHARS
        && markdown.lines().filter(|l| !l.trim().is_empty()).count() <= RICH_MAX_BLOCKS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rich_limits_count_characters_and_blocks() {
        assert!(fits_rich(&"ü".repeat(RICH_MAX_CHARS)));
        assert!(!fits_rich(&"ü".repeat(RICH_MAX_CHARS + 1)));
        assert!(fits_rich(&"| a | b |\n".repeat(RICH_MAX_BLOCKS)));
        assert!(!fits_rich(&"- item\n".repeat(RICH_MAX_BLOCKS + 1)));
    }
}
