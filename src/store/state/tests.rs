//! The state store against real SQLite files.

use super::*;
use rusqlite::Connection;

fn row(update_id: i64, user_id: i64) -> InboxRow {
    InboxRow {
        update_id,
        user_id,
        body: format!("{{\"update_id\":{update_id}}}").into_bytes(),
        accepted_at: now_ms(),
        attempts: 0,
        response_id: None,
    }
}

/// A row whose body holds `text`, to look for in the files.
fn row_saying(update_id: i64, user_id: i64, text: &str) -> InboxRow {
    InboxRow {
        body: format!("{{\"text\":\"{text}\"}}").into_bytes(),
        ..row(update_id, user_id)
    }
}

/// Whether the file at `path` holds `text` (false when there is none).
fn file_holds(path: &std::path::Path, text: &str) -> bool {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes.windows(text.len()).any(|w| w == text.as_bytes())
}

/// The update ids in the inbox, in replay order.
async fn pending_ids(store: &StateStore) -> Vec<i64> {
    let rows = store.pending().await.unwrap();
    rows.iter().map(|r| r.update_id).collect()
}

#[tokio::test]
async fn inbox_dedups_orders_counts_and_forgets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/state.db");
    let store = StateStore::open(&path, Duration::from_secs(1), Synchronous::Normal).unwrap();
    assert!(store.accept(row(5, 2)).await.unwrap());
    assert!(store.accept(row(3, 2)).await.unwrap());
    assert!(store.accept(row(4, 1)).await.unwrap());
    assert!(!store.accept(row(5, 2)).await.unwrap(), "a re-delivery");
    assert_eq!(store.begin(3).await.unwrap(), 1);
    assert_eq!(store.begin(3).await.unwrap(), 2);
    store.set_response(3, "resp_1").await.unwrap();
    let pending = store.pending().await.unwrap();
    let order: Vec<i64> = pending.iter().map(|r| r.update_id).collect();
    assert_eq!(order, vec![4, 3, 5]);
    assert_eq!(pending[1].attempts, 2);
    assert_eq!(pending[1].response_id.as_deref(), Some("resp_1"));
    store.finish(3).await.unwrap();
    assert_eq!(store.begin(3).await.unwrap(), 0);
    assert!(
        !store.accept(row(3, 2)).await.unwrap(),
        "still seen after it is done"
    );
    drop(store);

    // Reopened: the rest is still there.
    let store = StateStore::open(&path, Duration::from_secs(1), Synchronous::Normal).unwrap();
    assert_eq!(pending_ids(&store).await, vec![4, 5]);
}

#[tokio::test]
async fn unsettled_rows_come_due_in_order_are_put_off_and_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    let now = SystemTime::now();
    let item = |id: &str| Unsettled {
        response_id: id.into(),
        usage_row: format!("{{\"id\":\"{id}\"}}"),
        looks: 0,
    };
    store
        .unsettle(item("resp_b"), now - Duration::from_secs(1))
        .await
        .unwrap();
    store
        .unsettle(item("resp_a"), now - Duration::from_secs(2))
        .await
        .unwrap();
    store
        .unsettle(item("resp_later"), now + Duration::from_secs(3600))
        .await
        .unwrap();
    // The longest due first; one not due yet is not handed out; the limit holds.
    assert_eq!(
        store.due(10).await.unwrap(),
        vec![item("resp_a"), item("resp_b")]
    );
    assert_eq!(store.due(1).await.unwrap(), vec![item("resp_a")]);
    // Put off: counted, and not due until its new time.
    store
        .later("resp_a", now + Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(store.due(10).await.unwrap(), vec![item("resp_b")]);
    store
        .later("resp_b", now - Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(store.due(10).await.unwrap()[0].looks, 1);
    store.settled("resp_b").await.unwrap();
    assert!(store.due(10).await.unwrap().is_empty());
    // Kept across a reopen.
    drop(store);
    let store = open_in(dir.path());
    store.later("resp_later", now).await.unwrap();
    let due = store.due(10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].response_id.as_str(), due[0].looks),
        ("resp_later", 1)
    );
}

#[tokio::test]
async fn a_batch_that_reads_first_still_waits_for_a_write_lock_held_elsewhere() {
    // The checkpoint thread's WAL truncation holds the write lock for a moment; a batch that
    // began with a read (a conversation lookup) and then wrote failed at once with "database
    // is locked", without the busy timeout, taking every command in it down with it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = StateStore::open(&path, Duration::from_secs(1), Synchronous::Normal).unwrap();
    store.ping().await.unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    // Held for 1.5 s: this write waits 1 s for it and fails; the read and the write queued
    // behind it meanwhile form the next batch, read first.
    let first = tokio::spawn({
        let store = store.clone();
        async move { store.put("first", Some("1"), None).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let read = tokio::spawn({
        let store = store.clone();
        async move { store.get("first").await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let write = tokio::spawn({
        let store = store.clone();
        async move { store.put("second", Some("2"), None).await }
    });
    tokio::time::sleep(Duration::from_millis(1400)).await;
    other.execute_batch("COMMIT").unwrap();
    // It waited its busy timeout, then failed, and its caller is told why (not "closed").
    let failed = first.await.unwrap().unwrap_err();
    assert!(matches!(failed, StateError::Batch(_)), "{failed:?}");
    assert_eq!(read.await.unwrap().unwrap(), None);
    write
        .await
        .unwrap()
        .expect("waited for the lock like any write");
    assert_eq!(store.get("second").await.unwrap().as_deref(), Some("2"));
}

#[tokio::test]
async fn user_state_expires_and_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    store.put("a", Some("1"), None).await.unwrap();
    store
        .put("b", Some("2"), Some(Duration::from_millis(1)))
        .await
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(store.get("a").await.unwrap().as_deref(), Some("1"));
    assert_eq!(store.get("b").await.unwrap(), None);
    store.put("a", None, None).await.unwrap();
    assert_eq!(store.get("a").await.unwrap(), None);
}

#[tokio::test]
async fn expired_values_are_erased_from_the_file_not_only_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = StateStore::open(&path, Duration::from_secs(1), Synchronous::Normal).unwrap();
    store
        .put(
            "hist",
            Some("words-of-a-chat"),
            Some(Duration::from_millis(1)),
        )
        .await
        .unwrap();
    store.put("conv", Some("conv_1"), None).await.unwrap();
    drop(store);
    std::thread::sleep(Duration::from_millis(5));
    // Reopened (a restart): the sweep runs at the first idle moment, after this first batch.
    let store = StateStore::open(&path, Duration::from_secs(1), Synchronous::Normal).unwrap();
    wait_for_keys(&path, &["conv"], Some(&store)).await;
}

/// Waits (10 s at most) until the file's `user_state` holds `expected` only, read with a
/// connection of its own; `poke`, when given, is sent an empty batch each time round.
async fn wait_for_keys(path: &std::path::Path, expected: &[&str], poke: Option<&StateStore>) {
    let raw = Connection::open(path).unwrap();
    let keys = || -> Vec<String> {
        raw.prepare("SELECT key FROM user_state ORDER BY key")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while keys() != expected {
        assert!(
            std::time::Instant::now() < deadline,
            "still there: {:?}",
            keys()
        );
        if let Some(store) = poke {
            store.ping().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_idle_writer_still_sweeps_expired_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let sweep = Duration::from_millis(200);
    let store =
        StateStore::open_sweeping(&path, Duration::from_secs(1), Synchronous::Normal, sweep)
            .unwrap();
    store
        .put("hist", Some("words-of-a-chat"), Some(sweep))
        .await
        .unwrap();
    store.put("conv", Some("conv_1"), None).await.unwrap();
    // From here on nobody asks the writer anything: only the checkpoint thread's nudge wakes
    // it for its next sweep, after the value has expired.
    wait_for_keys(&path, &["conv"], None).await;
    drop(store);
}

#[tokio::test]
async fn a_kept_copy_follows_the_shared_value_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    // Nobody waits for `keep`, yet what is asked after it sees it.
    store.keep("a", Some("1"), None);
    assert_eq!(store.get("a").await.unwrap().as_deref(), Some("1"));
    store.keep("a", Some("2"), None);
    assert_eq!(store.get("a").await.unwrap().as_deref(), Some("2"));
    // A put after a keep wins; a keep of no value removes the copy.
    store.keep("a", Some("3"), None);
    store.put("a", Some("4"), None).await.unwrap();
    assert_eq!(store.get("a").await.unwrap().as_deref(), Some("4"));
    store.keep("a", None, None);
    assert_eq!(store.get("a").await.unwrap(), None);
    // The same value over an expired copy lives again, for the new time to live.
    store
        .put("b", Some("x"), Some(Duration::from_millis(1)))
        .await
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(store.get("b").await.unwrap(), None);
    store.keep("b", Some("x"), Some(Duration::from_secs(60)));
    assert_eq!(store.get("b").await.unwrap().as_deref(), Some("x"));
}

#[tokio::test]
async fn concurrent_accepts_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.accept(row(i, i % 7)).await.unwrap() })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap());
    }
    assert_eq!(store.pending().await.unwrap().len(), 200);
}

#[tokio::test]
async fn a_new_file_has_small_pages_and_an_older_one_is_rewritten_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let pages = |path: &Path| {
        let conn = Connection::open(path).unwrap();
        let size: i64 = conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        (size, mode)
    };
    let fresh = dir.path().join("fresh.db");
    drop(StateStore::open(&fresh, Duration::from_secs(1), Synchronous::Normal).unwrap());
    assert_eq!(pages(&fresh), (PAGE_SIZE, "wal".to_string()));

    // A file as an earlier subgpt made it: 4 KiB pages, WAL, an update waiting.
    let older = dir.path().join("older.db");
    {
        let mut conn = Connection::open(&older).unwrap();
        conn.pragma_update(None, "page_size", 4096).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        MIGRATIONS.to_latest(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO inbox (update_id, user_id, body, accepted_at) VALUES (7, 1, x'7b7d', 0)",
            [],
        )
        .unwrap();
    }
    assert_eq!(pages(&older).0, 4096);
    let store = StateStore::open(&older, Duration::from_secs(1), Synchronous::Normal).unwrap();
    assert_eq!(
        pending_ids(&store).await,
        vec![7],
        "the waiting update survives the rewrite"
    );
    assert_eq!(pages(&older), (PAGE_SIZE, "wal".to_string()));
}

#[tokio::test]
async fn committed_pages_reach_the_database_file_from_the_checkpoint_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = StateStore::open(&path, Duration::from_secs(1), Synchronous::Normal).unwrap();
    let marker = "lemon-gyroscope-walrus";
    assert!(store.accept(row_saying(1, 1, marker)).await.unwrap());
    // Enough commits for the WAL to pass PASS_AFTER_PAGES (each writes three pages or more),
    // and far fewer pages than the writer's own checkpoint waits for.
    for id in 2..600 {
        assert!(store.accept(row(id, id % 5)).await.unwrap());
    }
    // A commit writes to the WAL only, and the WAL is truncated only once the inbox is empty:
    // only a pass of the checkpoint thread copies the first row's page into the database file.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if file_holds(&path, marker) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the row never reached state.db"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.pending().await.unwrap().len(), 599);
}

#[tokio::test]
async fn the_wal_is_truncated_soon_after_the_inbox_empties_while_the_store_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let wal = dir.path().join("state.db-wal");
    let store = StateStore::open(&path, Duration::from_secs(1), Synchronous::Normal).unwrap();
    let marker = "quince-hovercraft-ibis";
    assert!(store.accept(row_saying(1, 1, marker)).await.unwrap());
    assert_eq!(store.begin(1).await.unwrap(), 1);
    store.finish(1).await.unwrap();
    // secure_delete zeroes the row in the database's pages, but the WAL keeps the frames that
    // held it until it is truncated; the store stays open (its last truncation is at close).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let traces: Vec<_> = ["state.db", "state.db-wal"]
            .iter()
            .filter(|name| file_holds(&dir.path().join(name), marker))
            .collect();
        let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        if traces.is_empty() && wal_len == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "text still in {traces:?}, WAL {wal_len} bytes"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(pending_ids(&store).await.is_empty());
}
