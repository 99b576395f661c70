//! Write failures must not lose rows: lock the database from a second connection (works as
//! root, unlike chmod), record meanwhile, release, and check every row arrives; `close` flushes.

#[path = "support/usage_db.rs"]
mod usage_db;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use subgpt::store::usage::{StoreError, UsageStore};
use usage_db::{check_rollups, day, fast_options, raw_count, row, wait_for};

/// A second connection holding the write lock makes every write fail with SQLITE_BUSY
/// (works as root, unlike chmod).
fn lock_database(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    conn
}

/// A store (quick retries) whose database is locked, with `n` rows recorded in the background.
fn locked_store_with_rows(n: i64) -> (tempfile::TempDir, PathBuf, UsageStore, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usage.db");
    let store = UsageStore::open_with(&path, fast_options()).unwrap();
    let lock = lock_database(&path);
    for i in 0..n {
        store.record_in_background(row(i, "bg", "2025-08-01", 2));
    }
    (dir, path, store, lock)
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
    let (_dir, path, store, lock) = locked_store_with_rows(25);
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
    let (_dir, _path, store, _lock) = locked_store_with_rows(5);
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
