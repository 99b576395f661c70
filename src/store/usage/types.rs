//! The rows the usage store takes and the summaries it gives back.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize, Serializer};

/// Serialises millionths of a dollar as dollars (`cost_usd`): a number, or null when unknown.
fn micro_usd_as_usd<S: Serializer>(micro: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match micro {
        Some(m) => s.serialize_f64(*m as f64 / 1e6),
        None => s.serialize_none(),
    }
}

/// One answered message: who asked, on which day (in `ANALYTICS_TIMEZONE`), how many tokens,
/// and (when the upstream said) their breakdown, the model and the cost. Serialised only to
/// wait in the state database for a cut-off answer's final figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    /// Telegram user id.
    pub user_id: i64,
    /// Telegram username, else first name, else `id<user_id>`.
    pub username: String,
    /// The day the answer counts for.
    pub request_date: NaiveDate,
    /// `usage.total_tokens` of the answer.
    pub tokens_used: i64,
    /// Input (prompt) tokens, cached ones included.
    pub input_tokens: Option<i64>,
    /// Output (completion) tokens, reasoning included.
    pub output_tokens: Option<i64>,
    /// Input tokens read from OpenAI's prompt cache.
    pub cached_input_tokens: Option<i64>,
    /// Output tokens spent on reasoning.
    pub reasoning_tokens: Option<i64>,
    /// The model the upstream says answered.
    pub model: Option<String>,
    /// Millionths of a US dollar; `None` leaves it to the store's price table at write time.
    pub cost_micro_usd: Option<i64>,
}

impl UsageRow {
    /// A row with only the columns every writer has (the Python bot's four).
    pub fn new(
        user_id: i64,
        username: impl Into<String>,
        request_date: NaiveDate,
        tokens_used: i64,
    ) -> Self {
        Self {
            user_id,
            username: username.into(),
            request_date,
            tokens_used,
            ..Self::default()
        }
    }
}

/// Tokens and cost over some period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Spend {
    /// Tokens.
    pub tokens: i64,
    /// Sum of the known costs, millionths of a dollar; `None` when no row had one.
    #[serde(rename = "cost_usd", serialize_with = "micro_usd_as_usd")]
    pub cost_micro_usd: Option<i64>,
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
    /// Sum of the known costs in millionths of a dollar (`cost_usd` in JSON); `None` when no row has one.
    #[serde(rename = "cost_usd", serialize_with = "micro_usd_as_usd")]
    pub cost_micro_usd: Option<i64>,
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
    /// Sum of the known costs in millionths of a dollar (`cost_usd` in JSON); `None` when no row has one.
    #[serde(rename = "cost_usd", serialize_with = "micro_usd_as_usd")]
    pub cost_micro_usd: Option<i64>,
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
    /// Sum of the known costs in millionths of a dollar (`cost_usd` in JSON); `None` when no row has one.
    #[serde(rename = "cost_usd", serialize_with = "micro_usd_as_usd")]
    pub cost_micro_usd: Option<i64>,
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
    /// Sum of the known costs in millionths of a dollar (`cost_usd` in JSON); `None` when no row has one.
    #[serde(rename = "cost_usd", serialize_with = "micro_usd_as_usd")]
    pub cost_micro_usd: Option<i64>,
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
    /// Sum of the known costs in millionths of a dollar (`cost_usd` in JSON); `None` when no row has one.
    #[serde(rename = "cost_usd", serialize_with = "micro_usd_as_usd")]
    pub cost_micro_usd: Option<i64>,
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
    /// Sum of the known costs in millionths of a dollar (`cost_usd` in JSON); `None` when no row has one.
    #[serde(rename = "cost_usd", serialize_with = "micro_usd_as_usd")]
    pub cost_micro_usd: Option<i64>,
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
            cost_micro_usd: None,
        };
        let got = dense_daily_tokens(&[t(1, 5), t(3, 7), t(9, 1)], day(2), day(4));
        assert_eq!(got, [(day(2), 0), (day(3), 7), (day(4), 0)]);
    }
}
