//! Conversation routes: create, delete, and the paged items list (with knobs for slow pages
//! and a cursor that never advances).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::errors::{conversation_not_found, error};
use super::{Item, Shared, authorised};

pub(super) async fn create_conversation(State(state): Shared, headers: HeaderMap) -> Response {
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

pub(super) async fn delete_conversation(State(state): Shared, Path(id): Path<String>) -> Response {
    let mut s = state.lock();
    s.conversations.remove(&id);
    s.deleted.push(id.clone());
    axum::Json(json!({"id": id, "object": "conversation.deleted", "deleted": true})).into_response()
}

pub(super) async fn list_items(
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
