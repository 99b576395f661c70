//! The rows the usage store takes and the summaries it gives back.

use chrono::NaiveDate;
use serde::Serialize;

/// One answered message: who asked, on which day (in `ANALYTICS_TIMEZONE`), how many tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// Telegram user id.
    pub user_id: i64,
    /// Telegram username, else first name, else `id<user_id>`.
    pub username: String,
    /// The day the answer counts for.
    pub request_date: NaiveDate,
    /// `usage.total_tokens` of the answer.
    pub tokens_used: i64,
}

/// One user's usage on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserDayUsage {
    /// Telegram user id.
    pub user_id: i64,
    /// Latest known username (`None` only for adopted rows without one).
    pub username: Option<String>,
    /// Answers that day.
    pub requests: i64,
    /// Tokens that day.
    pub tokens: i64,
}

/// One day of one user's breakdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayUsage {
    /// The day.
    pub date: NaiveDate,
    /// Answers that day.
    pub requests: i64,
    /// Tokens that day.
    pub tokens: i64,
}

/// A user's totals over some period, with first and last active day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserTotals {
    /// Telegram user id.
    pub user_id: i64,
    /// Latest known username.
    pub username: Option<String>,
    /// Answers in the period.
    pub requests: i64,
    /// Tokens in the period.
    pub tokens: i64,
    /// First day with usage in the period.
    pub first_date: NaiveDate,
    /// Last day with usage in the period.
    pub last_date: NaiveDate,
}

/// One user's all-time totals plus a per-day breakdown (oldest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserUsageStats {
    /// Telegram user id.
    pub user_id: i64,
    /// Latest known username; `None` if the user has no usage.
    pub username: Option<String>,
    /// All answers.
    pub requests: i64,
    /// All tokens.
    pub tokens: i64,
    /// First day with usage.
    pub first_date: Option<NaiveDate>,
    /// Last day with usage.
    pub last_date: Option<NaiveDate>,
    /// Days with usage, oldest first.
    pub days: Vec<DayUsage>,
}

/// Everyone's usage on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayTotals {
    /// The day.
    pub date: NaiveDate,
    /// Answers that day.
    pub requests: i64,
    /// Distinct users that day.
    pub users: i64,
    /// Tokens that day.
    pub tokens: i64,
}

/// Whole-database figures for the viewer's `info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageSummary {
    /// Raw usage rows (one per answer).
    pub rows: i64,
    /// Distinct users.
    pub users: i64,
    /// Total tokens.
    pub tokens: i64,
    /// First day with usage.
    pub first_date: Option<NaiveDate>,
    /// Last day with usage.
    pub last_date: Option<NaiveDate>,
}

/// Fills the days in `from..=to` that have no entry with zero tokens, for charts.
pub fn dense_daily_tokens(
    days: &[DayTotals],
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<(NaiveDate, i64)> {
    let mut known = days.iter().map(|d| (d.date, d.tokens)).peekable();
    from.iter_days()
        .take_while(|d| *d <= to)
        .map(|day| {
            while known.next_if(|(d, _)| *d < day).is_some() {}
            let tokens = known.next_if(|(d, _)| *d == day).map_or(0, |(_, t)| t);
            (day, tokens)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_daily_tokens_fills_gaps_with_zero() {
        let day = |d| NaiveDate::from_ymd_opt(2025, 1, d).unwrap();
        let t = |d, tokens| DayTotals {
            date: day(d),
            requests: 1,
            users: 1,
            tokens,
        };
        let got = dense_daily_tokens(&[t(1, 5), t(3, 7), t(9, 1)], day(2), day(4));
        assert_eq!(got, [(day(2), 0), (day(3), 7), (day(4), 0)]);
    }
}
