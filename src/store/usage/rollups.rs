//! Whether the roll-ups equal the raw rows, and recomputing them when they do not.
//!
//! The triggers of migration 0003 keep them equal for every writer; what can still break them
//! is someone dropping a trigger, editing a roll-up table by hand, or a `REPLACE` that deletes
//! a row without firing delete triggers. `check` notices that, `rebuild` repairs it.

use rusqlite::{Connection, TransactionBehavior};
use serde::Serialize;

use super::StoreError;
use super::migrate::RECOMPUTE_ROLLUPS;

/// The triggers that keep the roll-ups (migration 0003).
pub const TRIGGERS: [&str; 3] = [
    "usage_rollups_insert",
    "usage_rollups_delete",
    "usage_rollups_update",
];

/// The outcome of [`check`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollupCheck {
    /// True when every comparison agreed and every trigger is in place.
    pub matches: bool,
    /// What differs, one line each (empty when `matches`).
    pub problems: Vec<String>,
}

/// requests, tokens, cost sum, rows with a cost.
type Totals = (i64, i64, i64, i64);

fn totals(conn: &Connection, sql: &str) -> Result<Totals, StoreError> {
    Ok(conn.prepare_cached(sql)?.query_row([], |r| {
        Ok((
            r.get::<_, Option<i64>>(0)?.unwrap_or(0),
            r.get::<_, Option<i64>>(1)?.unwrap_or(0),
            r.get::<_, Option<i64>>(2)?.unwrap_or(0),
            r.get::<_, Option<i64>>(3)?.unwrap_or(0),
        ))
    })?)
}

fn count(conn: &Connection, sql: &str) -> Result<i64, StoreError> {
    Ok(conn.prepare_cached(sql)?.query_row([], |r| r.get(0))?)
}

/// How much [`check`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// For `info`: the triggers, the raw row count (an index count, ~50 ms per million rows)
    /// against the roll-ups' requests, and the small roll-ups (days, users) agreeing with each
    /// other on tokens, cost and user-days. Catches a missing trigger, rows that bypassed one,
    /// and a roll-up edited by hand.
    Quick,
    /// Also sums every raw row and the per-user-day roll-up (a full scan, ~0.4 s per million
    /// rows): catches tokens or costs changed behind a dropped trigger too.
    Full,
}

/// Whether the roll-ups equal the raw rows, to `depth`.
pub fn check(conn: &Connection, depth: Depth) -> Result<RollupCheck, StoreError> {
    let mut problems = Vec::new();
    for name in TRIGGERS {
        let found = count(
            conn,
            &format!(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name = '{name}'"
            ),
        )?;
        if found == 0 {
            problems.push(format!("trigger {name} is missing"));
        }
    }
    // Two sets of totals that must be equal; the problem names both.
    let mut compare = |left: (&str, Totals), right: (&str, Totals)| {
        if left.1 != right.1 {
            let describe = |(name, t): (&str, Totals)| {
                format!(
                    "{name} has {} rows, {} tokens, {} µUSD over {} costed rows",
                    t.0, t.1, t.2, t.3
                )
            };
            problems.push(format!("{}; {}", describe(left), describe(right)));
        }
    };
    let rolled = |table: &str| {
        totals(
            conn,
            &format!(
                "SELECT SUM(requests), SUM(tokens), SUM(cost_micro_usd), SUM(costed) FROM {table}"
            ),
        )
    };
    let daily = rolled("usage_daily")?;
    compare(
        ("usage_user", rolled("usage_user")?),
        ("usage_daily", daily),
    );
    let raw = match depth {
        Depth::Full => Some(totals(
            conn,
            "SELECT COUNT(*), SUM(tokens_used), SUM(cost_micro_usd), COUNT(cost_micro_usd) FROM user_analytics",
        )?),
        Depth::Quick => None,
    };
    if let Some(raw) = raw {
        compare(("usage_daily", daily), ("user_analytics", raw));
        let user_days = rolled("usage_user_daily")?;
        compare(("usage_user_daily", user_days), ("user_analytics", raw));
    }
    let raw_rows = count(conn, "SELECT COUNT(*) FROM user_analytics")?;
    if raw_rows != daily.0 {
        problems.push(format!(
            "user_analytics has {raw_rows} rows; the roll-ups count {} requests",
            daily.0
        ));
    }
    let day_users = count(conn, "SELECT COALESCE(SUM(users), 0) FROM usage_daily")?;
    let user_days = count(conn, "SELECT COUNT(*) FROM usage_user_daily")?;
    if day_users != user_days {
        problems.push(format!(
            "usage_daily counts {day_users} user-days; usage_user_daily has {user_days}"
        ));
    }
    if depth == Depth::Full {
        let listed = count(conn, "SELECT COUNT(*) FROM usage_user")?;
        let distinct = count(
            conn,
            "SELECT COUNT(*) FROM (SELECT DISTINCT user_id FROM usage_user_daily)",
        )?;
        if listed != distinct {
            problems.push(format!(
                "usage_user has {listed} users; usage_user_daily has {distinct}"
            ));
        }
    }
    Ok(RollupCheck {
        matches: problems.is_empty(),
        problems,
    })
}

/// Recomputes every roll-up from the raw rows in one transaction (`subgpt analytics rebuild`).
pub fn rebuild(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(RECOMPUTE_ROLLUPS)?;
    tx.commit()?;
    Ok(())
}
