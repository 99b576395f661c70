//! The webhook server part: where `serve` listens and what it accepts.

use std::net::SocketAddr;
use std::time::Duration;

use super::vars::Vars;
use super::{ConfigError, Purpose, problem};
use crate::secret::Secret;

/// The webhook endpoint and the HTTP server's limits.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `WEBHOOK_SECRET`: required by `serve` and `webhook set`.
    pub webhook_secret: Option<Secret>,
    /// `WEBHOOK_URL`: required by `webhook set`.
    pub webhook_url: Option<String>,
    /// `WEBHOOK_PATH`.
    pub webhook_path: String,
    /// `BIND_ADDR`.
    pub bind_addr: SocketAddr,
    /// A client must send a request's headers within this time (slow-loris guard).
    pub header_timeout: Duration,
    /// The most one request may take, body included; then 408.
    pub request_timeout: Duration,
}

impl ServerConfig {
    pub(super) fn from_vars(v: &Vars, purpose: Purpose) -> Result<Self, ConfigError> {
        let webhook_secret = match v.get("WEBHOOK_SECRET") {
            Some(s) => Some(Secret::new(validate_webhook_secret(s)?)),
            None if matches!(purpose, Purpose::Serve | Purpose::WebhookSet) => {
                return Err(problem("WEBHOOK_SECRET", "is required but not set"));
            }
            None => None,
        };
        let webhook_url = match v.get("WEBHOOK_URL") {
            Some(u) if u.starts_with("https://") => Some(u.to_string()),
            Some(u) => {
                return Err(problem(
                    "WEBHOOK_URL",
                    format!("`{u}` must be an https:// URL"),
                ));
            }
            None if purpose == Purpose::WebhookSet => {
                return Err(problem("WEBHOOK_URL", "is required but not set"));
            }
            None => None,
        };
        let webhook_path = v.or("WEBHOOK_PATH", "/webhook").to_string();
        if !webhook_path.starts_with('/') || webhook_path.len() < 2 {
            return Err(problem(
                "WEBHOOK_PATH",
                "must start with `/`, e.g. /webhook",
            ));
        }
        let bind_addr = v
            .or("BIND_ADDR", "127.0.0.1:8080")
            .parse()
            .map_err(|_| problem("BIND_ADDR", "must be host:port, e.g. 127.0.0.1:8080"))?;
        Ok(Self {
            webhook_secret,
            webhook_url,
            webhook_path,
            bind_addr,
            header_timeout: Duration::from_secs(v.number("HTTP_HEADER_TIMEOUT_SECS", 10)?.max(1)),
            request_timeout: Duration::from_secs(v.number("HTTP_REQUEST_TIMEOUT_SECS", 30)?.max(1)),
        })
    }
}

fn validate_webhook_secret(secret: &str) -> Result<&str, ConfigError> {
    let ok_len = (1..=256).contains(&secret.len());
    let ok_chars = secret
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok_len && ok_chars {
        Ok(secret)
    } else {
        Err(problem(
            "WEBHOOK_SECRET",
            "must be 1–256 characters of A-Z a-z 0-9 _ -",
        ))
    }
}
