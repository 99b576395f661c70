//! Bot API types, as much of them as the bot reads or sends (Bot API 10.1).
//!
//! Unknown fields are ignored, so newer API versions don't break parsing.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

/// Just enough of an update to tell whether the bot handles it, read without building the
/// update: a busy bot in groups gets many it ignores, and the full parse (strings, entities,
/// nested users) was half of the webhook's own work for those. [`UpdateHead::handled`] is
/// true exactly when the bot handles the [`Update`] of the same body (see `intake`).
#[derive(Debug, Deserialize)]
pub struct UpdateHead<'a> {
    /// Required, as in [`Update`]: a body without it is not an update.
    #[allow(dead_code)]
    update_id: i64,
    #[serde(default, borrow)]
    message: Option<MessageHead<'a>>,
    #[serde(default)]
    chat_member: Option<IgnoredAny>,
    #[serde(default)]
    my_chat_member: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
struct MessageHead<'a> {
    #[serde(borrow)]
    chat: ChatHead<'a>,
    #[serde(default)]
    from: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
struct ChatHead<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

impl UpdateHead<'_> {
    /// A private message with a sender, or a change of membership: what [`Update::private_message`]
    /// and the membership fields select.
    pub fn handled(&self) -> bool {
        let private = self
            .message
            .as_ref()
            .is_some_and(|m| m.chat.kind == "private" && m.from.is_some());
        private || self.chat_member.is_some() || self.my_chat_member.is_some()
    }
}

/// An incoming update. Only `update_id` is required: kinds the bot doesn't handle parse fine
/// and are ignored.
///
/// The membership changes are boxed: they are rare, and inline (464 bytes each) they made
/// every update 1.2 KB instead of 280 bytes, in each queued job and in each answer's futures.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Update {
    pub update_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_member: Option<Box<ChatMemberUpdated>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub my_chat_member: Option<Box<ChatMemberUpdated>>,
}

impl Update {
    /// The user this update is about: the sender of a message, or the member whose status
    /// changed (the bot itself for `my_chat_member`).
    pub fn user_id(&self) -> Option<i64> {
        if let Some(m) = &self.message {
            return m.from.as_ref().map(|u| u.id);
        }
        self.chat_member
            .as_ref()
            .or(self.my_chat_member.as_ref())
            .map(|c| c.new_chat_member.user().id)
    }

    /// The private-chat message, if this update is one.
    pub fn private_message(&self) -> Option<&Message> {
        self.message
            .as_ref()
            .filter(|m| m.chat.kind == "private" && m.from.is_some())
    }
}

/// A message (only the fields the bot uses).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Message {
    pub message_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<User>,
    pub chat: Chat,
    pub date: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Message {
    /// The command this message starts with, without the `/` and any `@botname`, and the
    /// rest of the text: `/reset@my_bot now` → `("reset", "now")`.
    pub fn command(&self) -> Option<(&str, &str)> {
        parse_command(self.text.as_deref()?)
    }
}

/// A text's leading command (see [`Message::command`]).
pub fn parse_command(text: &str) -> Option<(&str, &str)> {
    let rest = text.trim_start().strip_prefix('/')?;
    let (word, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let name = word.split('@').next().unwrap_or(word);
    (!name.is_empty()).then_some((name, args.trim()))
}

/// A Telegram user or bot.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub is_bot: bool,
    pub first_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// IETF language tag of the user's Telegram app (`ru`, `en-US`), when Telegram sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
}

impl User {
    /// The name stored with usage rows: username, else first name, else `id<user_id>`.
    pub fn display_name(&self) -> String {
        match (&self.username, self.first_name.trim()) {
            (Some(u), _) if !u.is_empty() => u.clone(),
            (_, first) if !first.is_empty() => first.to_string(),
            _ => format!("id{}", self.id),
        }
    }
}

/// A chat.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Chat {
    pub id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// IETF language tag of the user's Telegram app (`ru`, `en-US`), when Telegram sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
}

/// A change of a chat member's status.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChatMemberUpdated {
    pub chat: Chat,
    pub from: User,
    pub date: i64,
    pub old_chat_member: ChatMember,
    pub new_chat_member: ChatMember,
}

/// A chat member, by status (the fields the gate needs).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum ChatMember {
    Creator { user: User },
    Administrator { user: User },
    Member { user: User },
    Restricted { user: User, is_member: bool },
    Left { user: User },
    Kicked { user: User },
}

impl ChatMember {
    /// The member.
    pub fn user(&self) -> &User {
        match self {
            ChatMember::Creator { user }
            | ChatMember::Administrator { user }
            | ChatMember::Member { user }
            | ChatMember::Restricted { user, .. }
            | ChatMember::Left { user }
            | ChatMember::Kicked { user } => user,
        }
    }

    /// Counts as subscribed: creator, administrator, member, or restricted but still a member.
    pub fn is_subscribed(&self) -> bool {
        match self {
            ChatMember::Creator { .. }
            | ChatMember::Administrator { .. }
            | ChatMember::Member { .. } => true,
            ChatMember::Restricted { is_member, .. } => *is_member,
            ChatMember::Left { .. } | ChatMember::Kicked { .. } => false,
        }
    }

    /// Whether this member is an administrator (or the creator) of the chat.
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            ChatMember::Creator { .. } | ChatMember::Administrator { .. }
        )
    }
}

/// A command for the menu (`setMyCommands`).
#[derive(Debug, Clone, Serialize)]
pub struct BotCommand {
    pub command: String,
    pub description: String,
}

/// Which chats a menu is for (`BotCommandScope`); Telegram picks the narrowest that matches.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BotCommandScope {
    /// Every private chat without a narrower menu.
    Default,
    /// One chat: for a private chat, the user's id.
    Chat { chat_id: i64 },
}

/// What `getWebhookInfo` reports.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct WebhookInfo {
    pub url: String,
    #[serde(default)]
    pub has_custom_certificate: bool,
    #[serde(default)]
    pub pending_update_count: i64,
    #[serde(default)]
    pub ip_address: Option<String>,
    #[serde(default)]
    pub last_error_date: Option<i64>,
    #[serde(default)]
    pub last_error_message: Option<String>,
    #[serde(default)]
    pub last_synchronization_error_date: Option<i64>,
    #[serde(default)]
    pub max_connections: Option<i64>,
    #[serde(default)]
    pub allowed_updates: Option<Vec<String>>,
}

/// The update kinds the bot asks Telegram for.
pub const ALLOWED_UPDATES: &[&str] = &["message", "chat_member", "my_chat_member"];

#[cfg(test)]
mod tests {
    use super::*;

    fn user(username: Option<&str>, first_name: &str) -> User {
        User {
            id: 7,
            is_bot: false,
            first_name: first_name.into(),
            last_name: None,
            username: username.map(Into::into),
            language_code: None,
        }
    }

    #[test]
    fn commands_are_parsed_with_and_without_bot_name() {
        assert_eq!(parse_command("/start"), Some(("start", "")));
        assert_eq!(parse_command("/help@subgpt_bot"), Some(("help", "")));
        assert_eq!(
            parse_command("/reset now please"),
            Some(("reset", "now please"))
        );
        assert_eq!(parse_command("hello /start"), None);
        assert_eq!(parse_command("/"), None);
    }

    #[test]
    fn display_name_prefers_username_then_first_name_then_id() {
        assert_eq!(user(Some("ann"), "Ann").display_name(), "ann");
        assert_eq!(user(None, "Ann").display_name(), "Ann");
        assert_eq!(user(Some(""), " ").display_name(), "id7");
    }

    #[test]
    fn updates_parse_with_unknown_fields_and_kinds() {
        let poll: Update =
            serde_json::from_str(r#"{"update_id": 5, "poll": {"id": "1"}}"#).unwrap();
        assert!(poll.private_message().is_none() && poll.user_id().is_none());
        let member: ChatMember =
            serde_json::from_str(r#"{"status": "restricted", "user": {"id": 1, "is_bot": false, "first_name": "A"}, "is_member": false, "until_date": 0}"#)
                .unwrap();
        assert!(!member.is_subscribed());
    }
}
