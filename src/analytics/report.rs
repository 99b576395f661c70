//! The viewer's modes: each reads through a [`UsageReader`] and prints one format.
//!
//! This file is the modes; `info` is the record about the file itself, `tables` turns rows
//! into tables and pairs.

mod info;
mod tables;

use std::io::Write;
use std::path::Path;

use chrono::NaiveDate;
use rusqlite::Connection;
use serde::Serialize;

use super::output::{Cell, Table, write_pairs};
use super::{Format, ViewerError};
use crate::chart::daily_tokens_png;
use crate::prices::usd_text;
use crate::store::usage::{DayTotals, UsageReader, UserDayUsage, UserTotals, dense_daily_tokens};
use info::{Info, info_pairs, info_table};
use tables::{daily_table, day_users_table, user_pairs, user_totals_table, users_table};

type Window = Option<(NaiveDate, NaiveDate)>;

/// What every mode needs.
pub(super) struct Context<'a> {
    pub path: &'a Path,
    pub conn: &'a Connection,
    pub reader: &'a UsageReader<'a>,
    pub format: Format,
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

impl Context<'_> {
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
