//! A fake OpenAI server over real HTTP: Conversations, Responses, Chat Completions and
//! Models, with the shapes of the OpenAPI spec, plus knobs for delays and failures.

mod answer;
mod background;
mod chat;
mod conversations;
mod errors;
mod models;
mod responses;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{delete, get, post};
use parking_lot::Mutex;
use serde_json::Value;

// The routes frame their streams with `super::sse`: the tests' `support::sse`, or the `sse`
// module of the example that includes these fakes.
use super::sse;

use answer::input_of;
use background::{cancel_response, get_response};
use chat::chat_completion;
use conversations::{create_conversation, delete_conversation, list_items};
use models::get_model;
use responses::create_response;

pub const API_KEY: &str = "sk-test-0123456789abcdefghij";

/// One recorded `/responses` or `/chat/completions` request.
#[derive(Debug, Clone)]
pub struct Request {
    pub body: Value,
    pub started: Instant,
}

/// A stored conversation item.
#[derive(Debug, Clone)]
struct Item {
    id: String,
    role: &'static str,
    text: String,
}

type Answer = Arc<dyn Fn(&str) -> String + Send + Sync>;

pub struct OpenAiState {
    pub requests: Vec<Request>,
    conversations: HashMap<String, Vec<Item>>,
    pub conversations_created: usize,
    pub deleted: Vec<String>,
    /// How every answer is made from the input.
    answer: Answer,
    pub delay: Duration,
    /// Statuses to answer before answering normally (e.g. [500, 503]); popped one per request.
    pub fail_next: VecDeque<u16>,
    /// Every request fails with this status.
    pub fail_always: Option<u16>,
    /// Leave `usage` out of answers.
    pub omit_usage: bool,
    /// Input tokens reported as read from the prompt cache (at most the input).
    pub cached_tokens: u64,
    /// Reasoning tokens reported, on top of the answer's own output tokens.
    pub reasoning_tokens: u64,
    /// The `model` the answers say they came from; the request's model when `None`.
    pub model_reported: Option<String>,
    /// Requests being served right now (background responses not finished included).
    pub in_flight: usize,
    /// Every `POST /responses` that arrived, answered or not.
    pub responses_posted: usize,
    /// `POST /responses` answers 404 `model_not_found` (a mistyped `OPENAI_MODEL`).
    pub model_missing: bool,
    /// How long `POST /responses` takes to answer at all (background or not): past the
    /// client's time-out, the bot cannot know whether the response was created.
    pub post_delay: Duration,
    /// The items list always says `has_more` with the same `last_id` (a cursor that never
    /// advances).
    pub stuck_cursor: bool,
    /// `GET /conversations/{id}/items` requests received.
    pub item_pages_served: usize,
    /// The next N items pages answer only after `slow_page_delay`.
    pub slow_item_pages: u32,
    pub slow_page_delay: Duration,
    /// Responses by id, as `GET /responses/{id}` shows them now.
    responses: HashMap<String, Value>,
    /// `GET /responses/{id}` calls.
    pub response_gets: usize,
    /// The ids `POST /responses/{id}/cancel` stopped while they were still running.
    pub cancelled: Vec<String>,
    /// `POST /responses/{id}/cancel` calls, answered or not.
    pub cancel_calls: usize,
    /// `POST /responses/{id}/cancel` fails with this status, and the response goes on.
    pub cancel_fails: Option<u16>,
    /// A cancelled background response still completes at its time, and then shows as
    /// `completed`, with its whole usage (as reported of OpenAI's, see `bot/settle.rs`).
    pub completes_despite_cancel: bool,
    /// Streams: the wait between two pieces of text (the first comes after `delay`).
    pub token_every: Duration,
    /// Streams: bytes per body chunk (small, so lines and characters are split).
    pub chunk_bytes: usize,
    /// Streams: after this many pieces of text, silence (the connection stays open).
    pub stall_after_pieces: Option<usize>,
    /// The next stream breaks after this many pieces of text.
    pub drop_after_pieces: Option<usize>,
    /// Streams opened by `POST /responses` or `POST /chat/completions`.
    pub streams_opened: usize,
    /// `starting_after` of every `GET /responses/{id}?stream=true`.
    pub resumed_after: Vec<Option<u64>>,
    /// Background responses: the finished response and when its text starts.
    streams: HashMap<String, (Value, Instant)>,
    /// While true, every answer waits (after `delay`) until it turns false:
    /// [`FakeOpenAi::hold`] and [`FakeOpenAi::release`].
    pub held: tokio::sync::watch::Sender<bool>,
    /// Background responses: the input each answers.
    inputs_of: HashMap<String, String>,
    next_id: u64,
}

impl OpenAiState {
    /// Forgets every conversation, as if OpenAI had deleted them.
    pub fn forget_conversations(&mut self) {
        self.conversations.clear();
    }

    /// Forgets every response, as if OpenAI had expired them: `GET /responses/{id}` is 404.
    pub fn forget_responses(&mut self) {
        self.responses.clear();
        self.streams.clear();
    }

    /// The ids of the conversations OpenAI knows.
    pub fn conversation_ids(&self) -> Vec<String> {
        self.conversations.keys().cloned().collect()
    }
}

#[derive(Clone)]
pub struct FakeOpenAi {
    pub url: String,
    pub state: Arc<Mutex<OpenAiState>>,
}

/// The tokens the fake charges for an exchange: deterministic, so tests can sum them.
pub fn tokens_for(input: &str, output: &str) -> u64 {
    10 + input.chars().count() as u64 + output.chars().count() as u64
}

impl FakeOpenAi {
    pub async fn start() -> FakeOpenAi {
        Self::start_on(0).await
    }

    /// Starts the fake on `port` (0 = any free one).
    pub async fn start_on(port: u16) -> FakeOpenAi {
        let state = Arc::new(Mutex::new(OpenAiState {
            requests: Vec::new(),
            conversations: HashMap::new(),
            conversations_created: 0,
            deleted: Vec::new(),
            answer: Arc::new(|input| format!("Echo: {input}")),
            delay: Duration::ZERO,
            fail_next: VecDeque::new(),
            fail_always: None,
            omit_usage: false,
            cached_tokens: 0,
            reasoning_tokens: 0,
            model_reported: None,
            in_flight: 0,
            responses_posted: 0,
            model_missing: false,
            post_delay: Duration::ZERO,
            stuck_cursor: false,
            item_pages_served: 0,
            slow_item_pages: 0,
            slow_page_delay: Duration::from_secs(5),
            responses: HashMap::new(),
            response_gets: 0,
            cancelled: Vec::new(),
            cancel_calls: 0,
            cancel_fails: None,
            completes_despite_cancel: false,
            token_every: Duration::ZERO,
            chunk_bytes: 7,
            stall_after_pieces: None,
            drop_after_pieces: None,
            streams_opened: 0,
            resumed_after: Vec::new(),
            streams: HashMap::new(),
            inputs_of: HashMap::new(),
            held: tokio::sync::watch::Sender::new(false),
            next_id: 1,
        }));
        let router = Router::new()
            .route("/v1/conversations", post(create_conversation))
            .route("/v1/conversations/{id}", delete(delete_conversation))
            .route("/v1/conversations/{id}/items", get(list_items))
            .route("/v1/responses", post(create_response))
            .route("/v1/responses/{id}", get(get_response))
            .route("/v1/responses/{id}/cancel", post(cancel_response))
            .route("/v1/chat/completions", post(chat_completion))
            .route("/v1/models/{model}", get(get_model))
            .with_state(Arc::clone(&state));
        let (addr, listener) = super::net::listen(port);
        let url = format!("http://{addr}/v1");
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        FakeOpenAi { url, state }
    }

    /// Answers every input with `f(input)`.
    pub fn answer_with(&self, f: impl Fn(&str) -> String + Send + Sync + 'static) {
        self.state.lock().answer = Arc::new(f);
    }

    /// Answers from now on wait until [`FakeOpenAi::release`] (answers already sent are not
    /// taken back): a test decides when the model is done, instead of guessing a delay.
    pub fn hold(&self) {
        self.with(|s| s.held.send_replace(true));
    }

    /// Lets every held answer go on.
    pub fn release(&self) {
        self.with(|s| s.held.send_replace(false));
    }

    /// Waits (10 s at most) until `n` answers are being served at once.
    pub async fn wait_in_flight(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.with(|s| s.in_flight) != n {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} answer(s) in flight at the fake OpenAI"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut OpenAiState) -> R) -> R {
        f(&mut self.state.lock())
    }

    /// Inputs of the answer requests, in arrival order.
    pub fn inputs(&self) -> Vec<String> {
        self.state
            .lock()
            .requests
            .iter()
            .map(|r| input_of(&r.body))
            .collect()
    }

    pub fn request_count(&self) -> usize {
        self.state.lock().requests.len()
    }

    /// `POST /responses` requests whose input was `input`.
    pub fn posts_of(&self, input: &str) -> usize {
        self.inputs().iter().filter(|i| *i == input).count()
    }
}

fn authorised(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {API_KEY}"))
}

type Shared = State<Arc<Mutex<OpenAiState>>>;
