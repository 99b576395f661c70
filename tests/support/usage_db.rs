//! Helpers for usage-database tests: the Python bot's schema, and totals computed in Rust
//! straight from the raw rows, independent of the SQL under test.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;
use rusqlite::Connection;
use subgpt::store::usage::{StoreOptions, UsageRow, UsageStore};

/// The Python bot's table and indexes, as it created them (SPEC §6), `user_version` left at 0.
pub const PYTHON_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS user_analytics (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    username TEXT,
    request_date DATE NOT NULL,
    tokens_used INTEGER NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_user_id ON user_analytics(user_id);
CREATE INDEX IF NOT EXISTS idx_request_date ON user_analytics(request_date);
CREATE INDEX IF NOT EXISTS idx_user_date ON user_analytics(user_id, request_date);
";

/// A raw row: user id, username, day, tokens.
pub type Raw<'a> = (i64, Option<&'a str>, &'a str, i64);

/// Creates a file as the Python bot left it, with these rows.
pub fn create_python_db(path: &Path, rows: &[Raw<'_>]) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(PYTHON_SCHEMA).unwrap();
    insert_raw(&conn, rows);
}

/// Inserts rows straight into `user_analytics`.
pub fn insert_raw(conn: &Connection, rows: &[Raw<'_>]) {
    let mut stmt = conn
        .prepare("INSERT INTO user_analytics (user_id, username, request_date, tokens_used) VALUES (?1, ?2, ?3, ?4)")
        .unwrap();
    for (user, name, day, tokens) in rows {
        stmt.execute(rusqlite::params![user, name, day, tokens])
            .unwrap();
    }
}

/// Per-user totals: latest non-null username, requests, tokens, first and last day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSum {
    pub username: Option<String>,
    pub requests: i64,
    pub tokens: i64,
    pub first: String,
    pub last: String,
}

/// Totals computed in Rust from every raw row.
#[derive(Debug, Default)]
pub struct Expected {
    pub rows: i64,
    pub tokens: i64,
    pub users: BTreeMap<i64, UserSum>,
    /// day → (requests, distinct users, tokens)
    pub days: BTreeMap<String, (i64, i64, i64)>,
    /// (user, day) → (requests, tokens)
    pub user_days: BTreeMap<(i64, String), (i64, i64)>,
    /// Sum of the known costs (µUSD) of all rows, per user, per day, per (user, day); `None`
    /// where no row of the group has a cost.
    pub cost: Option<i64>,
    pub user_cost: BTreeMap<i64, Option<i64>>,
    pub day_cost: BTreeMap<String, Option<i64>>,
    pub user_day_cost: BTreeMap<(i64, String), Option<i64>>,
}

/// Adds a known cost to a sum that may still be unknown.
fn add_cost(sum: &mut Option<i64>, cost: Option<i64>) {
    if let Some(c) = cost {
        *sum = Some(sum.unwrap_or(0) + c);
    }
}

impl Expected {
    /// Reads every raw row in id order and sums in Rust.
    pub fn from_raw(conn: &Connection) -> Self {
        let has_cost: bool = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('user_analytics') WHERE name = 'cost_micro_usd'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let cost = if has_cost { "cost_micro_usd" } else { "NULL" };
        let mut stmt = conn
            .prepare(&format!(
                "SELECT user_id, username, request_date, tokens_used, {cost} FROM user_analytics ORDER BY id"
            ))
            .unwrap();
        let rows = stmt
            .query_map([], |r| {
                <(i64, Option<String>, String, i64, Option<i64>)>::try_from(r)
            })
            .unwrap();
        let mut e = Expected::default();
        let mut day_users: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
        for row in rows {
            let (user, name, day, tokens, cost) = row.unwrap();
            e.rows += 1;
            e.tokens += tokens;
            add_cost(&mut e.cost, cost);
            add_cost(e.user_cost.entry(user).or_default(), cost);
            add_cost(e.day_cost.entry(day.clone()).or_default(), cost);
            add_cost(
                e.user_day_cost.entry((user, day.clone())).or_default(),
                cost,
            );
            let u = e.users.entry(user).or_insert_with(|| UserSum {
                username: None,
                requests: 0,
                tokens: 0,
                first: day.clone(),
                last: day.clone(),
            });
            if name.is_some() {
                u.username = name;
            }
            u.requests += 1;
            u.tokens += tokens;
            u.first = u.first.clone().min(day.clone());
            u.last = u.last.clone().max(day.clone());
            let d = e.days.entry(day.clone()).or_default();
            d.0 += 1;
            d.2 += tokens;
            day_users.entry(day.clone()).or_default().insert(user);
            let ud = e.user_days.entry((user, day)).or_default();
            ud.0 += 1;
            ud.1 += tokens;
        }
        for (day, users) in day_users {
            e.days.get_mut(&day).unwrap().1 = users.len() as i64;
        }
        e
    }

    /// Users sorted as the viewer lists them: most tokens first, then by id.
    pub fn users_by_tokens(&self) -> Vec<(i64, UserSum)> {
        let mut v: Vec<(i64, UserSum)> = self.users.iter().map(|(k, u)| (*k, u.clone())).collect();
        v.sort_by(|a, b| b.1.tokens.cmp(&a.1.tokens).then(a.0.cmp(&b.0)));
        v
    }

    /// Panics unless the roll-up tables hold exactly these totals.
    pub fn assert_rollups_match(&self, conn: &Connection) {
        let mut stmt = conn
            .prepare("SELECT request_date, requests, users, tokens FROM usage_daily ORDER BY 1")
            .unwrap();
        let days: BTreeMap<String, (i64, i64, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(days, self.days, "usage_daily");
        let mut stmt =
            conn.prepare("SELECT user_id, request_date, requests, tokens FROM usage_user_daily ORDER BY 1, 2").unwrap();
        let user_days: BTreeMap<(i64, String), (i64, i64)> = stmt
            .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), (r.get(2)?, r.get(3)?))))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(user_days, self.user_days, "usage_user_daily");
        let mut stmt = conn
            .prepare("SELECT user_id, username, requests, tokens, first_date, last_date FROM usage_user ORDER BY 1")
            .unwrap();
        let users: BTreeMap<i64, UserSum> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    UserSum {
                        username: r.get(1)?,
                        requests: r.get(2)?,
                        tokens: r.get(3)?,
                        first: r.get(4)?,
                        last: r.get(5)?,
                    },
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(users, self.users, "usage_user");
        let costs = |sql: &str| -> Vec<Option<i64>> {
            conn.prepare(sql)
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let known = "CASE WHEN costed > 0 THEN cost_micro_usd END";
        assert_eq!(
            costs(&format!(
                "SELECT {known} FROM usage_daily ORDER BY request_date"
            )),
            self.day_cost.values().copied().collect::<Vec<_>>(),
            "usage_daily cost"
        );
        assert_eq!(
            costs(&format!("SELECT {known} FROM usage_user ORDER BY user_id")),
            self.user_cost.values().copied().collect::<Vec<_>>(),
            "usage_user cost"
        );
        assert_eq!(
            costs(&format!(
                "SELECT {known} FROM usage_user_daily ORDER BY user_id, request_date"
            )),
            self.user_day_cost.values().copied().collect::<Vec<_>>(),
            "usage_user_daily cost"
        );
    }
}

/// Every row of `user_analytics`, all columns, in id order (to prove adoption changed nothing).
pub fn raw_snapshot(conn: &Connection) -> Vec<(i64, i64, Option<String>, String, i64, String)> {
    let mut stmt = conn
        .prepare("SELECT id, user_id, username, request_date, tokens_used, created_at FROM user_analytics ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| r.try_into())
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// `PRAGMA user_version`.
pub fn user_version(conn: &Connection) -> i64 {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

pub fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

pub fn row(user_id: i64, username: &str, date: &str, tokens: i64) -> UsageRow {
    UsageRow::new(user_id, username, day(date), tokens)
}

/// Options for tests: a short busy timeout and quick retries, so lock-outs show up fast.
pub fn fast_options() -> StoreOptions {
    StoreOptions {
        busy_timeout: Duration::from_millis(20),
        retry_min: Duration::from_millis(5),
        retry_max: Duration::from_millis(40),
        ..StoreOptions::default()
    }
}

pub fn raw_count(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM user_analytics", [], |r| r.get(0))
        .unwrap()
}

pub fn check_rollups(path: &Path) {
    let conn = Connection::open(path).unwrap();
    Expected::from_raw(&conn).assert_rollups_match(&conn);
}

/// Polls `cond` every few milliseconds for up to 10 s.
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Seven answers by three users over four days; one username changes, one has a comma and quotes.
pub const SAMPLE: [(i64, &str, &str, i64); 7] = [
    (1, "alice", "2025-03-01", 100),
    (2, "bob", "2025-03-01", 40),
    (1, "alice", "2025-03-01", 60),
    (1, "alice_new", "2025-03-02", 10),
    (3, "carol, \"c\"", "2025-03-02", 500),
    (2, "bob", "2025-03-31", 5),
    (2, "bob", "2025-04-01", 7),
];

/// A store in `dir/usage.db` holding [`SAMPLE`].
pub async fn sample_store(dir: &Path) -> UsageStore {
    let store = UsageStore::open(&dir.join("usage.db")).unwrap();
    for (u, n, d, t) in SAMPLE {
        store.record_usage(row(u, n, d, t)).await.unwrap();
    }
    store
}
