//! The HTTP side of OpenAI: authentication, time-outs, and retries through the one policy
//! (`crate::retry`): a POST is sent again only when OpenAI cannot have acted on it (no
//! connection, or a 429/5xx it reported), so an answer is never paid for twice; GETs and
//! DELETEs are idempotent and also survive a time-out.

use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{ApiError, OpenAiError};
use crate::config::OpenAiConfig;
use crate::retry::{Outcome, Policy};
use crate::secret::Secret;

/// The longest back-off wait, and the longest `Retry-After` honoured; a longer one is given up
/// on (an answer the user waits minutes for is worse than the apology).
const MAX_WAIT: Duration = Duration::from_secs(60);

/// One failed attempt: the error, and what it means for sending again.
struct Failed {
    error: OpenAiError,
    outcome: Outcome,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

/// An OpenAI HTTP client with the retry policy. Cheap to clone.
#[derive(Clone)]
pub struct OpenAi {
    http: reqwest::Client,
    base: String,
    key: Secret,
    model: String,
    policy: Policy,
    /// How long one request may wait for its answer (for a stream: for its first bytes).
    timeout: Duration,
}

impl OpenAi {
    /// A client configured from `config`.
    pub fn new(config: &OpenAiConfig) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(config.timeout)
            .build()
            .expect("reqwest client with static settings");
        OpenAi {
            http,
            base: config.base_url.clone(),
            key: config.api_key.clone(),
            model: config.model.clone(),
            policy: Policy::new(config.retry_base, MAX_WAIT, config.max_retries),
            timeout: config.timeout,
        }
    }

    /// The configured model.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Sends a request under the retry policy and decodes the JSON answer. Idempotent methods
    /// (GET, DELETE) are also repeated after a time-out; a POST is not.
    pub async fn request<B, R>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<R, OpenAiError>
    where
        B: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let url = format!("{}{}", self.base, path);
        let idempotent = method.is_idempotent();
        let bytes = self
            .policy
            .run(
                "openai",
                idempotent,
                || self.attempt(&method, &url, path, body),
                |failed: &Failed| failed.outcome,
            )
            .await
            .map_err(|failed| failed.error)?;
        serde_json::from_slice(&bytes).map_err(|e| OpenAiError::Decode {
            path: path.into(),
            detail: e.to_string(),
        })
    }

    /// Opens a streaming request (SSE) under the retry policy: the answer once its status is
    /// a success, its body still to be read. `timeout` bounds the whole stream.
    pub async fn open_stream<B>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<reqwest::Response, OpenAiError>
    where
        B: Serialize + ?Sized,
    {
        let url = format!("{}{}", self.base, path);
        self.policy
            .run(
                "openai",
                method.is_idempotent(),
                || self.open(&method, &url, path, body, Some(timeout)),
                |failed: &Failed| failed.outcome,
            )
            .await
            .map_err(|failed| failed.error)
    }

    /// One attempt: the body of a success, or the error and its outcome.
    async fn attempt<B>(
        &self,
        method: &Method,
        url: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<Bytes, Failed>
    where
        B: Serialize + ?Sized,
    {
        let response = self.open(method, url, path, body, None).await?;
        // A body cut off after a success status is an unknown outcome like a time-out: the
        // work was done upstream, so a POST is not sent again.
        response.bytes().await.map_err(|e| Failed {
            outcome: Outcome::of_transport(&e),
            error: OpenAiError::Http {
                path: path.into(),
                source: e.without_url(),
            },
        })
    }

    /// Sends one request: the answer when its status is a success, else the error (its body
    /// read) and what it means for sending again.
    async fn open<B>(
        &self,
        method: &Method,
        url: &str,
        path: &str,
        body: Option<&B>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, Failed>
    where
        B: Serialize + ?Sized,
    {
        let endpoint = endpoint_label(path);
        let transport = |e: reqwest::Error| Failed {
            outcome: Outcome::of_transport(&e),
            error: OpenAiError::Http {
                path: path.into(),
                source: e.without_url(),
            },
        };
        let started = std::time::Instant::now();
        let mut request = self
            .http
            .request(method.clone(), url)
            .bearer_auth(self.key.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        let outcome = match timeout {
            // A stream may run long, but its answer must start within the usual time-out.
            Some(total) => {
                match tokio::time::timeout(self.timeout, request.timeout(total).send()).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        metrics::counter!("subgpt_openai_requests_total", "endpoint" => endpoint, "status" => "error").increment(1);
                        return Err(Failed {
                            outcome: Outcome::Unknown,
                            error: OpenAiError::TimedOut {
                                path: path.into(),
                                seconds: self.timeout.as_secs(),
                            },
                        });
                    }
                }
            }
            None => request.send().await,
        };
        metrics::histogram!("subgpt_openai_request_duration_seconds", "endpoint" => endpoint)
            .record(started.elapsed().as_secs_f64());
        let response = outcome.map_err(|e| {
            metrics::counter!("subgpt_openai_requests_total", "endpoint" => endpoint, "status" => "error").increment(1);
            transport(e)
        })?;
        let status = response.status();
        let label = if status.is_success() {
            "ok".to_string()
        } else {
            status.as_u16().to_string()
        };
        metrics::counter!("subgpt_openai_requests_total", "endpoint" => endpoint, "status" => label)
            .increment(1);
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        let bytes = response.bytes().await.map_err(transport)?;
        Err(Failed {
            outcome: Outcome::of_status(status.as_u16(), retry_after),
            error: OpenAiError::Status {
                path: path.into(),
                status,
                error: ApiError::parse(&bytes),
            },
        })
    }

    /// `GET /models/{model}`: the key is valid and the model exists.
    pub async fn check_model(&self) -> Result<(), OpenAiError> {
        let path = format!("/models/{}", self.model);
        self.request::<(), serde_json::Value>(Method::GET, &path, None)
            .await
            .map(drop)
    }
}

/// A low-cardinality label for metrics (ids stripped).
fn endpoint_label(path: &str) -> &'static str {
    if path.starts_with("/responses") {
        "responses"
    } else if path.starts_with("/conversations") {
        "conversations"
    } else if path.starts_with("/chat/completions") {
        "chat_completions"
    } else {
        "other"
    }
}

/// The wait OpenAI asks for: `retry-after-ms` (which OpenAI's own SDKs read first), else
/// `Retry-After` in seconds. An HTTP date or a value that is not a number is ignored.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    number("retry-after-ms")
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| number("retry-after").map(Duration::from_secs_f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn retry_after_reads_milliseconds_first_then_seconds() {
        let both = headers(&[("retry-after-ms", "1500"), ("retry-after", "2")]);
        assert_eq!(retry_after(&both), Some(Duration::from_millis(1500)));
        let seconds = headers(&[("retry-after", "2")]);
        assert_eq!(retry_after(&seconds), Some(Duration::from_secs(2)));
        let date = headers(&[("retry-after", "Wed, 21 Oct 2026 07:28:00 GMT")]);
        assert_eq!(retry_after(&date), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")])), None);
    }
}
