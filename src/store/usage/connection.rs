//! How the usage store opens SQLite: page size, journal, checkpoints, and a clear error for a
//! file that is not a database.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::{StoreError, Synchronous};

/// Page size of a new usage database. Every answer's row changes a handful of scattered pages
/// (two indexes on `user_analytics`, three roll-ups), and a commit writes each changed page
/// whole to the WAL: 1 KiB pages write a quarter of the bytes of SQLite's default 4 KiB, for
/// rows of a few dozen bytes. With the writer's own thread and the checkpoint interval below,
/// `examples/bench_usage` (16 callers) went from ~15,000 to ~24,000 rows/s on the 2-core test VM.
pub(super) const PAGE_SIZE: i64 = 1024;

/// The WAL grows to about this much before it is checkpointed.
const WAL_CHECKPOINT_BYTES: i64 = 32 << 20;

/// The settings of every connection: the writer's and the pool's.
pub(super) fn configure(
    conn: &mut Connection,
    busy_timeout: Duration,
    synchronous: Synchronous,
) -> rusqlite::Result<()> {
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "synchronous", synchronous.pragma())?;
    // Checkpoint less often than SQLite's default (1000 pages): each checkpoint costs two
    // fsyncs (~15–35 ms on the test VM) whatever its size, and hot pages are copied back once
    // per checkpoint. The WAL stays under ~WAL_CHECKPOINT_BYTES whatever the page size.
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        WAL_CHECKPOINT_BYTES / page_size.max(512),
    )?;
    // SQLite's default page cache (2 MiB). A larger one made commits slower, not faster: the
    // end of every write transaction scans the cache's hash table (2 MiB: ~23,000 rows/s,
    // 16 MiB: ~20,000).
    Ok(())
}

/// Turns SQLite's "file is not a database" into a clear error naming the file.
pub(crate) fn check_is_sqlite(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    match conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |_| Ok(())) {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::NotADatabase =>
        {
            Err(StoreError::NotSqlite(path.to_owned()))
        }
        other => Ok(other?),
    }
}
