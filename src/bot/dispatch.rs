//! Dispatch: one FIFO queue per user, served by a task that lives while the user has
//! updates waiting. Users run in parallel; one user's updates run one at a time, in order.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tracing::Instrument;

use super::lock::UserLocks;
use crate::telegram::Update;

/// The service every update goes through (the gate around the bot).
pub type UpdateService = BoxCloneSyncService<Update, (), Infallible>;

/// Per-user queues in front of the update service.
pub struct Dispatcher {
    queues: Mutex<HashMap<i64, mpsc::UnboundedSender<Update>>>,
    service: UpdateService,
    tracker: TaskTracker,
    locks: UserLocks,
}

impl Dispatcher {
    /// A dispatcher feeding `service`, each update under its user's lock; its tasks are
    /// tracked by `tracker` for the drain.
    pub fn new(service: UpdateService, tracker: TaskTracker, locks: UserLocks) -> Arc<Self> {
        Arc::new(Dispatcher {
            queues: Mutex::new(HashMap::new()),
            service,
            tracker,
            locks,
        })
    }

    /// Queues `update` behind the same user's earlier ones. Never waits.
    pub fn submit(self: &Arc<Self>, user: i64, update: Update) {
        let mut queues = self.queues.lock();
        let update = match queues.get(&user) {
            Some(tx) => match tx.send(update) {
                Ok(()) => return,
                Err(mpsc::error::SendError(update)) => update,
            },
            None => update,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(update).expect("receiver is alive");
        queues.insert(user, tx);
        metrics::gauge!("subgpt_active_users").set(queues.len() as f64);
        let this = Arc::clone(self);
        self.tracker
            .spawn(async move { this.serve_user(user, rx).await });
    }

    /// Users with a task right now.
    pub fn active_users(&self) -> usize {
        self.queues.lock().len()
    }

    async fn serve_user(self: Arc<Self>, user: i64, mut rx: mpsc::UnboundedReceiver<Update>) {
        loop {
            let update = match rx.try_recv() {
                Ok(update) => update,
                Err(_) => {
                    // Decide to leave under the lock `submit` sends under, so nothing queued
                    // in between is stranded.
                    let mut queues = self.queues.lock();
                    match rx.try_recv() {
                        Ok(update) => update,
                        Err(_) => {
                            queues.remove(&user);
                            metrics::gauge!("subgpt_active_users").set(queues.len() as f64);
                            return;
                        }
                    }
                }
            };
            let span = tracing::info_span!("update", update_id = update.update_id, user_id = user);
            metrics::gauge!("subgpt_in_flight_conversations").increment(1.0);
            let handled = self.service.clone().oneshot(update).instrument(span);
            let _ = self.locks.hold(user, handled).await;
            metrics::gauge!("subgpt_in_flight_conversations").decrement(1.0);
        }
    }
}
