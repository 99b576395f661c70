//! The usage store against real SQLite files: migrations, adoption, every query, group commit,
//! and write failures that must not lose rows.

#[path = "support/usage_db.rs"]
mod usage_db;

use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;
use rusqlite::Connection;
use subgpt::store::usage::migrate::{LATEST_VERSION, MIGRATIONS};
use subgpt::store::usage::{
    DayTotals, StoreError, StoreOptions, UsageRow, UsageStore, UserDayUsage,
};
use usage_db::{Expected, create_python_db, insert_raw, raw_snapshot, user_version};

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn row(user_id: i64, username: &str, date: &str, tokens: i64) -> UsageRow {
    UsageRow {
        user_id,
        username: username.to_owned(),
        request_date: day(date),
        tokens_used: tokens,
    }
}

/// Options for tests: a short busy timeout and quick retries, so lock-outs show up fast.
fn fast_options() -> StoreOptions {
    StoreOptions {
        busy_timeout: Duration::from_millis(20),
        retry_min: Duration::from_millis(5),
        retry_max: Duration::from_millis(40),
        ..StoreOptions::default()
    }
}

fn raw_count(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM user_analytics", [], |r| r.get(0))
        .unwrap()
}

fn check_rollups(path: &Path) {
    let conn = Connection::open(path).unwrap();
    Expected::from_raw(&conn).assert_rollups_match(&conn);
}

/// Polls `cond` every few milliseconds for up to 10 s.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

const SAMPLE: [(i64, &str, &str, i64); 7] = [
    (1, "alice", "2025-03-01", 100),
    (2, "bob", "2025-03-01", 40),
    (1, "alice", "2025-03-01", 60),
    (1, "alice_new", "2025-03-02", 10),
    (3, "carol, \"c\"", "2025-03-02", 500),
    (2, "bob", "2025-03-31", 5),
    (2, "bob", "2025-04-01", 7),
];

async fn sample_store(dir: &Path) -> UsageStore {
    let store = UsageStore::open(&dir.join("usage.db")).unwrap();
    for (u, n, d, t) in SAMPLE {
        store.record_usage(row(u, n, d, t)).await.unwrap();
    }
    store
}

#[tokio::test]
async fn open_creates_parent_directory_and_latest_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/usage.db");
    let store = UsageStore::open(&path).unwrap();
    store.ping().await.unwrap();
    store.close(Duration::from_secs(5)).await.unwrap();

    let conn = Connection::open(&path).unwrap();
    assert_eq!(user_version(&conn), LATEST_VERSION);
    assert_eq!(LATEST_VERSION, 2);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx_%' ORDER BY 1",
        )
        .unwrap();
    let indexes: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        indexes,
        [
            "idx_usage_user_daily_date",
            "idx_user_analytics_request_date",
            "idx_user_analytics_user_date",
            "idx_user_analytics_user_id"
        ]
    );
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('user_analytics')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        columns,
        [
            "id",
            "user_id",
            "username",
            "request_date",
            "tokens_used",
            "created_at"
        ]
    );
}

#[tokio::test]
async fn reopening_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path()).await;
    store.close(Duration::from_secs(5)).await.unwrap();
    let again = UsageStore::open(&dir.path().join("usage.db")).unwrap();
    assert_eq!(again.user_total_usage(1).await.unwrap(), 170);
    again.close(Duration::from_secs(5)).await.unwrap();
    check_rollups(&dir.path().join("usage.db"));
}

#[tokio::test]
async fn adopts_python_database_without_changing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user_analytics.db");
    create_python_db(
        &path,
        &[
            (10, Some("old_name"), "2024-12-30", 300),
            (10, None, "2024-12-31", 20),
            (11, None, "2024-12-31", 7),
            (10, Some("new_name"), "2025-01-01", 1),
            (12, Some("x,y"), "2025-01-01", 99),
        ],
    );
    let before = {
        let conn = Connection::open(&path).unwrap();
        assert_eq!(user_version(&conn), 0);
        raw_snapshot(&conn)
    };

    let store = UsageStore::open(&path).unwrap();
    assert_eq!(store.user_total_usage(10).await.unwrap(), 321);
    assert_eq!(
        store.user_daily_usage(11, day("2024-12-31")).await.unwrap(),
        7
    );
    let stats = store.user_usage_stats(10).await.unwrap();
    assert_eq!(stats.username.as_deref(), Some("new_name"));
    store
        .record_usage(row(11, "eleven", "2025-01-01", 3))
        .await
        .unwrap();
    store.close(Duration::from_secs(5)).await.unwrap();

    let conn = Connection::open(&path).unwrap();
    assert_eq!(user_version(&conn), LATEST_VERSION);
    let after = raw_snapshot(&conn);
    assert_eq!(
        after[..before.len()],
        before[..],
        "adoption must not touch existing rows"
    );
    assert_eq!(after.len(), before.len() + 1);
    Expected::from_raw(&conn).assert_rollups_match(&conn);
    // The Python indexes already cover the columns: no duplicates were added.
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM pragma_index_list('user_analytics')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 3);
}

#[tokio::test]
async fn adopts_python_database_without_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bare.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            usage_db::PYTHON_SCHEMA
                .split("CREATE INDEX")
                .next()
                .unwrap(),
        )
        .unwrap();
        insert_raw(&conn, &[(5, Some("e"), "2025-02-02", 8)]);
    }
    let store = UsageStore::open(&path).unwrap();
    assert_eq!(store.user_total_usage(5).await.unwrap(), 8);
    store.close(Duration::from_secs(5)).await.unwrap();
    let conn = Connection::open(&path).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM pragma_index_list('user_analytics')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 3);
    Expected::from_raw(&conn).assert_rollups_match(&conn);
}

#[tokio::test]
async fn refuses_to_adopt_a_table_missing_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE user_analytics (id INTEGER PRIMARY KEY, user_id INTEGER)")
        .unwrap();
    assert!(matches!(
        UsageStore::open(&path),
        Err(StoreError::Incompatible(_))
    ));
}

#[tokio::test]
async fn upgrades_version_1_database_and_backfills_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        let mut conn = Connection::open(&path).unwrap();
        MIGRATIONS.to_version(&mut conn, 1).unwrap();
        assert_eq!(user_version(&conn), 1);
        insert_raw(
            &conn,
            &[
                (1, Some("a"), "2025-05-01", 10),
                (2, Some("b"), "2025-05-01", 20),
                (1, Some("a2"), "2025-05-03", 30),
            ],
        );
    }
    let store = UsageStore::open(&path).unwrap();
    let days = store
        .daily_totals(day("2025-05-01"), day("2025-05-31"))
        .await
        .unwrap();
    assert_eq!(
        days,
        [
            DayTotals {
                date: day("2025-05-01"),
                requests: 2,
                users: 2,
                tokens: 30
            },
            DayTotals {
                date: day("2025-05-03"),
                requests: 1,
                users: 1,
                tokens: 30
            },
        ]
    );
    store.close(Duration::from_secs(5)).await.unwrap();
    let conn = Connection::open(&path).unwrap();
    assert_eq!(user_version(&conn), LATEST_VERSION);
    Expected::from_raw(&conn).assert_rollups_match(&conn);
}

#[tokio::test]
async fn open_rejects_a_file_that_is_not_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    std::fs::write(
        &path,
        b"these are not the pages you are looking for, not at all, no".repeat(40),
    )
    .unwrap();
    assert!(matches!(
        UsageStore::open(&path),
        Err(StoreError::NotSqlite(_))
    ));
}

#[tokio::test]
async fn user_daily_usage_counts_only_that_day() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path()).await;
    assert_eq!(
        store.user_daily_usage(1, day("2025-03-01")).await.unwrap(),
        160
    );
    assert_eq!(
        store.user_daily_usage(1, day("2025-03-02")).await.unwrap(),
        10
    );
    assert_eq!(
        store.user_daily_usage(1, day("2025-03-03")).await.unwrap(),
        0
    );
    assert_eq!(
        store.user_daily_usage(99, day("2025-03-01")).await.unwrap(),
        0
    );
}

#[tokio::test]
async fn user_total_and_between() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path()).await;
    assert_eq!(store.user_total_usage(1).await.unwrap(), 170);
    assert_eq!(store.user_total_usage(2).await.unwrap(), 52);
    assert_eq!(store.user_total_usage(99).await.unwrap(), 0);
    assert_eq!(
        store
            .user_usage_between(2, day("2025-03-01"), day("2025-03-31"))
            .await
            .unwrap(),
        45
    );
    assert_eq!(
        store
            .user_usage_between(2, day("2025-04-01"), day("2025-04-30"))
            .await
            .unwrap(),
        7
    );
    assert_eq!(
        store
            .user_usage_between(2, day("2025-05-01"), day("2025-05-31"))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn all_users_usage_by_date_lists_each_user_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path()).await;
    let users = store
        .all_users_usage_by_date(day("2025-03-01"))
        .await
        .unwrap();
    assert_eq!(
        users,
        [
            UserDayUsage {
                user_id: 1,
                username: Some("alice_new".into()),
                requests: 2,
                tokens: 160
            },
            UserDayUsage {
                user_id: 2,
                username: Some("bob".into()),
                requests: 1,
                tokens: 40
            },
        ]
    );
    assert!(
        store
            .all_users_usage_by_date(day("2020-01-01"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn user_usage_stats_has_totals_and_days() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path()).await;
    let s = store.user_usage_stats(2).await.unwrap();
    assert_eq!((s.requests, s.tokens), (3, 52));
    assert_eq!(s.first_date, Some(day("2025-03-01")));
    assert_eq!(s.last_date, Some(day("2025-04-01")));
    let days: Vec<(NaiveDate, i64, i64)> = s
        .days
        .iter()
        .map(|d| (d.date, d.requests, d.tokens))
        .collect();
    assert_eq!(
        days,
        [
            (day("2025-03-01"), 1, 40),
            (day("2025-03-31"), 1, 5),
            (day("2025-04-01"), 1, 7)
        ]
    );
    let none = store.user_usage_stats(99).await.unwrap();
    assert_eq!(
        (none.requests, none.tokens, none.first_date, none.days.len()),
        (0, 0, None, 0)
    );
}

#[tokio::test]
async fn daily_totals_counts_distinct_users() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path()).await;
    let days = store
        .daily_totals(day("2025-03-01"), day("2025-03-02"))
        .await
        .unwrap();
    assert_eq!(
        days,
        [
            DayTotals {
                date: day("2025-03-01"),
                requests: 3,
                users: 2,
                tokens: 200
            },
            DayTotals {
                date: day("2025-03-02"),
                requests: 2,
                users: 2,
                tokens: 510
            },
        ]
    );
}

#[tokio::test]
async fn top_users_ranks_by_tokens_in_range() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path()).await;
    let top = store
        .top_users(day("2025-03-01"), day("2025-03-31"), 2)
        .await
        .unwrap();
    let got: Vec<(i64, i64, i64)> = top
        .iter()
        .map(|u| (u.user_id, u.requests, u.tokens))
        .collect();
    assert_eq!(got, [(3, 1, 500), (1, 3, 170)]);
    assert_eq!(top[0].username.as_deref(), Some("carol, \"c\""));
    let april = store
        .top_users(day("2025-04-01"), day("2025-04-30"), 10)
        .await
        .unwrap();
    assert_eq!(april.len(), 1);
    assert_eq!(
        (april[0].user_id, april[0].first_date, april[0].last_date),
        (2, day("2025-04-01"), day("2025-04-01"))
    );
}

#[tokio::test]
async fn summary_and_rollups_match_raw_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path()).await;
    let s = store.summary().await.unwrap();
    assert_eq!((s.rows, s.users, s.tokens), (7, 3, 722));
    assert_eq!(
        (s.first_date, s.last_date),
        (Some(day("2025-03-01")), Some(day("2025-04-01")))
    );
    store.close(Duration::from_secs(5)).await.unwrap();
    check_rollups(&dir.path().join("usage.db"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_many_concurrent_callers_all_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let store = UsageStore::open(&path).unwrap();
    let mut tasks = Vec::new();
    for caller in 0..64i64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50i64 {
                let date = format!("2025-06-{:02}", 1 + (caller + i) % 5);
                store
                    .record_usage(row(caller % 20, &format!("u{caller}"), &date, 1 + i))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.pending(), 0);
    assert_eq!(raw_count(&path), 64 * 50);
    let total: i64 = store
        .daily_totals(day("2025-06-01"), day("2025-06-30"))
        .await
        .unwrap()
        .iter()
        .map(|d| d.tokens)
        .sum();
    assert_eq!(total, 64 * (1..=50).sum::<i64>());
    store.close(Duration::from_secs(5)).await.unwrap();
    check_rollups(&path);
}

/// A second connection holding the write lock makes every write fail with SQLITE_BUSY
/// (works as root, unlike chmod).
fn lock_database(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_while_locked_appear_after_the_lock_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let store = UsageStore::open_with(&path, fast_options()).unwrap();
    store
        .record_usage(row(1, "before", "2025-07-01", 1))
        .await
        .unwrap();

    let lock = lock_database(&path);
    let mut waiting = Vec::new();
    for i in 0..20 {
        let caller = store.clone();
        waiting.push(tokio::spawn(async move {
            caller
                .record_usage(row(2 + i % 3, "during", "2025-07-02", 10))
                .await
        }));
        store.record_in_background(row(9, "background", "2025-07-02", 1));
    }
    wait_for("several failed writes", || store.failed_writes() >= 3).await;
    assert_eq!(store.pending(), 40);
    assert!(
        waiting.iter().all(|t| !t.is_finished()),
        "no caller may hear Ok before its row is committed"
    );
    assert_eq!(raw_count(&path), 1);

    lock.execute_batch("COMMIT").unwrap();
    for t in waiting {
        t.await.unwrap().unwrap();
    }
    wait_for("background rows", || store.pending() == 0).await;
    assert_eq!(raw_count(&path), 41);
    store.close(Duration::from_secs(5)).await.unwrap();
    check_rollups(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_flushes_rows_pending_during_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let store = UsageStore::open_with(&path, fast_options()).unwrap();
    let lock = lock_database(&path);
    for i in 0..25 {
        store.record_in_background(row(i, "bg", "2025-08-01", 2));
    }
    wait_for("a failed write", || store.failed_writes() >= 1).await;
    let closing = {
        let store = store.clone();
        tokio::spawn(async move { store.close(Duration::from_secs(10)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !closing.is_finished(),
        "close must wait for the pending rows"
    );
    lock.execute_batch("ROLLBACK").unwrap();
    closing.await.unwrap().unwrap();
    assert_eq!(store.pending(), 0);
    assert_eq!(raw_count(&path), 25);
    assert!(matches!(
        store.record_usage(row(1, "late", "2025-08-01", 1)).await,
        Err(StoreError::Closed)
    ));
    check_rollups(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_gives_up_after_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let store = UsageStore::open_with(&path, fast_options()).unwrap();
    let _lock = lock_database(&path);
    for i in 0..5 {
        store.record_in_background(row(i, "bg", "2025-08-01", 2));
    }
    let err = store.close(Duration::from_millis(200)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::CloseTimeout { pending: 5 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn record_in_background_returns_at_once_and_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let store = UsageStore::open(&path).unwrap();
    for i in 0..100 {
        store.record_in_background(row(i % 7, "bg", "2025-09-09", i));
    }
    wait_for("background rows", || store.pending() == 0).await;
    assert_eq!(
        store.user_daily_usage(0, day("2025-09-09")).await.unwrap(),
        (0..100).filter(|i| i % 7 == 0).sum::<i64>()
    );
    store.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(raw_count(&path), 100);
}
