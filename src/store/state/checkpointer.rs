//! Checkpoints the state database's WAL on a thread and connection of its own.
//!
//! SQLite checkpoints on the connection that commits, every 1,000 pages by default: the writer
//! thread synced the WAL, copied its pages into the database and synced that (6–25 ms on the
//! test VM, several times a second with 250 users answering) while every command of every user
//! waited. A PASSIVE checkpoint from another connection does the same work without the write
//! lock, and the writer goes on committing meanwhile.
//!
//! The writer's connection gets [`wal_hook`] in place of SQLite's automatic checkpoint. After
//! each commit it notes how many pages the WAL holds, and the writer wakes this thread once
//! there are [`PASS_AFTER_PAGES`], SQLite's own rhythm: a pass that found everything copied
//! lets the next commit start the WAL from its beginning, which costs an fsync of its header,
//! so a quiet bot's commits must not each follow a pass.
//!
//! The writer still checkpoints now and then ([`WRITER_CHECKPOINT_PAGES`]), and that is what
//! bounds the WAL: a checkpoint from here never catches up while commits keep coming, but one
//! that the writer runs between two of its transactions does, so its next commit starts the WAL
//! from the beginning again. It finds little left to copy.
//!
//! This thread also truncates the WAL once the inbox is empty, so the text of handled updates
//! does not stay in it (the database's own pages are zeroed by `secure_delete`). It waits
//! [`TRUNCATE_AFTER`] first: the truncation syncs both files, and a writer's commit meanwhile
//! waits for it.

use std::cell::Cell;
use std::ffi::c_int;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::hooks::Wal;
use tokio::sync::mpsc::WeakUnboundedSender;
use tokio::sync::oneshot;

use super::Command;

/// The shortest time between two passes.
const PASS_EVERY: Duration = Duration::from_millis(100);
/// How long after the inbox empties the WAL is truncated. Not at once: the truncation syncs
/// both files (about 2.5 ms here) and holds the WAL meanwhile, and the next message often
/// comes within milliseconds of the last answer (the user's queued one, another user's):
/// its commit, and so Telegram's 200, waited for the truncation.
const TRUNCATE_AFTER: Duration = Duration::from_millis(250);
/// The WAL's size, in pages, from which a commit wakes the thread for a pass (SQLite's default
/// automatic checkpoint: 1 MiB of 1 KiB pages).
const PASS_AFTER_PAGES: c_int = 1000;
/// The WAL's size, in pages, from which the writer checkpoints itself: 8 MiB of 1 KiB pages.
const WRITER_CHECKPOINT_PAGES: c_int = 8192;

thread_local! {
    /// Pages in the WAL after the last commit on this thread: the writer's, whose connection
    /// alone has [`wal_hook`].
    static WAL_PAGES: Cell<c_int> = const { Cell::new(0) };
}

/// The writer connection's WAL hook (`sqlite3_wal_hook`), in place of SQLite's automatic
/// checkpoint, which is a WAL hook too: notes the WAL's size for [`Checkpointer::committed`],
/// and past [`WRITER_CHECKPOINT_PAGES`] checkpoints as SQLite's would (a busy one is skipped;
/// the next commit tries again).
pub(super) fn wal_hook(wal: &Wal, pages: c_int) -> rusqlite::Result<()> {
    WAL_PAGES.set(pages);
    if pages >= WRITER_CHECKPOINT_PAGES {
        let _ = wal.checkpoint();
    }
    Ok(())
}

/// The writer's handle to the checkpoint thread.
pub(super) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    /// The WAL has grown past [`PASS_AFTER_PAGES`] since the last pass began.
    wrote: AtomicBool,
    /// The inbox was found empty after rows were deleted: the WAL still holds their text.
    emptied: AtomicBool,
    stop: AtomicBool,
}

impl Checkpointer {
    /// Starts the thread with `conn`, a connection of its own to the database; it also nudges
    /// the writer through `writer` every `nudge_every`, so an idle one still sweeps.
    pub(super) fn start(
        conn: Connection,
        writer: WeakUnboundedSender<Command>,
        nudge_every: Duration,
    ) -> std::io::Result<Checkpointer> {
        let shared = Arc::new(Shared::default());
        let thread = thread::Builder::new()
            .name("state-checkpoint".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run(&conn, &shared, &writer, nudge_every)
            })?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// The writer committed a change: wakes the thread for a pass once the WAL holds
    /// [`PASS_AFTER_PAGES`] or more (as [`wal_hook`] noted on this thread).
    pub(super) fn committed(&self) {
        if WAL_PAGES.get() >= PASS_AFTER_PAGES {
            self.wake(&self.shared.wrote);
        }
    }

    /// The inbox is empty and rows were deleted since the WAL was last truncated: truncate it
    /// within [`TRUNCATE_AFTER`].
    pub(super) fn inbox_emptied(&self) {
        self.wake(&self.shared.emptied);
    }

    fn wake(&self, flag: &AtomicBool) {
        if !flag.swap(true, Ordering::AcqRel)
            && let Some(thread) = &self.thread
        {
            thread.thread().unpark();
        }
    }
}

impl Drop for Checkpointer {
    /// Stops the thread and waits for its checkpoint in progress, if any, to end.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

fn run(
    conn: &Connection,
    shared: &Shared,
    writer: &WeakUnboundedSender<Command>,
    nudge_every: Duration,
) {
    let mut next_pass = Instant::now();
    let mut truncate_at: Option<Instant> = None;
    let mut next_nudge = Instant::now() + nudge_every;
    while !shared.stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if now >= next_nudge {
            next_nudge = now + nudge_every;
            if let Some(writer) = writer.upgrade() {
                // An empty batch: the writer looks at its upkeep (the sweep) after it.
                let (reply, _) = oneshot::channel();
                let _ = writer.send(Command::Ping { reply });
            }
        }
        if truncate_at.is_none() && shared.emptied.swap(false, Ordering::AcqRel) {
            truncate_at = Some(now + TRUNCATE_AFTER);
        }
        if now >= next_pass && shared.wrote.swap(false, Ordering::AcqRel) {
            if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(%error, "could not checkpoint the state database (the writer will)");
            }
            next_pass = Instant::now() + PASS_EVERY;
        }
        if let Some(at) = truncate_at
            && now >= at
        {
            // This connection has no busy timeout: a busy WAL is tried again, not waited for.
            truncate_at = match truncate(conn) {
                Ok(true) => None,
                // The writer holds the WAL (or a reader an old snapshot): once it is done.
                Ok(false) => Some(Instant::now() + PASS_EVERY),
                // Tried again once the inbox empties next, and at shutdown.
                Err(error) => {
                    tracing::warn!(%error, "could not truncate the state database's WAL");
                    None
                }
            };
        }
        // Woken by the writer or by `drop`; the timeouts bound the waits.
        let mut wake = (Instant::now() + Duration::from_secs(1)).min(next_nudge);
        if shared.wrote.load(Ordering::Acquire) {
            wake = wake.min(next_pass);
        }
        if let Some(at) = truncate_at {
            wake = wake.min(at);
        }
        thread::park_timeout(wake.saturating_duration_since(Instant::now()));
    }
}

/// Copies the whole WAL into the database and empties it; false when it was busy (a
/// transaction or reader in the way, after `conn`'s busy timeout, if any).
pub(super) fn truncate(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|busy| busy == 0)
}
