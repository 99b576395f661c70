//! One Bot API call coming in: the token, its parameters (JSON or multipart), the delays and
//! holds tests set, scripted failures, and the record of the call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::methods::{answer, fail};
use super::polling::get_updates;
use super::{Call, TOKEN, TelegramState};

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

pub(super) async fn handle(
    State(state): State<Arc<Mutex<TelegramState>>>,
    Path((bot, method)): Path<(String, String)>,
    request: Request,
) -> Response {
    if bot != format!("bot{TOKEN}") {
        return fail(401, "Unauthorized");
    }
    let params = params_of(request).await;
    let delay = if method == "getChatMember" {
        let mut s = state.lock();
        s.chat_member_asked += 1;
        s.chat_member_delay
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
