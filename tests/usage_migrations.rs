//! Opening the usage store: schema from empty, upgrade from version 1, adoption of the Python
//! bot's file, and files that cannot be used.

#[path = "support/usage_db.rs"]
mod usage_db;

use std::time::Duration;

use rusqlite::Connection;
use subgpt::store::usage::migrate::{LATEST_VERSION, MIGRATIONS};
use subgpt::store::usage::{DayTotals, StoreError, UsageStore};
use usage_db::{
    Expected, check_rollups, create_python_db, day, insert_raw, raw_count, raw_snapshot, row,
    sample_store, user_version,
};

fn index_count(conn: &Connection) -> i64 {
    conn.query_row(
        "SELECT COUNT(*) FROM pragma_index_list('user_analytics')",
        [],
        |r| r.get(0),
    )
    .unwrap()
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
    assert_eq!(LATEST_VERSION, 3);
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
            "created_at",
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "reasoning_tokens",
            "model",
            "cost_micro_usd"
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
    assert_eq!(index_count(&conn), 3);
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
    assert_eq!(index_count(&conn), 3);
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
                tokens: 30,
                cost_micro_usd: None
            },
            DayTotals {
                date: day("2025-05-03"),
                requests: 1,
                users: 1,
                tokens: 30,
                cost_micro_usd: None
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

fn pragma(path: &std::path::Path, name: &str) -> i64 {
    Connection::open(path)
        .unwrap()
        .pragma_query_value(None, name, |r| r.get(0))
        .unwrap()
}

/// A new file gets small pages (a commit writes each changed page whole, and a row changes a
/// handful of scattered ones); an adopted file keeps its own.
#[tokio::test]
async fn new_files_get_small_pages_and_adopted_files_keep_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.db");
    let store = UsageStore::open(&fresh).unwrap();
    store
        .record_usage(row(1, "one", "2025-01-01", 3))
        .await
        .unwrap();
    store.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(pragma(&fresh, "page_size"), 1024);

    let adopted = dir.path().join("adopted.db");
    create_python_db(&adopted, &[(10, Some("ten"), "2024-12-30", 300)]);
    let python_page_size = pragma(&adopted, "page_size");
    let store = UsageStore::open(&adopted).unwrap();
    store
        .record_usage(row(11, "eleven", "2025-01-01", 3))
        .await
        .unwrap();
    store.close(Duration::from_secs(5)).await.unwrap();
    assert_eq!(pragma(&adopted, "page_size"), python_page_size);
    assert_eq!(raw_count(&adopted), 2);
}
