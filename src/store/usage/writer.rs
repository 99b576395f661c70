//! The write path: one thread owns a connection, takes rows off a channel and commits them in
//! batches (group commit).
//!
//! Each batch of raw rows goes into one transaction (the roll-ups follow by trigger). A batch
//! that fails (busy, read-only, disk full, I/O) stays in memory and is retried with the capped,
//! jittered back-off of `crate::retry` (without an attempt limit: rows are never dropped;
//! `close` ends the loop), and each `record_usage` caller is told when its row is durable.
//!
//! A thread rather than a task on the blocking pool: each batch used to cost two hand-offs
//! between threads (task → pool → task) on top of the commit, which with 16 callers waiting on
//! their rows was half of the writer's time.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use crate::store::transaction::in_transaction;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::queries::sql_date;
use super::{StoreError, UsageRow};
use crate::retry::Policy;

/// What the store hands to the writer.
pub(super) enum Message {
    /// A row, and whom to tell when it is committed.
    Row(Job),
    /// Write what is queued, refuse anything newer, and stop.
    Close,
}

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

/// Counters the store reads for metrics and tests.
#[derive(Default)]
pub(super) struct Counters {
    pub pending: AtomicUsize,
    pub failures: AtomicU64,
    pub batches: AtomicU64,
}

/// Everything the writer thread owns.
pub(super) struct Writer {
    pub conn: Connection,
    pub rx: mpsc::UnboundedReceiver<Message>,
    pub counters: Arc<Counters>,
    pub config: WriterConfig,
    /// Dropped when the thread ends, which is what `close` waits for.
    pub _finished: oneshot::Sender<()>,
}

/// A run of failed attempts, so the outage is logged once rather than per row.
struct Outage {
    since: Instant,
    attempts: u32,
}

/// How often a back-off sleep looks for `close`.
const SLEEP_SLICE: Duration = Duration::from_millis(10);

/// How long the writer may wait for more rows before it starts a batch, while fewer are queued
/// than callers were waiting on the last one: the callers it just woke are about to send their
/// next rows, and a batch that waits some microseconds for them saves whole commits (group
/// commit needs company). Rows nobody waits on (`record_in_background`, the service's own
/// path) never make it wait.
const GATHER_MAX: Duration = Duration::from_micros(100);

impl Writer {
    /// Runs until `close` (or every sender is gone) and all rows are written.
    pub fn run(mut self) {
        let mut queue: VecDeque<Job> = VecDeque::new();
        let mut backoff =
            Policy::new(self.config.retry_min, self.config.retry_max, u32::MAX).backoff();
        let mut outage: Option<Outage> = None;
        // Callers that waited on recent batches (a maximum that fades when they stop coming).
        let mut expect: usize = 0;
        loop {
            if queue.is_empty() {
                match self.rx.blocking_recv() {
                    Some(message) => self.take(message, &mut queue),
                    None => return,
                }
                let started = Instant::now();
                loop {
                    self.gather(&mut queue);
                    if queue.len() >= expect.min(self.config.batch_max)
                        || started.elapsed() >= GATHER_MAX
                    {
                        break;
                    }
                    std::thread::yield_now();
                }
                if queue.is_empty() {
                    continue; // only a Close came
                }
            } else {
                self.gather(&mut queue);
            }
            let n = queue.len().min(self.config.batch_max);
            let rows = queue.iter().take(n).map(|j| &j.row);
            match write_batch(&self.conn, rows) {
                Ok(()) => {
                    let tokens: i64 = queue.iter().take(n).map(|j| j.row.tokens_used.max(0)).sum();
                    let waited = queue.iter().take(n).filter(|j| j.done.is_some()).count();
                    expect = waited.max(expect.saturating_sub(1 + expect / 8));
                    // Counted before the callers are told: one that reads `pending` or
                    // `batches_written` once its row is durable sees its batch counted.
                    let left = self.counters.pending.fetch_sub(n, Ordering::AcqRel) - n;
                    self.counters.batches.fetch_add(1, Ordering::AcqRel);
                    for job in queue.drain(..n) {
                        if let Some(done) = job.done {
                            let _ = done.send(());
                        }
                    }
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
                    self.counters.failures.fetch_add(1, Ordering::AcqRel);
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
                    self.sleep(wait, &mut queue);
                }
            }
        }
    }

    /// Moves whatever is queued on the channel into `queue`, up to a batch.
    fn gather(&mut self, queue: &mut VecDeque<Job>) {
        while queue.len() < self.config.batch_max {
            match self.rx.try_recv() {
                Ok(message) => self.take(message, queue),
                Err(_) => break,
            }
        }
    }

    fn take(&mut self, message: Message, queue: &mut VecDeque<Job>) {
        match message {
            Message::Row(job) => queue.push_back(job),
            Message::Close => {
                // Refuse new rows but keep those already sent: recv drains them, then ends.
                self.rx.close();
            }
        }
    }

    /// Waits out a back-off, still taking rows (and `close`) meanwhile.
    fn sleep(&mut self, wait: Duration, queue: &mut VecDeque<Job>) {
        let until = Instant::now() + wait;
        loop {
            let now = Instant::now();
            if now >= until {
                return;
            }
            std::thread::sleep(SLEEP_SLICE.min(until - now));
            let mut more = Vec::new();
            while let Ok(message) = self.rx.try_recv() {
                more.push(message);
            }
            for message in more {
                self.take(message, queue);
            }
        }
    }
}

/// Inserts the rows in one immediate transaction. The roll-ups follow by themselves: the
/// triggers of migration 0003 update them in the same transaction, for any writer.
fn write_batch<'a>(
    conn: &Connection,
    rows: impl Iterator<Item = &'a UsageRow>,
) -> Result<(), StoreError> {
    in_transaction(conn, "BEGIN IMMEDIATE", |tx| {
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
        Ok(())
    })
}
