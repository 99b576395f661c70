//! `getUpdates`: long polling over the queued updates, and the conflicts Telegram reports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::Response;
use parking_lot::Mutex;
use serde_json::Value;

use super::methods::{fail, ok};
use super::{Call, TelegramState};

pub(super) async fn get_updates(state: &Arc<Mutex<TelegramState>>, params: Value) -> Response {
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
