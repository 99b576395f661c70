//! The OpenAI part: key, server, model and the client's retry policy.

use std::time::Duration;

use super::vars::Vars;
use super::{ConfigError, DEFAULT_MODEL, Purpose, problem};
use crate::secret::Secret;

/// How to reach OpenAI.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// `OPENAI_API_KEY`: required by `serve`, `poll` and `check`.
    pub api_key: Secret,
    /// `OPENAI_BASE_URL`, without a trailing `/`.
    pub base_url: String,
    /// `OPENAI_MODEL`.
    pub model: String,
    /// Time-out of one OpenAI request.
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First back-off step; doubles each retry.
    pub retry_base: Duration,
}

impl OpenAiConfig {
    pub(super) fn from_vars(v: &Vars, purpose: Purpose) -> Result<Self, ConfigError> {
        let api_key = match v.get("OPENAI_API_KEY") {
            Some(k) => Secret::new(k),
            None if matches!(purpose, Purpose::Serve | Purpose::Bot) => {
                return Err(problem("OPENAI_API_KEY", "is required but not set"));
            }
            None => Secret::default(),
        };
        Ok(Self {
            api_key,
            base_url: v.url("OPENAI_BASE_URL", "https://api.openai.com/v1")?,
            model: v.or("OPENAI_MODEL", DEFAULT_MODEL).to_string(),
            timeout: Duration::from_secs(v.number("OPENAI_TIMEOUT_SECS", 120)?.max(1)),
            max_retries: v.number("OPENAI_MAX_RETRIES", 3)?,
            retry_base: Duration::from_millis(v.number("OPENAI_RETRY_BASE_MS", 500)?),
        })
    }
}
