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
    /// Requests being served right now.
    pub in_flight: usize,
    next_id: u64,
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

fn error(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body =
        json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}});
    let mut response = (code, axum::Json(body)).into_response();
    if status == 429 {
        response
            .headers_mut()
            .insert("retry-after", "0".parse().unwrap());
    }
    response
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
            next_id: 1,
        }));
        let router = Router::new()
            .route("/v1/conversations", post(create_conversation))
            .route("/v1/conversations/{id}", delete(delete_conversation))
            .route("/v1/conversations/{id}/items", get(list_items))
            .route("/v1/responses", post(create_response))
            .route("/v1/chat/completions", post(chat_completion))
            .route("/v1/models/{model}", get(get_model))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
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
    let s = state.lock();
    let Some(items) = s.conversations.get(&id) else {
        return error(404, "Conversation not found");
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
    let data: Vec<Value> = items
        .iter()
        .map(|i| {
            let kind = if i.role == "user" {
                "input_text"
            } else {
                "output_text"
            };
            json!({"type": "message", "id": i.id, "status": "completed", "role": i.role,
                   "content": [{"type": kind, "text": i.text}]})
        })
        .collect();
    let first = data.first().map(|d| d["id"].clone()).unwrap_or(Value::Null);
    let last = data.last().map(|d| d["id"].clone()).unwrap_or(Value::Null);
    axum::Json(json!({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more}))
        .into_response()
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
    for field in ["model", "conversation", "input", "instructions"] {
        if body.get(field).is_none() {
            return error(400, &format!("Missing required parameter: '{field}'."));
        }
    }
    let conversation = body["conversation"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !state.lock().conversations.contains_key(&conversation) {
        return error(404, "Conversation not found");
    }
    let (input, output) = match serve_answer(&state, &headers, &body).await {
        Ok(pair) => pair,
        Err(response) => return response,
    };
    let mut s = state.lock();
    let n = s.next_id;
    s.next_id += 2;
    let omit_usage = s.omit_usage;
    let (cached, reasoning) = (s.cached_tokens, s.reasoning_tokens);
    let model = reported_model(&s, &body);
    if let Some(items) = s.conversations.get_mut(&conversation) {
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
    axum::Json(response).into_response()
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
        return error(
            404,
            &format!("The model `{model}` does not exist or you do not have access to it."),
        );
    }
    axum::Json(
        json!({"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "openai"}),
    )
    .into_response()
}
