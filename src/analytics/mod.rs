//! `subgpt analytics`: the operator's read-only viewer of the usage database.
//!
//! Opens the SQLite file read-only (safe beside the running bot, never migrates it), reads the
//! roll-ups when they exist and the raw rows otherwise, and prints tables, CSV, JSON or a PNG chart.

mod output;
mod report;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use chrono::{Days, NaiveDate};
use clap::{Subcommand, ValueEnum};
use rusqlite::{Connection, OpenFlags};

use crate::config::{UsageConfig, environment};
use crate::store::schema::ensure_not_newer;
use crate::store::usage::{StoreError, UsageReader, check_is_sqlite, migrate, rollups};

pub use output::{Cell, Table, csv_field, human_bytes};

/// Command-line arguments of `subgpt analytics`.
#[derive(clap::Args, Debug, Clone)]
#[command(about = "Read-only viewer of the usage database")]
pub struct Args {
    /// What to show (default: all = info + users + daily).
    #[command(subcommand)]
    pub mode: Option<Mode>,
    /// SQLite file [default: $ANALYTICS_DB_PATH, else ./data/user_analytics.db].
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Only the last N days up to today in ANALYTICS_TIMEZONE (daily, users, chart; chart default 30).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36600))]
    pub days: Option<u32>,
}

/// The viewer's modes.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// info, users and daily together.
    All,
    /// Per user: id, username, requests, tokens, first and last day (most tokens first).
    Users,
    /// Per day: requests, distinct users, tokens.
    Daily,
    /// One user's totals and daily breakdown.
    User {
        /// Telegram user id.
        id: i64,
    },
    /// Every user's usage on one day.
    Date {
        /// The day, YYYY-MM-DD.
        date: NaiveDate,
    },
    /// File path, size, rows, users, date range, schema version, whether the roll-ups match.
    Info,
    /// Recomputes the roll-ups from the raw rows (the only mode that writes; safe beside the
    /// running service, which waits for the lock).
    Rebuild,
    /// A PNG bar chart of tokens per day (default: the last 30 days).
    Chart {
        /// Where to write the PNG.
        #[arg(long, value_name = "FILE.png")]
        out: PathBuf,
    },
}

/// Output formats.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// CSV with a header row (several tables are separated by a blank line).
    Csv,
    /// One JSON document.
    Json,
}

/// Why the viewer stopped; decides the exit code.
#[derive(thiserror::Error, Debug)]
pub(crate) enum ViewerError {
    /// Bad configuration or a database that cannot be read as ours: exit 2.
    #[error("{0}")]
    Usage(String),
    /// Anything failing at run time: exit 1.
    #[error("{0}")]
    Runtime(String),
    /// Writing the output failed (a closed pipe is not an error).
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

impl From<StoreError> for ViewerError {
    fn from(e: StoreError) -> Self {
        ViewerError::Runtime(e.to_string())
    }
}

/// Runs the viewer and maps the outcome to the exit code (0 ok, 2 bad usage or database, 1 failure).
pub fn run(args: Args) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = execute(&args, &mut out).and_then(|()| out.flush().map_err(ViewerError::from));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(ViewerError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e @ ViewerError::Usage(_)) => {
            eprintln!("subgpt analytics: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("subgpt analytics: {e}");
            ExitCode::FAILURE
        }
    }
}

fn execute(args: &Args, out: &mut impl Write) -> Result<(), ViewerError> {
    // The service's own loader: ./.env under the real environment, the same checks and messages.
    let usage = environment()
        .and_then(|vars| UsageConfig::from_vars(&vars))
        .map_err(|e| ViewerError::Usage(e.to_string()))?;
    let path = args.db.clone().unwrap_or(usage.db_path);
    let today = chrono::Utc::now()
        .with_timezone(&usage.timezone)
        .date_naive();
    let opened = |e: StoreError| match e {
        StoreError::MissingFile(_) | StoreError::NotSqlite(_) | StoreError::MissingTable(_) => {
            ViewerError::Usage(e.to_string())
        }
        // Names the file and both versions already; exit 1 as SPEC §2 says.
        e @ StoreError::Schema(_) => ViewerError::Runtime(e.to_string()),
        other => ViewerError::Runtime(format!("{}: {other}", path.display())),
    };
    if args.mode == Some(Mode::Rebuild) {
        return rebuild(&path, out, opened);
    }
    let conn = open_read_only(&path).map_err(opened)?;
    let reader = UsageReader::detect(&conn)?;
    let ctx = report::Context {
        path: &path,
        conn: &conn,
        reader: &reader,
        format: args.format,
    };
    let window = args.days.map(|n| last_days(today, n));
    match args.mode.clone().unwrap_or(Mode::All) {
        Mode::All => ctx.all(out, window),
        Mode::Users => ctx.users(out, window),
        Mode::Daily => ctx.daily(out, window),
        Mode::User { id } => ctx.user(out, id),
        Mode::Date { date } => ctx.date(out, date),
        Mode::Info => ctx.info(out),
        Mode::Rebuild => unreachable!("handled before the read-only open"),
        Mode::Chart { out: file } => {
            ctx.chart(out, &file, last_days(today, args.days.unwrap_or(30)))
        }
    }
}

/// `analytics rebuild`: opens the file read-write (without migrating it), recomputes the
/// roll-ups in one transaction and checks them.
fn rebuild(
    path: &Path,
    out: &mut impl Write,
    opened: impl Fn(StoreError) -> ViewerError,
) -> Result<(), ViewerError> {
    let mut conn = open_read_only(path).map_err(&opened)?;
    let version = migrate::schema_version(&conn)?;
    if version != migrate::LATEST_VERSION {
        return Err(ViewerError::Usage(format!(
            "{} is at schema version {version}, this subgpt writes version {}; {}",
            path.display(),
            migrate::LATEST_VERSION,
            if version < migrate::LATEST_VERSION {
                "start `subgpt serve` (or `poll`) once to migrate it, which also recomputes the roll-ups"
            } else {
                "use the newer subgpt that wrote it"
            }
        )));
    }
    drop(conn);
    conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| opened(e.into()))?;
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(StoreError::from)?;
    let started = std::time::Instant::now();
    rollups::rebuild(&mut conn)?;
    let check = rollups::check(&conn, rollups::Depth::Full)?;
    if !check.matches {
        return Err(ViewerError::Runtime(format!(
            "roll-ups still differ after the rebuild: {}",
            check.problems.join("; ")
        )));
    }
    writeln!(
        out,
        "rebuilt the roll-ups of {} in {:.2} s; they match the raw rows",
        path.display(),
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}

/// `today - (n - 1) ..= today`.
fn last_days(today: NaiveDate, n: u32) -> (NaiveDate, NaiveDate) {
    let from = today
        .checked_sub_days(Days::new(u64::from(n.max(1)) - 1))
        .unwrap_or(NaiveDate::MIN);
    (from, today)
}

/// Opens the usage database read-only and checks it is one: no file is created, nothing
/// migrated, and a file a newer subgpt has migrated further is refused.
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    match std::fs::metadata(path) {
        Err(_) => return Err(StoreError::MissingFile(path.to_owned())),
        Ok(meta) if !meta.is_file() => return Err(StoreError::NotSqlite(path.to_owned())),
        Ok(_) => {}
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    check_is_sqlite(&conn, path)?;
    if !migrate::has_table(&conn, "user_analytics")? {
        return Err(StoreError::MissingTable(path.to_owned()));
    }
    ensure_not_newer(&conn, path, &migrate::MIGRATIONS)?;
    Ok(conn)
}
