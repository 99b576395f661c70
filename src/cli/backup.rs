//! `subgpt backup`: online, consistent copies of the usage and state databases, safe while the
//! service runs.
//!
//! Each copy is made with SQLite's `VACUUM INTO` on a read-only connection: one read
//! transaction, so the copy is the database as of one commit, whatever the service writes
//! meanwhile (a `cp` of a WAL database can tear). The copy is checked (`PRAGMA quick_check`),
//! fsynced and only then renamed to its final name, so a file in a snapshot is always whole.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rusqlite::Connection;

use crate::analytics::human_bytes;
use crate::config::{StateConfig, UsageConfig, environment};
use crate::store::schema::{self, SchemaError};
use crate::store::usage::migrate;

/// File name of the usage database's copy in a snapshot.
pub const USAGE_FILE: &str = "user_analytics.db";
/// File name of the state database's copy in a snapshot.
pub const STATE_FILE: &str = "state.db";
/// Snapshot directory names: UTC time, sortable (`20261203T190102.123Z`).
const SNAPSHOT_FORMAT: &str = "%Y%m%dT%H%M%S%.3fZ";

/// Command-line arguments of `subgpt backup`.
#[derive(clap::Args, Debug, Clone)]
#[command(about = "Online, consistent copies of the usage and state databases")]
pub struct Args {
    /// Directory of the snapshots; each run adds a subdirectory named by the UTC time.
    #[arg(long, value_name = "DIR", default_value = "./backups/db")]
    pub out: PathBuf,
    /// Keep only the newest N snapshots in DIR (older ones made by this command are deleted).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: Option<u32>,
}

/// Why a backup failed.
#[derive(thiserror::Error, Debug)]
pub enum BackupError {
    /// A database could not be read as it is.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// SQLite failed while copying or checking.
    #[error("{what}: SQLite: {source}")]
    Sqlite {
        /// Which file.
        what: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The copy is not sound.
    #[error("the copy {0} fails PRAGMA quick_check: {1}")]
    Corrupt(PathBuf, String),
    /// A file system operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

/// One database to copy.
#[derive(Debug, Clone)]
pub struct Source {
    /// Shown in the output: `usage` or `state`.
    pub name: &'static str,
    /// The live file.
    pub path: PathBuf,
    /// The copy's file name in the snapshot.
    pub file: &'static str,
    /// A missing file is an error (usage) or skipped (state, before the first start).
    pub required: bool,
}

/// One copy made.
#[derive(Debug, Clone)]
pub struct Copied {
    /// Which database.
    pub name: &'static str,
    /// The live file.
    pub source: PathBuf,
    /// The copy.
    pub copy: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What one run did.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The new snapshot directory.
    pub dir: PathBuf,
    /// The copies in it.
    pub copied: Vec<Copied>,
    /// Sources that did not exist (optional ones only).
    pub skipped: Vec<Source>,
    /// Older snapshots deleted by `--keep`.
    pub pruned: Vec<PathBuf>,
}

/// Runs `subgpt backup` and maps the outcome to the exit code (0 ok, 1 failure).
pub fn run(args: Args) -> ExitCode {
    let parts = environment().and_then(|vars| {
        Ok((
            UsageConfig::from_vars(&vars)?,
            StateConfig::from_vars(&vars)?,
        ))
    });
    let (usage, state) = match parts {
        Ok(parts) => parts,
        Err(e) => {
            eprintln!("subgpt: {e}");
            return ExitCode::from(2);
        }
    };
    let sources = [
        Source {
            name: "usage",
            path: usage.db_path,
            file: USAGE_FILE,
            required: true,
        },
        Source {
            name: "state",
            path: state.db_path,
            file: STATE_FILE,
            required: false,
        },
    ];
    match backup(&sources, &args.out, args.keep.map(|n| n as usize)) {
        Ok(snapshot) => {
            for c in &snapshot.copied {
                crate::say!(
                    "{:<6} {} -> {}  {} ({} bytes)",
                    c.name,
                    c.source.display(),
                    c.copy.display(),
                    human_bytes(c.bytes),
                    c.bytes
                );
            }
            for s in &snapshot.skipped {
                crate::say!("{:<6} {} does not exist; skipped", s.name, s.path.display());
            }
            for p in &snapshot.pruned {
                crate::say!("pruned {}", p.display());
            }
            crate::say!("backup: {}", snapshot.dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("subgpt backup: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Copies every source into a new snapshot directory under `out`, then keeps the newest
/// `keep` snapshots. Nothing is left behind in `out` when it fails.
pub fn backup(
    sources: &[Source],
    out: &Path,
    keep: Option<usize>,
) -> Result<Snapshot, BackupError> {
    // Check every source first, so a refused database leaves no half-made snapshot.
    let mut present = Vec::new();
    let mut skipped = Vec::new();
    for source in sources {
        match schema::open_read_only(&source.path) {
            Ok(conn) => present.push((source, conn)),
            Err(SchemaError::Missing(_)) if !source.required => skipped.push(source.clone()),
            Err(e) => return Err(e.into()),
        }
    }
    for (source, conn) in &present {
        let migrations = match source.file {
            USAGE_FILE => &migrate::MIGRATIONS,
            _ => &crate::store::state::MIGRATIONS,
        };
        schema::ensure_not_newer(conn, &source.path, migrations)?;
    }
    std::fs::create_dir_all(out).map_err(io(format!("cannot create {}", out.display())))?;
    let dir = new_snapshot_dir(out)?;
    let mut copied = Vec::new();
    for (source, conn) in &present {
        match copy_one(source, conn, &dir) {
            Ok(c) => copied.push(c),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        }
    }
    sync_dir(&dir)?;
    let pruned = match keep {
        Some(n) => prune(out, n)?,
        None => Vec::new(),
    };
    Ok(Snapshot {
        dir,
        copied,
        skipped,
        pruned,
    })
}

/// `out/<UTC time>/`, created new (a second run in the same millisecond gets a suffix).
fn new_snapshot_dir(out: &Path) -> Result<PathBuf, BackupError> {
    let stamp = chrono::Utc::now().format(SNAPSHOT_FORMAT).to_string();
    for attempt in 0..100 {
        let name = match attempt {
            0 => stamp.clone(),
            n => format!("{stamp}-{n}"),
        };
        let dir = out.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(format!("cannot create {}", dir.display()))(e)),
        }
    }
    Err(BackupError::Io {
        what: format!(
            "cannot create a new snapshot directory in {}",
            out.display()
        ),
        source: std::io::ErrorKind::AlreadyExists.into(),
    })
}

fn copy_one(source: &Source, conn: &Connection, dir: &Path) -> Result<Copied, BackupError> {
    let partial = dir.join(format!(".{}.partial", source.file));
    let copy = dir.join(source.file);
    let sqlite = |what: &str| {
        let what = format!("{what} {}", source.path.display());
        move |source| BackupError::Sqlite { what, source }
    };
    let target = partial.to_str().ok_or_else(|| BackupError::Io {
        what: format!("{} is not valid UTF-8", partial.display()),
        source: std::io::ErrorKind::InvalidInput.into(),
    })?;
    conn.execute("VACUUM INTO ?1", [target])
        .map_err(sqlite("copying"))?;
    let check: String = Connection::open(&partial)
        .and_then(|c| c.query_row("PRAGMA quick_check", [], |r| r.get(0)))
        .map_err(sqlite("checking the copy of"))?;
    if check != "ok" {
        return Err(BackupError::Corrupt(partial, check));
    }
    let file = std::fs::File::open(&partial).map_err(io(format!("cannot open {target}")))?;
    file.sync_all()
        .map_err(io(format!("cannot sync {target}")))?;
    let bytes = file
        .metadata()
        .map_err(io(format!("cannot stat {target}")))?
        .len();
    std::fs::rename(&partial, &copy).map_err(io(format!("cannot rename {target}")))?;
    Ok(Copied {
        name: source.name,
        source: source.path.clone(),
        copy,
        bytes,
    })
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("cannot sync {}", dir.display())))
}

/// Deletes the oldest snapshots in `out` beyond `keep`. Only directories whose names this
/// command makes are touched; anything else in `out` is left alone.
fn prune(out: &Path, keep: usize) -> Result<Vec<PathBuf>, BackupError> {
    let entries = std::fs::read_dir(out).map_err(io(format!("cannot list {}", out.display())))?;
    let mut snapshots: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_snapshot_name)
        })
        .collect();
    // The names sort by time.
    snapshots.sort();
    let excess = snapshots.len().saturating_sub(keep);
    let old: Vec<PathBuf> = snapshots.into_iter().take(excess).collect();
    for dir in &old {
        std::fs::remove_dir_all(dir).map_err(io(format!("cannot delete {}", dir.display())))?;
    }
    Ok(old)
}

fn is_snapshot_name(name: &str) -> bool {
    let stamp = name.split_once('-').map_or(name, |(stamp, _)| stamp);
    chrono::NaiveDateTime::parse_from_str(stamp, SNAPSHOT_FORMAT).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_are_recognised_and_nothing_else() {
        let now = chrono::Utc::now().format(SNAPSHOT_FORMAT).to_string();
        assert!(is_snapshot_name(&now), "{now}");
        assert!(is_snapshot_name(&format!("{now}-1")));
        for other in ["daily", "20261203", "notes.txt", ""] {
            assert!(!is_snapshot_name(other), "{other}");
        }
    }
}
