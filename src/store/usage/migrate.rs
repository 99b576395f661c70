//! Schema migrations, embedded at build time, and adoption of the Python bot's database.
//!
//! The version lives in SQLite's `user_version`. The Python bot created `user_analytics` itself
//! and left `user_version` at 0; such a file is adopted (marked as version 1, missing indexes
//! added) so that only the later migrations run, which fill the roll-ups from its rows.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};
use rusqlite_migration::{M, Migrations};
use tracing::info;

use super::StoreError;
use crate::store::schema::ensure_not_newer;

const MIGRATION_SLICE: &[M<'static>] = &[
    M::up(include_str!("../../../migrations/0001_user_analytics.sql")),
    M::up(include_str!("../../../migrations/0002_rollups.sql")),
    M::up(concat!(
        include_str!("../../../migrations/0003_cost_and_triggers.sql"),
        include_str!("../../../migrations/0003_recompute_rollups.sql")
    )),
];

/// Recomputes every roll-up from the raw rows (the end of migration 0003, and `analytics rebuild`).
pub const RECOMPUTE_ROLLUPS: &str = include_str!("../../../migrations/0003_recompute_rollups.sql");

/// The embedded migrations, in order.
pub const MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATION_SLICE);

/// The schema version after all embedded migrations.
pub const LATEST_VERSION: i64 = MIGRATION_SLICE.len() as i64;

/// Columns the program reads and writes; an adopted table must have them all.
const REQUIRED_COLUMNS: [&str; 4] = ["user_id", "username", "request_date", "tokens_used"];

/// Indexes of migration 0001, as (name, columns); adoption adds those the old file lacks.
const INDEXES: [(&str, &str); 3] = [
    ("idx_user_analytics_user_id", "user_id"),
    ("idx_user_analytics_request_date", "request_date"),
    ("idx_user_analytics_user_date", "user_id,request_date"),
];

/// Brings the database to the latest schema, adopting a Python bot's file first if needed.
/// A file a newer subgpt has migrated further is refused, naming both versions (the
/// operator's way back is that binary or the backup, never a guess at its schema).
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    ensure_not_newer(conn, path, &MIGRATIONS)?;
    adopt_legacy(conn)?;
    MIGRATIONS.to_latest(conn)?;
    Ok(())
}

/// Reads `PRAGMA user_version`.
pub fn schema_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// True if the database has a table of that name.
pub fn has_table(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    let found = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()?;
    Ok(found.is_some())
}

/// Marks an un-versioned file that already has `user_analytics` as version 1.
fn adopt_legacy(conn: &mut Connection) -> Result<(), StoreError> {
    if schema_version(conn)? != 0 || !has_table(conn, "user_analytics")? {
        return Ok(());
    }
    let tx = conn.transaction()?;
    let columns = column_names(&tx, "user_analytics")?;
    if let Some(missing) = REQUIRED_COLUMNS
        .iter()
        .find(|c| !columns.iter().any(|have| have == *c))
    {
        return Err(StoreError::Incompatible(format!(
            "column {missing} is missing"
        )));
    }
    let existing = index_columns(&tx)?;
    for (name, cols) in INDEXES {
        if !existing.iter().any(|have| have == cols) {
            tx.execute_batch(&format!(
                "CREATE INDEX IF NOT EXISTS {name} ON user_analytics ({cols})"
            ))?;
        }
    }
    tx.pragma_update(None, "user_version", 1)?;
    tx.commit()?;
    info!("adopted an existing user_analytics table as schema version 1");
    Ok(())
}

/// True if `table` has a column of that name.
pub fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool, StoreError> {
    Ok(column_names(conn, table)?.iter().any(|c| c == column))
}

fn column_names(conn: &Connection, table: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let names = stmt
        .query_map([table], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(names)
}

/// The column lists (comma-joined, in order) of every index on `user_analytics`.
fn index_columns(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT group_concat(ii.name, ',' ORDER BY ii.seqno) FROM pragma_index_list('user_analytics') AS il,
                pragma_index_info(il.name) AS ii
         GROUP BY il.name",
    )?;
    let lists = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(lists)
}
