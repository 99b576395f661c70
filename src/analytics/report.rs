//! The viewer's modes: each reads through a [`UsageReader`] and prints one format.

use std::io::Write;
use std::path::Path;

use chrono::NaiveDate;
use rusqlite::Connection;
use serde::Serialize;

use super::output::{Cell, Table, human_bytes, write_pairs};
use super::{Format, ViewerError};
use crate::chart::daily_tokens_png;
use crate::prices::usd_text;
use crate::store::usage::{
    DayTotals, Source, UsageReader, UserDayUsage, UserTotals, UserUsageStats, dense_daily_tokens,
    migrate, rollups,
};

type Window = Option<(NaiveDate, NaiveDate)>;

/// What every mode needs.
pub(super) struct Context<'a> {
    pub path: &'a Path,
    pub conn: &'a Connection,
    pub reader: &'a UsageReader<'a>,
    pub format: Format,
}

/// The `info` record.
#[derive(Serialize)]
struct Info {
    path: String,
    size_bytes: u64,
    size: String,
    rows: i64,
    users: i64,
    tokens: i64,
    /// Sum of the known costs (null when no row has one).
    cost_usd: Option<f64>,
    first_date: Option<NaiveDate>,
    last_date: Option<NaiveDate>,
    schema_version: i64,
    source: &'static str,
    /// Whether the roll-ups equal the raw rows; null when there are none (raw rows are read).
    rollups_match: Option<bool>,
    /// What differs, when they do not.
    rollup_problems: Vec<String>,
}

/// `all` as one JSON document.
#[derive(Serialize)]
struct AllDoc {
    info: Info,
    users: Vec<UserTotals>,
    daily: Vec<DayTotals>,
}

/// `date D` as one JSON document.
#[derive(Serialize)]
struct DateDoc<'a> {
    date: NaiveDate,
    users: &'a [UserDayUsage],
}

fn date_text(d: Option<NaiveDate>) -> String {
    d.map(|d| d.to_string()).unwrap_or_else(|| "-".to_owned())
}

impl Context<'_> {
    fn gather_info(&self) -> Result<Info, ViewerError> {
        let summary = self.reader.summary()?;
        let size_bytes = std::fs::metadata(self.path)?.len();
        let check = match self.reader.source() {
            Source::Rollups => Some(rollups::check(self.conn, rollups::Depth::Quick)?),
            Source::Raw => None,
        };
        Ok(Info {
            path: self.path.display().to_string(),
            size_bytes,
            size: human_bytes(size_bytes),
            rows: summary.rows,
            users: summary.users,
            tokens: summary.tokens,
            cost_usd: summary.cost_micro_usd.map(|m| m as f64 / 1e6),
            first_date: summary.first_date,
            last_date: summary.last_date,
            schema_version: migrate::schema_version(self.conn)?,
            source: match self.reader.source() {
                Source::Rollups => "rollups",
                Source::Raw => "raw rows",
            },
            rollups_match: check.as_ref().map(|c| c.matches),
            rollup_problems: check.map(|c| c.problems).unwrap_or_default(),
        })
    }

    fn range(window: Window) -> (Option<NaiveDate>, Option<NaiveDate>) {
        (window.map(|w| w.0), window.map(|w| w.1))
    }

    fn gather_users(&self, window: Window) -> Result<Vec<UserTotals>, ViewerError> {
        let (from, to) = Self::range(window);
        Ok(self.reader.user_totals(from, to, None)?)
    }

    fn gather_daily(&self, window: Window) -> Result<Vec<DayTotals>, ViewerError> {
        let (from, to) = Self::range(window);
        Ok(self.reader.daily_totals(from, to)?)
    }

    /// info + users + daily.
    pub fn all(&self, out: &mut impl Write, window: Window) -> Result<(), ViewerError> {
        let info = self.gather_info()?;
        let users = self.gather_users(window)?;
        let daily = self.gather_daily(window)?;
        match self.format {
            Format::Json => {
                let doc = AllDoc { info, users, daily };
                writeln!(out, "{}", serde_json::to_string(&doc).map_err(to_runtime)?)?;
            }
            Format::Csv => {
                info_table(&info).write_csv(out)?;
                writeln!(out)?;
                users_table(&users).write_csv(out)?;
                writeln!(out)?;
                daily_table(&daily).write_csv(out)?;
            }
            Format::Table => {
                write_pairs(out, &info_pairs(&info))?;
                writeln!(out, "\nUsers ({})", users.len())?;
                users_table(&users).write_text(out)?;
                writeln!(out, "\nDaily ({} days)", daily.len())?;
                daily_table(&daily).write_text(out)?;
            }
        }
        Ok(())
    }

    /// Per-user totals.
    pub fn users(&self, out: &mut impl Write, window: Window) -> Result<(), ViewerError> {
        let users = self.gather_users(window)?;
        self.emit(out, &users, &users_table(&users))
    }

    /// Per-day totals.
    pub fn daily(&self, out: &mut impl Write, window: Window) -> Result<(), ViewerError> {
        let daily = self.gather_daily(window)?;
        self.emit(out, &daily, &daily_table(&daily))
    }

    /// One user's totals and days.
    pub fn user(&self, out: &mut impl Write, user_id: i64) -> Result<(), ViewerError> {
        let stats = self.reader.user_stats(user_id)?;
        if stats.days.is_empty() {
            eprintln!("subgpt analytics: no usage recorded for user {user_id}");
        }
        let mut days = Table::new(&["date", "requests", "tokens", "cost_usd"]);
        for d in &stats.days {
            days.push(vec![
                d.date.to_string().into(),
                d.requests.into(),
                d.tokens.into(),
                Cell::Usd(d.cost_micro_usd),
            ]);
        }
        match self.format {
            Format::Json => writeln!(
                out,
                "{}",
                serde_json::to_string(&stats).map_err(to_runtime)?
            )?,
            Format::Csv => {
                user_totals_table(&stats).write_csv(out)?;
                writeln!(out)?;
                days.write_csv(out)?;
            }
            Format::Table => {
                write_pairs(out, &user_pairs(&stats))?;
                writeln!(out)?;
                days.write_text(out)?;
            }
        }
        Ok(())
    }

    /// Every user's usage on one day.
    pub fn date(&self, out: &mut impl Write, date: NaiveDate) -> Result<(), ViewerError> {
        let users = self.reader.users_on(date)?;
        let table = day_users_table(&users);
        match self.format {
            Format::Json => {
                let doc = DateDoc {
                    date,
                    users: &users,
                };
                writeln!(out, "{}", serde_json::to_string(&doc).map_err(to_runtime)?)?;
            }
            Format::Csv => table.write_csv(out)?,
            Format::Table => {
                let tokens: i64 = users.iter().map(|u| u.tokens).sum();
                let cost = users
                    .iter()
                    .filter_map(|u| u.cost_micro_usd)
                    .reduce(|a, b| a + b);
                match usd_text(cost) {
                    Some(cost) => writeln!(
                        out,
                        "{date}: {} users, {tokens} tokens, {cost}",
                        users.len()
                    )?,
                    None => writeln!(out, "{date}: {} users, {tokens} tokens", users.len())?,
                }
                table.write_text(out)?;
            }
        }
        Ok(())
    }

    /// Path, size, counts, schema version.
    pub fn info(&self, out: &mut impl Write) -> Result<(), ViewerError> {
        let info = self.gather_info()?;
        match self.format {
            Format::Json => writeln!(out, "{}", serde_json::to_string(&info).map_err(to_runtime)?)?,
            Format::Csv => info_table(&info).write_csv(out)?,
            Format::Table => write_pairs(out, &info_pairs(&info))?,
        }
        Ok(())
    }

    /// Writes a PNG of tokens per day over `window` to `file`.
    pub fn chart(
        &self,
        out: &mut impl Write,
        file: &Path,
        window: (NaiveDate, NaiveDate),
    ) -> Result<(), ViewerError> {
        let (from, to) = window;
        let totals = self.reader.daily_totals(Some(from), Some(to))?;
        let days = dense_daily_tokens(&totals, from, to);
        let cost = totals
            .iter()
            .filter_map(|d| d.cost_micro_usd)
            .reduce(|a, b| a + b);
        let title = match usd_text(cost) {
            Some(cost) => format!("Tokens per day, {from} to {to}, cost {cost}"),
            None => format!("Tokens per day, {from} to {to}"),
        };
        let png = daily_tokens_png(&days, &title, ["day", "tokens"]).map_err(to_runtime)?;
        std::fs::write(file, &png)
            .map_err(|e| ViewerError::Runtime(format!("{}: {e}", file.display())))?;
        let tokens: i64 = days.iter().map(|d| d.1).sum();
        writeln!(
            out,
            "wrote {} ({} days, {tokens} tokens, {} bytes)",
            file.display(),
            days.len(),
            png.len()
        )?;
        Ok(())
    }

    fn emit<T: Serialize>(
        &self,
        out: &mut impl Write,
        value: &T,
        table: &Table,
    ) -> Result<(), ViewerError> {
        match self.format {
            Format::Json => writeln!(out, "{}", serde_json::to_string(value).map_err(to_runtime)?)?,
            Format::Csv => table.write_csv(out)?,
            Format::Table => table.write_text(out)?,
        }
        Ok(())
    }
}

fn to_runtime(e: impl std::fmt::Display) -> ViewerError {
    ViewerError::Runtime(e.to_string())
}

/// What `info` says about the roll-ups, for people.
fn rollups_text(info: &Info) -> String {
    match info.rollups_match {
        None => "none (the raw rows are read; `subgpt serve` adds them)".to_owned(),
        Some(true) => "match the raw rows".to_owned(),
        Some(false) => format!(
            "DO NOT match the raw rows ({}); run `subgpt analytics rebuild`",
            info.rollup_problems.join("; ")
        ),
    }
}

fn info_pairs(info: &Info) -> Vec<(&'static str, String)> {
    vec![
        ("path", info.path.clone()),
        ("size", format!("{} bytes ({})", info.size_bytes, info.size)),
        ("rows", info.rows.to_string()),
        ("users", info.users.to_string()),
        ("tokens", info.tokens.to_string()),
        (
            "cost",
            usd_text(info.cost_usd.map(|c| (c * 1e6).round() as i64))
                .unwrap_or_else(|| "unknown".to_owned()),
        ),
        ("first day", date_text(info.first_date)),
        ("last day", date_text(info.last_date)),
        ("schema version", info.schema_version.to_string()),
        ("read from", info.source.to_owned()),
        ("roll-ups", rollups_text(info)),
    ]
}

fn info_table(info: &Info) -> Table {
    let mut t = Table::new(&[
        "path",
        "size_bytes",
        "rows",
        "users",
        "tokens",
        "cost_usd",
        "first_date",
        "last_date",
        "schema_version",
        "source",
        "rollups_match",
    ]);
    t.push(vec![
        info.path.clone().into(),
        i64::try_from(info.size_bytes).unwrap_or(i64::MAX).into(),
        info.rows.into(),
        info.users.into(),
        info.tokens.into(),
        Cell::Usd(info.cost_usd.map(|c| (c * 1e6).round() as i64)),
        info.first_date.map(|d| d.to_string()).into(),
        info.last_date.map(|d| d.to_string()).into(),
        info.schema_version.into(),
        info.source.into(),
        info.rollups_match.map(|m| m.to_string()).into(),
    ]);
    t
}

const USER_HEADERS: [&str; 7] = [
    "user_id",
    "username",
    "requests",
    "tokens",
    "cost_usd",
    "first_date",
    "last_date",
];

fn user_cells(
    user_id: i64,
    username: &Option<String>,
    (requests, tokens, cost): (i64, i64, Option<i64>),
    (first, last): (Option<NaiveDate>, Option<NaiveDate>),
) -> Vec<Cell> {
    let day = |d: Option<NaiveDate>| Cell::from(d.map(|d| d.to_string()));
    vec![
        user_id.into(),
        username.clone().into(),
        requests.into(),
        tokens.into(),
        Cell::Usd(cost),
        day(first),
        day(last),
    ]
}

fn users_table(users: &[UserTotals]) -> Table {
    let mut t = Table::new(&USER_HEADERS);
    for u in users {
        t.push(user_cells(
            u.user_id,
            &u.username,
            (u.requests, u.tokens, u.cost_micro_usd),
            (Some(u.first_date), Some(u.last_date)),
        ));
    }
    t
}

fn daily_table(days: &[DayTotals]) -> Table {
    let mut t = Table::new(&["date", "requests", "users", "tokens", "cost_usd"]);
    for d in days {
        t.push(vec![
            d.date.to_string().into(),
            d.requests.into(),
            d.users.into(),
            d.tokens.into(),
            Cell::Usd(d.cost_micro_usd),
        ]);
    }
    t
}

fn day_users_table(users: &[UserDayUsage]) -> Table {
    let mut t = Table::new(&["user_id", "username", "requests", "tokens", "cost_usd"]);
    for u in users {
        t.push(vec![
            u.user_id.into(),
            u.username.clone().into(),
            u.requests.into(),
            u.tokens.into(),
            Cell::Usd(u.cost_micro_usd),
        ]);
    }
    t
}

fn user_pairs(s: &UserUsageStats) -> Vec<(&'static str, String)> {
    vec![
        ("user_id", s.user_id.to_string()),
        ("username", s.username.clone().unwrap_or_default()),
        ("requests", s.requests.to_string()),
        ("tokens", s.tokens.to_string()),
        (
            "cost",
            usd_text(s.cost_micro_usd).unwrap_or_else(|| "unknown".to_owned()),
        ),
        ("first day", date_text(s.first_date)),
        ("last day", date_text(s.last_date)),
    ]
}

fn user_totals_table(s: &UserUsageStats) -> Table {
    let mut t = Table::new(&USER_HEADERS);
    t.push(user_cells(
        s.user_id,
        &s.username,
        (s.requests, s.tokens, s.cost_micro_usd),
        (s.first_date, s.last_date),
    ));
    t
}
