//! Dispatch: one bounded FIFO queue per user, served by a task that lives while the user has
//! updates waiting. Users run in parallel; one user's updates run one at a time, in order.
//!
//! Each update runs under its user's lock, within `ANSWER_DEADLINE_SECS`, with panics caught;
//! however it ends, its inbox row is erased and the task moves on to the next one. An update
//! whose handling was started too often (the process died each time) is given up.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tracing::Instrument;

use super::lock::UserLocks;
use super::{Delivery, Receipt};
use crate::config::BotLanguage;
use crate::reply::Replier;
use crate::store::state::StateStore;
use crate::telegram::Update;
use crate::telemetry::reference_id;
use crate::texts::{self, Lang, t};

/// The service every update goes through (the gate around the bot).
pub type UpdateService = BoxCloneSyncService<Delivery, (), Infallible>;

/// Attempts at one update before it is given up (each start counts, so an update that kills
/// the process is not replayed forever).
pub const MAX_ATTEMPTS: u32 = 3;

/// An accepted update on its way to the service.
pub struct Job {
    pub update: Update,
    pub user: i64,
    /// Responses mode: the response already asked for (after a restart).
    pub response_id: Option<String>,
}

impl Job {
    fn chat(&self) -> Option<i64> {
        self.update.private_message().map(|m| m.chat.id)
    }

    /// The language to tell the sender something in (`BOT_LANGUAGE` and their `language_code`).
    fn lang(&self, setting: BotLanguage) -> Lang {
        let code = self
            .update
            .private_message()
            .and_then(|m| m.from.as_ref())
            .and_then(|u| u.language_code.as_deref());
        Lang::pick(setting, code)
    }
}

/// How the dispatcher bounds work.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Updates one user may have waiting (beyond the one being handled).
    pub queue: usize,
    /// The most one update may take.
    pub deadline: Duration,
}

struct UserQueue {
    jobs: VecDeque<Job>,
    /// The user was told they are over the limit, since the queue was last empty.
    told_busy: bool,
}

/// Per-user queues in front of the update service.
pub struct Dispatcher {
    queues: Mutex<HashMap<i64, UserQueue>>,
    service: UpdateService,
    tracker: TaskTracker,
    locks: UserLocks,
    state: StateStore,
    reply: Replier,
    limits: Limits,
    /// `BOT_LANGUAGE`, for the notices the dispatcher sends itself.
    language: BotLanguage,
    /// Cancelled at shutdown: no update is started after it; the rest stays in the inbox.
    stopping: CancellationToken,
}

impl Dispatcher {
    /// A dispatcher feeding `service`, each update under its user's lock; its tasks are
    /// tracked by `tracker` for the drain.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        service: UpdateService,
        tracker: TaskTracker,
        locks: UserLocks,
        state: StateStore,
        reply: Replier,
        limits: Limits,
        language: BotLanguage,
        stopping: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Dispatcher {
            queues: Mutex::new(HashMap::new()),
            service,
            tracker,
            locks,
            state,
            reply,
            limits,
            language,
            stopping,
        })
    }

    /// Queues `job` behind the same user's earlier ones. Never waits. Past the user's limit
    /// the job is dropped (its row erased) and the user is told once; `replay` jobs, accepted
    /// before a restart, are never dropped.
    pub fn submit(self: &Arc<Self>, job: Job, replay: bool) {
        let user = job.user;
        let mut queues = self.queues.lock();
        if let Some(queue) = queues.get_mut(&user) {
            if replay || queue.jobs.len() < self.limits.queue {
                queue.jobs.push_back(job);
                return;
            }
            let tell = !std::mem::replace(&mut queue.told_busy, true);
            drop(queues);
            metrics::counter!("subgpt_updates_over_queue_limit_total").increment(1);
            tracing::info!(
                update_id = job.update.update_id,
                user_id = user,
                "user's queue is full; update dropped"
            );
            let this = Arc::clone(self);
            self.tracker.spawn(async move {
                if let Some(chat) = job.chat().filter(|_| tell) {
                    this.reply
                        .say(chat, &t(job.lang(this.language), "still_busy", &[]))
                        .await;
                }
                this.finish(job.update.update_id).await;
            });
            return;
        }
        queues.insert(
            user,
            UserQueue {
                jobs: VecDeque::from([job]),
                told_busy: false,
            },
        );
        metrics::gauge!("subgpt_active_users").set(queues.len() as f64);
        let this = Arc::clone(self);
        self.tracker
            .spawn(async move { this.serve_user(user).await });
    }

    /// Users with a task right now.
    pub fn active_users(&self) -> usize {
        self.queues.lock().len()
    }

    async fn serve_user(self: Arc<Self>, user: i64) {
        loop {
            let job = {
                let mut queues = self.queues.lock();
                let next = if self.stopping.is_cancelled() {
                    None
                } else {
                    queues.get_mut(&user).and_then(|q| q.jobs.pop_front())
                };
                match next {
                    Some(job) => job,
                    None => {
                        // Decided under the lock `submit` queues under, so nothing is stranded.
                        queues.remove(&user);
                        metrics::gauge!("subgpt_active_users").set(queues.len() as f64);
                        return;
                    }
                }
            };
            let span =
                tracing::info_span!("update", update_id = job.update.update_id, user_id = user);
            self.run(job).instrument(span).await;
        }
    }

    /// Handles one job, however it ends, then erases its row.
    async fn run(&self, job: Job) {
        let update_id = job.update.update_id;
        let chat = job.chat();
        let lang = job.lang(self.language);
        let attempts = match self.state.begin(update_id).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "could not count the attempt; handling the update anyway");
                1
            }
        };
        if attempts > MAX_ATTEMPTS {
            let reference = reference_id();
            tracing::error!(
                reference,
                attempts = attempts - 1,
                "given up: handling this update was started {MAX_ATTEMPTS} times without finishing"
            );
            if let Some(chat) = chat {
                self.reply
                    .say(chat, &texts::apology(lang, &reference))
                    .await;
            }
            self.finish(update_id).await;
            return;
        }
        let delivery = Delivery {
            update: job.update,
            receipt: Receipt {
                update_id,
                response_id: job.response_id,
                state: self.state.clone(),
            },
        };
        metrics::gauge!("subgpt_in_flight_conversations").increment(1.0);
        let work = AssertUnwindSafe(self.service.clone().oneshot(delivery)).catch_unwind();
        let outcome =
            tokio::time::timeout(self.limits.deadline, self.locks.hold(job.user, work)).await;
        metrics::gauge!("subgpt_in_flight_conversations").decrement(1.0);
        let failure = match outcome {
            Ok(Ok(_)) => None,
            Ok(Err(panic)) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Some(format!("handling the update panicked: {what}"))
            }
            Err(_) => Some(format!(
                "the update ran past ANSWER_DEADLINE_SECS ({} s) and was cancelled",
                self.limits.deadline.as_secs()
            )),
        };
        if let Some(why) = failure {
            let reference = reference_id();
            tracing::error!(reference, "given up: {why}");
            metrics::counter!("subgpt_updates_given_up_total").increment(1);
            if let Some(chat) = chat {
                self.reply
                    .say(chat, &texts::apology(lang, &reference))
                    .await;
            }
        }
        self.finish(update_id).await;
    }

    async fn finish(&self, update_id: i64) {
        if let Err(e) = self.state.finish(update_id).await {
            // It stays in the inbox and is replayed (and counted) at the next start.
            tracing::error!(update_id, error = %e, "could not erase a handled update from the inbox");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Purpose};
    use crate::secret::Secret;
    use crate::store::kv::Kv;
    use crate::store::state::InboxRow;

    fn update(update_id: i64, user: i64, text: &str) -> Update {
        serde_json::from_value(serde_json::json!({
            "update_id": update_id,
            "message": {"message_id": 1, "date": 0, "text": text,
                "from": {"id": user, "is_bot": false, "first_name": "A"},
                "chat": {"id": user, "type": "private"}}
        }))
        .unwrap()
    }

    /// A dispatcher in front of `service` without Redis, whose notices go nowhere.
    fn dispatcher(
        service: UpdateService,
        tracker: TaskTracker,
        state: StateStore,
    ) -> Arc<Dispatcher> {
        Dispatcher::new(
            service,
            tracker,
            UserLocks::new(Kv::memory(), "t".into(), "test"),
            state,
            // Nothing listens there: a notice fails and is logged, which is all we need.
            Replier::new(
                crate::telegram::Bot::new("http://127.0.0.1:9", Secret::new("1:x"))
                    .with_policy(crate::retry::Policy::new(Duration::ZERO, Duration::ZERO, 0)),
                &Config::from_vars(
                    &[("TELEGRAM_BOT_TOKEN", "1:x"), ("OPENAI_API_KEY", "k")]
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    Purpose::Bot,
                )
                .unwrap()
                .telegram,
            ),
            Limits {
                queue: 10,
                deadline: Duration::from_secs(10),
            },
            BotLanguage::Auto,
            CancellationToken::new(),
        )
    }

    #[tokio::test]
    async fn a_users_task_stays_small() {
        // Each user with an update in flight holds one such task, a thousand at once under
        // load. A Redis pool checkout inline in the lock's future, and updates carrying their
        // rare membership changes inline, once made it 14 KB.
        let dir = tempfile::tempdir().unwrap();
        let service = tower::service_fn(|_: Delivery| async { Ok::<(), Infallible>(()) });
        let dispatcher = dispatcher(
            BoxCloneSyncService::new(service),
            TaskTracker::new(),
            crate::store::state::open_in(dir.path()),
        );
        let task = Arc::clone(&dispatcher).serve_user(5);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 4096, "a user's task is {size} bytes");
    }

    #[tokio::test]
    async fn a_panic_in_one_update_is_caught_and_the_next_one_runs() {
        let dir = tempfile::tempdir().unwrap();
        let state = crate::store::state::open_in(dir.path());
        let handled = Arc::new(Mutex::new(Vec::new()));
        let service = {
            let handled = Arc::clone(&handled);
            tower::service_fn(move |d: Delivery| {
                let handled = Arc::clone(&handled);
                async move {
                    let text = d.update.message.as_ref().and_then(|m| m.text.clone());
                    if text.as_deref() == Some("boom") {
                        panic!("a bug while handling the update");
                    }
                    handled.lock().push(d.update.update_id);
                    Ok::<(), Infallible>(())
                }
            })
        };
        let tracker = TaskTracker::new();
        let dispatcher = dispatcher(
            BoxCloneSyncService::new(service),
            tracker.clone(),
            state.clone(),
        );
        for (id, text) in [(1, "first"), (2, "boom"), (3, "third")] {
            let update = update(id, 5, text);
            let row = InboxRow {
                update_id: id,
                user_id: 5,
                body: serde_json::to_vec(&update).unwrap(),
                accepted_at: 0,
                attempts: 0,
                response_id: None,
            };
            assert!(state.accept(row).await.unwrap());
            let job = Job {
                update,
                user: 5,
                response_id: None,
            };
            dispatcher.submit(job, false);
        }
        tracker.close();
        tokio::time::timeout(Duration::from_secs(30), tracker.wait())
            .await
            .unwrap();
        assert_eq!(*handled.lock(), vec![1, 3]);
        assert!(state.pending().await.unwrap().is_empty(), "all erased");
    }
}
