//! A fake OpenAI server over real HTTP: Conversations, Responses, Chat Completions and
//! Models, with the shapes of the OpenAPI spec, plus knobs for delays and failures.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use parking_lot::Mutex;
use serde_json::{Value, json};

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
    next_id: u64,
}

impl OpenAiState {
    /// Forgets every conversation, as if OpenAI had deleted them.
    pub fn forget_conversations(&mut self) {
        self.conversations.clear();
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

/// An `ErrorResponse` of the OpenAPI spec: `error.message`, `type`, `param`, `code`.
fn api_error(
    status: u16,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    let status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    let mut response = (status_code, axum::Json(body)).into_response();
    if status == 429 {
        response
            .headers_mut()
            .insert("retry-after", "0".parse().unwrap());
    }
    response
}

/// An error whose type follows from the status, with no param or code.
fn error(status: u16, message: &str) -> Response {
    let kind = match status {
        401 => "invalid_authentication_error",
        429 => "rate_limit_error",
        500.. => "server_error",
        _ => "invalid_request_error",
    };
    api_error(status, message, kind, None, None)
}

/// 404 for a conversation OpenAI does not know.
fn conversation_not_found(id: &str) -> Response {
    api_error(
        404,
        &format!("Conversation with id '{id}' not found."),
        "invalid_request_error",
        Some("conversation"),
        None,
    )
}

/// 404 for a model OpenAI does not know (or the key may not use).
fn model_not_found(model: &str) -> Response {
    api_error(
        404,
        &format!("The model `{model}` does not exist or you do not have access to it."),
        "invalid_request_error",
        None,
        Some("model_not_found"),
    )
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
            token_every: Duration::ZERO,
            chunk_bytes: 7,
            stall_after_pieces: None,
            drop_after_pieces: None,
            streams_opened: 0,
            resumed_after: Vec::new(),
            streams: HashMap::new(),
            next_id: 1,
        }));
        let router = Router::new()
            .route("/v1/conversations", post(create_conversation))
            .route("/v1/conversations/{id}", delete(delete_conversation))
            .route("/v1/conversations/{id}/items", get(list_items))
            .route("/v1/responses", post(create_response))
            .route("/v1/responses/{id}", get(get_response))
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

fn input_of(body: &Value) -> String {
    if let Some(input) = body["input"].as_str() {
        return input.to_string();
    }
    body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn authorised(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {API_KEY}"))
}

type Shared = State<Arc<Mutex<OpenAiState>>>;

async fn create_conversation(State(state): Shared, headers: HeaderMap) -> Response {
    if !authorised(&headers) {
        return error(401, "Incorrect API key provided");
    }
    let mut s = state.lock();
    let id = format!("conv_{:032x}", s.next_id);
    s.next_id += 1;
    s.conversations.insert(id.clone(), Vec::new());
    s.conversations_created += 1;
    axum::Json(
        json!({"id": id, "object": "conversation", "created_at": 1_760_000_000, "metadata": {}}),
    )
    .into_response()
}

async fn delete_conversation(State(state): Shared, Path(id): Path<String>) -> Response {
    let mut s = state.lock();
    s.conversations.remove(&id);
    s.deleted.push(id.clone());
    axum::Json(json!({"id": id, "object": "conversation.deleted", "deleted": true})).into_response()
}

async fn list_items(
    State(state): Shared,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let delay = {
        let mut s = state.lock();
        s.item_pages_served += 1;
        (s.slow_item_pages > 0).then(|| {
            s.slow_item_pages -= 1;
            s.slow_page_delay
        })
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let s = state.lock();
    let stuck = s.stuck_cursor;
    let Some(items) = s.conversations.get(&id) else {
        return conversation_not_found(&id);
    };
    let mut items: Vec<&Item> = items.iter().collect();
    if q.get("order").map(String::as_str) != Some("asc") {
        items.reverse();
    }
    if let Some(pos) = q
        .get("after")
        .and_then(|after| items.iter().position(|i| &i.id == after))
    {
        items.drain(..=pos);
    }
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(20);
    let has_more = items.len() > limit;
    items.truncate(limit);
    if stuck {
        // The same first page, "more to come", and a cursor that never moves.
        let mut all: Vec<&Item> = s.conversations[&id].iter().collect();
        all.truncate(1);
        let data: Vec<Value> = all.iter().map(|i| item_json(i)).collect();
        let last = data
            .last()
            .map(|d| d["id"].clone())
            .unwrap_or(json!("msg_stuck"));
        return axum::Json(json!({"object": "list", "data": data, "first_id": last, "last_id": last, "has_more": true}))
            .into_response();
    }
    let data: Vec<Value> = items.iter().map(|i| item_json(i)).collect();
    let first = data.first().map(|d| d["id"].clone()).unwrap_or(Value::Null);
    let last = data.last().map(|d| d["id"].clone()).unwrap_or(Value::Null);
    axum::Json(json!({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more}))
        .into_response()
}

/// A conversation item as the items list shows it.
fn item_json(item: &Item) -> Value {
    let kind = if item.role == "user" {
        "input_text"
    } else {
        "output_text"
    };
    json!({"type": "message", "id": item.id, "status": "completed", "role": item.role,
           "content": [{"type": kind, "text": item.text}]})
}

/// The common part of an answer: record, delay, scripted failures; the answer text on success.
async fn serve_answer(
    state: &Arc<Mutex<OpenAiState>>,
    headers: &HeaderMap,
    body: &Value,
) -> Result<(String, String), Response> {
    if !authorised(headers) {
        return Err(error(401, "Incorrect API key provided"));
    }
    let (delay, failure, answer) = {
        let mut s = state.lock();
        s.requests.push(Request {
            body: body.clone(),
            started: Instant::now(),
        });
        s.in_flight += 1;
        let failure = s.fail_next.pop_front().or(s.fail_always);
        (s.delay, failure, Arc::clone(&s.answer))
    };
    tokio::time::sleep(delay).await;
    state.lock().in_flight -= 1;
    if let Some(status) = failure {
        return Err(error(
            status,
            "The server had an error while processing your request. secret-upstream-detail",
        ));
    }
    let input = input_of(body);
    let output = answer(&input);
    Ok((input, output))
}

async fn create_response(
    State(state): Shared,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let (model_missing, post_delay) = {
        let mut s = state.lock();
        s.responses_posted += 1;
        (s.model_missing, s.post_delay)
    };
    tokio::time::sleep(post_delay).await;
    for field in ["model", "conversation", "input", "instructions"] {
        if body.get(field).is_none() {
            return error(400, &format!("Missing required parameter: '{field}'."));
        }
    }
    let conversation = body["conversation"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if model_missing {
        return model_not_found(body["model"].as_str().unwrap_or_default());
    }
    if !state.lock().conversations.contains_key(&conversation) {
        return conversation_not_found(&conversation);
    }
    if body["background"] == true {
        return create_background_response(state, headers, body, conversation).await;
    }
    let (input, output) = match serve_answer(&state, &headers, &body).await {
        Ok(pair) => pair,
        Err(response) => return response,
    };
    let response = finish_response(&mut state.lock(), &body, &conversation, &input, &output);
    axum::Json(response).into_response()
}

/// `background: true`: answered at once with the queued response (or, with `stream: true`,
/// its events as they come); it completes after the fake's delay and pacing, as
/// `GET /responses/{id}` then shows (the spec's asynchronous mode). It completes whether or
/// not the client is still listening, as OpenAI's background mode does.
async fn create_background_response(
    state: Arc<Mutex<OpenAiState>>,
    headers: HeaderMap,
    body: Value,
    conversation: String,
) -> Response {
    if !authorised(&headers) {
        return error(401, "Incorrect API key provided");
    }
    let (id, done, ready, finished, pace) = {
        let mut s = state.lock();
        s.requests.push(Request {
            body: body.clone(),
            started: Instant::now(),
        });
        if let Some(status) = s.fail_next.pop_front().or(s.fail_always) {
            return error(
                status,
                "The server had an error while processing your request. secret-upstream-detail",
            );
        }
        let id = format!("resp_bg{:08}", s.next_id);
        s.next_id += 1;
        s.in_flight += 1;
        let pending = json!({"id": id, "object": "response", "created_at": 1_760_000_000,
            "status": "in_progress", "background": true, "model": body["model"],
            "conversation": {"id": conversation}, "output": [], "usage": null, "error": null});
        s.responses.insert(id.clone(), pending);
        let input = input_of(&body);
        let output = (s.answer)(&input);
        let mut done = finish_response(&mut s, &body, &conversation, &input, &output);
        done["id"] = json!(id);
        done["background"] = json!(true);
        // The finished response stays hidden until its time.
        s.responses.insert(
            id.clone(),
            json!({"id": id, "object": "response", "status": "in_progress",
            "background": true, "output": [], "usage": null}),
        );
        let ready = Instant::now() + s.delay;
        let pieces = super::sse::pieces(&output).len() as u32;
        let finished = ready + s.token_every * pieces;
        let pace = super::sse::Pace {
            first: ready,
            every: s.token_every,
            chunk: s.chunk_bytes,
            stall_after: s.stall_after_pieces,
            drop_after: s.drop_after_pieces.take(),
        };
        s.streams.insert(id.clone(), (done.clone(), ready));
        (id, done, ready, finished, pace)
    };
    let _ = ready;
    {
        let (state, id, done) = (Arc::clone(&state), id.clone(), done.clone());
        tokio::spawn(async move {
            tokio::time::sleep(finished.saturating_duration_since(Instant::now())).await;
            let mut s = state.lock();
            s.responses.insert(id, done);
            s.in_flight -= 1;
        });
    }
    if body["stream"] == true {
        state.lock().streams_opened += 1;
        return sse(super::sse::body(super::sse::response_frames(&done), pace));
    }
    let queued = json!({"id": id, "object": "response", "created_at": 1_760_000_000,
        "status": "queued", "background": true, "model": body["model"],
        "conversation": {"id": conversation}, "output": [], "usage": null, "error": null});
    axum::Json(queued).into_response()
}

fn sse(body: axum::body::Body) -> Response {
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
        body,
    )
        .into_response()
}

async fn get_response(
    State(state): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorised(&headers) {
        return error(401, "Incorrect API key provided");
    }
    let mut s = state.lock();
    s.response_gets += 1;
    if q.get("stream").map(String::as_str) == Some("true") {
        let Some((done, ready)) = s.streams.get(&id).cloned() else {
            return error(404, &format!("Response with id '{id}' not found."));
        };
        let after: Option<u64> = q.get("starting_after").and_then(|n| n.parse().ok());
        s.resumed_after.push(after);
        let frames: Vec<_> = super::sse::response_frames(&done)
            .into_iter()
            .filter(|f| after.is_none_or(|n| f.sequence.is_some_and(|seq| seq > n)))
            .collect();
        let pace = super::sse::Pace {
            first: ready,
            every: s.token_every,
            chunk: s.chunk_bytes,
            stall_after: None,
            drop_after: None,
        };
        return sse(super::sse::body(frames, pace));
    }
    match s.responses.get(&id) {
        Some(response) => axum::Json(response.clone()).into_response(),
        None => error(404, &format!("Response with id '{id}' not found.")),
    }
}

/// Stores the exchange in the conversation; the completed Response object.
fn finish_response(
    s: &mut OpenAiState,
    body: &Value,
    conversation: &str,
    input: &str,
    output: &str,
) -> Value {
    let n = s.next_id;
    s.next_id += 2;
    let omit_usage = s.omit_usage;
    let (input, output) = (input.to_string(), output.to_string());
    let (cached, reasoning) = (s.cached_tokens, s.reasoning_tokens);
    let model = reported_model(s, body);
    if let Some(items) = s.conversations.get_mut(conversation) {
        items.push(Item {
            id: format!("msg_{n:08}"),
            role: "user",
            text: input.clone(),
        });
        items.push(Item {
            id: format!("msg_{:08}", n + 1),
            role: "assistant",
            text: output.clone(),
        });
    }
    let input_tokens = 10 + input.chars().count() as u64;
    let output_tokens = output.chars().count() as u64 + reasoning;
    let usage = json!({"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": cached.min(input_tokens)},
        "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens});
    let mut response = json!({
        "id": format!("resp_{n:08}"), "object": "response", "created_at": 1_760_000_000, "status": "completed",
        "model": model, "conversation": {"id": conversation},
        "output": [{"type": "message", "id": format!("msg_{:08}", n + 1), "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": output, "annotations": []}]}],
        "usage": usage,
    });
    if omit_usage {
        response.as_object_mut().unwrap().remove("usage");
    }
    let id = response["id"].as_str().unwrap_or_default().to_string();
    s.responses.insert(id, response.clone());
    response
}

async fn chat_completion(
    State(state): Shared,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if body.get("model").is_none() || !body["messages"].is_array() {
        return error(400, "Missing required parameter: 'messages'.");
    }
    let (input, output) = match serve_answer(&state, &headers, &body).await {
        Ok(pair) => pair,
        Err(response) => return response,
    };
    let prompt: usize = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or("").chars().count())
        .sum();
    let (cached, reasoning, model) = {
        let s = state.lock();
        (
            s.cached_tokens,
            s.reasoning_tokens,
            reported_model(&s, &body),
        )
    };
    let base = tokens_for(&input, &output);
    let total = base + reasoning;
    let prompt = prompt as u64;
    // Completion tokens include the reasoning ones, as OpenAI counts them.
    let completion = base.saturating_sub(prompt) + reasoning;
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total,
        "prompt_tokens_details": {"cached_tokens": cached.min(prompt), "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}});
    if body["stream"] == true {
        let mut s = state.lock();
        s.streams_opened += 1;
        let with_usage = body["stream_options"]["include_usage"] == true && !s.omit_usage;
        let frames = super::sse::chat_frames(&model, &output, with_usage.then_some(usage));
        let pace = super::sse::Pace {
            first: Instant::now(),
            every: s.token_every,
            chunk: s.chunk_bytes,
            stall_after: s.stall_after_pieces,
            drop_after: s.drop_after_pieces.take(),
        };
        return sse(super::sse::body(frames, pace));
    }
    axum::Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_760_000_000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": output, "refusal": null, "annotations": []},
                     "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total,
                  "prompt_tokens_details": {"cached_tokens": cached.min(prompt), "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
                                                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
    }))
    .into_response()
}

/// What the answer says its model was: the configured report, else the request's model.
fn reported_model(s: &OpenAiState, body: &Value) -> Value {
    s.model_reported
        .as_ref()
        .map_or_else(|| body["model"].clone(), |m| Value::String(m.clone()))
}

async fn get_model(headers: HeaderMap, Path(model): Path<String>) -> Response {
    if !authorised(&headers) {
        return error(401, "Incorrect API key provided");
    }
    if model.starts_with("no-such") {
        return model_not_found(&model);
    }
    axum::Json(
        json!({"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "openai"}),
    )
    .into_response()
}
