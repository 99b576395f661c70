//! Settling the usage of answers cut off in `responses` mode.
//!
//! A cut-off answer's background response is cancelled, and the cancel's answer carries the
//! usage so far. That is not always the end of it: the cancel can fail or go unanswered, and
//! the response goes on (and is billed) at OpenAI; and a cancelled background response has been
//! seen to end `completed` after all (Microsoft Q&A, "Unexpected Behavior in Background
//! Responses API – Status Changes from Cancelled to Completed", 2025-07-07). So the usage row
//! waits in the state database, and OpenAI is asked later how the response ended: its final
//! usage is what is recorded, once. A restart picks up where it left off.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::usage::with_usage;
use crate::openai::OpenAi;
use crate::store::state::{StateStore, Unsettled};
use crate::store::usage::{UsageRow, UsageStore};

/// The most looks at one response before its row is recorded as it stands (the waits double
/// from `OPENAI_SETTLE_AFTER_SECS`, up to [`LONGEST_WAIT`]: about two hours with 60 s).
const MAX_LOOKS: u32 = 8;
/// The longest wait between two looks.
const LONGEST_WAIT: Duration = Duration::from_secs(30 * 60);
/// Responses looked at in one round (one after another; a round every quarter of
/// `OPENAI_SETTLE_AFTER_SECS`, at most every 15 s).
const ROUND: usize = 64;
/// The bound on one look (the response, and a cancel when it is still running).
const LOOK_WAIT: Duration = Duration::from_secs(30);

/// Keeps cut-off answers' usage rows until OpenAI says how their responses ended. Cheap to
/// clone.
#[derive(Clone)]
pub struct Settler {
    inner: Arc<Inner>,
}

struct Inner {
    api: OpenAi,
    state: StateStore,
    usage: UsageStore,
    /// The wait before the first look (`OPENAI_SETTLE_AFTER_SECS`).
    after: Duration,
}

/// How one look ended.
enum Look {
    /// The response has ended: its usage is final.
    Ended(UsageRow),
    /// Still running, or OpenAI did not answer: ask again later.
    Again(String),
    /// OpenAI does not know it: the row is all there will be.
    Unknown(String),
}

impl Settler {
    pub fn new(api: OpenAi, state: StateStore, usage: UsageStore, after: Duration) -> Self {
        Settler {
            inner: Arc::new(Inner {
                api,
                state,
                usage,
                after,
            }),
        }
    }

    /// Keeps `row`, the usage of the answer `response_id` was cut off from, until OpenAI
    /// settles it. If the state database cannot keep it, it is recorded now as it stands.
    pub async fn hold(&self, response_id: &str, row: UsageRow) {
        let kept: Result<(), String> = async {
            let usage_row = serde_json::to_string(&row).map_err(|e| e.to_string())?;
            let item = Unsettled {
                response_id: response_id.to_string(),
                usage_row,
                looks: 0,
            };
            let due = SystemTime::now() + self.inner.after;
            self.inner
                .state
                .unsettle(item, due)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match kept {
            Ok(()) => tracing::info!(
                response_id,
                tokens = row.tokens_used,
                "the cut-off answer's usage is recorded once OpenAI settles it"
            ),
            Err(error) => {
                tracing::warn!(response_id, %error, "cannot keep the cut-off answer's usage to settle; recording it as it stands");
                self.inner.usage.record_in_background(row);
            }
        }
    }

    /// Looks at the responses due, round after round, until `stopping`; what is left waits in
    /// the state database for the next start.
    pub async fn run(self, stopping: CancellationToken) {
        let pause =
            (self.inner.after / 4).clamp(Duration::from_millis(200), Duration::from_secs(15));
        while !stopping.is_cancelled() {
            let due = match self.inner.state.due(ROUND).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the answers waiting to be settled");
                    Vec::new()
                }
            };
            for item in due {
                if stopping.is_cancelled() {
                    return;
                }
                self.settle(item, &stopping).await;
            }
            // Between rounds always, so that a row that cannot be recorded now is not asked
            // about in a tight loop.
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stopping.cancelled() => {}
            }
        }
    }

    /// One look at `item`'s response; records its row when the response has ended, when
    /// OpenAI does not know it, or after [`MAX_LOOKS`]. A look under way when `stopping` comes
    /// is left for the next start; a row being recorded is not.
    async fn settle(&self, item: Unsettled, stopping: &CancellationToken) {
        let id = item.response_id.as_str();
        let row: UsageRow = match serde_json::from_str(&item.usage_row) {
            Ok(row) => row,
            Err(e) => {
                tracing::error!(response_id = id, error = %e, "an unreadable usage row waited to be settled; dropped");
                return self.forget(id).await;
            }
        };
        let asked = tokio::time::timeout(LOOK_WAIT, self.look(id, &row));
        let late = || {
            Look::Again(format!(
                "OpenAI did not answer in {} s",
                LOOK_WAIT.as_secs()
            ))
        };
        let look = tokio::select! {
            look = asked => look.unwrap_or_else(|_| late()),
            _ = stopping.cancelled() => return,
        };
        let looks = item.looks + 1;
        let (record, outcome) = match look {
            Look::Ended(settled) => {
                tracing::info!(
                    response_id = id,
                    tokens_before = row.tokens_used,
                    tokens = settled.tokens_used,
                    "settled the cut-off answer's usage"
                );
                (settled, "settled")
            }
            Look::Again(why) if looks < MAX_LOOKS => {
                let wait = self
                    .inner
                    .after
                    .saturating_mul(2u32.saturating_pow(looks))
                    .min(LONGEST_WAIT);
                tracing::info!(
                    response_id = id,
                    why,
                    looks,
                    next_in_secs = wait.as_secs(),
                    "the cut-off answer's usage is not settled yet"
                );
                if let Err(e) = self.inner.state.later(id, SystemTime::now() + wait).await {
                    tracing::warn!(response_id = id, error = %e, "cannot note the look; it is taken again");
                }
                return;
            }
            Look::Again(why) | Look::Unknown(why) => {
                tracing::warn!(
                    response_id = id,
                    why,
                    looks,
                    tokens = row.tokens_used,
                    "cannot settle the cut-off answer's usage; recording it as it stands"
                );
                (row, "unsettled")
            }
        };
        metrics::counter!("subgpt_cut_off_usage_recorded_total", "outcome" => outcome).increment(1);
        // Durable before it is forgotten: a crash in between records it twice rather than
        // never (a restart looks again and records the row once more).
        match self.inner.usage.record_usage(record).await {
            Ok(()) => self.forget(id).await,
            Err(e) => {
                tracing::error!(response_id = id, error = %e, "cannot record the settled usage; it is taken again")
            }
        }
    }

    /// Asks OpenAI how response `id` stands; cancels it again while it is still running.
    async fn look(&self, id: &str, row: &UsageRow) -> Look {
        let response = match self.inner.api.get_response(id).await {
            Ok(response) => response,
            Err(e) if e.status().is_some_and(|s| s.as_u16() == 404) => {
                return Look::Unknown(e.to_string());
            }
            Err(e) => return Look::Again(e.to_string()),
        };
        let status = response.status.clone().unwrap_or_else(|| "unknown".into());
        if response.is_pending() {
            if let Err(e) = self.inner.api.cancel_response(id).await {
                tracing::warn!(response_id = id, error = %e, "could not cancel the response upstream");
            }
            return Look::Again(format!("the response is still {status}"));
        }
        let mut settled = row.clone();
        if let Some(usage) = &response.usage {
            let model = response.model.as_deref().or(row.model.as_deref());
            with_usage(&mut settled, usage, model);
        }
        tracing::debug!(response_id = id, status, "the response has ended");
        Look::Ended(settled)
    }

    async fn forget(&self, id: &str) {
        if let Err(e) = self.inner.state.settled(id).await {
            tracing::warn!(response_id = id, error = %e, "cannot forget a settled answer; it may be recorded again");
        }
    }
}
