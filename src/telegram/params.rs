//! Request parameters of the Bot API methods the client calls, field for field as the Bot API
//! names them (only the fields the bot sets).

use serde::Serialize;

use super::client::ParseMode;
use super::types::{BotCommand, BotCommandScope};

#[derive(Serialize)]
pub(super) struct SendMessage<'a> {
    pub(super) chat_id: i64,
    pub(super) text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) parse_mode: Option<ParseMode>,
    pub(super) link_preview_options: LinkPreviewOptions,
}

#[derive(Serialize)]
pub(super) struct LinkPreviewOptions {
    pub(super) is_disabled: bool,
}

#[derive(Serialize)]
pub(super) struct NoParams {}

/// `sendMessageDraft`: a partial message, animated in place while it grows.
#[derive(Serialize)]
pub(super) struct SendMessageDraft<'a> {
    pub(super) chat_id: i64,
    pub(super) draft_id: i64,
    pub(super) text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) parse_mode: Option<ParseMode>,
}

/// `InputRichMessage` with Markdown content.
#[derive(Serialize)]
pub(super) struct InputRichMessage<'a> {
    pub(super) markdown: &'a str,
}

/// `sendRichMessage`.
#[derive(Serialize)]
pub(super) struct SendRichMessage<'a> {
    pub(super) chat_id: i64,
    pub(super) rich_message: InputRichMessage<'a>,
}

/// `sendRichMessageDraft`.
#[derive(Serialize)]
pub(super) struct SendRichMessageDraft<'a> {
    pub(super) chat_id: i64,
    pub(super) draft_id: i64,
    pub(super) rich_message: InputRichMessage<'a>,
}

#[derive(Serialize)]
pub(super) struct SendChatAction<'a> {
    pub(super) chat_id: i64,
    pub(super) action: &'a str,
}

#[derive(Serialize)]
pub(super) struct SetMyCommands<'a> {
    pub(super) commands: &'a [BotCommand],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) scope: Option<&'a BotCommandScope>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) language_code: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct DeleteMyCommands<'a> {
    pub(super) scope: &'a BotCommandScope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) language_code: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct GetChatMember<'a> {
    /// `@username` or the numeric id as text; the Bot API takes both.
    pub(super) chat_id: &'a str,
    pub(super) user_id: i64,
}

#[derive(Serialize)]
pub(super) struct SetWebhook<'a> {
    pub(super) url: &'a str,
    pub(super) secret_token: &'a str,
    pub(super) allowed_updates: &'a [&'a str],
    pub(super) drop_pending_updates: bool,
    pub(super) max_connections: u32,
}

#[derive(Serialize)]
pub(super) struct DeleteWebhook {
    pub(super) drop_pending_updates: bool,
}

#[derive(Serialize)]
pub(super) struct GetUpdates<'a> {
    pub(super) offset: i64,
    pub(super) timeout: u64,
    pub(super) allowed_updates: &'a [&'a str],
    pub(super) limit: u32,
}
