//! The store's tunables: durability, pool size, batching, write retries, and the prices a
//! row's cost is computed from.

use std::sync::Arc;
use std::time::Duration;

use crate::prices::Prices;

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

/// Tunables of [`UsageStore::open_with`](super::UsageStore::open_with); [`Default`] is what
/// the service uses.
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
