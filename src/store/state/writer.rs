//! The thread that owns the state database's connection: it runs every queued command of a
//! batch in one transaction and answers each caller after the commit.

use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::mpsc;

use super::checkpointer;
use crate::store::transaction::in_transaction;

use super::{
    BATCH_MAX, Checkpointer, Command, InboxRow, Reply, SEEN_FOR, StateError, Unsettled, now_ms,
};

/// The thread that owns the connection.
pub(super) struct Writer {
    conn: Connection,
    /// How often old `seen` ids and expired values are swept ([`super::SWEEP_EVERY`] in service).
    sweep_every: Duration,
    last_sweep: Instant,
    /// Whether rows were deleted since the inbox was last found empty.
    dirty: bool,
    /// Checkpoints on its own thread; dropped (and joined) before the last truncation.
    checkpointer: Option<Checkpointer>,
}

/// What to tell one caller once the batch is committed.
enum Answer {
    Bool(Reply<bool>, bool),
    Count(Reply<u32>, u32),
    Unit(Reply<()>),
    Rows(Reply<Vec<InboxRow>>, Vec<InboxRow>),
    Value(Reply<Option<String>>, Option<String>),
    Unsettled(Reply<Vec<Unsettled>>, Vec<Unsettled>),
    /// Nobody is waiting.
    Nothing,
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
            Answer::Unsettled(r, v) => drop(r.send(Ok(v))),
            Answer::Nothing => {}
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
            Answer::Unsettled(r, _) => drop(r.send(Err(e()))),
            Answer::Nothing => {}
        }
    }
}

/// Errors are not `Clone`; every caller of a failed batch gets the same message.
fn clone_error(error: &StateError) -> StateError {
    StateError::Batch(error.to_string())
}

impl Writer {
    pub(super) fn new(conn: Connection, checkpointer: Checkpointer, sweep_every: Duration) -> Self {
        Writer {
            conn,
            sweep_every,
            last_sweep: Instant::now() - sweep_every,
            dirty: false,
            checkpointer: Some(checkpointer),
        }
    }

    pub(super) fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
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
        self.checkpointer = None;
        self.truncate_wal();
    }

    fn commit(&mut self, batch: &mut Vec<Command>) {
        let mut answers = Vec::with_capacity(batch.len());
        let writes = batch.iter().any(Command::writes);
        // A batch that writes takes the write lock at once, waiting (the busy timeout) while
        // the checkpoint thread's truncation holds it. Begun as a read, the first write would
        // have to upgrade the transaction, and SQLite fails that at once, without waiting.
        let begin = if writes { "BEGIN IMMEDIATE" } else { "BEGIN" };
        let mut commands = batch.drain(..);
        let result = in_transaction(&self.conn, begin, |conn| -> Result<(), StateError> {
            for command in commands.by_ref() {
                answers.push(apply(conn, command)?);
            }
            Ok(())
        });
        // Not reached when the batch failed: their callers are told why, too.
        answers.extend(commands.map(unreached));
        match result {
            Ok(()) => {
                if let (true, Some(checkpointer)) = (writes, &self.checkpointer) {
                    checkpointer.committed();
                }
                for answer in answers {
                    if matches!(answer, Answer::Unit(_)) {
                        self.dirty = true;
                    }
                    answer.send();
                }
            }
            Err(error) => {
                tracing::error!(%error, "state database write failed");
                for answer in answers {
                    answer.fail(&error);
                }
            }
        }
    }

    /// Sweeps old `seen` ids now and then, and has the WAL truncated once the inbox is empty so
    /// the text of handled updates does not stay in it.
    fn upkeep(&mut self) {
        if self.last_sweep.elapsed() >= self.sweep_every {
            self.last_sweep = Instant::now();
            let now = now_ms();
            let before = now - SEEN_FOR.as_millis() as i64;
            if let Err(e) = self
                .conn
                .execute("DELETE FROM seen WHERE at < ?1", [before])
            {
                tracing::warn!(error = %e, "could not sweep old update ids");
            }
            // Expired values are hidden at once; this erases them (a chat history is text).
            if let Err(e) = self
                .conn
                .execute("DELETE FROM user_state WHERE expires_at <= ?1", [now])
            {
                tracing::warn!(error = %e, "could not sweep expired conversation state");
            }
        }
        if self.dirty {
            // Asked after most batches under load: the statement is kept, not parsed anew.
            let empty: bool = self
                .conn
                .prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM inbox)")
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .unwrap_or(false);
            if empty && let Some(checkpointer) = &self.checkpointer {
                checkpointer.inbox_emptied();
                self.dirty = false;
            }
        }
    }

    /// Truncates the WAL at shutdown, once the checkpoint thread is gone.
    fn truncate_wal(&self) {
        // Busy: a reader, such as `sqlite3` beside the service, holds an old snapshot.
        if let Err(e) = checkpointer::truncate(&self.conn) {
            tracing::warn!(error = %e, "could not checkpoint the state database");
        }
    }
}

/// The caller of a command that a failed batch did not reach, to be told the batch's error.
fn unreached(command: Command) -> Answer {
    match command {
        Command::Accept { reply, .. } => Answer::Bool(reply, false),
        Command::Begin { reply, .. } => Answer::Count(reply, 0),
        Command::Pending { reply } => Answer::Rows(reply, Vec::new()),
        Command::Get { reply, .. } => Answer::Value(reply, None),
        Command::Due { reply, .. } => Answer::Unsettled(reply, Vec::new()),
        Command::SetResponse { reply, .. }
        | Command::Finish { reply, .. }
        | Command::Put { reply, .. }
        | Command::Ping { reply }
        | Command::Unsettle { reply, .. }
        | Command::Later { reply, .. }
        | Command::Settled { reply, .. } => Answer::Unit(reply),
        // A kept copy is a convenience; the shared store still has the value.
        Command::Keep { .. } => Answer::Nothing,
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

fn apply(tx: &Connection, command: Command) -> Result<Answer, StateError> {
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
            write_value(tx, &key, value.as_deref(), ttl, false)?;
            Answer::Unit(reply)
        }
        Command::Keep { key, value, ttl } => {
            write_value(tx, &key, value.as_deref(), ttl, true)?;
            Answer::Nothing
        }
        Command::Ping { reply } => Answer::Unit(reply),
        Command::Unsettle {
            item,
            due_at,
            reply,
        } => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO unsettled (response_id, usage_row, due_at, looks)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                item.response_id,
                item.usage_row,
                due_at,
                item.looks
            ])?;
            Answer::Unit(reply)
        }
        Command::Due { now, limit, reply } => {
            let items = tx
                .prepare_cached(
                    "SELECT response_id, usage_row, looks FROM unsettled
                     WHERE due_at <= ?1 ORDER BY due_at LIMIT ?2",
                )?
                .query_map(params![now, limit as i64], |r| {
                    Ok(Unsettled {
                        response_id: r.get(0)?,
                        usage_row: r.get(1)?,
                        looks: r.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Answer::Unsettled(reply, items)
        }
        Command::Later {
            response_id,
            due_at,
            reply,
        } => {
            tx.prepare_cached(
                "UPDATE unsettled SET looks = looks + 1, due_at = ?2 WHERE response_id = ?1",
            )?
            .execute(params![response_id, due_at])?;
            Answer::Unit(reply)
        }
        Command::Settled { response_id, reply } => {
            tx.prepare_cached("DELETE FROM unsettled WHERE response_id = ?1")?
                .execute([response_id])?;
            Answer::Unit(reply)
        }
    })
}

/// Sets `key` to `value`, expiring after `ttl` (or never), or removes it when `value` is
/// `None`. With `only_if_changed`, an equal value that has not expired is left as it is, so
/// keeping what is already there dirties no page.
fn write_value(
    tx: &Connection,
    key: &str,
    value: Option<&str>,
    ttl: Option<Duration>,
    only_if_changed: bool,
) -> rusqlite::Result<()> {
    let Some(value) = value else {
        tx.prepare_cached("DELETE FROM user_state WHERE key = ?1")?
            .execute([key])?;
        return Ok(());
    };
    let now = now_ms();
    let expires = ttl.map(|t| now + t.as_millis() as i64);
    if only_if_changed {
        tx.prepare_cached(
            "INSERT INTO user_state (key, value, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
             WHERE value IS NOT excluded.value OR expires_at <= ?4",
        )?
        .execute(params![key, value, expires, now])?;
    } else {
        tx.prepare_cached(
            "INSERT INTO user_state (key, value, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
        )?
        .execute(params![key, value, expires])?;
    }
    Ok(())
}
