//! Read queries shared by the bot (through the async store) and the read-only viewer.
//!
//! Every query has two forms: one on the roll-up tables (fast; what a migrated database has)
//! and one aggregating the raw `user_analytics` rows, for a Python bot's file the viewer opens
//! read-only and so cannot migrate. Both give the same answers.

use chrono::NaiveDate;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::StoreError;
use super::types::{
    DayTotals, DayUsage, Spend, UsageSummary, UserDayUsage, UserTotals, UserUsageStats,
};

/// The stored form of a day: `YYYY-MM-DD`.
pub(crate) fn sql_date(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

fn parse_date(text: &str) -> Result<NaiveDate, StoreError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| StoreError::BadDate(text.to_owned()))
}

fn date_col(row: &Row<'_>, idx: usize) -> Result<NaiveDate, StoreError> {
    parse_date(&row.get::<_, String>(idx)?)
}

fn opt_date_col(row: &Row<'_>, idx: usize) -> Result<Option<NaiveDate>, StoreError> {
    row.get::<_, Option<String>>(idx)?
        .as_deref()
        .map(parse_date)
        .transpose()
}

/// Bounds used when a query has no date range.
const MIN_DAY: &str = "0000-01-01";
const MAX_DAY: &str = "9999-12-31";

/// The latest non-null username of `a.user_id`, from the raw rows.
const LATEST_NAME: &str = "(SELECT r.username FROM user_analytics AS r
     WHERE r.user_id = a.user_id AND r.username IS NOT NULL ORDER BY r.id DESC LIMIT 1)";

/// Which tables the queries read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The roll-up tables (migrations 0002 and 0003), kept by triggers.
    Rollups,
    /// Only the raw `user_analytics` rows (a database not migrated to 0003).
    Raw,
}

/// A roll-up's cost: the sum when some row had one, else NULL (unknown, not zero).
const ROLLUP_COST: &str = "CASE WHEN costed > 0 THEN cost_micro_usd END";

/// Read queries over one connection.
pub struct UsageReader<'c> {
    conn: &'c Connection,
    source: Source,
    /// The raw rows' cost column, or `NULL` for a file from before migration 0003.
    raw_cost: &'static str,
}

impl<'c> UsageReader<'c> {
    /// Reads from `source` through `conn` (a database at the latest schema).
    pub fn new(conn: &'c Connection, source: Source) -> Self {
        Self {
            conn,
            source,
            raw_cost: "cost_micro_usd",
        }
    }

    /// Roll-ups if the database has those of migration 0003, else the raw rows.
    pub fn detect(conn: &'c Connection) -> Result<Self, StoreError> {
        let mut rollups = true;
        for table in ["usage_daily", "usage_user", "usage_user_daily"] {
            rollups &= super::migrate::has_table(conn, table)?;
        }
        rollups = rollups && super::migrate::has_column(conn, "usage_daily", "costed")?;
        let source = if rollups {
            Source::Rollups
        } else {
            Source::Raw
        };
        let has_cost = super::migrate::has_column(conn, "user_analytics", "cost_micro_usd")?;
        Ok(Self {
            conn,
            source,
            raw_cost: if has_cost { "cost_micro_usd" } else { "NULL" },
        })
    }

    /// Which tables this reader uses.
    pub fn source(&self) -> Source {
        self.source
    }

    fn sum(&self, sql: &str, params: impl rusqlite::Params) -> Result<i64, StoreError> {
        let value: Option<i64> = self
            .conn
            .prepare_cached(sql)?
            .query_row(params, |r| r.get(0))
            .optional()?
            .flatten();
        Ok(value.unwrap_or(0))
    }

    /// Tokens `user_id` used on `date`.
    pub fn user_day_tokens(&self, user_id: i64, date: NaiveDate) -> Result<i64, StoreError> {
        let sql = match self.source {
            Source::Rollups => {
                "SELECT tokens FROM usage_user_daily WHERE user_id = ?1 AND request_date = ?2"
            }
            Source::Raw => {
                "SELECT SUM(tokens_used) FROM user_analytics WHERE user_id = ?1 AND request_date = ?2"
            }
        };
        self.sum(sql, params![user_id, sql_date(date)])
    }

    /// Tokens `user_id` used ever.
    pub fn user_total_tokens(&self, user_id: i64) -> Result<i64, StoreError> {
        let sql = match self.source {
            Source::Rollups => "SELECT tokens FROM usage_user WHERE user_id = ?1",
            Source::Raw => "SELECT SUM(tokens_used) FROM user_analytics WHERE user_id = ?1",
        };
        self.sum(sql, params![user_id])
    }

    /// Tokens `user_id` used from `from` to `to`, both included.
    pub fn user_tokens_between(
        &self,
        user_id: i64,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<i64, StoreError> {
        let sql = match self.source {
            Source::Rollups => {
                "SELECT SUM(tokens) FROM usage_user_daily
                 WHERE user_id = ?1 AND request_date BETWEEN ?2 AND ?3"
            }
            Source::Raw => {
                "SELECT SUM(tokens_used) FROM user_analytics
                 WHERE user_id = ?1 AND request_date BETWEEN ?2 AND ?3"
            }
        };
        self.sum(sql, params![user_id, sql_date(from), sql_date(to)])
    }

    /// Tokens and cost of `user_id` from `from` to `to`, both included (`None` = no bound).
    pub fn user_spend(
        &self,
        user_id: i64,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Spend, StoreError> {
        let sql = match self.source {
            Source::Rollups => {
                "SELECT SUM(tokens), CASE WHEN SUM(costed) > 0 THEN SUM(cost_micro_usd) END
                 FROM usage_user_daily WHERE user_id = ?1 AND request_date BETWEEN ?2 AND ?3"
                    .to_owned()
            }
            Source::Raw => format!(
                "SELECT SUM(tokens_used), SUM({}) FROM user_analytics
                 WHERE user_id = ?1 AND request_date BETWEEN ?2 AND ?3",
                self.raw_cost
            ),
        };
        let (lo, hi) = range_params(from, to);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let spend = stmt.query_row(params![user_id, lo, hi], |r| {
            Ok(Spend {
                tokens: r.get::<_, Option<i64>>(0)?.unwrap_or(0),
                cost_micro_usd: r.get(1)?,
            })
        })?;
        Ok(spend)
    }

    /// Every user's requests and tokens on `date`, most tokens first.
    pub fn users_on(&self, date: NaiveDate) -> Result<Vec<UserDayUsage>, StoreError> {
        let sql = match self.source {
            Source::Rollups => "SELECT d.user_id, u.username, d.requests, d.tokens,
                        CASE WHEN d.costed > 0 THEN d.cost_micro_usd END
                 FROM usage_user_daily AS d LEFT JOIN usage_user AS u USING (user_id)
                 WHERE d.request_date = ?1 ORDER BY d.tokens DESC, d.user_id"
                .to_owned(),
            Source::Raw => format!(
                "SELECT a.user_id, {LATEST_NAME}, COUNT(*), SUM(a.tokens_used), SUM({})
                 FROM user_analytics AS a WHERE a.request_date = ?1
                 GROUP BY a.user_id ORDER BY 4 DESC, 1",
                self.raw_cost
            ),
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([sql_date(date)])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(UserDayUsage {
                user_id: row.get(0)?,
                username: row.get(1)?,
                requests: row.get(2)?,
                tokens: row.get(3)?,
                cost_micro_usd: row.get(4)?,
            });
        }
        Ok(out)
    }

    /// `user_id`'s totals and per-day breakdown (empty if the user has no usage).
    pub fn user_stats(&self, user_id: i64) -> Result<UserUsageStats, StoreError> {
        let (days_sql, name_sql) = match self.source {
            Source::Rollups => (
                format!(
                    "SELECT request_date, requests, tokens, {ROLLUP_COST} FROM usage_user_daily
                     WHERE user_id = ?1 ORDER BY request_date"
                ),
                "SELECT username FROM usage_user WHERE user_id = ?1".to_owned(),
            ),
            Source::Raw => (
                format!(
                    "SELECT request_date, COUNT(*), SUM(tokens_used), SUM({}) FROM user_analytics
                     WHERE user_id = ?1 GROUP BY request_date ORDER BY request_date",
                    self.raw_cost
                ),
                format!("SELECT {LATEST_NAME} FROM (SELECT ?1 AS user_id) AS a"),
            ),
        };
        let mut stmt = self.conn.prepare_cached(&days_sql)?;
        let mut rows = stmt.query([user_id])?;
        let mut days = Vec::new();
        while let Some(row) = rows.next()? {
            days.push(DayUsage {
                date: date_col(row, 0)?,
                requests: row.get(1)?,
                tokens: row.get(2)?,
                cost_micro_usd: row.get(3)?,
            });
        }
        let username: Option<String> = self
            .conn
            .prepare_cached(&name_sql)?
            .query_row([user_id], |r| r.get(0))
            .optional()?
            .flatten();
        Ok(UserUsageStats {
            user_id,
            username,
            requests: days.iter().map(|d| d.requests).sum(),
            tokens: days.iter().map(|d| d.tokens).sum(),
            cost_micro_usd: sum_known(days.iter().map(|d| d.cost_micro_usd)),
            first_date: days.first().map(|d| d.date),
            last_date: days.last().map(|d| d.date),
            days,
        })
    }

    /// Requests, distinct users and tokens of each day with usage in the range, oldest first.
    /// `None` bounds mean "from the first" / "to the last" day.
    pub fn daily_totals(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Vec<DayTotals>, StoreError> {
        let sql = match self.source {
            Source::Rollups => format!(
                "SELECT request_date, requests, users, tokens, {ROLLUP_COST} FROM usage_daily
                 WHERE request_date BETWEEN ?1 AND ?2 ORDER BY request_date"
            ),
            Source::Raw => format!(
                "SELECT request_date, COUNT(*), COUNT(DISTINCT user_id), SUM(tokens_used), SUM({})
                 FROM user_analytics WHERE request_date BETWEEN ?1 AND ?2
                 GROUP BY request_date ORDER BY request_date",
                self.raw_cost
            ),
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(range_params(from, to))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(DayTotals {
                date: date_col(row, 0)?,
                requests: row.get(1)?,
                users: row.get(2)?,
                tokens: row.get(3)?,
                cost_micro_usd: row.get(4)?,
            });
        }
        Ok(out)
    }

    /// Per-user totals in the range (all time when both bounds are `None`), most tokens first,
    /// at most `limit` users (`None` = all).
    pub fn user_totals(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        limit: Option<usize>,
    ) -> Result<Vec<UserTotals>, StoreError> {
        let all_time = from.is_none() && to.is_none();
        let sql = match self.source {
            Source::Rollups if all_time => format!(
                "SELECT user_id, username, requests, tokens, first_date, last_date, {ROLLUP_COST}
                 FROM usage_user WHERE ?1 <= ?2 ORDER BY tokens DESC, user_id LIMIT ?3"
            ),
            Source::Rollups => "SELECT d.user_id, u.username, SUM(d.requests), SUM(d.tokens),
                        MIN(d.request_date), MAX(d.request_date),
                        CASE WHEN SUM(d.costed) > 0 THEN SUM(d.cost_micro_usd) END
                 FROM usage_user_daily AS d LEFT JOIN usage_user AS u USING (user_id)
                 WHERE d.request_date BETWEEN ?1 AND ?2
                 GROUP BY d.user_id ORDER BY 4 DESC, 1 LIMIT ?3"
                .to_owned(),
            Source::Raw => format!(
                "SELECT a.user_id, {LATEST_NAME}, COUNT(*), SUM(a.tokens_used),
                        MIN(a.request_date), MAX(a.request_date), SUM({})
                 FROM user_analytics AS a WHERE a.request_date BETWEEN ?1 AND ?2
                 GROUP BY a.user_id ORDER BY 4 DESC, 1 LIMIT ?3",
                self.raw_cost
            ),
        };
        let (lo, hi) = range_params(from, to);
        let limit = limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![lo, hi, limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(UserTotals {
                user_id: row.get(0)?,
                username: row.get(1)?,
                requests: row.get(2)?,
                tokens: row.get(3)?,
                first_date: date_col(row, 4)?,
                last_date: date_col(row, 5)?,
                cost_micro_usd: row.get(6)?,
            });
        }
        Ok(out)
    }

    /// Rows, users, tokens and date range of the whole database.
    pub fn summary(&self) -> Result<UsageSummary, StoreError> {
        let sql = match self.source {
            Source::Rollups => "SELECT (SELECT SUM(requests) FROM usage_daily), (SELECT COUNT(*) FROM usage_user),
                        (SELECT SUM(tokens) FROM usage_daily),
                        (SELECT MIN(request_date) FROM usage_daily), (SELECT MAX(request_date) FROM usage_daily),
                        (SELECT CASE WHEN SUM(costed) > 0 THEN SUM(cost_micro_usd) END FROM usage_daily)"
                .to_owned(),
            Source::Raw => format!(
                "SELECT COUNT(*), COUNT(DISTINCT user_id), SUM(tokens_used), MIN(request_date), MAX(request_date),
                        SUM({})
                 FROM user_analytics",
                self.raw_cost
            ),
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([])?;
        let row = rows.next()?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        Ok(UsageSummary {
            rows: row.get::<_, Option<i64>>(0)?.unwrap_or(0),
            users: row.get::<_, Option<i64>>(1)?.unwrap_or(0),
            tokens: row.get::<_, Option<i64>>(2)?.unwrap_or(0),
            first_date: opt_date_col(row, 3)?,
            last_date: opt_date_col(row, 4)?,
            cost_micro_usd: row.get(5)?,
        })
    }
}

/// The sum of the known values; `None` when none is known.
fn sum_known(values: impl Iterator<Item = Option<i64>>) -> Option<i64> {
    values
        .flatten()
        .fold(None, |acc, v| Some(acc.unwrap_or(0) + v))
}

fn range_params(from: Option<NaiveDate>, to: Option<NaiveDate>) -> (String, String) {
    (
        from.map_or_else(|| MIN_DAY.to_owned(), sql_date),
        to.map_or_else(|| MAX_DAY.to_owned(), sql_date),
    )
}
