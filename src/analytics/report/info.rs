//! The `info` record: what the viewer says about the file itself (size, counts, date range,
//! schema version, whether the roll-ups match), gathered once and shown in each format.

use chrono::NaiveDate;
use serde::Serialize;

use super::Context;
use super::tables::date_text;
use crate::analytics::ViewerError;
use crate::analytics::output::{Cell, Table, human_bytes};
use crate::prices::usd_text;
use crate::store::usage::{Source, migrate, rollups};

/// The `info` record.
#[derive(Serialize)]
pub(super) struct Info {
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

impl Context<'_> {
    pub(super) fn gather_info(&self) -> Result<Info, ViewerError> {
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

pub(super) fn info_pairs(info: &Info) -> Vec<(&'static str, String)> {
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

pub(super) fn info_table(info: &Info) -> Table {
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
