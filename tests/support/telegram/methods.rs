//! How each Bot API method answers (Bot API 10.1 shapes), and the knobs that make it fail.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{BOT_ID, TelegramState, user_json};

pub(super) fn ok(result: Value) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"ok": true, "result": result})),
    )
        .into_response()
}

pub(super) fn fail(code: u16, description: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        axum::Json(json!({"ok": false, "error_code": code, "description": description})),
    )
        .into_response()
}

fn member_json(status: &str, user: i64) -> Value {
    let user = user_json(user);
    match status {
        "restricted_in" => {
            json!({"status": "restricted", "user": user, "is_member": true, "can_send_messages": true,
            "can_send_audios": true, "can_send_documents": true, "can_send_photos": true, "can_send_videos": true,
            "can_send_video_notes": true, "can_send_voice_notes": true, "can_send_polls": true,
            "can_send_other_messages": true, "can_add_web_page_previews": true, "can_react_to_messages": true,
            "can_edit_tag": false, "can_change_info": false, "can_invite_users": true, "can_pin_messages": false,
            "can_manage_topics": false, "until_date": 0})
        }
        "restricted_out" => {
            json!({"status": "restricted", "user": user, "is_member": false, "can_send_messages": false,
            "can_send_audios": false, "can_send_documents": false, "can_send_photos": false, "can_send_videos": false,
            "can_send_video_notes": false, "can_send_voice_notes": false, "can_send_polls": false,
            "can_send_other_messages": false, "can_add_web_page_previews": false, "can_react_to_messages": false,
            "can_edit_tag": false, "can_change_info": false, "can_invite_users": false, "can_pin_messages": false,
            "can_manage_topics": false, "until_date": 0})
        }
        "creator" => json!({"status": "creator", "user": user, "is_anonymous": false}),
        "administrator" => {
            json!({"status": "administrator", "user": user, "can_be_edited": false, "is_anonymous": false,
            "can_manage_chat": true, "can_delete_messages": true, "can_manage_video_chats": true,
            "can_restrict_members": true, "can_promote_members": false, "can_change_info": true,
            "can_invite_users": true, "can_post_stories": false, "can_edit_stories": false, "can_delete_stories": false})
        }
        "kicked" => json!({"status": "kicked", "user": user, "until_date": 0}),
        other => json!({"status": other, "user": user}),
    }
}

pub(super) fn answer(s: &mut TelegramState, method: &str, params: &Value) -> Response {
    match method {
        "getMe" if s.reject_token => fail(401, "Unauthorized"),
        "getMe" if s.get_me_failures > 0 => {
            s.get_me_failures -= 1;
            fail(502, "Bad Gateway")
        }
        "getMe" => ok(
            json!({"id": BOT_ID, "is_bot": true, "first_name": "Sub GPT", "username": "subgpt_test_bot",
            "can_join_groups": false, "can_read_all_group_messages": false, "supports_inline_queries": false}),
        ),
        "sendMessage" => {
            if s.flood_next_messages > 0 {
                s.flood_next_messages -= 1;
                let seconds = s.flood_retry_after.max(1);
                let body = json!({"ok": false, "error_code": 429,
                    "description": format!("Too Many Requests: retry after {seconds}"),
                    "parameters": {"retry_after": seconds}});
                return (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            }
            if s.reject_html && params.get("parse_mode").is_some() {
                return fail(
                    400,
                    "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 0",
                );
            }
            let text = params["text"].as_str().unwrap_or_default();
            if text.is_empty() || text.encode_utf16().count() > 4096 {
                return fail(400, "Bad Request: message is too long");
            }
            ok(json!({"message_id": s.calls.len() + 1, "date": 0,
                "chat": {"id": params["chat_id"], "type": "private"}, "text": text}))
        }
        "sendMessageDraft" | "sendRichMessageDraft" => {
            if s.drafts_unsupported {
                return fail(404, "Not Found: method not found");
            }
            if s.draft_floods > 0 {
                s.draft_floods -= 1;
                let body = json!({"ok": false, "error_code": 429,
                    "description": "Too Many Requests: retry after 2", "parameters": {"retry_after": 2}});
                return (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            }
            if params["draft_id"].as_i64().unwrap_or(0) == 0 {
                return fail(400, "Bad Request: draft_id must be non-zero");
            }
            let text = params["text"].as_str().unwrap_or_default();
            if method == "sendMessageDraft" && text.encode_utf16().count() > 4096 {
                return fail(400, "Bad Request: message is too long");
            }
            ok(json!(true))
        }
        "sendRichMessage" => {
            if let Some(reason) = &s.reject_rich {
                return fail(400, reason);
            }
            let markdown = params["rich_message"]["markdown"]
                .as_str()
                .unwrap_or_default();
            if markdown.is_empty() || markdown.chars().count() > 32_768 {
                return fail(400, "Bad Request: RICH_MESSAGE_TOO_LONG");
            }
            ok(json!({"message_id": s.calls.len() + 1, "date": 0,
                "chat": {"id": params["chat_id"], "type": "private"}}))
        }
        "sendDocument" | "sendPhoto" => ok(json!({"message_id": s.calls.len() + 1, "date": 0,
            "chat": {"id": params["chat_id"], "type": "private"}})),
        "setMyCommands" | "deleteMyCommands" => {
            let chat = params["scope"]["chat_id"].as_i64();
            if chat.is_some_and(|c| s.unknown_chats.contains(&c)) {
                return fail(400, "Bad Request: chat not found");
            }
            if chat.is_some_and(|c| s.menu_failing_chats.contains(&c)) {
                return fail(502, "Bad Gateway");
            }
            ok(json!(true))
        }
        "sendChatAction" | "deleteWebhook" => ok(json!(true)),
        "setWebhook" => {
            s.webhook = json!({"url": params["url"], "has_custom_certificate": false, "pending_update_count": 0,
                "allowed_updates": params["allowed_updates"], "max_connections": 40});
            ok(json!(true))
        }
        "getWebhookInfo" => ok(s.webhook.clone()),
        "getChatMember" => {
            if let Some((code, description)) = &s.chat_member_error {
                return fail(*code, description);
            }
            let chat = match &params["chat_id"] {
                Value::String(c) => c.clone(),
                other => other.to_string(),
            };
            let user = params["user_id"].as_i64().unwrap_or_default();
            let status = s
                .members
                .get(&(chat, user))
                .cloned()
                .or_else(|| s.default_status.clone())
                .unwrap_or_else(|| "member".into());
            ok(member_json(&status, user))
        }
        _ => fail(404, "Not Found: method not found"),
    }
}
