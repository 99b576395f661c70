//! The Telegram Bot API part: token, server, how answers are sent.

use super::vars::Vars;
use super::{ConfigError, problem};
use crate::secret::Secret;

/// How to reach Telegram and how the bot's messages look.
#[derive(Debug, Clone)]
pub struct TelegramConfig {
    /// `TELEGRAM_BOT_TOKEN`.
    pub bot_token: Secret,
    /// `TELEGRAM_API_URL`, without a trailing `/`.
    pub api_url: String,
    /// Answers go out as rich messages (Markdown), falling back to HTML parts.
    pub rich_messages: bool,
    /// `STREAMING`: answers appear as drafts while they are written.
    pub streaming: bool,
}

impl TelegramConfig {
    pub(super) fn from_vars(v: &Vars) -> Result<Self, ConfigError> {
        let bot_token = Secret::new(v.required("TELEGRAM_BOT_TOKEN")?);
        bot_id_of(&bot_token)?;
        Ok(Self {
            bot_token,
            api_url: v.url("TELEGRAM_API_URL", "https://api.telegram.org")?,
            rich_messages: v.switch("TELEGRAM_RICH_MESSAGES", false)?,
            streaming: v.switch("STREAMING", true)?,
        })
    }

    /// The bot's numeric id: the token's prefix before `:`.
    pub fn bot_id(&self) -> i64 {
        bot_id_of(&self.bot_token).unwrap_or_default()
    }
}

fn bot_id_of(token: &Secret) -> Result<i64, ConfigError> {
    let malformed = || {
        problem(
            "TELEGRAM_BOT_TOKEN",
            "malformed: expected `<digits>:<secret>` as given by @BotFather",
        )
    };
    let (id, rest) = token.expose().split_once(':').ok_or_else(malformed)?;
    if rest.is_empty() || rest.chars().any(char::is_whitespace) {
        return Err(malformed());
    }
    id.parse().map_err(|_| malformed())
}
