//! The databases from an operator's side (SPEC §2): `backup` copies both while the service
//! runs and a restore has every row; only `serve` migrates, `check` reports the schema version
//! it finds, and a database newer than the binary is refused, naming both versions.

mod support;

use std::time::Duration;

use support::operator::{healthy, run};
use support::*;

/// Every row of `table`, in rowid order, as SQLite values.
fn dump(db: &std::path::Path, table: &str) -> Vec<Vec<rusqlite::types::Value>> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))
        .unwrap();
    let columns = stmt.column_count();
    stmt.query_map([], |r| (0..columns).map(|i| r.get(i)).collect())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn snapshots(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn backup_copies_both_databases_while_serving_and_a_restore_has_every_row() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let state = dir.path().join("state.db").display().to_string();
    let app = Spawn::default()
        .dir(&dir)
        .env("STATE_DB_PATH", &state)
        .start()
        .await;
    for user in 1..=5 {
        app.send_text(user, 100 + user, "count me").await;
    }
    let usage = app.db_path();
    eventually("5 usage rows", Duration::from_secs(20), || {
        usage.exists() && dump(&usage, "user_analytics").len() == 5
    })
    .await;
    // The state database is copied whatever its schema: a table of our own in it.
    let conn = rusqlite::Connection::open(&state).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS backup_probe (id INTEGER PRIMARY KEY, note TEXT);
         INSERT INTO backup_probe (note) VALUES ('a'), ('b'), ('c');",
    )
    .unwrap();
    drop(conn);

    let out = dir.path().join("copies");
    let backup = |keep: Option<&str>| {
        let mut args = vec!["backup", "--out", out.to_str().unwrap()];
        args.extend(keep.map(|k| ["--keep", k]).into_iter().flatten());
        Spawn::default()
            .dir(&dir)
            .env("STATE_DB_PATH", &state)
            .command(&args)
    };
    let (code, text) = run(backup(None)).await;
    assert_eq!(code, 0, "{text}");
    let snapshot = snapshots(&out).pop().expect("a snapshot directory");
    for (name, file) in [("usage", "user_analytics.db"), ("state", "state.db")] {
        let copy = snapshot.join(file);
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line: {text}"));
        let size = std::fs::metadata(&copy).unwrap().len();
        assert!(
            line.contains(&copy.display().to_string()) && line.contains(&format!("{size} bytes")),
            "{line}"
        );
    }

    // Restore: the copies, put where a service would read them, hold every row.
    let restored = tempfile::tempdir().unwrap();
    let usage_copy = restored.path().join("usage.db");
    std::fs::copy(snapshot.join("user_analytics.db"), &usage_copy).unwrap();
    let state_copy = restored.path().join("state.db");
    std::fs::copy(snapshot.join("state.db"), &state_copy).unwrap();
    assert_eq!(
        dump(&usage_copy, "user_analytics"),
        dump(&usage, "user_analytics")
    );
    assert_eq!(
        dump(&state_copy, "backup_probe"),
        dump(std::path::Path::new(&state), "backup_probe")
    );
    let (code, text) =
        run(Spawn::default().command(&["analytics", "info", "--db", usage_copy.to_str().unwrap()]))
            .await;
    assert_eq!(code, 0, "the viewer reads the restored copy: {text}");
    assert!(text.contains("5"), "{text}");

    // --keep N: the oldest snapshots go, the newest N stay.
    for _ in 0..2 {
        let (code, text) = run(backup(Some("2"))).await;
        assert_eq!(code, 0, "{text}");
    }
    let kept = snapshots(&out);
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(!kept.contains(&snapshot), "the oldest one was deleted");
}

#[tokio::test]
async fn only_serve_migrates_and_a_newer_database_is_refused_naming_both_versions() {
    use subgpt::store::usage::migrate::LATEST_VERSION;
    let redis = RedisServer::start();
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let db = dir.path().join("usage.db");
    // A database at schema version 1 (the first migration only) with one row.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(include_str!("../migrations/0001_user_analytics.sql"))
        .unwrap();
    conn.execute_batch(
        "INSERT INTO user_analytics (user_id, username, request_date, tokens_used)
         VALUES (7, 'u7', '2026-12-01', 70);
         PRAGMA user_version = 1;",
    )
    .unwrap();
    let tables = |conn: &rusqlite::Connection| -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let version = |conn: &rusqlite::Connection| -> i64 {
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    };
    let tables_before = tables(&conn);

    let (_t, _o, check) = healthy(&redis).await;
    let (code, out) = run(check.dir(&dir)).await;
    assert_eq!(code, 0, "{out}");
    let line = out.lines().find(|l| l.contains("sqlite")).unwrap();
    assert!(
        line.contains(&format!(
            "schema version 1 (`serve` migrates it to {LATEST_VERSION})"
        )),
        "{line}"
    );
    assert_eq!(version(&conn), 1, "check did not migrate");
    assert_eq!(tables(&conn), tables_before, "check created nothing");
    let (code, out) = run(Spawn::default().dir(&dir).command(&["analytics", "info"])).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(version(&conn), 1, "analytics did not migrate");

    // A newer subgpt has been here: every command refuses, naming both versions.
    conn.pragma_update(None, "user_version", 99).unwrap();
    let both =
        format!("schema version 99, but this subgpt knows schema versions up to {LATEST_VERSION}");
    let (_t, _o, check) = healthy(&redis).await;
    let (code, out) = run(check.dir(&dir)).await;
    assert_eq!(code, 1, "{out}");
    let line = out.lines().find(|l| l.starts_with("FAIL")).unwrap();
    assert!(line.contains("sqlite") && line.contains(&both), "{line}");
    for command in [&["analytics", "info"][..], &["backup"], &["serve"]] {
        let (code, out) = run(Spawn::default().dir(&dir).command(command)).await;
        assert_eq!(code, 1, "{command:?}: {out}");
        assert!(
            out.contains(&both) && out.contains("update.sh"),
            "{command:?}: {out}"
        );
    }
    assert_eq!(version(&conn), 99);
    assert_eq!(dump(&db, "user_analytics").len(), 1, "nothing was touched");
}

#[tokio::test]
async fn check_looks_at_the_state_database_without_migrating_it() {
    let redis = RedisServer::start();
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let state = dir.path().join("data/state.db");
    // The state database as its first migration left it.
    let conn = rusqlite::Connection::open(&state).unwrap();
    conn.execute_batch(include_str!("../migrations/state/0001_state.sql"))
        .unwrap();
    conn.pragma_update(None, "user_version", 1).unwrap();
    let version = |conn: &rusqlite::Connection| -> i64 {
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    };

    let (_t, _o, check) = healthy(&redis).await;
    let (code, out) = run(check.dir(&dir)).await;
    assert_eq!(code, 0, "{out}");
    let line = out.lines().find(|l| l.contains("state")).unwrap();
    assert!(
        line.starts_with("ok") && line.contains("schema version 1 (`serve` migrates it"),
        "{line}"
    );
    assert_eq!(version(&conn), 1, "check did not migrate it");

    conn.pragma_update(None, "user_version", 99).unwrap();
    let (_t, _o, check) = healthy(&redis).await;
    let (code, out) = run(check.dir(&dir)).await;
    assert_eq!(code, 1, "{out}");
    let line = out.lines().find(|l| l.contains("state")).unwrap();
    assert!(line.starts_with("FAIL") && line.contains("99"), "{line}");
}
