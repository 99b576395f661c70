//! A typed Bot API client on reqwest, named after the methods it calls.
//!
//! The bot token is part of every URL, so no error from here ever carries a URL: reqwest
//! errors are stripped of it before they leave this module.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::TelegramError;
use super::params::*;
use super::types::{BotCommand, BotCommandScope, ChatMember, User, WebhookInfo};
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
        }
    }

    /// The same client with another retry policy.
    pub fn with_policy(self, policy: Policy) -> Self {
        Bot { policy, ..self }
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

    /// Calls `method` once: no retry, a 429 comes back as [`TelegramError::RetryAfter`] for
    /// the caller to pace itself (drafts, which are stale by the time a retry would land).
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
        let request = self
            .http
            .post(self.url(method))
            .json(params)
            .timeout(timeout);
        self.send(method, request).await
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

    async fn send<R: DeserializeOwned>(
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

    /// `getMe`: checks the token and tells who the bot is.
    pub async fn get_me(&self) -> Result<User, TelegramError> {
        self.call("getMe", &NoParams {}, None).await
    }

    /// `sendMessage`, without link previews.
    pub async fn send_message(
        &self,
        chat_id: i64,
        text: &str,
        parse_mode: Option<ParseMode>,
    ) -> Result<(), TelegramError> {
        let params = SendMessage {
            chat_id,
            text,
            parse_mode,
            link_preview_options: LinkPreviewOptions { is_disabled: true },
        };
        self.call::<_, serde_json::Value>("sendMessage", &params, None)
            .await
            .map(drop)
    }

    /// `sendMessageDraft`, once (see [`Bot::call_once`]).
    pub async fn send_message_draft(
        &self,
        chat_id: i64,
        draft_id: i64,
        text: &str,
        parse_mode: Option<ParseMode>,
    ) -> Result<(), TelegramError> {
        let params = SendMessageDraft {
            chat_id,
            draft_id,
            text,
            parse_mode,
        };
        self.call_once::<_, bool>("sendMessageDraft", &params, DRAFT_TIMEOUT)
            .await
            .map(drop)
    }

    /// `sendRichMessage` with Markdown content.
    pub async fn send_rich_message(
        &self,
        chat_id: i64,
        markdown: &str,
    ) -> Result<(), TelegramError> {
        let params = SendRichMessage {
            chat_id,
            rich_message: InputRichMessage { markdown },
        };
        self.call::<_, serde_json::Value>("sendRichMessage", &params, None)
            .await
            .map(drop)
    }

    /// `sendRichMessageDraft` with Markdown content, once (see [`Bot::call_once`]).
    pub async fn send_rich_message_draft(
        &self,
        chat_id: i64,
        draft_id: i64,
        markdown: &str,
    ) -> Result<(), TelegramError> {
        let params = SendRichMessageDraft {
            chat_id,
            draft_id,
            rich_message: InputRichMessage { markdown },
        };
        self.call_once::<_, bool>("sendRichMessageDraft", &params, DRAFT_TIMEOUT)
            .await
            .map(drop)
    }

    /// `sendChatAction` (e.g. `typing`), once: the next one comes in a few seconds anyway.
    pub async fn send_chat_action(&self, chat_id: i64, action: &str) -> Result<(), TelegramError> {
        self.call_once::<_, bool>(
            "sendChatAction",
            &SendChatAction { chat_id, action },
            Duration::from_secs(10),
        )
        .await
        .map(drop)
    }

    /// `sendDocument` with the file uploaded as multipart.
    pub async fn send_document(
        &self,
        chat_id: i64,
        file_name: &str,
        bytes: Vec<u8>,
        caption: &str,
    ) -> Result<(), TelegramError> {
        self.send_file(
            "sendDocument",
            "document",
            chat_id,
            file_name,
            "text/plain",
            bytes,
            caption,
        )
        .await
    }

    /// `sendPhoto` with the image uploaded as multipart.
    pub async fn send_photo(
        &self,
        chat_id: i64,
        file_name: &str,
        png: Vec<u8>,
        caption: &str,
    ) -> Result<(), TelegramError> {
        self.send_file(
            "sendPhoto",
            "photo",
            chat_id,
            file_name,
            "image/png",
            png,
            caption,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_file(
        &self,
        method: &'static str,
        field: &'static str,
        chat_id: i64,
        file_name: &str,
        mime: &str,
        bytes: Vec<u8>,
        caption: &str,
    ) -> Result<(), TelegramError> {
        self.with_retry::<serde_json::Value, _>(method, || {
            let part = reqwest::multipart::Part::bytes(bytes.clone())
                .file_name(file_name.to_string())
                .mime_str(mime)
                .map_err(|e| TelegramError::Http {
                    method,
                    source: e.without_url(),
                })?;
            let form = reqwest::multipart::Form::new()
                .text("chat_id", chat_id.to_string())
                .text("caption", caption.to_string())
                .part(field, part);
            Ok(self.http.post(self.url(method)).multipart(form))
        })
        .await
        .map(drop)
    }

    /// `setMyCommands`: the menu Telegram shows in `scope` (default: every chat) to users whose
    /// app is in `language_code` (none: everyone without a menu in their language).
    pub async fn set_my_commands(
        &self,
        commands: &[BotCommand],
        scope: Option<&BotCommandScope>,
        language_code: Option<&str>,
    ) -> Result<(), TelegramError> {
        let params = SetMyCommands {
            commands,
            scope,
            language_code,
        };
        self.call::<_, bool>("setMyCommands", &params, None)
            .await
            .map(drop)
    }

    /// `getChatMember`, bounded by `timeout`.
    pub async fn get_chat_member(
        &self,
        chat_id: &str,
        user_id: i64,
        timeout: Duration,
    ) -> Result<ChatMember, TelegramError> {
        self.call(
            "getChatMember",
            &GetChatMember { chat_id, user_id },
            Some(timeout),
        )
        .await
    }

    /// `setWebhook` with a secret token and the update kinds the bot needs.
    pub async fn set_webhook(
        &self,
        url: &str,
        secret: &Secret,
        allowed: &[&str],
        drop_pending: bool,
    ) -> Result<(), TelegramError> {
        let params = SetWebhook {
            url,
            secret_token: secret.expose(),
            allowed_updates: allowed,
            drop_pending_updates: drop_pending,
            max_connections: 40,
        };
        self.call::<_, bool>("setWebhook", &params, None)
            .await
            .map(drop)
    }

    /// `getWebhookInfo`.
    pub async fn get_webhook_info(&self) -> Result<WebhookInfo, TelegramError> {
        self.call("getWebhookInfo", &NoParams {}, None).await
    }

    /// `deleteWebhook`.
    pub async fn delete_webhook(&self, drop_pending: bool) -> Result<(), TelegramError> {
        self.call::<_, bool>(
            "deleteWebhook",
            &DeleteWebhook {
                drop_pending_updates: drop_pending,
            },
            None,
        )
        .await
        .map(drop)
    }

    /// `getUpdates` long polling, each update left as JSON so one odd update cannot stall
    /// the rest: waits up to `timeout_secs` for updates from `offset` on.
    pub async fn get_updates_raw(
        &self,
        offset: i64,
        timeout_secs: u64,
        allowed: &[&str],
    ) -> Result<Vec<serde_json::Value>, TelegramError> {
        let params = GetUpdates {
            offset,
            timeout: timeout_secs,
            allowed_updates: allowed,
            limit: 100,
        };
        self.call(
            "getUpdates",
            &params,
            Some(Duration::from_secs(timeout_secs + 15)),
        )
        .await
    }
}
