//! The write side of the handle: each row is priced, counted as pending and handed to the
//! writer thread; the caller waits until it is durable or goes on at once.

use std::sync::atomic::Ordering;

use tokio::sync::oneshot;
use tracing::error;

use super::types::UsageRow;
use super::writer::{Job, Message};
use super::{StoreError, UsageStore};
use crate::prices::Tokens;

impl UsageStore {
    /// Fills in the cost from the price table in force now, so history keeps its day's price.
    fn price(&self, row: &mut UsageRow) {
        if row.cost_micro_usd.is_some() {
            return;
        }
        let (Some(model), Some(input), Some(output)) =
            (&row.model, row.input_tokens, row.output_tokens)
        else {
            return;
        };
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let tokens = Tokens {
            input: count(input),
            cached_input: count(row.cached_input_tokens.unwrap_or(0)),
            output: count(output),
        };
        row.cost_micro_usd = self.inner.prices.cost_micro_usd(model, tokens);
    }

    fn enqueue(
        &self,
        mut row: UsageRow,
        done: Option<oneshot::Sender<()>>,
    ) -> Result<(), Box<UsageRow>> {
        self.price(&mut row);
        let pending = &self.inner.counters.pending;
        let now = pending.fetch_add(1, Ordering::AcqRel) + 1;
        metrics::gauge!("subgpt_usage_rows_pending").set(now as f64);
        self.inner
            .tx
            .send(Message::Row(Job { row, done }))
            .map_err(|e| {
                pending.fetch_sub(1, Ordering::AcqRel);
                match e.0 {
                    Message::Row(job) => Box::new(job.row),
                    Message::Close => unreachable!("only rows are sent here"),
                }
            })
    }

    /// Hands the row to the writer thread and waits until it is durable (committed). Group commit:
    /// one writer batches whatever rows are queued into one transaction; every caller is told when its row is durable.
    pub async fn record_usage(&self, row: UsageRow) -> Result<(), StoreError> {
        let (done, committed) = oneshot::channel();
        self.enqueue(row, Some(done))
            .map_err(|_| StoreError::Closed)?;
        committed.await.map_err(|_| StoreError::Closed)
    }

    /// Hands the row to the writer and returns at once (the answer path uses this). Never blocks, never fails.
    pub fn record_in_background(&self, row: UsageRow) {
        if let Err(row) = self.enqueue(row, None) {
            // Only after close(): the process is exiting and there is no writer left.
            metrics::counter!("subgpt_usage_write_errors_total").increment(1);
            error!(
                user_id = row.user_id,
                tokens = row.tokens_used,
                "usage store closed; usage row not recorded"
            );
        }
    }

    /// Rows handed over but not yet durable (for metrics/tests).
    pub fn pending(&self) -> usize {
        self.inner.counters.pending.load(Ordering::Acquire)
    }

    /// Failed write attempts since open (each retried; for metrics/tests).
    pub fn failed_writes(&self) -> u64 {
        self.inner.counters.failures.load(Ordering::Acquire)
    }

    /// Transactions committed by the writer since open; fewer than rows when group commit works.
    pub fn batches_written(&self) -> u64 {
        self.inner.counters.batches.load(Ordering::Acquire)
    }
}
