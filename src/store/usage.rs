//! The usage store: one row per answered message in SQLite, plus roll-ups for fast reads.
//!
//! Reads run on a blocking pool through [`blocking`]; writes go to one writer thread that
//! group-commits whatever is queued (see `writer`); triggers in the file keep the roll-ups
//! equal to the raw rows (see `rollups`). Each row's cost is priced as it is handed over.
//! Nothing here ever stores message text.

mod connection;
mod error;
pub mod migrate;
pub mod queries;
pub mod rollups;
mod types;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use tracing::error;

pub use error::StoreError;
pub use queries::{Source, UsageReader};
pub use types::{
    DayTotals, DayUsage, Spend, UsageRow, UsageSummary, UserDayUsage, UserTotals, UserUsageStats,
    dense_daily_tokens,
};

use crate::prices::{Prices, Tokens};

pub(crate) use connection::check_is_sqlite;
use connection::{PAGE_SIZE, configure};
use writer::{Counters, Job, Message, Writer, WriterConfig};

/// The pool of SQLite connections every blocking call draws from.
pub(crate) type Pool = r2d2::Pool<SqliteConnectionManager>;

/// How hard SQLite works to make a commit survive a power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// WAL + `synchronous=NORMAL`: a commit survives a crash of the process, not of the machine.
    Normal,
    /// WAL + `synchronous=FULL`: every commit is fsynced.
    Full,
}

impl Synchronous {
    /// The value of `PRAGMA synchronous`.
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// Tunables of [`UsageStore::open_with`]; [`Default`] is what the service uses.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long a statement waits for a lock before failing with SQLITE_BUSY.
    pub busy_timeout: Duration,
    /// Pooled connections (readers and the writer share them).
    pub pool_size: u32,
    /// Most rows committed in one transaction.
    pub batch_max: usize,
    /// First wait after a failed write (jittered: between half of it and all of it).
    pub retry_min: Duration,
    /// Longest wait between write attempts (jittered the same way).
    pub retry_max: Duration,
    /// Commit durability: `Normal` by default (SQLite's advice for WAL), which is about twice as
    /// fast as `Full` here; a power loss may lose the last commits, a crash of the process does not.
    pub synchronous: Synchronous,
    /// Prices a row's cost when the caller gave its model and token breakdown but no cost.
    pub prices: Arc<Prices>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            pool_size: 8,
            batch_max: 1000,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            synchronous: Synchronous::Normal,
            prices: Arc::new(Prices::built_in()),
        }
    }
}

/// Handle to the usage database; cheap to clone.
#[derive(Clone)]
pub struct UsageStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    pool: Pool,
    prices: Arc<Prices>,
    tx: mpsc::UnboundedSender<Message>,
    counters: Arc<Counters>,
    /// Ends when the writer thread does; taken by the first `close`.
    writer: Mutex<Option<oneshot::Receiver<()>>>,
}

/// Runs `f` with a pooled connection on tokio's blocking pool, inside the caller's tracing span.
/// Every SQLite call of the async store goes through here; the connection never crosses an `.await`.
pub(crate) async fn blocking<F, T>(pool: &Pool, f: F) -> Result<T, StoreError>
where
    F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let mut conn = pool.get()?;
        f(&mut conn)
    })
    .await
    .map_err(|e| StoreError::Join(e.to_string()))?
}

impl UsageStore {
    /// Opens (creating the parent directory and the file), applies embedded migrations in order
    /// (rusqlite_migration, version in user_version), WAL mode, busy_timeout, r2d2 pool; starts the writer thread.
    /// Must be called inside a tokio runtime. Blocks while migrating (migration 0003 on a
    /// 1M-row file, which recomputes every roll-up, took 8.9 s wall / 2 s CPU on a loaded
    /// 2-core machine), so call it at start-up.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, StoreOptions::default())
    }

    /// [`UsageStore::open`] with explicit tunables (tests use a short busy timeout).
    pub fn open_with(path: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(options.busy_timeout)?;
        check_is_sqlite(&conn, path)?;
        // Takes effect only on a new, empty file; an adopted one keeps its page size.
        conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        migrate::migrate(&mut conn, path)?;
        drop(conn);

        let busy_timeout = options.busy_timeout;
        let synchronous = options.synchronous;
        let manager = SqliteConnectionManager::file(path)
            .with_init(move |c| configure(c, busy_timeout, synchronous));
        let pool = r2d2::Pool::builder()
            .max_size(options.pool_size)
            .min_idle(Some(1))
            .build(manager)?;

        let mut conn = Connection::open(path)?;
        configure(&mut conn, busy_timeout, synchronous)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (finished, writer_done) = oneshot::channel();
        let counters = Arc::new(Counters::default());
        let writer = Writer {
            conn,
            rx,
            counters: counters.clone(),
            config: WriterConfig {
                batch_max: options.batch_max.max(1),
                retry_min: options.retry_min,
                retry_max: options.retry_max,
            },
            _finished: finished,
        };
        std::thread::Builder::new()
            .name("usage-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Join(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                pool,
                prices: options.prices,
                tx,
                counters,
                writer: Mutex::new(Some(writer_done)),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

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

    async fn read<F, T>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&UsageReader<'_>) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        blocking(&self.inner.pool, move |conn| {
            f(&UsageReader::new(conn, Source::Rollups))
        })
        .await
    }

    /// Tokens `user_id` used on `date` (committed rows only).
    pub async fn user_daily_usage(&self, user_id: i64, date: NaiveDate) -> Result<i64, StoreError> {
        self.read(move |r| r.user_day_tokens(user_id, date)).await
    }

    /// Tokens `user_id` used ever.
    pub async fn user_total_usage(&self, user_id: i64) -> Result<i64, StoreError> {
        self.read(move |r| r.user_total_tokens(user_id)).await
    }

    /// Tokens `user_id` used from `from` to `to`, both included (e.g. "this month").
    pub async fn user_usage_between(
        &self,
        user_id: i64,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<i64, StoreError> {
        self.read(move |r| r.user_tokens_between(user_id, from, to))
            .await
    }

    /// Tokens and cost of `user_id` from `from` to `to` (`None` = no bound), e.g. for `/usage`.
    pub async fn user_spend(
        &self,
        user_id: i64,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Spend, StoreError> {
        self.read(move |r| r.user_spend(user_id, from, to)).await
    }

    /// Whether the roll-ups equal the raw rows (totals compared; see [`rollups::check`]).
    pub async fn check_rollups(
        &self,
        depth: rollups::Depth,
    ) -> Result<rollups::RollupCheck, StoreError> {
        blocking(&self.inner.pool, move |conn| rollups::check(conn, depth)).await
    }

    /// Every user's requests and tokens on `date`, most tokens first.
    pub async fn all_users_usage_by_date(
        &self,
        date: NaiveDate,
    ) -> Result<Vec<UserDayUsage>, StoreError> {
        self.read(move |r| r.users_on(date)).await
    }

    /// `user_id`'s totals and per-day breakdown.
    pub async fn user_usage_stats(&self, user_id: i64) -> Result<UserUsageStats, StoreError> {
        self.read(move |r| r.user_stats(user_id)).await
    }

    /// Requests, distinct users and tokens for each day in `from..=to` that has usage, oldest first
    /// (see [`dense_daily_tokens`] to fill the gaps for a chart).
    pub async fn daily_totals(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DayTotals>, StoreError> {
        self.read(move |r| r.daily_totals(Some(from), Some(to)))
            .await
    }

    /// The `limit` users with most tokens in `from..=to`.
    pub async fn top_users(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        limit: usize,
    ) -> Result<Vec<UserTotals>, StoreError> {
        self.read(move |r| r.user_totals(Some(from), Some(to), Some(limit)))
            .await
    }

    /// Rows, users, tokens and date range of the whole database.
    pub async fn summary(&self) -> Result<UsageSummary, StoreError> {
        self.read(|r| r.summary()).await
    }

    /// For /readyz: a trivial query on a pooled connection.
    pub async fn ping(&self) -> Result<(), StoreError> {
        blocking(&self.inner.pool, |conn| {
            Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?)
        })
        .await
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

    /// Writes everything pending (retrying), then stops the writer; called last on clean shutdown. Bounded by `timeout`.
    /// Rows recorded after this call are refused.
    pub async fn close(&self, timeout: Duration) -> Result<(), StoreError> {
        // Fails only when the writer is already gone, which is what we are after.
        let _ = self.inner.tx.send(Message::Close);
        let finished = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(finished) = finished else {
            return match self.pending() {
                0 => Ok(()),
                pending => Err(StoreError::CloseTimeout { pending }),
            };
        };
        // The writer cannot be aborted mid-commit; past the timeout it is left to finish on its
        // own thread while the caller (the process, shutting down) goes on.
        match tokio::time::timeout(timeout, finished).await {
            Ok(_) => match self.pending() {
                0 => Ok(()),
                // Only if the thread died (a panic): what it held is lost, and said so.
                pending => Err(StoreError::Join(format!(
                    "the usage writer stopped with {pending} rows unwritten"
                ))),
            },
            Err(_) => Err(StoreError::CloseTimeout {
                pending: self.pending(),
            }),
        }
    }
}
