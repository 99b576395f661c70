//! The usage store: one row per answered message in SQLite, plus roll-ups for fast reads.
//!
//! Reads run on a blocking pool through [`blocking`]; writes go to one writer thread that
//! group-commits whatever is queued (see `writer`); triggers in the file keep the roll-ups
//! equal to the raw rows (see `rollups`). Each row's cost is priced as it is handed over.
//! Nothing here ever stores message text.
//!
//! This file opens and closes the store; the handle's other methods are in `record` (handing
//! rows over) and `reads` (the queries), its tunables in `options`.

mod connection;
mod error;
pub mod migrate;
mod options;
pub mod queries;
mod reads;
mod record;
pub mod rollups;
mod types;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

pub use error::StoreError;
pub use options::{StoreOptions, Synchronous};
pub use queries::{Source, UsageReader};
pub use types::{
    DayTotals, DayUsage, Spend, UsageRow, UsageSummary, UserDayUsage, UserTotals, UserUsageStats,
    dense_daily_tokens,
};

use crate::prices::Prices;

pub(crate) use connection::check_is_sqlite;
use connection::{PAGE_SIZE, configure};
use writer::{Counters, Message, Writer, WriterConfig};

/// The pool of SQLite connections every blocking call draws from.
pub(crate) type Pool = r2d2::Pool<SqliteConnectionManager>;

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
