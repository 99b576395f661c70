//! The Bot API methods the bot calls, each a thin typed wrapper over [`Bot::call`].

use std::time::Duration;

use super::super::params::*;
use super::super::types::{BotCommand, BotCommandScope, ChatMember, User, WebhookInfo};
use super::{Bot, DRAFT_TIMEOUT, ParseMode};
use crate::secret::Secret;
use crate::telegram::TelegramError;

impl Bot {
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

    /// `deleteMyCommands`: the menu of `scope` in `language_code` goes back to the wider one.
    pub async fn delete_my_commands(
        &self,
        scope: &BotCommandScope,
        language_code: Option<&str>,
    ) -> Result<(), TelegramError> {
        let params = DeleteMyCommands {
            scope,
            language_code,
        };
        self.call::<_, bool>("deleteMyCommands", &params, None)
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
