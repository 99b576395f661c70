//! `subgpt analytics` when things are wrong or implicit: where the database path comes from,
//! and exit code 2 with one clear line for missing, foreign or unusable files and bad usage.

#[path = "support/usage_db.rs"]
mod usage_db;
#[path = "support/viewer.rs"]
mod viewer;

use std::path::Path;
use std::process::{Command, Output};

use rusqlite::Connection;
use serde_json::Value;
use viewer::{analytics, ok_stdout, python_db, store_db};

#[tokio::test]
async fn db_path_comes_from_env_then_dotenv_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_db(dir.path()).await;
    let run = |cwd: &Path, env: Option<&Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_subgpt"));
        cmd.args(["analytics", "info", "--format", "json"])
            .current_dir(cwd)
            .env_remove("ANALYTICS_DB_PATH");
        if let Some(p) = env {
            cmd.env("ANALYTICS_DB_PATH", p);
        }
        cmd.output().unwrap()
    };
    let from_env: Value =
        serde_json::from_str(&ok_stdout(&run(Path::new("/"), Some(&db)))).unwrap();
    assert_eq!(from_env["path"], db.to_str().unwrap());

    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(
        elsewhere.path().join(".env"),
        format!("ANALYTICS_DB_PATH={}\n", db.display()),
    )
    .unwrap();
    let from_dotenv: Value =
        serde_json::from_str(&ok_stdout(&run(elsewhere.path(), None))).unwrap();
    assert_eq!(from_dotenv["path"], db.to_str().unwrap());

    // store_db wrote ./data/usage.db; the default is ./data/user_analytics.db.
    std::fs::rename(&db, dir.path().join("data/user_analytics.db")).unwrap();
    let default: Value = serde_json::from_str(&ok_stdout(&run(dir.path(), None))).unwrap();
    assert_eq!(default["path"], "./data/user_analytics.db");
    assert_eq!(default["rows"], 9);
}

/// The viewer loads `.env` with the service's own code: the real environment wins, and a
/// `.env` that does not parse is refused rather than half-read.
#[tokio::test]
async fn dotenv_is_read_as_the_service_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = store_db(dir.path()).await;
    let run = |env_zone: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_subgpt"));
        cmd.args(["analytics", "info", "--format", "json"])
            .current_dir(dir.path())
            .env("ANALYTICS_DB_PATH", &db)
            .env_remove("ANALYTICS_TIMEZONE");
        if let Some(zone) = env_zone {
            cmd.env("ANALYTICS_TIMEZONE", zone);
        }
        cmd.output().unwrap()
    };
    std::fs::write(
        dir.path().join(".env"),
        "ANALYTICS_DB_PATH=/nowhere/usage.db\nANALYTICS_TIMEZONE=Mars/Olympus\n",
    )
    .unwrap();
    assert_exit_2_one_line(&run(None), "ANALYTICS_TIMEZONE");
    let info: Value = serde_json::from_str(&ok_stdout(&run(Some("Europe/Berlin")))).unwrap();
    assert_eq!(info["path"], db.to_str().unwrap());

    std::fs::write(dir.path().join(".env"), "this line is broken\n").unwrap();
    assert_exit_2_one_line(&run(Some("UTC")), ".env");
}

fn assert_exit_2_one_line(out: &Output, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(2),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn missing_file_is_exit_2_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nope.db");
    let out = analytics(dir.path(), &["users", "--db", db.to_str().unwrap()]);
    assert_exit_2_one_line(&out, "not found");
    assert!(!db.exists());
    let out = analytics(dir.path(), &[]);
    assert_exit_2_one_line(&out, "./data/user_analytics.db");
}

#[test]
fn non_sqlite_file_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("text.db");
    std::fs::write(&db, "id,user\n1,2\n".repeat(200)).unwrap();
    assert_exit_2_one_line(
        &analytics(dir.path(), &["--db", db.to_str().unwrap()]),
        "not a SQLite database",
    );
}

#[test]
fn sqlite_file_without_the_table_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("other.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    assert_exit_2_one_line(
        &analytics(dir.path(), &["info", "--db", db.to_str().unwrap()]),
        "no user_analytics table",
    );
}

#[test]
fn bad_usage_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = python_db(dir.path());
    let db = db.to_str().unwrap();
    for args in [
        vec!["bogus"],
        vec!["daily", "--days", "0"],
        vec!["daily", "--days", "many"],
        vec!["users", "--format", "xml"],
        vec!["date", "2025-13-01"],
        vec!["user", "abc"],
        vec!["chart"],
    ] {
        let mut all = args.clone();
        all.extend(["--db", db]);
        let out = analytics(dir.path(), &all);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_subgpt"))
        .args(["analytics", "info", "--db", db])
        .env("ANALYTICS_TIMEZONE", "Mars/Olympus")
        .output()
        .unwrap();
    assert_exit_2_one_line(&out, "ANALYTICS_TIMEZONE");
}
