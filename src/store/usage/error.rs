//! The usage store's error type: what went wrong opening, migrating, reading or writing.

use std::path::PathBuf;

/// Everything the usage store can fail with.
#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    /// The database file does not exist (the read-only viewer never creates one).
    #[error("database file not found: {0}")]
    MissingFile(PathBuf),
    /// The file exists but SQLite does not recognise it.
    #[error("{0} is not a SQLite database")]
    NotSqlite(PathBuf),
    /// A SQLite file without the `user_analytics` table.
    #[error("{0} has no user_analytics table")]
    MissingTable(PathBuf),
    /// An existing `user_analytics` table lacks a column this program needs.
    #[error("user_analytics cannot be adopted: {0}")]
    Incompatible(String),
    /// The parent directory of the database could not be created.
    #[error("cannot create directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An error reported by SQLite.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// No pooled connection could be had.
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    /// The file's schema is newer than this binary, or its version is unreadable.
    #[error(transparent)]
    Schema(#[from] crate::store::schema::SchemaError),
    /// Applying the embedded migrations failed.
    #[error("migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    /// A date column holds something that is not `YYYY-MM-DD`.
    #[error("bad date in database: {0:?}")]
    BadDate(String),
    /// The blocking task running a query panicked or was cancelled.
    #[error("blocking task failed: {0}")]
    Join(String),
    /// The store was closed; nothing more can be written.
    #[error("usage store is closed")]
    Closed,
    /// `close` ran out of time with rows still unwritten.
    #[error("usage store close timed out with {pending} rows not yet written")]
    CloseTimeout {
        /// Rows handed over but not durable when time ran out.
        pending: usize,
    },
}

impl StoreError {
    /// True for SQLite's "database is locked/busy" errors, which go away by themselves.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}
