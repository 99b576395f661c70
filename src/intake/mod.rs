//! Intake: where `serve` (the webhook) and `poll` (getUpdates) hand over updates. Nothing
//! after it knows which door an update came through.
//!
//! An update the bot cares about is de-duplicated across instances (kv `SET NX`, 24 h), then
//! committed to the inbox in the state database (`INSERT OR IGNORE` on `update_id`, the dedup
//! for this instance), and only then queued for its user; the caller acknowledges Telegram
//! after [`Intake::accept`] returns. A restart replays what was accepted and not finished.

pub mod dispatch;
pub mod lock;

use std::sync::Arc;
use std::time::Duration;

use crate::store::kv::Kv;
use crate::store::state::{InboxRow, SEEN_FOR, StateError, StateStore, now_ms};
use crate::telegram::Update;
pub use dispatch::{Dispatcher, Job, Limits, UpdateService};

/// An update on its way through the gate and the bot, with its inbox receipt.
pub struct Delivery {
    pub update: Update,
    pub receipt: Receipt,
}

/// What the inbox knows of an update being handled, and the way to add to it.
#[derive(Clone)]
pub struct Receipt {
    pub update_id: i64,
    /// Responses mode: the response already asked for before a restart.
    pub response_id: Option<String>,
    /// When the answer must be in: a little before the update's deadline, so that what came
    /// so far, the apology and the usage still go out before the dispatcher cuts it off.
    pub answer_by: tokio::time::Instant,
    /// When the dispatcher cuts the update off, whatever it is doing.
    pub deadline: tokio::time::Instant,
    state: StateStore,
}

impl Receipt {
    /// Records the upstream response answering this update, so a replay picks it up instead
    /// of asking (and paying) again.
    pub async fn record_response(&self, response_id: &str) -> Result<(), StateError> {
        self.state.set_response(self.update_id, response_id).await
    }
}

/// What became of an update handed to the intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Committed to the inbox and queued.
    Accepted,
    /// Seen before (here or, with Redis, by another instance); not handled again.
    Duplicate,
    /// Not something the bot handles (groups, channels, unknown kinds).
    Ignored,
}

/// The intake shared by the webhook and the poller.
pub struct Intake {
    state: StateStore,
    kv: Kv,
    ns: String,
    dispatcher: Arc<Dispatcher>,
    /// `subgpt_updates_ignored_total`, registered once: looking it up by name on every ignored
    /// update (there can be thousands a second) is a measurable share of their cost.
    ignored: metrics::Counter,
}

/// The user an update is for, if the bot handles its kind.
fn relevant(update: &Update) -> Option<i64> {
    let handled = update.private_message().is_some()
        || update.chat_member.is_some()
        || update.my_chat_member.is_some();
    handled.then(|| update.user_id()).flatten()
}

impl Intake {
    /// The intake writing to `state`, de-duplicating across instances in `kv` (when it is
    /// Redis) under `ns`, and queueing on `dispatcher`.
    pub fn new(state: StateStore, kv: Kv, ns: String, dispatcher: Arc<Dispatcher>) -> Self {
        Intake {
            state,
            kv,
            ns,
            dispatcher,
            ignored: metrics::counter!("subgpt_updates_ignored_total"),
        }
    }

    /// The dispatcher behind this intake.
    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// Counts an update the bot does not handle; the webhook calls it for those it told apart
    /// by their [`UpdateHead`](crate::telegram::UpdateHead) alone.
    pub fn ignored(&self) -> Outcome {
        self.ignored.increment(1);
        Outcome::Ignored
    }

    /// Takes `update` in. When this returns `Ok`, the update is committed (or was seen, or is
    /// ignored) and Telegram may be told so; on `Err` nothing was accepted and Telegram should
    /// send it again.
    pub async fn accept(&self, update: Update) -> Result<Outcome, StateError> {
        let Some(user) = relevant(&update) else {
            return Ok(self.ignored());
        };
        metrics::counter!("subgpt_updates_received_total").increment(1);
        // Across instances. The in-process kv adds nothing to the inbox's own dedup.
        let marked = if self.kv.is_redis() {
            let key = self.seen_key(update.update_id);
            match self.kv.set_nx_ex(&key, "1", SEEN_FOR).await {
                Ok(true) => Some(key),
                Ok(false) => return Ok(self.duplicate(update.update_id)),
                Err(e) => {
                    tracing::warn!(error = %e, "dedup across instances unavailable; the inbox still de-duplicates here");
                    None
                }
            }
        } else {
            None
        };
        let row = InboxRow {
            update_id: update.update_id,
            user_id: user,
            body: serde_json::to_vec(&update).unwrap_or_default(),
            accepted_at: now_ms(),
            attempts: 0,
            response_id: None,
        };
        match self.state.accept(row).await {
            Ok(true) => {
                self.dispatcher.submit(Job::new(update, user), false);
                Ok(Outcome::Accepted)
            }
            Ok(false) => Ok(self.duplicate(update.update_id)),
            Err(e) => {
                // Not accepted: Telegram sends it again, and that one must not look seen.
                if let Some(key) = marked {
                    let _ = self.kv.del(&key).await;
                }
                tracing::error!(update_id = update.update_id, error = %e, "could not commit an update to the inbox");
                Err(e)
            }
        }
    }

    fn seen_key(&self, update_id: i64) -> String {
        format!("{}:upd:{update_id}", self.ns)
    }

    fn duplicate(&self, update_id: i64) -> Outcome {
        metrics::counter!("subgpt_updates_duplicate_total").increment(1);
        tracing::info!(update_id, "duplicate update ignored");
        Outcome::Duplicate
    }

    /// Queues every update accepted before a restart and not finished, per user in
    /// `update_id` order, ahead of anything new. Returns how many.
    pub async fn replay(&self) -> Result<usize, StateError> {
        let rows = self.state.pending().await?;
        let count = rows.len();
        for row in rows {
            match serde_json::from_slice::<Update>(&row.body) {
                Ok(update) => {
                    // By the clock: the process that accepted it is gone.
                    let age = now_ms().saturating_sub(row.accepted_at).max(0) as u64;
                    let job = Job {
                        response_id: row.response_id,
                        waited: Duration::from_millis(age),
                        ..Job::new(update, row.user_id)
                    };
                    self.dispatcher.submit(job, true);
                }
                Err(e) => {
                    tracing::error!(update_id = row.update_id, error = %e, "an inbox row does not parse; erasing it");
                    self.state.finish(row.update_id).await?;
                }
            }
        }
        if count > 0 {
            tracing::info!(
                updates = count,
                "replaying updates accepted before the restart"
            );
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::relevant;
    use crate::telegram::{Update, UpdateHead};

    /// The webhook answers an update whose head says "not handled" without parsing it whole:
    /// that must never drop one `relevant` would take.
    #[test]
    fn the_head_agrees_with_the_full_update() {
        let user = json!({"id": 7, "is_bot": false, "first_name": "A"});
        let chat = |kind: &str| json!({"id": 7, "type": kind});
        let member = json!({"chat": {"id": -1001, "type": "channel"}, "from": user, "date": 0,
            "old_chat_member": {"status": "left", "user": user},
            "new_chat_member": {"status": "member", "user": user}});
        let message = |kind: &str, from: Option<&serde_json::Value>| {
            let mut m = json!({"message_id": 1, "date": 0, "text": "hi", "chat": chat(kind)});
            if let Some(from) = from {
                m["from"] = from.clone();
            }
            m
        };
        let bodies = [
            json!({"update_id": 1, "message": message("private", Some(&user))}),
            json!({"update_id": 2, "message": message("private", None)}),
            json!({"update_id": 3, "message": message("private", Some(&serde_json::Value::Null))}),
            json!({"update_id": 4, "message": message("group", Some(&user))}),
            json!({"update_id": 5, "message": message("supergroup", Some(&user))}),
            json!({"update_id": 6, "message": message("channel", None)}),
            // The same, with an escape in the chat type (read as an owned string).
            json!({"update_id": 7, "message": message("private", Some(&user))}),
            json!({"update_id": 8, "chat_member": member}),
            json!({"update_id": 9, "my_chat_member": member}),
            json!({"update_id": 10, "edited_message": message("private", Some(&user))}),
            json!({"update_id": 11, "channel_post": message("channel", None)}),
            json!({"update_id": 12, "callback_query": {"id": "1", "from": user}}),
            json!({"update_id": 13}),
        ];
        for body in bodies {
            let mut text = body.to_string();
            if body["update_id"] == 7 {
                text = text.replace(r#""private""#, r#""pri\u0076ate""#);
            }
            let update: Update = serde_json::from_str(&text).unwrap();
            let head: UpdateHead = serde_json::from_str(&text).unwrap();
            assert_eq!(head.handled(), relevant(&update).is_some(), "{text}");
        }
    }

    #[test]
    fn a_body_without_update_id_has_no_head() {
        assert!(serde_json::from_str::<UpdateHead>(r#"{"message": {}}"#).is_err());
        assert!(serde_json::from_str::<UpdateHead>(r#"{"update_id": "x"}"#).is_err());
    }
}
