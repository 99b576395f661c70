//! The HTTP side of OpenAI: authentication, time-outs and bounded retries with back-off.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{Config, Secret};

/// What went wrong talking to OpenAI. The user never sees these; logs do.
#[derive(Debug, thiserror::Error)]
pub enum OpenAiError {
    /// An error status after the retries (the body is kept short and out of user messages).
    #[error("OpenAI {path}: HTTP {status}: {message}")]
    Status {
        path: String,
        status: StatusCode,
        message: String,
    },
    /// No answer (connection, time-out) after the retries.
    #[error("OpenAI {path}: {source}")]
    Http {
        path: String,
        source: reqwest::Error,
    },
    /// An answer that doesn't match the API.
    #[error("OpenAI {path}: unexpected answer: {detail}")]
    Decode { path: String, detail: String },
    /// The state store failed.
    #[error("conversation store: {0}")]
    Kv(#[from] crate::store::kv::KvError),
}

impl OpenAiError {
    /// The HTTP status, when there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            OpenAiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// An OpenAI HTTP client with the retry policy. Cheap to clone.
#[derive(Clone)]
pub struct OpenAi {
    http: reqwest::Client,
    base: String,
    key: Secret,
    model: String,
    max_retries: u32,
    retry_base: Duration,
}

impl OpenAi {
    /// A client configured from `config`.
    pub fn new(config: &Config) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(config.openai_timeout)
            .build()
            .expect("reqwest client with static settings");
        OpenAi {
            http,
            base: config.openai_base_url.clone(),
            key: config.openai_api_key.clone(),
            model: config.openai_model.clone(),
            max_retries: config.openai_max_retries,
            retry_base: config.openai_retry_base,
        }
    }

    /// The configured model.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Sends a request, retrying 429, 5xx and transport failures with exponential back-off
    /// (honouring `Retry-After`), and decodes the JSON answer.
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
        let endpoint = endpoint_label(path);
        let mut attempt = 0u32;
        loop {
            let started = std::time::Instant::now();
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.key.expose());
            if let Some(body) = body {
                request = request.json(body);
            }
            let outcome = request.send().await;
            metrics::histogram!("subgpt_openai_request_duration_seconds", "endpoint" => endpoint)
                .record(started.elapsed().as_secs_f64());
            let (retry_after, error) = match outcome {
                Ok(response) if response.status().is_success() => {
                    metrics::counter!("subgpt_openai_requests_total", "endpoint" => endpoint, "status" => "ok").increment(1);
                    let bytes = response.bytes().await.map_err(|e| OpenAiError::Http {
                        path: path.into(),
                        source: e.without_url(),
                    })?;
                    return serde_json::from_slice(&bytes).map_err(|e| OpenAiError::Decode {
                        path: path.into(),
                        detail: e.to_string(),
                    });
                }
                Ok(response) => {
                    let status = response.status();
                    metrics::counter!("subgpt_openai_requests_total", "endpoint" => endpoint, "status" => status.as_u16().to_string()).increment(1);
                    let retry_after = retry_after(response.headers());
                    let message = error_message(response).await;
                    let error = OpenAiError::Status {
                        path: path.into(),
                        status,
                        message,
                    };
                    if !(status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()) {
                        return Err(error);
                    }
                    (retry_after, error)
                }
                Err(e) => {
                    metrics::counter!("subgpt_openai_requests_total", "endpoint" => endpoint, "status" => "error").increment(1);
                    (
                        None,
                        OpenAiError::Http {
                            path: path.into(),
                            source: e.without_url(),
                        },
                    )
                }
            };
            if attempt >= self.max_retries {
                return Err(error);
            }
            let backoff = self.retry_base.saturating_mul(2u32.saturating_pow(attempt));
            let jitter = backoff.mul_f64(fastrand::f64() * 0.25);
            let wait = retry_after
                .unwrap_or(backoff + jitter)
                .min(Duration::from_secs(60));
            attempt += 1;
            tracing::warn!(%error, attempt, wait_ms = wait.as_millis() as u64, "OpenAI request failed; retrying");
            tokio::time::sleep(wait).await;
        }
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

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The `error.message` of an OpenAI error body, cut short; for logs only.
async fn error_message(response: reqwest::Response) -> String {
    let body = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or(body);
    message.chars().take(300).collect()
}
