//! The write path: one task takes rows off a channel and commits them in batches (group commit).
//!
//! Each batch of raw rows and the roll-up updates it implies go into one transaction. A batch
//! that fails (busy, read-only, disk full, I/O) stays in memory and is retried with the capped,
//! jittered back-off of `crate::retry` (without an attempt limit: rows are never dropped; the
//! shutdown token ends the loop), and each `record_usage` caller is told when its row is durable.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
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

/// Per-user sums of one batch; the username is the batch's latest for that user.
struct UserSums<'a> {
    username: &'a str,
    requests: i64,
    tokens: i64,
    first: NaiveDate,
    last: NaiveDate,
}

/// Inserts the rows and updates the roll-ups, in one immediate transaction.
pub(crate) fn write_batch(conn: &mut Connection, rows: &[UsageRow]) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut user_days: BTreeMap<(i64, NaiveDate), (i64, i64)> = BTreeMap::new();
    let mut users: HashMap<i64, UserSums<'_>> = HashMap::new();
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO user_analytics (user_id, username, request_date, tokens_used) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for row in rows {
            insert.execute(params![
                row.user_id,
                row.username,
                sql_date(row.request_date),
                row.tokens_used
            ])?;
            let day = user_days
                .entry((row.user_id, row.request_date))
                .or_default();
            day.0 += 1;
            day.1 += row.tokens_used;
            let user = users.entry(row.user_id).or_insert(UserSums {
                username: &row.username,
                requests: 0,
                tokens: 0,
                first: row.request_date,
                last: row.request_date,
            });
            user.username = &row.username;
            user.requests += 1;
            user.tokens += row.tokens_used;
            user.first = user.first.min(row.request_date);
            user.last = user.last.max(row.request_date);
        }
    }
    // (requests, new distinct users, tokens) per day.
    let mut days: BTreeMap<NaiveDate, (i64, i64, i64)> = BTreeMap::new();
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO usage_user_daily (user_id, request_date, requests, tokens) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user_id, request_date) DO NOTHING",
        )?;
        let mut update = tx.prepare_cached(
            "UPDATE usage_user_daily SET requests = requests + ?3, tokens = tokens + ?4
             WHERE user_id = ?1 AND request_date = ?2",
        )?;
        for (&(user_id, date), &(requests, tokens)) in &user_days {
            let p = params![user_id, sql_date(date), requests, tokens];
            let first_today = insert.execute(p)? == 1;
            if !first_today {
                update.execute(p)?;
            }
            let day = days.entry(date).or_default();
            day.0 += requests;
            day.1 += i64::from(first_today);
            day.2 += tokens;
        }
    }
    {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO usage_daily (request_date, requests, users, tokens) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (request_date) DO UPDATE SET requests = requests + excluded.requests,
                 users = users + excluded.users, tokens = tokens + excluded.tokens",
        )?;
        for (&date, &(requests, new_users, tokens)) in &days {
            upsert.execute(params![sql_date(date), requests, new_users, tokens])?;
        }
    }
    {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO usage_user (user_id, username, requests, tokens, first_date, last_date)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (user_id) DO UPDATE SET username = excluded.username,
                 requests = requests + excluded.requests, tokens = tokens + excluded.tokens,
                 first_date = min(first_date, excluded.first_date),
                 last_date = max(last_date, excluded.last_date)",
        )?;
        for (&user_id, u) in &users {
            upsert.execute(params![
                user_id,
                u.username,
                u.requests,
                u.tokens,
                sql_date(u.first),
                sql_date(u.last)
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}
