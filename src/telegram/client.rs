//! A typed Bot API client on reqwest, named after the methods it calls.
//!
//! The bot token is part of every URL, so no error from here ever carries a URL: reqwest
//! errors are stripped of it before they leave this module.

mod methods;

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::TelegramError;
use super::turns::{MAX_IN_FLIGHT, Turns};
use crate::retry::Policy;
use crate::secret::Secret;

/// How Bot API calls are retried: 429 (waiting `retry_after`, up to two minutes), 5xx and
/// network errors, each with back-off, at most five times. Every call counts as safe to
/// repeat, sends included: after a dropped connection a message may arrive twice, which is
/// a smaller harm than an answer that was paid for and never delivered (SPEC §5).
pub const POLICY: Policy = Policy::new(Duration::from_millis(500), Duration::from_secs(8), 5)
    .with_max_retry_after(Duration::from_secs(120));

/// A draft that takes longer than this is late anyway; the next one replaces it.
const DRAFT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
struct Envelope<T> {
    ok: bool,
    result: Option<T>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct ResponseParameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

/// `parse_mode` of a message.
#[derive(Debug, Clone, Copy, Serialize)]
pub enum ParseMode {
    /// Telegram's HTML subset.
    #[serde(rename = "HTML")]
    Html,
}

/// The Bot API client. Cheap to clone.
#[derive(Clone)]
pub struct Bot {
    http: reqwest::Client,
    base: String,
    token: Secret,
    policy: Policy,
    /// Turns for requests in flight ([`MAX_IN_FLIGHT`]), shared by the clones.
    turns: Turns,
}

impl std::fmt::Debug for Bot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bot")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Bot {
    /// A client for `base` (e.g. `https://api.telegram.org`) with `token`.
    pub fn new(base: &str, token: Secret) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .expect("reqwest client with static settings");
        Bot {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
            policy: POLICY,
            turns: Turns::new(MAX_IN_FLIGHT),
        }
    }

    /// The same client with another retry policy.
    pub fn with_policy(self, policy: Policy) -> Self {
        Bot { policy, ..self }
    }

    /// Requests waiting for a turn to be sent right now.
    pub fn waiting_for_turn(&self) -> usize {
        self.turns.waiting()
    }

    /// Calls `method` with JSON `params`, re-sent as the retry policy allows.
    pub async fn call<P, R>(
        &self,
        method: &'static str,
        params: &P,
        timeout: Option<Duration>,
    ) -> Result<R, TelegramError>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.with_retry(method, || {
            let request = self.http.post(self.url(method)).json(params);
            Ok(match timeout {
                Some(t) => request.timeout(t),
                None => request,
            })
        })
        .await
    }

    /// Calls `method` once, best effort: no retry, a 429 comes back as
    /// [`TelegramError::RetryAfter`] for the caller to pace itself (drafts, which are stale by
    /// the time a retry would land), and nothing is sent while every turn is taken
    /// ([`TelegramError::Busy`]; see [`super::turns`]).
    pub async fn call_once<P, R>(
        &self,
        method: &'static str,
        params: &P,
        timeout: Duration,
    ) -> Result<R, TelegramError>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let Some(_turn) = self.turns.try_take() else {
            return Err(TelegramError::Busy { method });
        };
        let request = self
            .http
            .post(self.url(method))
            .json(params)
            .timeout(timeout);
        self.exchange(method, request).await
    }

    /// Sends the request `build` makes; after a failure the policy allows to repeat (429, 5xx,
    /// network), waits and sends a fresh one.
    async fn with_retry<R, B>(&self, method: &'static str, build: B) -> Result<R, TelegramError>
    where
        R: DeserializeOwned,
        B: Fn() -> Result<reqwest::RequestBuilder, TelegramError>,
    {
        self.policy
            .run(
                "telegram",
                true,
                || async { self.send(method, build()?).await },
                TelegramError::outcome,
            )
            .await
    }

    fn url(&self, method: &str) -> String {
        format!("{}/bot{}/{}", self.base, self.token.expose(), method)
    }

    /// Sends the request once its turn comes (see [`super::turns`]).
    async fn send<R: DeserializeOwned>(
        &self,
        method: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<R, TelegramError> {
        let _turn = self.turns.take().await;
        self.exchange(method, request).await
    }

    /// Sends the request and reads its answer; the caller holds a turn until this ends.
    async fn exchange<R: DeserializeOwned>(
        &self,
        method: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<R, TelegramError> {
        let response = request.send().await.map_err(|e| {
            metrics::counter!("subgpt_telegram_requests_total", "method" => method, "status" => "error").increment(1);
            TelegramError::Http { method, source: e.without_url() }
        })?;
        let status = response.status();
        metrics::counter!("subgpt_telegram_requests_total", "method" => method, "status" => status.as_u16().to_string()).increment(1);
        let body = response.bytes().await.map_err(|e| TelegramError::Http {
            method,
            source: e.without_url(),
        })?;
        let envelope: Envelope<R> = match serde_json::from_slice(&body) {
            Ok(envelope) => envelope,
            // A proxy in front of the Bot API (a 502 page) answers without an envelope: keep
            // the status, so a 5xx is retried like one Telegram itself reports.
            Err(_) if !status.is_success() => {
                return Err(TelegramError::Api {
                    method,
                    code: status.as_u16(),
                    description: format!("HTTP {status} without a Bot API answer"),
                });
            }
            Err(e) => {
                return Err(TelegramError::Decode {
                    method,
                    detail: format!("HTTP {status}: {e}"),
                });
            }
        };
        if envelope.ok {
            return envelope.result.ok_or(TelegramError::Decode {
                method,
                detail: "ok without result".into(),
            });
        }
        let code = envelope.error_code.unwrap_or(status.as_u16());
        if code == 429 {
            let seconds = envelope.parameters.and_then(|p| p.retry_after).unwrap_or(1);
            return Err(TelegramError::RetryAfter { method, seconds });
        }
        Err(TelegramError::Api {
            method,
            code,
            description: envelope.description.unwrap_or_default(),
        })
    }
}
