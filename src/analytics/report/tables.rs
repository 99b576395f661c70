//! How the usage rows become output: a table per kind of row (users, days, one day's users)
//! and the key-value pairs of one user's totals.

use chrono::NaiveDate;

use crate::analytics::output::{Cell, Table};
use crate::prices::usd_text;
use crate::store::usage::{DayTotals, UserDayUsage, UserTotals, UserUsageStats};

pub(super) fn date_text(d: Option<NaiveDate>) -> String {
    d.map(|d| d.to_string()).unwrap_or_else(|| "-".to_owned())
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

pub(super) fn users_table(users: &[UserTotals]) -> Table {
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

pub(super) fn daily_table(days: &[DayTotals]) -> Table {
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

pub(super) fn day_users_table(users: &[UserDayUsage]) -> Table {
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

pub(super) fn user_pairs(s: &UserUsageStats) -> Vec<(&'static str, String)> {
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

pub(super) fn user_totals_table(s: &UserUsageStats) -> Table {
    let mut t = Table::new(&USER_HEADERS);
    t.push(user_cells(
        s.user_id,
        &s.username,
        (s.requests, s.tokens, s.cost_micro_usd),
        (s.first_date, s.last_date),
    ));
    t
}
