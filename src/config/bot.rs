//! The bot's own behaviour: admins, limits, language, queueing and shutdown.

use std::collections::HashSet;
use std::time::Duration;

use super::vars::Vars;
use super::{ConfigError, problem};

/// Which language the bot's own texts use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotLanguage {
    /// Russian for a user whose `language_code` starts with `ru`, English otherwise.
    Auto,
    /// Always English.
    En,
    /// Always Russian.
    Ru,
}

/// How the bot behaves towards users.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// `ADMIN_USER_IDS`.
    pub admin_user_ids: HashSet<i64>,
    /// `DAILY_TOKEN_LIMIT`; 0 means none.
    pub daily_token_limit: u64,
    /// The language of the bot's own texts.
    pub language: BotLanguage,
    /// Updates one user may have waiting.
    pub user_queue_limit: usize,
    /// The most one update may take from acceptance to its last message.
    pub answer_deadline: Duration,
    /// How long SIGTERM waits for answers in flight.
    pub shutdown_drain: Duration,
    /// How long start-up keeps retrying Telegram (getMe) and Redis before it gives up.
    pub startup_retry: Duration,
}

/// `ANSWER_DEADLINE_SECS`: read by the bot (the queue) and the conversations (the request).
pub(super) fn answer_deadline(v: &Vars) -> Result<Duration, ConfigError> {
    match v.number("ANSWER_DEADLINE_SECS", 300)? {
        0 => Err(problem("ANSWER_DEADLINE_SECS", "must be at least 1")),
        n => Ok(Duration::from_secs(n)),
    }
}

impl BotConfig {
    pub(super) fn from_vars(v: &Vars) -> Result<Self, ConfigError> {
        let admin_user_ids = match v.get("ADMIN_USER_IDS") {
            None => HashSet::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse().map_err(|_| {
                        problem("ADMIN_USER_IDS", format!("`{s}` is not a numeric user id"))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Self {
            admin_user_ids,
            daily_token_limit: v.number("DAILY_TOKEN_LIMIT", 0)?,
            language: match v.or("BOT_LANGUAGE", "auto") {
                "auto" => BotLanguage::Auto,
                "en" => BotLanguage::En,
                "ru" => BotLanguage::Ru,
                other => {
                    return Err(problem(
                        "BOT_LANGUAGE",
                        format!("`{other}` is not `auto`, `en` or `ru`"),
                    ));
                }
            },
            user_queue_limit: match v.number("USER_QUEUE_LIMIT", 20)? {
                0 => return Err(problem("USER_QUEUE_LIMIT", "must be at least 1")),
                n => n,
            },
            answer_deadline: answer_deadline(v)?,
            shutdown_drain: Duration::from_secs(v.number("SHUTDOWN_DRAIN_SECS", 30)?),
            startup_retry: Duration::from_secs(v.number("STARTUP_RETRY_SECS", 120)?),
        })
    }

    /// Whether `user_id` is one of `ADMIN_USER_IDS`.
    pub fn is_admin(&self, user_id: i64) -> bool {
        self.admin_user_ids.contains(&user_id)
    }
}
