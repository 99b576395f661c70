//! Telegram's errors, classified once (as teloxide's `ApiError` does): the description strings
//! of the Bot API are read here and nowhere else, and the rest of the bot asks for a kind.

use crate::retry::Outcome;
use std::time::Duration;

/// What went wrong talking to Telegram.
#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    /// Telegram answered `ok: false` (or an error status without a Bot API body).
    #[error("Telegram {method} failed: {code} {description}")]
    Api {
        method: &'static str,
        code: u16,
        description: String,
    },
    /// Rate-limited: still after the retries, or asked to wait longer than the cap.
    #[error("Telegram {method}: still rate-limited, retry after {seconds} s")]
    RetryAfter { method: &'static str, seconds: u64 },
    /// The request never got an answer (connection, time-out). The URL is stripped.
    #[error("Telegram {method}: {source}")]
    Http {
        method: &'static str,
        source: reqwest::Error,
    },
    /// Not sent: a best-effort call (a draft, "typing…") while every turn was taken.
    #[error("Telegram {method}: skipped, every request turn was taken")]
    Busy { method: &'static str },
    /// The answer was not what the Bot API documents.
    #[error("Telegram {method}: unexpected answer: {detail}")]
    Decode {
        method: &'static str,
        detail: String,
    },
}

/// The kinds of Bot API refusals the bot acts on. The strings are Telegram's descriptions
/// (as the Bot API server prints them; teloxide's `ApiError` lists the same ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// 400 "can't parse entities: …": the message's HTML was refused.
    CantParseEntities,
    /// 400 "message is too long".
    MessageTooLong,
    /// 400 "message text is empty".
    MessageTextEmpty,
    /// 400 "chat not found": a wrong chat id, or a channel the bot cannot see.
    ChatNotFound,
    /// 400 "user not found" / "PARTICIPANT_ID_INVALID": Telegram knows no such member.
    UserNotFound,
    /// 403 "bot was blocked by the user" / "user is deactivated": nothing can reach them.
    BotBlocked,
    /// Any other 403: the bot lacks the rights it needs (e.g. not an admin of the channel).
    Forbidden,
    /// 401: the token is wrong or revoked.
    Unauthorized,
    /// 404: an unknown method (e.g. drafts on an older Bot API server) or a malformed token.
    NotFound,
    /// 409 "… while webhook is active": `getUpdates` with a webhook set.
    WebhookActive,
    /// Any other 409: another process is polling this bot.
    PollingConflict,
    /// Anything else.
    Other,
}

impl ApiErrorKind {
    /// The kind of an `ok: false` answer with `code` and `description`.
    pub fn classify(code: u16, description: &str) -> ApiErrorKind {
        let d = description.to_ascii_lowercase();
        match code {
            400 if d.contains("can't parse entities") => ApiErrorKind::CantParseEntities,
            400 if d.contains("message is too long") || d.contains("message_too_long") => {
                ApiErrorKind::MessageTooLong
            }
            400 if d.contains("message text is empty") => ApiErrorKind::MessageTextEmpty,
            400 if d.contains("chat not found") => ApiErrorKind::ChatNotFound,
            400 if d.contains("user not found") || d.contains("participant_id_invalid") => {
                ApiErrorKind::UserNotFound
            }
            403 if d.contains("blocked by the user") || d.contains("user is deactivated") => {
                ApiErrorKind::BotBlocked
            }
            403 => ApiErrorKind::Forbidden,
            401 => ApiErrorKind::Unauthorized,
            404 => ApiErrorKind::NotFound,
            409 if d.contains("webhook") => ApiErrorKind::WebhookActive,
            409 => ApiErrorKind::PollingConflict,
            _ => ApiErrorKind::Other,
        }
    }
}

impl TelegramError {
    /// The Bot API error code, when Telegram gave one.
    pub fn code(&self) -> Option<u16> {
        match self {
            TelegramError::Api { code, .. } => Some(*code),
            TelegramError::RetryAfter { .. } => Some(429),
            _ => None,
        }
    }

    /// The kind of refusal, when Telegram answered `ok: false`.
    pub fn kind(&self) -> Option<ApiErrorKind> {
        match self {
            TelegramError::Api {
                code, description, ..
            } => Some(ApiErrorKind::classify(*code, description)),
            _ => None,
        }
    }

    /// Whether Telegram refused the message's HTML.
    pub fn is_parse_error(&self) -> bool {
        self.kind() == Some(ApiErrorKind::CantParseEntities)
    }

    /// What this error means for sending the call again (see `crate::retry`).
    pub fn outcome(&self) -> Outcome {
        match self {
            TelegramError::RetryAfter { seconds, .. } => {
                Outcome::RateLimited(Some(Duration::from_secs(*seconds)))
            }
            TelegramError::Api { code, .. } => Outcome::of_status(*code, None),
            TelegramError::Http { source, .. } => Outcome::of_transport(source),
            TelegramError::Decode { .. } | TelegramError::Busy { .. } => Outcome::Fatal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, description: &str) -> TelegramError {
        TelegramError::Api {
            method: "sendMessage",
            code,
            description: description.into(),
        }
    }

    #[test]
    fn descriptions_become_kinds() {
        for (code, description, kind) in [
            (
                400,
                "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 0",
                ApiErrorKind::CantParseEntities,
            ),
            (
                400,
                "Bad Request: message is too long",
                ApiErrorKind::MessageTooLong,
            ),
            (
                400,
                "Bad Request: message text is empty",
                ApiErrorKind::MessageTextEmpty,
            ),
            (
                400,
                "Bad Request: chat not found",
                ApiErrorKind::ChatNotFound,
            ),
            (
                400,
                "Bad Request: user not found",
                ApiErrorKind::UserNotFound,
            ),
            (
                400,
                "Bad Request: PARTICIPANT_ID_INVALID",
                ApiErrorKind::UserNotFound,
            ),
            (
                403,
                "Forbidden: bot was blocked by the user",
                ApiErrorKind::BotBlocked,
            ),
            (
                403,
                "Forbidden: user is deactivated",
                ApiErrorKind::BotBlocked,
            ),
            (
                403,
                "Forbidden: bot is not a member of the channel chat",
                ApiErrorKind::Forbidden,
            ),
            (401, "Unauthorized", ApiErrorKind::Unauthorized),
            (404, "Not Found", ApiErrorKind::NotFound),
            (
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
                ApiErrorKind::WebhookActive,
            ),
            (
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                ApiErrorKind::PollingConflict,
            ),
            (
                400,
                "Bad Request: member list is inaccessible",
                ApiErrorKind::Other,
            ),
        ] {
            assert_eq!(api(code, description).kind(), Some(kind), "{description}");
        }
        assert!(api(400, "Bad Request: can't parse entities: x").is_parse_error());
        assert!(!api(400, "Bad Request: chat not found").is_parse_error());
    }

    #[test]
    fn errors_say_whether_to_send_again() {
        assert_eq!(
            api(502, "Bad Gateway").outcome(),
            Outcome::ServerError(None)
        );
        assert_eq!(
            api(400, "Bad Request: chat not found").outcome(),
            Outcome::Fatal
        );
        let flood = TelegramError::RetryAfter {
            method: "sendMessage",
            seconds: 7,
        };
        assert_eq!(
            flood.outcome(),
            Outcome::RateLimited(Some(Duration::from_secs(7)))
        );
    }
}
