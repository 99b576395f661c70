//! The write path: one task takes rows off a channel and commits them in batches (group commit).
//!
//! Each batch of raw rows goes into one transaction (the roll-ups follow by trigger). A batch
//! that fails (busy, read-only, disk full, I/O) stays in memory and is retried with the capped,
//! jittered back-off of `crate::retry` (without an attempt limit: rows are never dropped; the
//! shutdown token ends the loop), and each `record_usage` caller is told when its row is durable.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::queries::sql_date;
use super::{Pool, StoreError, UsageRow, blocking};
use crate::retry::Policy;

/// A row handed to the writer, and whom to tell when it is committed.
pub(super) struct Job {
    pub row: UsageRow,
    pub done: Option<oneshot::Sender<()>>,
}

/// How the writer batches and retries.
#[derive(Debug, Clone)]
pub(super) struct WriterConfig {
    pub batch_max: usize,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

/// Everything the writer task owns.
pub(super) struct Writer {
    pub pool: Pool,
    pub rx: mpsc::UnboundedReceiver<Job>,
    pub shutdown: CancellationToken,
    pub pending: Arc<AtomicUsize>,
    pub failures: Arc<AtomicU64>,
    pub batches: Arc<AtomicU64>,
    pub config: WriterConfig,
}

/// A run of failed attempts, so the outage is logged once rather than per row.
struct Outage {
    since: Instant,
    attempts: u32,
}

impl Writer {
    /// Runs until `shutdown` is cancelled (or every sender is gone) and all rows are written.
    pub async fn run(mut self) {
        let mut queue: VecDeque<Job> = VecDeque::new();
        let mut closing = false;
        let mut backoff =
            Policy::new(self.config.retry_min, self.config.retry_max, u32::MAX).backoff();
        let mut outage: Option<Outage> = None;
        loop {
            if queue.is_empty() {
                tokio::select! {
                    biased;
                    _ = self.shutdown.cancelled(), if !closing => {
                        // Refuse new rows but keep those already sent: recv drains them, then ends.
                        closing = true;
                        self.rx.close();
                        continue;
                    }
                    job = self.rx.recv() => match job {
                        Some(job) => queue.push_back(job),
                        None => return,
                    },
                }
            }
            // Callers woken by the last commit are about to send their next rows: let them, so
            // this batch carries more than the first straggler (group commit needs company).
            tokio::task::yield_now().await;
            while queue.len() < self.config.batch_max {
                match self.rx.try_recv() {
                    Ok(job) => queue.push_back(job),
                    Err(_) => break,
                }
            }
            let n = queue.len().min(self.config.batch_max);
            let rows: Vec<UsageRow> = queue.iter().take(n).map(|j| j.row.clone()).collect();
            let tokens: i64 = rows.iter().map(|r| r.tokens_used.max(0)).sum();
            match blocking(&self.pool, move |conn| write_batch(conn, &rows)).await {
                Ok(()) => {
                    for job in queue.drain(..n) {
                        if let Some(done) = job.done {
                            let _ = done.send(());
                        }
                    }
                    let left = self.pending.fetch_sub(n, Ordering::AcqRel) - n;
                    self.batches.fetch_add(1, Ordering::AcqRel);
                    metrics::counter!("subgpt_usage_rows_written_total").increment(n as u64);
                    metrics::counter!("subgpt_tokens_recorded_total").increment(tokens as u64);
                    metrics::gauge!("subgpt_usage_rows_pending").set(left as f64);
                    if let Some(o) = outage.take() {
                        info!(
                            failed_attempts = o.attempts,
                            outage_ms = o.since.elapsed().as_millis() as u64,
                            "usage writes recovered"
                        );
                    }
                    backoff.reset();
                }
                Err(error) => {
                    metrics::counter!("subgpt_usage_write_errors_total").increment(1);
                    self.failures.fetch_add(1, Ordering::AcqRel);
                    match &mut outage {
                        Some(o) => o.attempts += 1,
                        None => {
                            warn!(%error, queued = queue.len(), "usage write failed; rows kept, retrying with backoff");
                            outage = Some(Outage {
                                since: Instant::now(),
                                attempts: 1,
                            });
                        }
                    }
                    let wait = backoff.next().unwrap_or(self.config.retry_max);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.shutdown.cancelled(), if !closing => {
                            closing = true;
                            self.rx.close();
                        }
                    }
                }
            }
        }
    }
}

/// Inserts the rows in one immediate transaction. The roll-ups follow by themselves: the
/// triggers of migration 0003 update them in the same transaction, for any writer.
pub(crate) fn write_batch(conn: &mut Connection, rows: &[UsageRow]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO user_analytics (user_id, username, request_date, tokens_used, input_tokens,
                 output_tokens, cached_input_tokens, reasoning_tokens, model, cost_micro_usd)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for row in rows {
            insert.execute(params![
                row.user_id,
                row.username,
                sql_date(row.request_date),
                row.tokens_used,
                row.input_tokens,
                row.output_tokens,
                row.cached_input_tokens,
                row.reasoning_tokens,
                row.model,
                row.cost_micro_usd,
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}
