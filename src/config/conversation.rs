//! The conversation part: which OpenAI API keeps the dialogue, and how.

use std::time::Duration;

use super::bot::answer_deadline;
use super::vars::Vars;
use super::{ConfigError, DEFAULT_INSTRUCTIONS, problem};

/// Which OpenAI API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiMode {
    /// Responses + Conversations: OpenAI keeps the conversation.
    Responses,
    /// Chat Completions: the bot keeps the history.
    Chat,
}

/// How conversations are kept and streamed.
#[derive(Debug, Clone)]
pub struct ConversationConfig {
    /// `OPENAI_API_MODE`.
    pub api_mode: ApiMode,
    /// `ASSISTANT_INSTRUCTIONS` or the contents of `ASSISTANT_INSTRUCTIONS_FILE`.
    pub instructions: String,
    /// Chat mode: how long an idle history is kept.
    pub history_ttl: Duration,
    /// Chat mode: the history sent along is trimmed to about this many tokens.
    pub history_token_budget: usize,
    /// A streamed answer with no event for this long is cancelled.
    pub stream_idle: Duration,
    /// The most one answer may take (`ANSWER_DEADLINE_SECS`).
    pub answer_deadline: Duration,
    /// Responses mode: how long after a cut-off answer OpenAI is first asked how its response
    /// ended, for the usage to record (`OPENAI_SETTLE_AFTER_SECS`).
    pub settle_after: Duration,
}

impl ConversationConfig {
    pub(super) fn from_vars(v: &Vars) -> Result<Self, ConfigError> {
        let api_mode = match v.or("OPENAI_API_MODE", "responses") {
            "responses" => ApiMode::Responses,
            "chat" => ApiMode::Chat,
            other => {
                return Err(problem(
                    "OPENAI_API_MODE",
                    format!("`{other}` is not `responses` or `chat`"),
                ));
            }
        };
        let instructions = match (
            v.get("ASSISTANT_INSTRUCTIONS"),
            v.get("ASSISTANT_INSTRUCTIONS_FILE"),
        ) {
            (Some(_), Some(_)) => {
                return Err(problem(
                    "ASSISTANT_INSTRUCTIONS_FILE",
                    "set either it or ASSISTANT_INSTRUCTIONS, not both",
                ));
            }
            (Some(text), None) => text.to_string(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| {
                    problem(
                        "ASSISTANT_INSTRUCTIONS_FILE",
                        format!("cannot read `{path}`: {e}"),
                    )
                })?
                .trim()
                .to_string(),
            (None, None) => DEFAULT_INSTRUCTIONS.to_string(),
        };
        Ok(Self {
            api_mode,
            instructions,
            history_ttl: Duration::from_secs(
                v.number("CHAT_HISTORY_TTL_SECS", 7 * 24 * 3600)?.max(60),
            ),
            history_token_budget: v.number("CHAT_HISTORY_TOKEN_BUDGET", 8000)?.max(500),
            stream_idle: match v.number("OPENAI_STREAM_IDLE_SECS", 30)? {
                0 => return Err(problem("OPENAI_STREAM_IDLE_SECS", "must be at least 1")),
                n => Duration::from_secs(n),
            },
            answer_deadline: answer_deadline(v)?,
            settle_after: match v.number("OPENAI_SETTLE_AFTER_SECS", 60)? {
                0 => return Err(problem("OPENAI_SETTLE_AFTER_SECS", "must be at least 1")),
                n => Duration::from_secs(n),
            },
        })
    }
}
