//! A fake Bot API server over real HTTP, answering like Telegram (Bot API 10.1 shapes), with
//! knobs for the failures tests need. Every call is recorded.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};

pub const TOKEN: &str = "123456:TEST-token_abcdefghijklmnop";
pub const BOT_ID: i64 = 123456;

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub params: Value,
    pub at: Instant,
    /// Whether the fake answered `ok: true`.
    pub ok: bool,
}

/// What the fake does; tests change it through `FakeTelegram`.
#[derive(Default)]
pub struct TelegramState {
    pub calls: Vec<Call>,
    /// (chat_id as sent, user id) → status; users not listed are `default_status`.
    pub members: HashMap<(String, i64), String>,
    pub default_status: Option<String>,
    /// Every getChatMember answers this error: (HTTP status, description).
    pub chat_member_error: Option<(u16, String)>,
    pub chat_member_delay: Duration,
    /// The next N sendMessage calls get 429 with `retry_after` `flood_retry_after` (1 when 0).
    pub flood_next_messages: u32,
    pub flood_retry_after: u64,
    /// Statuses the next sendMessage calls get, one per call; 5xx come as a proxy's HTML page,
    /// as Telegram's front end sends them.
    pub fail_next_messages: VecDeque<u16>,
    /// The next N sendMessage calls lose their connection halfway through the answer.
    pub drop_next_messages: u32,
    /// sendMessage with parse_mode HTML fails with "can't parse entities".
    pub reject_html: bool,
    pub webhook: Value,
    pub updates: VecDeque<Value>,
    /// getUpdates answers 409 Conflict.
    pub polling_conflict: bool,
    /// Highest offset seen by getUpdates (updates below it are confirmed).
    pub confirmed_offset: i64,
    /// getMe answers 401 (a revoked token).
    pub reject_token: bool,
    /// The next N getMe calls answer 502 (Telegram or the network having a bad minute).
    pub get_me_failures: u32,
    /// Drafts answer 404, as an older Bot API server does.
    pub drafts_unsupported: bool,
    /// The next N drafts answer 429 with `retry_after: 2`.
    pub draft_floods: u32,
    /// `sendRichMessage` answers 400 with this description.
    pub reject_rich: Option<String>,
    /// When set, each sendMessage waits for a permit from it before it is answered.
    pub hold_messages: Option<Arc<tokio::sync::Semaphore>>,
    /// sendMessage requests being answered right now, and the most there ever were.
    pub messages_in_flight: usize,
    pub max_messages_in_flight: usize,
}

/// The fake server and its state.
#[derive(Clone)]
pub struct FakeTelegram {
    pub url: String,
    pub state: Arc<Mutex<TelegramState>>,
}

fn ok(result: Value) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"ok": true, "result": result})),
    )
        .into_response()
}

fn fail(code: u16, description: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        axum::Json(json!({"ok": false, "error_code": code, "description": description})),
    )
        .into_response()
}

pub fn user_json(id: i64) -> Value {
    json!({"id": id, "is_bot": false, "first_name": format!("User{id}"), "username": format!("user{id}")})
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

impl FakeTelegram {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> FakeTelegram {
        Self::start_on(0).await
    }

    /// Starts the fake on `port` (0 = any free one).
    pub async fn start_on(port: u16) -> FakeTelegram {
        let state = Arc::new(Mutex::new(TelegramState {
            webhook: json!({"url": "", "has_custom_certificate": false, "pending_update_count": 0}),
            ..Default::default()
        }));
        let router = Router::new()
            .route("/{bot}/{method}", post(handle))
            .with_state(Arc::clone(&state));
        let (addr, listener) = super::net::listen(port);
        let url = format!("http://{addr}");
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        FakeTelegram { url, state }
    }

    /// Recorded calls of `method`, oldest first.
    pub fn calls(&self, method: &str) -> Vec<Call> {
        self.state
            .lock()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// For each call of `method`, oldest first, whether it was answered `ok`.
    pub fn delivered(&self, method: &str) -> Vec<bool> {
        self.calls(method).iter().map(|c| c.ok).collect()
    }

    /// Texts of the messages delivered (answered ok) to `chat`, in order.
    pub fn sent_texts(&self, chat: i64) -> Vec<String> {
        self.calls("sendMessage")
            .into_iter()
            .filter(|c| c.ok && c.params["chat_id"].as_i64() == Some(chat))
            .map(|c| c.params["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The Markdown of the rich messages delivered to `chat`, in order.
    pub fn rich_texts(&self, chat: i64) -> Vec<String> {
        self.calls("sendRichMessage")
            .into_iter()
            .filter(|c| c.ok && c.params["chat_id"].as_i64() == Some(chat))
            .map(|c| {
                c.params["rich_message"]["markdown"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    /// The drafts (`sendMessageDraft` or `sendRichMessageDraft`) delivered to `chat`.
    pub fn drafts(&self, chat: i64) -> Vec<Call> {
        let s = self.state.lock();
        s.calls
            .iter()
            .filter(|c| {
                c.method.ends_with("Draft") && c.ok && c.params["chat_id"].as_i64() == Some(chat)
            })
            .cloned()
            .collect()
    }

    /// Every delivered message to `chat`, joined: handy for `contains` checks.
    pub fn transcript(&self, chat: i64) -> String {
        self.sent_texts(chat).join("\n---\n")
    }

    pub fn set_member(&self, channel: &str, user: i64, status: &str) {
        self.state
            .lock()
            .members
            .insert((channel.to_string(), user), status.to_string());
    }

    pub fn set_default_status(&self, status: &str) {
        self.state.lock().default_status = Some(status.to_string());
    }

    pub fn chat_member_calls(&self, user: i64) -> usize {
        self.calls("getChatMember")
            .iter()
            .filter(|c| c.params["user_id"].as_i64() == Some(user))
            .count()
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut TelegramState) -> R) -> R {
        f(&mut self.state.lock())
    }
}

async fn params_of(request: Request) -> Value {
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if is_multipart {
        let mut form = Multipart::from_request(request, &())
            .await
            .expect("multipart body");
        let mut fields = serde_json::Map::new();
        while let Some(field) = form.next_field().await.expect("multipart field") {
            let name = field.name().unwrap_or_default().to_string();
            let file_name = field.file_name().map(str::to_string);
            let content_type = field.content_type().map(str::to_string);
            let bytes = field.bytes().await.expect("field bytes");
            let value = match file_name {
                Some(file_name) => json!({
                    "file_name": file_name, "content_type": content_type, "len": bytes.len(),
                    "text": String::from_utf8_lossy(&bytes), "png": bytes.starts_with(b"\x89PNG"),
                }),
                None => {
                    let text = String::from_utf8_lossy(&bytes).to_string();
                    text.parse::<i64>()
                        .map(Value::from)
                        .unwrap_or(Value::String(text))
                }
            };
            fields.insert(name, value);
        }
        Value::Object(fields)
    } else {
        let bytes = axum::body::to_bytes(request.into_body(), 10 << 20)
            .await
            .unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or(json!({}))
    }
}

async fn handle(
    State(state): State<Arc<Mutex<TelegramState>>>,
    Path((bot, method)): Path<(String, String)>,
    request: Request,
) -> Response {
    if bot != format!("bot{TOKEN}") {
        return fail(401, "Unauthorized");
    }
    let params = params_of(request).await;
    let delay = if method == "getChatMember" {
        state.lock().chat_member_delay
    } else {
        Duration::ZERO
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if method == "getUpdates" {
        return get_updates(&state, params).await;
    }
    if method == "sendMessage" {
        let hold = {
            let mut s = state.lock();
            s.messages_in_flight += 1;
            s.max_messages_in_flight = s.max_messages_in_flight.max(s.messages_in_flight);
            s.hold_messages.clone()
        };
        if let Some(hold) = hold {
            hold.acquire().await.expect("the test's semaphore").forget();
        }
        state.lock().messages_in_flight -= 1;
    }
    if method == "sendMessage"
        && let Some(response) = scripted_failure(&mut state.lock(), &params)
    {
        return response;
    }
    let response = answer(&mut state.lock(), &method, &params);
    let ok = response.status() == StatusCode::OK;
    state.lock().calls.push(Call {
        method,
        params,
        at: Instant::now(),
        ok,
    });
    response
}

/// A scripted 5xx or dropped connection for a sendMessage call (recorded as not delivered).
fn scripted_failure(s: &mut TelegramState, params: &Value) -> Option<Response> {
    let response = if let Some(status) = s.fail_next_messages.pop_front() {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        let page = format!("<html><body><h1>{code}</h1></body></html>");
        (code, [(header::CONTENT_TYPE, "text/html")], page).into_response()
    } else if s.drop_next_messages > 0 {
        s.drop_next_messages -= 1;
        // Headers and the first bytes go out, then the connection breaks.
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
            Ok(bytes::Bytes::from_static(b"{\"ok\": tr")),
            Err(std::io::Error::other("connection lost")),
        ];
        let body = axum::body::Body::from_stream(futures::stream::iter(chunks));
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    } else {
        return None;
    };
    s.calls.push(Call {
        method: "sendMessage".into(),
        params: params.clone(),
        at: Instant::now(),
        ok: false,
    });
    Some(response)
}

fn answer(s: &mut TelegramState, method: &str, params: &Value) -> Response {
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
        "sendChatAction" | "setMyCommands" | "deleteWebhook" => ok(json!(true)),
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

async fn get_updates(state: &Arc<Mutex<TelegramState>>, params: Value) -> Response {
    let offset = params["offset"].as_i64().unwrap_or(0);
    let timeout = Duration::from_secs(params["timeout"].as_u64().unwrap_or(0).min(2));
    let deadline = Instant::now() + timeout;
    loop {
        let response = {
            let mut s = state.lock();
            s.calls.push(Call {
                method: "getUpdates".into(),
                params: params.clone(),
                at: Instant::now(),
                ok: true,
            });
            if s.polling_conflict {
                return fail(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                );
            }
            if !s.webhook["url"].as_str().unwrap_or_default().is_empty() {
                return fail(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
                );
            }
            s.confirmed_offset = s.confirmed_offset.max(offset);
            s.updates
                .retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
            let ready: Vec<Value> = s.updates.iter().cloned().collect();
            (!ready.is_empty() || Instant::now() >= deadline).then(|| ok(Value::Array(ready)))
        };
        if let Some(response) = response {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
