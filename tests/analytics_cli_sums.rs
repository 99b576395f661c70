//! `subgpt analytics` as an operator runs it: the real binary against real SQLite files, every
//! mode's JSON checked against sums computed independently from the raw rows, for a database
//! the store wrote and one the Python bot left, with `--days`, beside a live store, and after
//! the roll-ups drift and `rebuild` repairs them. The other formats: `analytics_cli_formats.rs`.

#[path = "support/usage_db.rs"]
mod usage_db;
#[path = "support/viewer.rs"]
mod viewer;

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use serde_json::Value;
use subgpt::store::usage::{UsageRow, UsageStore};
use usage_db::{Expected, user_version};
use viewer::{ago, analytics, expected, json, ok_stdout, python_db, store_db, table, today, usd};

fn check_users_json(users: &Value, e: &Expected) {
    let want: Vec<Value> = e
        .users_by_tokens()
        .into_iter()
        .map(|(id, u)| {
            serde_json::json!({"user_id": id, "username": u.username, "requests": u.requests, "tokens": u.tokens,
                               "cost_usd": usd(e.user_cost[&id]), "first_date": u.first, "last_date": u.last})
        })
        .collect();
    assert_eq!(users, &Value::Array(want));
}

fn check_daily_json(daily: &Value, e: &Expected) {
    let want: Vec<Value> = e
        .days
        .iter()
        .map(|(d, (requests, users, tokens))| {
            serde_json::json!({"date": d, "requests": requests, "users": users, "tokens": tokens,
                               "cost_usd": usd(e.day_cost[d])})
        })
        .collect();
    assert_eq!(daily, &Value::Array(want));
}

/// Every mode in JSON against the independent sums; used for both kinds of database.
fn check_all_modes_json(dir: &Path, db: &Path, schema_version: i64, source: &str) {
    let e = expected(db);
    check_users_json(&json(dir, db, &["users"]), &e);
    check_daily_json(&json(dir, db, &["daily"]), &e);

    let all = json(dir, db, &[]);
    check_users_json(&all["users"], &e);
    check_daily_json(&all["daily"], &e);
    let info = &all["info"];
    assert_eq!(info, &json(dir, db, &["info"]));
    assert_eq!(info["rows"], e.rows);
    assert_eq!(info["users"], e.users.len() as i64);
    assert_eq!(info["tokens"], e.tokens);
    assert_eq!(info["cost_usd"], usd(e.cost));
    assert_eq!(info["first_date"], *e.days.keys().next().unwrap());
    assert_eq!(info["last_date"], *e.days.keys().last().unwrap());
    assert_eq!(info["schema_version"], schema_version);
    assert_eq!(info["source"], source);
    assert_eq!(info["size_bytes"], std::fs::metadata(db).unwrap().len());
    assert_eq!(info["path"], db.to_str().unwrap());

    for (&id, u) in &e.users {
        let got = json(dir, db, &["user", &id.to_string()]);
        assert_eq!(
            (&got["user_id"], &got["requests"], &got["tokens"]),
            (&id.into(), &u.requests.into(), &u.tokens.into())
        );
        assert_eq!(got["username"], serde_json::json!(u.username));
        assert_eq!(got["cost_usd"], usd(e.user_cost[&id]));
        assert_eq!(
            (&got["first_date"], &got["last_date"]),
            (&u.first.clone().into(), &u.last.clone().into())
        );
        let want: Vec<Value> = e
            .user_days
            .iter()
            .filter(|((uid, _), _)| *uid == id)
            .map(|((u, d), (r, t))| {
                let cost = usd(e.user_day_cost[&(*u, d.clone())]);
                serde_json::json!({"date": d, "requests": r, "tokens": t, "cost_usd": cost})
            })
            .collect();
        assert_eq!(got["days"], Value::Array(want));
    }

    for d in e.days.keys() {
        let got = json(dir, db, &["date", d]);
        assert_eq!(got["date"], *d);
        let mut want: Vec<(i64, i64, i64, Value)> = e
            .user_days
            .iter()
            .filter(|((_, day), _)| day == d)
            .map(|((u, day), (r, t))| (*u, *r, *t, usd(e.user_day_cost[&(*u, day.clone())])))
            .collect();
        want.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        let got: Vec<(i64, i64, i64, Value)> = got["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                (
                    u["user_id"].as_i64().unwrap(),
                    u["requests"].as_i64().unwrap(),
                    u["tokens"].as_i64().unwrap(),
                    u["cost_usd"].clone(),
                )
            })
            .collect();
        assert_eq!(got, want, "date {d}");
    }
}

#[tokio::test]
async fn json_of_every_mode_equals_sql_sums() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_db(dir.path()).await;
    check_all_modes_json(dir.path(), &db, 3, "rollups");
}

#[test]
fn python_database_is_read_from_raw_rows_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = python_db(dir.path());
    check_all_modes_json(dir.path(), &db, 0, "raw rows");
    let conn = Connection::open(&db).unwrap();
    assert_eq!(user_version(&conn), 0, "the viewer never migrates");
    let tables: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name LIKE 'usage_%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
}

#[tokio::test]
async fn days_limits_daily_and_users_to_the_last_n_days() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_db(dir.path()).await;
    let e = expected(&db);
    let daily = json(dir.path(), &db, &["daily", "--days", "2"]);
    let dates: Vec<&str> = daily
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["date"].as_str().unwrap())
        .collect();
    assert_eq!(dates, [ago(1), ago(0)]);
    let users = json(dir.path(), &db, &["users", "--days", "4"]);
    let alice = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user_id"] == 1)
        .unwrap();
    let recent: i64 = e
        .user_days
        .iter()
        .filter(|((u, d), _)| *u == 1 && *d >= ago(3))
        .map(|(_, (_, t))| t)
        .sum();
    assert_eq!(alice["tokens"], recent);
    assert_eq!(alice["first_date"], ago(3));
}

#[tokio::test]
async fn reads_beside_a_live_store_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.db");
    let store = UsageStore::open(&path).unwrap();
    let row = UsageRow::new(42, "live", today(), 4242);
    store.record_usage(row).await.unwrap();
    assert!(
        dir.path().join("live.db-wal").exists(),
        "the row sits in the WAL, not yet checkpointed"
    );
    let got = json(dir.path(), &path, &["user", "42"]);
    assert_eq!(got["tokens"], 4242);
    store.close(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn info_notices_drifted_rollups_and_rebuild_repairs_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_db(dir.path()).await;
    assert_eq!(json(dir.path(), &db, &["info"])["rollups_match"], true);

    // Writes the triggers cannot see: one dropped before an insert, a roll-up edited by hand.
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "DROP TRIGGER usage_rollups_insert;
         INSERT INTO user_analytics (user_id, username, request_date, tokens_used) VALUES (9, 'ghost', '2025-01-01', 77);
         UPDATE usage_user SET tokens = tokens + 5 WHERE user_id = 1;",
    )
    .unwrap();
    drop(conn);
    let info = json(dir.path(), &db, &["info"]);
    assert_eq!(info["rollups_match"], false, "{info}");
    let problems = info["rollup_problems"].to_string();
    assert!(
        problems.contains("trigger usage_rollups_insert is missing"),
        "{problems}"
    );
    assert!(problems.contains("user_analytics has"), "{problems}");
    assert!(problems.contains("usage_user has"), "{problems}");
    let text = table(dir.path(), &db, &["info"]);
    assert!(text.contains("DO NOT match the raw rows"), "{text}");
    assert!(text.contains("subgpt analytics rebuild"), "{text}");

    // Put the trigger back as a newer binary's migration would, then rebuild.
    let conn = Connection::open(&db).unwrap();
    let sql = include_str!("../migrations/0003_cost_and_triggers.sql");
    let start = sql.find("CREATE TRIGGER usage_rollups_insert").unwrap();
    let end = start + sql[start..].find("END;").unwrap() + 4;
    conn.execute_batch(&sql[start..end]).unwrap();
    drop(conn);
    let out = ok_stdout(&analytics(
        dir.path(),
        &["rebuild", "--db", db.to_str().unwrap()],
    ));
    assert!(out.contains("they match the raw rows"), "{out}");
    assert_eq!(json(dir.path(), &db, &["info"])["rollups_match"], true);
    usage_db::check_rollups(&db);
    check_all_modes_json(dir.path(), &db, 3, "rollups");
}

#[test]
fn rebuild_refuses_a_database_it_would_have_to_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let db = python_db(dir.path());
    let out = analytics(dir.path(), &["rebuild", "--db", db.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("schema version 0") && err.contains("subgpt serve"),
        "{err}"
    );
    assert_eq!(
        user_version(&Connection::open(&db).unwrap()),
        0,
        "left untouched"
    );
}
