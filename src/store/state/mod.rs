//! The service's own durable state in `STATE_DB_PATH`: the inbox of accepted updates, the
//! `update_id`s seen in the last 24 h, per-user conversation state, and the usage of cut-off
//! answers waiting for OpenAI's final figures.
//!
//! One thread owns the connection. Callers queue commands; the thread runs everything that is
//! queued in one transaction (group commit) and answers each caller after the commit, so
//! concurrent webhook requests share one fsync and each waits only for the commit holding its
//! row. A second thread checkpoints the WAL on a connection of its own, so the writer does not
//! stop for those fsyncs. Deleted rows are overwritten (`secure_delete`), and that thread
//! truncates the WAL shortly after the inbox empties, so the text of a message does not
//! linger in the files after it is answered.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

mod checkpointer;
mod writer;
use checkpointer::Checkpointer;
use tokio::sync::{mpsc, oneshot};
use writer::Writer;

use super::usage::Synchronous;

const MIGRATION_SLICE: &[M<'static>] = &[
    M::up(include_str!("../../../migrations/state/0001_state.sql")),
    M::up(include_str!(
        "../../../migrations/state/0002_inbox_without_user_index.sql"
    )),
    M::up(include_str!("../../../migrations/state/0003_unsettled.sql")),
];

/// The state database's embedded migrations, in order.
pub const MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATION_SLICE);

/// How long an accepted `update_id` is remembered.
pub const SEEN_FOR: Duration = Duration::from_secs(24 * 3600);
/// Most commands committed in one transaction.
const BATCH_MAX: usize = 4096;
/// Page size of a new state database. A commit writes each page it changed whole to the WAL,
/// and an answer changes a few rows of a few dozen bytes (its `seen` id, its inbox row three
/// times, the user's state). 1 KiB pages made the checkpoints' syncs a quarter as long while
/// the writer ran them itself. Since the checkpoint thread, SQLite's 4 KiB do as well on the
/// answer path and give the inbox a third more throughput (`examples/bench_inbox 200000 64`),
/// but `examples/load --api-mode chat` with 1,000 users peaked higher and less evenly
/// (74.0–79.0 MB in five runs, against 73.1–75.4 MB in nine with 1 KiB), too near the 80 MB
/// the service is held to.
const PAGE_SIZE: i64 = 1024;
/// How often the `seen` table is swept of ids older than [`SEEN_FOR`], and `user_state` of
/// expired values (also at the first idle moment after opening; an idle writer is woken every
/// [`SWEEP_EVERY`] / 10).
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// What went wrong with the state database.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("state database migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// A newer subgpt migrated the file past this binary (both versions named).
    #[error(transparent)]
    Schema(#[from] crate::store::schema::SchemaError),
    #[error("state database: cannot create {0}: {1}")]
    Directory(String, std::io::Error),
    /// The batch holding this command failed (the cause is logged once).
    #[error("state database write failed: {0}")]
    Batch(String),
    /// The writer thread is gone (the process is stopping).
    #[error("state database is closed")]
    Closed,
}

/// An accepted update waiting to be handled.
#[derive(Debug, Clone)]
pub struct InboxRow {
    pub update_id: i64,
    pub user_id: i64,
    /// The update as JSON.
    pub body: Vec<u8>,
    /// When it was accepted, unix milliseconds.
    pub accepted_at: i64,
    /// How many times handling it has started.
    pub attempts: u32,
    /// Responses mode: the response already asked for this update.
    pub response_id: Option<String>,
}

/// A cut-off answer's usage row, kept until OpenAI says how its response ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsettled {
    pub response_id: String,
    /// The usage row as far as it is known, JSON.
    pub usage_row: String,
    /// How many times OpenAI was asked already.
    pub looks: u32,
}

type Reply<T> = oneshot::Sender<Result<T, StateError>>;

enum Command {
    Accept {
        row: InboxRow,
        reply: Reply<bool>,
    },
    Begin {
        update_id: i64,
        reply: Reply<u32>,
    },
    SetResponse {
        update_id: i64,
        response_id: String,
        reply: Reply<()>,
    },
    Finish {
        update_id: i64,
        reply: Reply<()>,
    },
    Pending {
        reply: Reply<Vec<InboxRow>>,
    },
    Get {
        key: String,
        reply: Reply<Option<String>>,
    },
    Put {
        key: String,
        value: Option<String>,
        ttl: Option<Duration>,
        reply: Reply<()>,
    },
    /// Makes this instance's copy of `key` match what the other instances share; nobody waits.
    Keep {
        key: String,
        value: Option<String>,
        ttl: Option<Duration>,
    },
    Ping {
        reply: Reply<()>,
    },
    /// Keeps a cut-off answer's usage row until OpenAI settles it.
    Unsettle {
        item: Unsettled,
        due_at: i64,
        reply: Reply<()>,
    },
    Due {
        now: i64,
        limit: usize,
        reply: Reply<Vec<Unsettled>>,
    },
    Later {
        response_id: String,
        due_at: i64,
        reply: Reply<()>,
    },
    Settled {
        response_id: String,
        reply: Reply<()>,
    },
}

impl Command {
    /// Whether it may change the database (and so append to the WAL).
    fn writes(&self) -> bool {
        !matches!(
            self,
            Command::Pending { .. }
                | Command::Get { .. }
                | Command::Ping { .. }
                | Command::Due { .. }
        )
    }
}

/// Handle to the state database. Cheap to clone; the writer thread ends when the last handle
/// is dropped.
#[derive(Clone)]
pub struct StateStore {
    tx: mpsc::UnboundedSender<Command>,
}

impl StateStore {
    /// Opens (creating it and its directory if needed) and migrates the state database, and
    /// starts its writer thread.
    pub fn open(
        path: &Path,
        busy_timeout: Duration,
        synchronous: Synchronous,
    ) -> Result<Self, StateError> {
        Self::open_sweeping(path, busy_timeout, synchronous, SWEEP_EVERY)
    }

    /// [`StateStore::open`], sweeping every `sweep_every` (its tests: in milliseconds).
    fn open_sweeping(
        path: &Path,
        busy_timeout: Duration,
        synchronous: Synchronous,
        sweep_every: Duration,
    ) -> Result<Self, StateError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StateError::Directory(dir.display().to_string(), e))?;
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(busy_timeout)?;
        // Takes effect on a new, empty file at once; an older one is rewritten.
        conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        if page_size(&conn)? != PAGE_SIZE
            && let Err(error) = rewrite_with_small_pages(&conn)
        {
            tracing::warn!(%error, path = %path.display(), "could not rewrite the state database with 1 KiB pages; it keeps its page size");
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", synchronous.pragma())?;
        conn.pragma_update(None, "secure_delete", "ON")?;
        crate::store::schema::ensure_not_newer(&conn, path, &MIGRATIONS)?;
        MIGRATIONS.to_latest(&mut conn)?;
        conn.wal_hook(Some(checkpointer::wal_hook));
        let thread_error = |e| StateError::Directory("a thread of the state store".into(), e);
        let checkpoints = Connection::open(path)?;
        checkpoints.pragma_update(None, "synchronous", synchronous.pragma())?;
        let (tx, rx) = mpsc::unbounded_channel();
        // The checkpoint thread also wakes an idle writer now and then for its sweep; it holds
        // no handle, so the writer still ends with the last one.
        let checkpointer = Checkpointer::start(checkpoints, tx.downgrade(), sweep_every / 10)
            .map_err(thread_error)?;
        std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || Writer::new(conn, checkpointer, sweep_every).run(rx))
            .map_err(thread_error)?;
        Ok(StateStore { tx })
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, StateError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(make(reply)).map_err(|_| StateError::Closed)?;
        answer.await.map_err(|_| StateError::Closed)?
    }

    /// Puts `row` in the inbox unless its `update_id` was accepted in the last 24 h. True when
    /// it is new; either way it is committed when this returns.
    pub async fn accept(&self, row: InboxRow) -> Result<bool, StateError> {
        self.ask(|reply| Command::Accept { row, reply }).await
    }

    /// Counts one more attempt at handling `update_id`; returns the attempts so far, this one
    /// included (0 when the row is gone).
    pub async fn begin(&self, update_id: i64) -> Result<u32, StateError> {
        self.ask(|reply| Command::Begin { update_id, reply }).await
    }

    /// Records the upstream response that is answering `update_id`.
    pub async fn set_response(&self, update_id: i64, response_id: &str) -> Result<(), StateError> {
        let response_id = response_id.to_string();
        self.ask(|reply| Command::SetResponse {
            update_id,
            response_id,
            reply,
        })
        .await
    }

    /// Erases `update_id` from the inbox: it is handled.
    pub async fn finish(&self, update_id: i64) -> Result<(), StateError> {
        self.ask(|reply| Command::Finish { update_id, reply }).await
    }

    /// Every unfinished update, per user in `update_id` order.
    pub async fn pending(&self) -> Result<Vec<InboxRow>, StateError> {
        self.ask(|reply| Command::Pending { reply }).await
    }

    /// The value of `key`, unless expired.
    pub async fn get(&self, key: &str) -> Result<Option<String>, StateError> {
        let key = key.to_string();
        self.ask(|reply| Command::Get { key, reply }).await
    }

    /// Sets `key` (expiring after `ttl`, or never), or removes it when `value` is `None`.
    pub async fn put(
        &self,
        key: &str,
        value: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<(), StateError> {
        let (key, value) = (key.to_string(), value.map(str::to_string));
        self.ask(|reply| Command::Put {
            key,
            value,
            ttl,
            reply,
        })
        .await
    }

    /// Makes this instance's copy of `key` equal to `value` (removed when `None`), expiring
    /// after `ttl`, without waiting for it: a value read from the instances' shared store is
    /// kept, so this instance can go on with it while that store fails. Queued behind nothing
    /// it could overtake: a later `put` from the same task is applied after it.
    pub fn keep(&self, key: &str, value: Option<&str>, ttl: Option<Duration>) {
        let command = Command::Keep {
            key: key.to_string(),
            value: value.map(str::to_string),
            ttl,
        };
        if self.tx.send(command).is_err() {
            tracing::warn!("the state database is closed; this instance keeps no copy");
        }
    }

    /// Keeps `item` until [`StateStore::settled`]; [`StateStore::due`] hands it out from `due`.
    pub async fn unsettle(&self, item: Unsettled, due: SystemTime) -> Result<(), StateError> {
        let due_at = unix_ms(due);
        self.ask(|reply| Command::Unsettle {
            item,
            due_at,
            reply,
        })
        .await
    }

    /// Up to `limit` kept items whose time has come, the longest due first.
    pub async fn due(&self, limit: usize) -> Result<Vec<Unsettled>, StateError> {
        let now = now_ms();
        self.ask(|reply| Command::Due { now, limit, reply }).await
    }

    /// Counts one more look at `response_id`, and hands it out again from `due`.
    pub async fn later(&self, response_id: &str, due: SystemTime) -> Result<(), StateError> {
        let (response_id, due_at) = (response_id.to_string(), unix_ms(due));
        self.ask(|reply| Command::Later {
            response_id,
            due_at,
            reply,
        })
        .await
    }

    /// Forgets `response_id`: its usage is recorded.
    pub async fn settled(&self, response_id: &str) -> Result<(), StateError> {
        let response_id = response_id.to_string();
        self.ask(|reply| Command::Settled { response_id, reply })
            .await
    }

    /// Answers when the database does.
    pub async fn ping(&self) -> Result<(), StateError> {
        self.ask(|reply| Command::Ping { reply }).await
    }
}

fn page_size(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "page_size", |r| r.get(0))
}

/// Gives a file made before [`PAGE_SIZE`] the smaller pages: VACUUM rewrites it, outside WAL
/// mode (which fixes the page size). It holds little (the inbox, a day of update ids, the
/// users' state), so this takes a moment once.
fn rewrite_with_small_pages(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    conn.execute_batch("VACUUM")
}

/// Now, as the inbox stores times: unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    unix_ms(SystemTime::now())
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A state store in `dir` with the service's settings, for tests.
#[cfg(test)]
pub(crate) fn open_in(dir: &Path) -> StateStore {
    StateStore::open(
        &dir.join("state.db"),
        Duration::from_secs(1),
        Synchronous::Normal,
    )
    .unwrap()
}

#[cfg(test)]
mod tests;
