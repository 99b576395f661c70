//! A fake Bot API server over real HTTP, answering like Telegram (Bot API 10.1 shapes), with
//! knobs for the failures tests need. Every call is recorded.

mod methods;
mod polling;
mod request;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};

use request::handle;

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
    /// getChatMember requests received so far (counted on arrival, before the delay).
    pub chat_member_asked: usize,
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
    /// Chats Telegram does not know (the user never opened the bot): a command menu scoped to
    /// one answers 400 "chat not found".
    pub unknown_chats: Vec<i64>,
    /// Command menus scoped to these chats answer 502 (Telegram having a bad minute).
    pub menu_failing_chats: Vec<i64>,
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

pub fn user_json(id: i64) -> Value {
    json!({"id": id, "is_bot": false, "first_name": format!("User{id}"), "username": format!("user{id}")})
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
