//! Schema versions of our SQLite files, for every command but `serve` and `poll`: those two
//! migrate; everything else (check, analytics, backup) opens a database as it is, and all of
//! them refuse a database that a newer subgpt has already migrated past this binary.
//!
//! Works with any embedded [`Migrations`] list (the usage database's, the state database's),
//! so each store applies the same rule with one call.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use rusqlite_migration::{Migrations, SchemaVersion};

/// Why a database could not be opened as it is.
#[derive(thiserror::Error, Debug)]
pub enum SchemaError {
    /// The file does not exist (nothing here ever creates it).
    #[error("database file not found: {0}")]
    Missing(PathBuf),
    /// The file exists but SQLite does not recognise it.
    #[error("{0} is not a SQLite database")]
    NotSqlite(PathBuf),
    /// A newer subgpt has migrated the file past what this binary knows.
    #[error(
        "{} has schema version {found}, but this subgpt knows schema versions up to {supported}: \
         a newer subgpt has migrated it. Either run that newer binary again \
         (deploy/update.sh NEW_BINARY), or stop the service and restore the copy taken before \
         the update (backups/<time>/ of update.sh, or a `subgpt backup` copy)",
        path.display()
    )]
    Newer {
        /// The database.
        path: PathBuf,
        /// Its `user_version`.
        found: usize,
        /// The last migration this binary embeds.
        supported: usize,
    },
    /// SQLite failed reading the file.
    #[error("{}: SQLite: {source}", path.display())]
    Sqlite {
        /// The database.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The version could not be compared with the migrations.
    #[error("{}: schema version: {source}", path.display())]
    Version {
        /// The database.
        path: PathBuf,
        /// What rusqlite_migration said.
        source: rusqlite_migration::Error,
    },
}

/// A database's schema version next to the newest one this binary knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaState {
    /// The file's `user_version` (0: never migrated).
    pub found: usize,
    /// The number of embedded migrations.
    pub supported: usize,
}

impl SchemaState {
    /// Whether `serve`/`poll` would still migrate it.
    pub fn is_behind(&self) -> bool {
        self.found < self.supported
    }
}

/// Compares `conn`'s version with `migrations`; refuses a database newer than the binary.
pub fn ensure_not_newer(
    conn: &Connection,
    path: &Path,
    migrations: &Migrations,
) -> Result<SchemaState, SchemaError> {
    let version_error = |source| SchemaError::Version {
        path: path.to_owned(),
        source,
    };
    let found = migrations.current_version(conn).map_err(version_error)?;
    // pending = supported - found; negative when the file is ahead.
    let pending = migrations.pending_migrations(conn).map_err(version_error)?;
    let found = match found {
        SchemaVersion::NoneSet => 0,
        SchemaVersion::Inside(v) | SchemaVersion::Outside(v) => v.get(),
    };
    let supported = usize::try_from(found as i64 + i64::from(pending)).unwrap_or(0);
    if found > supported {
        return Err(SchemaError::Newer {
            path: path.to_owned(),
            found,
            supported,
        });
    }
    Ok(SchemaState { found, supported })
}

/// Opens an existing database read-only, as it is (never created, never migrated), and
/// refuses it when it is newer than `migrations`.
pub fn open_unmigrated(
    path: &Path,
    migrations: &Migrations,
) -> Result<(Connection, SchemaState), SchemaError> {
    let conn = open_read_only(path)?;
    let state = ensure_not_newer(&conn, path, migrations)?;
    Ok((conn, state))
}

/// Opens an existing SQLite file read-only and checks that it is one. Safe beside a running
/// service (WAL readers do not block its writer).
pub fn open_read_only(path: &Path) -> Result<Connection, SchemaError> {
    match std::fs::metadata(path) {
        Err(_) => return Err(SchemaError::Missing(path.to_owned())),
        Ok(meta) if !meta.is_file() => return Err(SchemaError::NotSqlite(path.to_owned())),
        Ok(_) => {}
    }
    let sqlite = |source| SchemaError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(sqlite)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(sqlite)?;
    match conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |_| Ok(())) {
        Ok(()) => Ok(conn),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::NotADatabase =>
        {
            Err(SchemaError::NotSqlite(path.to_owned()))
        }
        Err(e) => Err(sqlite(e)),
    }
}

#[cfg(test)]
mod tests {
    use rusqlite_migration::M;

    use super::*;

    const TWO: &[M<'static>] = &[M::up("CREATE TABLE a (x)"), M::up("CREATE TABLE b (y)")];

    fn db_at(dir: &Path, version: i64) -> PathBuf {
        let path = dir.join(format!("v{version}.db"));
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (x)").unwrap();
        conn.pragma_update(None, "user_version", version).unwrap();
        path
    }

    #[test]
    fn names_both_versions_of_a_newer_database_and_leaves_others_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let migrations = Migrations::from_slice(TWO);
        for (version, behind) in [(0, true), (1, true), (2, false)] {
            let path = db_at(dir.path(), version);
            let (conn, state) = open_unmigrated(&path, &migrations).unwrap();
            assert_eq!(state.found, version as usize);
            assert_eq!(state.supported, 2);
            assert_eq!(state.is_behind(), behind);
            let v: i64 = conn
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(v, version, "nothing migrated");
        }
        let newer = db_at(dir.path(), 5);
        let err = open_unmigrated(&newer, &migrations).unwrap_err();
        assert!(
            matches!(
                err,
                SchemaError::Newer {
                    found: 5,
                    supported: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("version 5") && text.contains("up to 2"),
            "{text}"
        );
        assert!(
            text.contains("update.sh") && text.contains("restore"),
            "{text}"
        );
    }

    #[test]
    fn never_creates_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.db");
        let err = open_unmigrated(&path, &Migrations::from_slice(TWO)).unwrap_err();
        assert!(matches!(err, SchemaError::Missing(_)), "{err:?}");
        assert!(!path.exists());
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
        let err = open_unmigrated(&junk, &Migrations::from_slice(TWO)).unwrap_err();
        assert!(matches!(err, SchemaError::NotSqlite(_)), "{err:?}");
    }
}
