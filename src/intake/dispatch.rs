//! Dispatch: one bounded FIFO queue per user, served by a task that lives while the user has
//! updates waiting. Users run in parallel; one user's messages run one at a time, in order. A
//! user's membership changes have a queue of their own, so the gate learns of them at once.
//!
//! Each message runs under its user's lock, each update within `ANSWER_DEADLINE_SECS` (from its
//! acceptance), with panics caught;
//! however it ends, its inbox row is erased and the task moves on to the next one. An update
//! whose handling was started too often (the process died each time) is given up.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use parking_lot::Mutex;
use tokio::time::Instant;
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
/// The longest part of an update's time kept back for wrapping up when its answer is late
/// (cancelling it upstream, sending what came, the apology); a tenth of the budget when less.
const WRAP_UP: Duration = Duration::from_secs(10);

/// An accepted update on its way to the service.
pub struct Job {
    pub update: Update,
    pub user: i64,
    /// Responses mode: the response already asked for (after a restart).
    pub response_id: Option<String>,
    /// How long ago it was accepted, as of `seen`: nothing for a new update; for one replayed
    /// after a restart, its age by the clock (`accepted_at`), since a monotonic instant does
    /// not survive the process.
    pub waited: Duration,
    /// When this process took it in.
    pub seen: Instant,
}

impl Job {
    /// A job for an update accepted just now.
    pub fn new(update: Update, user: i64) -> Self {
        Job {
            update,
            user,
            response_id: None,
            waited: Duration::ZERO,
            seen: Instant::now(),
        }
    }

    /// The queue it waits in: its user's messages one at a time, or that user's membership
    /// changes, which only touch the gate's cache and so are applied at once, not behind the
    /// answers the user is waiting for (SPEC §5).
    fn lane(&self) -> Lane {
        Lane {
            user: self.user,
            membership: self.update.private_message().is_none(),
        }
    }

    /// Time since the update was accepted.
    fn age(&self) -> Duration {
        self.waited + self.seen.elapsed()
    }

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
    /// The most one update may take, from its acceptance (time in the queue counts).
    pub deadline: Duration,
}

struct UserQueue {
    jobs: VecDeque<Job>,
    /// The user was told they are over the limit, since the queue was last empty.
    told_busy: bool,
}

/// Which queue a job waits in (see [`Job::lane`]).
#[derive(Debug, Clone, Copy)]
struct Lane {
    user: i64,
    membership: bool,
}

/// The queues with a task, by user: messages, and membership changes.
#[derive(Default)]
struct Queues {
    messages: HashMap<i64, UserQueue>,
    membership: HashMap<i64, UserQueue>,
}

impl Queues {
    fn of(&mut self, lane: Lane) -> &mut HashMap<i64, UserQueue> {
        if lane.membership {
            &mut self.membership
        } else {
            &mut self.messages
        }
    }

    /// Users with messages queued or being answered.
    fn users(&self) -> usize {
        self.messages.len()
    }
}

/// Per-user queues in front of the update service.
pub struct Dispatcher {
    queues: Mutex<Queues>,
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
            queues: Mutex::new(Queues::default()),
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

    /// Queues `job` behind the same user's earlier ones of its kind (messages, or membership
    /// changes). Never waits. Past the user's limit a message is dropped (its row erased) and
    /// the user is told once; `replay` jobs, accepted before a restart, and membership changes
    /// (not the user's words, and dropping one would leave a stale gate decision standing) are
    /// never dropped.
    pub fn submit(self: &Arc<Self>, job: Job, replay: bool) {
        let (user, lane) = (job.user, job.lane());
        let never_drop = replay || lane.membership;
        let mut queues = self.queues.lock();
        if let Some(queue) = queues.of(lane).get_mut(&user) {
            if never_drop || queue.jobs.len() < self.limits.queue {
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
        queues.of(lane).insert(
            user,
            UserQueue {
                jobs: VecDeque::from([job]),
                told_busy: false,
            },
        );
        metrics::gauge!("subgpt_active_users").set(queues.users() as f64);
        let this = Arc::clone(self);
        self.tracker.spawn(async move { this.serve(lane).await });
    }

    /// Users with messages queued or being answered right now.
    pub fn active_users(&self) -> usize {
        self.queues.lock().users()
    }

    async fn serve(self: Arc<Self>, lane: Lane) {
        let user = lane.user;
        loop {
            let job = {
                let mut queues = self.queues.lock();
                let next = if self.stopping.is_cancelled() {
                    None
                } else {
                    queues
                        .of(lane)
                        .get_mut(&user)
                        .and_then(|q| q.jobs.pop_front())
                };
                match next {
                    Some(job) => job,
                    None => {
                        // Decided under the lock `submit` queues under, so nothing is stranded.
                        queues.of(lane).remove(&user);
                        metrics::gauge!("subgpt_active_users").set(queues.users() as f64);
                        return;
                    }
                }
            };
            // At error level, so every line that is written at all carries the update's ids,
            // whatever RUST_LOG lets through.
            let span =
                tracing::error_span!("update", update_id = job.update.update_id, user_id = user);
            self.run(job).instrument(span).await;
        }
    }

    /// Handles one job, however it ends, then erases its row.
    async fn run(&self, job: Job) {
        let update_id = job.update.update_id;
        let chat = job.chat();
        let lang = job.lang(self.language);
        let membership = job.lane().membership;
        // A membership change is applied however late (dropping it would leave a stale gate
        // decision standing), and so is a response already asked for before a restart (it is
        // paid for: the answer and its usage are better late than lost).
        let budget = if membership || job.response_id.is_some() {
            self.limits.deadline
        } else {
            self.limits.deadline.saturating_sub(job.age())
        };
        if budget.is_zero() {
            let why = format!(
                "the update waited past ANSWER_DEADLINE_SECS ({} s) for its turn",
                self.limits.deadline.as_secs()
            );
            return self.give_up(update_id, chat, lang, &why).await;
        }
        let deadline = Instant::now() + budget;
        let answer_by = deadline - WRAP_UP.min(budget / 10);
        let attempts = match self.state.begin(update_id).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "could not count the attempt; handling the update anyway");
                1
            }
        };
        if attempts > MAX_ATTEMPTS {
            let why =
                format!("handling this update was started {MAX_ATTEMPTS} times without finishing");
            return self.give_up(update_id, chat, lang, &why).await;
        }
        let delivery = Delivery {
            update: job.update,
            receipt: Receipt {
                update_id,
                response_id: job.response_id,
                answer_by,
                deadline,
                state: self.state.clone(),
            },
        };
        metrics::gauge!("subgpt_in_flight_conversations").increment(1.0);
        let work = AssertUnwindSafe(self.service.clone().oneshot(delivery)).catch_unwind();
        // A membership change does not wait for the user's answer in progress.
        let outcome = if membership {
            tokio::time::timeout(budget, work).await
        } else {
            tokio::time::timeout(budget, self.locks.hold(job.user, work)).await
        };
        metrics::gauge!("subgpt_in_flight_conversations").decrement(1.0);
        let why = match outcome {
            Ok(Ok(_)) => return self.finish(update_id).await,
            Ok(Err(panic)) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                format!("handling the update panicked: {what}")
            }
            Err(_) => format!(
                "the update ran past ANSWER_DEADLINE_SECS ({} s) and was cancelled",
                self.limits.deadline.as_secs()
            ),
        };
        self.give_up(update_id, chat, lang, &why).await;
    }

    /// Tells the sender (if it was a message) the apology with a fresh reference id, which the
    /// log line saying `why` carries too, and erases the row.
    async fn give_up(&self, update_id: i64, chat: Option<i64>, lang: Lang, why: &str) {
        let reference = reference_id();
        tracing::error!(reference, "given up: {why}");
        metrics::counter!("subgpt_updates_given_up_total").increment(1);
        if let Some(chat) = chat {
            self.reply
                .say(chat, &texts::apology(lang, &reference))
                .await;
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
mod tests;
