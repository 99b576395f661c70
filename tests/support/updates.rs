//! Telegram `Update` objects as the Bot API sends them to a webhook (Bot API 10.1, "Update",
//! "Message", "ChatMemberUpdated").

use serde_json::{Value, json};

use super::telegram;

/// A private text message from `user`.
pub fn text_update(update_id: i64, user: i64, text: &str) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id, "date": 1_760_000_000, "text": text,
            "from": telegram::user_json(user),
            "chat": {"id": user, "type": "private", "first_name": format!("User{user}"), "username": format!("user{user}")},
        }
    })
}

/// A private text message from `user` whose Telegram app is in `language_code`.
pub fn text_update_in(update_id: i64, user: i64, text: &str, language_code: &str) -> Value {
    let mut update = text_update(update_id, user, text);
    update["message"]["from"]["language_code"] = json!(language_code);
    update
}

/// A `chat_member` update of `channel` (an `@name`) for `user` going from `old` to `new`.
pub fn chat_member_update(
    update_id: i64,
    channel: &str,
    channel_id: i64,
    user: i64,
    old: &str,
    new: &str,
) -> Value {
    json!({
        "update_id": update_id,
        "chat_member": {
            "chat": {"id": channel_id, "type": "channel", "title": "Test channel", "username": channel.trim_start_matches('@')},
            "from": telegram::user_json(user),
            "date": 1_760_000_000,
            "old_chat_member": {"status": old, "user": telegram::user_json(user)},
            "new_chat_member": {"status": new, "user": telegram::user_json(user)},
        }
    })
}
