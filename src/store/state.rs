//! The service's own durable state in `STATE_DB_PATH`: the inbox of accepted updates, the
//! `update_id`s seen in the last 24 h, and per-user conversation state.
//!
//! One thread owns the connection. Callers queue commands; the thread runs everything that is
//! queued in one transaction (group commit) and answers each caller after the commit, so
//! concurrent webhook requests share one fsync and each waits only for the commit holding its
//! row. Deleted rows are overwritten (`secure_delete`), and the WAL is truncated when the inbox
//! is empty, so the text of a message does not linger in the files after it is answered.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};
use tokio::sync::{mpsc, oneshot};

use super::usage::Synchronous;

const MIGRATION_SLICE: &[M<'static>] = &[
    M::up(include_str!("../../migrations/state/0001_state.sql")),
    M::up(include_str!(
        "../../migrations/state/0002_inbox_without_user_index.sql"
    )),
];

/// The state database's embedded migrations, in order.
pub const MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATION_SLICE);

/// How long an accepted `update_id` is remembered.
pub const SEEN_FOR: Duration = Duration::from_secs(24 * 3600);
/// Most commands committed in one transaction.
const BATCH_MAX: usize = 4096;
/// How often the `seen` table is swept of ids older than [`SEEN_FOR`].
const SWEEP_EVERY: Duration = Duration::from_secs(600);

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
    Ping {
        reply: Reply<()>,
    },
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
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StateError::Directory(dir.display().to_string(), e))?;
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(busy_timeout)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let sync = match synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.pragma_update(None, "secure_delete", "ON")?;
        crate::store::schema::ensure_not_newer(&conn, path, &MIGRATIONS)?;
        MIGRATIONS.to_latest(&mut conn)?;
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || Writer::new(conn).run(rx))
            .map_err(|e| StateError::Directory("the state writer thread".into(), e))?;
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

    /// Answers when the database does.
    pub async fn ping(&self) -> Result<(), StateError> {
        self.ask(|reply| Command::Ping { reply }).await
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The thread that owns the connection.
struct Writer {
    conn: Connection,
    last_sweep: Instant,
    /// Whether rows were deleted since the WAL was last truncated.
    dirty: bool,
}

/// What to tell one caller once the batch is committed.
enum Answer {
    Bool(Reply<bool>, bool),
    Count(Reply<u32>, u32),
    Unit(Reply<()>),
    Rows(Reply<Vec<InboxRow>>, Vec<InboxRow>),
    Value(Reply<Option<String>>, Option<String>),
}

impl Answer {
    fn send(self) {
        // A caller that stopped waiting is no error.
        match self {
            Answer::Bool(r, v) => drop(r.send(Ok(v))),
            Answer::Count(r, v) => drop(r.send(Ok(v))),
            Answer::Unit(r) => drop(r.send(Ok(()))),
            Answer::Rows(r, v) => drop(r.send(Ok(v))),
            Answer::Value(r, v) => drop(r.send(Ok(v))),
        }
    }

    fn fail(self, error: &StateError) {
        let e = || clone_error(error);
        match self {
            Answer::Bool(r, _) => drop(r.send(Err(e()))),
            Answer::Count(r, _) => drop(r.send(Err(e()))),
            Answer::Unit(r) => drop(r.send(Err(e()))),
            Answer::Rows(r, _) => drop(r.send(Err(e()))),
            Answer::Value(r, _) => drop(r.send(Err(e()))),
        }
    }
}

/// Errors are not `Clone`; every caller of a failed batch gets the same message.
fn clone_error(error: &StateError) -> StateError {
    StateError::Batch(error.to_string())
}

impl Writer {
    fn new(conn: Connection) -> Self {
        Writer {
            conn,
            last_sweep: Instant::now() - SWEEP_EVERY,
            dirty: false,
        }
    }

    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut batch = Vec::with_capacity(64);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < BATCH_MAX {
                match rx.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            self.commit(&mut batch);
            if rx.is_empty() {
                self.upkeep();
            }
        }
        self.truncate_wal();
    }

    fn commit(&mut self, batch: &mut Vec<Command>) {
        let mut answers = Vec::with_capacity(batch.len());
        let result = (|| -> Result<(), StateError> {
            let tx = self.conn.transaction()?;
            for command in batch.drain(..) {
                answers.push(apply(&tx, command)?);
            }
            tx.commit()?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                for answer in answers {
                    if matches!(answer, Answer::Unit(_)) {
                        self.dirty = true;
                    }
                    answer.send();
                }
            }
            Err(error) => {
                tracing::error!(%error, "state database write failed");
                // The commands not reached were dropped with the batch: their callers see `Closed`.
                for answer in answers {
                    answer.fail(&error);
                }
            }
        }
    }

    /// Sweeps old `seen` ids now and then, and truncates the WAL once the inbox is empty so
    /// the text of handled updates does not stay in it.
    fn upkeep(&mut self) {
        if self.last_sweep.elapsed() >= SWEEP_EVERY {
            self.last_sweep = Instant::now();
            let before = now_ms() - SEEN_FOR.as_millis() as i64;
            if let Err(e) = self
                .conn
                .execute("DELETE FROM seen WHERE at < ?1", [before])
            {
                tracing::warn!(error = %e, "could not sweep old update ids");
            }
        }
        if self.dirty {
            let empty: bool = self
                .conn
                .query_row("SELECT NOT EXISTS (SELECT 1 FROM inbox)", [], |r| r.get(0))
                .unwrap_or(false);
            if empty {
                self.truncate_wal();
            }
        }
    }

    fn truncate_wal(&mut self) {
        match self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            }) {
            Ok(0) => self.dirty = false,
            Ok(_) => {} // busy: a reader holds an old snapshot; try after the next batch
            Err(e) => tracing::warn!(error = %e, "could not checkpoint the state database"),
        }
    }
}

fn row_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<InboxRow> {
    Ok(InboxRow {
        update_id: r.get(0)?,
        user_id: r.get(1)?,
        body: r.get(2)?,
        accepted_at: r.get(3)?,
        attempts: r.get(4)?,
        response_id: r.get(5)?,
    })
}

fn apply(tx: &rusqlite::Transaction<'_>, command: Command) -> Result<Answer, StateError> {
    Ok(match command {
        Command::Accept { row, reply } => {
            let fresh = tx
                .prepare_cached("INSERT OR IGNORE INTO seen (update_id, at) VALUES (?1, ?2)")?
                .execute(params![row.update_id, now_ms()])?
                == 1;
            if fresh {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO inbox (update_id, user_id, body, accepted_at) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![row.update_id, row.user_id, row.body, row.accepted_at])?;
            }
            Answer::Bool(reply, fresh)
        }
        Command::Begin { update_id, reply } => {
            let attempts: Option<u32> = tx
                .prepare_cached(
                    "UPDATE inbox SET attempts = attempts + 1 WHERE update_id = ?1 RETURNING attempts",
                )?
                .query_row([update_id], |r| r.get(0))
                .optional()?;
            Answer::Count(reply, attempts.unwrap_or(0))
        }
        Command::SetResponse {
            update_id,
            response_id,
            reply,
        } => {
            tx.prepare_cached("UPDATE inbox SET response_id = ?2 WHERE update_id = ?1")?
                .execute(params![update_id, response_id])?;
            Answer::Unit(reply)
        }
        Command::Finish { update_id, reply } => {
            tx.prepare_cached("DELETE FROM inbox WHERE update_id = ?1")?
                .execute([update_id])?;
            Answer::Unit(reply)
        }
        Command::Pending { reply } => {
            let rows = tx
                .prepare_cached(
                    "SELECT update_id, user_id, body, accepted_at, attempts, response_id
                     FROM inbox ORDER BY user_id, update_id",
                )?
                .query_map([], row_of)?
                .collect::<Result<_, _>>()?;
            Answer::Rows(reply, rows)
        }
        Command::Get { key, reply } => {
            let value = tx
                .prepare_cached(
                    "SELECT value FROM user_state WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
                )?
                .query_row(params![key, now_ms()], |r| r.get(0))
                .optional()?;
            Answer::Value(reply, value)
        }
        Command::Put {
            key,
            value,
            ttl,
            reply,
        } => {
            match value {
                Some(value) => {
                    let expires = ttl.map(|t| now_ms() + t.as_millis() as i64);
                    tx.prepare_cached(
                        "INSERT INTO user_state (key, value, expires_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                    )?
                    .execute(params![key, value, expires])?;
                }
                None => {
                    tx.prepare_cached("DELETE FROM user_state WHERE key = ?1")?
                        .execute([key])?;
                }
            }
            Answer::Unit(reply)
        }
        Command::Ping { reply } => Answer::Unit(reply),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(update_id: i64, user_id: i64) -> InboxRow {
        InboxRow {
            update_id,
            user_id,
            body: format!("{{\"update_id\":{update_id}}}").into_bytes(),
            accepted_at: now_ms(),
            attempts: 0,
            response_id: None,
        }
    }

    #[tokio::test]
    async fn inbox_dedups_orders_counts_and_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.db");
        let store = StateStore::open(&path, Duration::from_secs(1), Synchronous::Normal).unwrap();
        assert!(store.accept(row(5, 2)).await.unwrap());
        assert!(store.accept(row(3, 2)).await.unwrap());
        assert!(store.accept(row(4, 1)).await.unwrap());
        assert!(!store.accept(row(5, 2)).await.unwrap(), "a re-delivery");
        assert_eq!(store.begin(3).await.unwrap(), 1);
        assert_eq!(store.begin(3).await.unwrap(), 2);
        store.set_response(3, "resp_1").await.unwrap();
        let pending = store.pending().await.unwrap();
        let order: Vec<i64> = pending.iter().map(|r| r.update_id).collect();
        assert_eq!(order, vec![4, 3, 5]);
        assert_eq!(pending[1].attempts, 2);
        assert_eq!(pending[1].response_id.as_deref(), Some("resp_1"));
        store.finish(3).await.unwrap();
        assert_eq!(store.begin(3).await.unwrap(), 0);
        assert!(
            !store.accept(row(3, 2)).await.unwrap(),
            "still seen after it is done"
        );
        drop(store);

        // Reopened: the rest is still there.
        let store = StateStore::open(&path, Duration::from_secs(1), Synchronous::Normal).unwrap();
        let order: Vec<i64> = store
            .pending()
            .await
            .unwrap()
            .iter()
            .map(|r| r.update_id)
            .collect();
        assert_eq!(order, vec![4, 5]);
    }

    #[tokio::test]
    async fn user_state_expires_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(
            &dir.path().join("state.db"),
            Duration::from_secs(1),
            Synchronous::Normal,
        )
        .unwrap();
        store.put("a", Some("1"), None).await.unwrap();
        store
            .put("b", Some("2"), Some(Duration::from_millis(1)))
            .await
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(store.get("a").await.unwrap().as_deref(), Some("1"));
        assert_eq!(store.get("b").await.unwrap(), None);
        store.put("a", None, None).await.unwrap();
        assert_eq!(store.get("a").await.unwrap(), None);
    }

    #[tokio::test]
    async fn concurrent_accepts_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(
            &dir.path().join("state.db"),
            Duration::from_secs(1),
            Synchronous::Normal,
        )
        .unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.accept(row(i, i % 7)).await.unwrap() })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap());
        }
        assert_eq!(store.pending().await.unwrap().len(), 200);
    }
}
