//! `deploy/update.sh` when the new binary fails: the previous binary is restored and runs again,
//! and databases the failed binary migrated are rolled back from the backup taken before
//! (by `subgpt backup`, or by sqlite3 when the installed binary predates it).
//!
//! Needs on the machine: bash, curl, sqlite3 (the project's test script installs them); a
//! missing one fails the test with a message naming it.

// Each deploy test binary uses only part of the helpers.
#[allow(dead_code)]
mod deploy;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use deploy::instance::*;

#[tokio::test]
async fn update_rolls_back_a_binary_that_does_not_come_up() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut reaper = Reaper::default();
    let (_api, dir) = started_instance(tmp.path(), &mut reaper).await;
    let original = fs::read(dir.join("subgpt")).expect("read binary");

    // Answers --version, but its `serve` dies at once.
    let broken = tmp.path().join("broken-subgpt");
    fs::write(
        &broken,
        "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'subgpt 9.9.9'; exit 0; }\necho 'error: broken build' >&2\nexit 1\n",
    )
    .expect("write broken binary");
    fs::set_permissions(&broken, fs::Permissions::from_mode(0o755)).expect("chmod broken binary");

    let (out, text) = run({
        let mut c = script(&dir, "update.sh");
        c.arg(&broken).env("START_TIMEOUT_SECS", "10");
        c
    });
    reaper.track(&dir);
    assert_eq!(
        out.status.code(),
        Some(1),
        "update.sh with a broken binary fails:\n{text}"
    );
    assert!(text.contains("rolling back"), "{text}");
    assert_eq!(
        fs::read(dir.join("subgpt")).expect("read binary"),
        original,
        "the previous binary is restored"
    );
    let backups: Vec<_> = fs::read_dir(dir.join("backups"))
        .expect("backups/ exists")
        .collect();
    assert_eq!(backups.len(), 1, "one backup directory");
    let (out, text) = run(script(&dir, "status.sh"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "the old version runs again:\n{text}"
    );

    let (out, text) = run(script(&dir, "stop.sh"));
    assert!(out.status.success(), "stop.sh:\n{text}");
}

#[tokio::test]
async fn update_rolls_back_the_databases_a_failed_binary_migrated() {
    rollback_of_a_migrated_database(true).await;
}

#[tokio::test]
async fn update_backs_up_with_sqlite3_when_the_installed_binary_has_no_backup_command() {
    rollback_of_a_migrated_database(false).await;
}

/// update.sh to a binary that migrates the database past the installed one and never gets
/// healthy; `installed_knows_backup: false` installs a binary older than `subgpt backup`.
async fn rollback_of_a_migrated_database(installed_knows_backup: bool) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut reaper = Reaper::default();
    let api = fake_telegram().await;
    let dir = make_instance(tmp.path(), "bot", free_ports(1)[0], &api.uri());
    reaper.instances.push(dir.clone());
    if !installed_knows_backup {
        // The real server, behind a wrapper that does not know `backup` (as clap would say).
        fs::create_dir_all(dir.join("old")).expect("mkdir");
        fs::rename(dir.join("subgpt"), dir.join("old/subgpt")).expect("move the binary");
        write_script(
            &dir.join("subgpt"),
            &format!(
                "#!/bin/sh
[ \"$1\" = backup ] && {{ echo \"error: unrecognized subcommand 'backup'\" >&2; exit 2; }}
\
                 exec {} \"$@\"
",
                dir.join("old/subgpt").display()
            ),
        );
    }
    let (out, text) = run(script(&dir, "start.sh"));
    reaper.track(&dir);
    assert!(out.status.success(), "start.sh:\n{text}");
    let db = dir.join("data/usage.db");
    {
        // Rows written beside the running service, as an operator's tool would.
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.busy_timeout(Duration::from_secs(5)).expect("busy");
        for user in 1..=3i64 {
            conn.execute(
                "INSERT INTO user_analytics (user_id, username, request_date, tokens_used) VALUES (?1, 'u', '2026-12-01', ?2)",
                (user, user * 10),
            )
            .expect("insert");
        }
    }
    let before = usage_rows(&db);
    assert_eq!(before.1.len(), 3);

    // The "new version": migrates the database past the old binary, then never gets healthy.
    let new = tmp.path().join("new-subgpt");
    write_script(
        &new,
        "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'subgpt 9.9.9'; exit 0; }\n\
         sqlite3 ./data/usage.db 'PRAGMA user_version = 99; CREATE TABLE from_the_future (x); DELETE FROM user_analytics;' || exit 3\n\
         echo 'migrated to 99' >&2\nwhile :; do sleep 1; done\n",
    );
    let (out, text) = run({
        let mut c = script(&dir, "update.sh");
        c.arg(&new).env("START_TIMEOUT_SECS", "5");
        c
    });
    reaper.track(&dir);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("rolling back") && text.contains("restored"),
        "{text}"
    );
    assert_eq!(
        text.contains("sqlite3 .backup"),
        !installed_knows_backup,
        "{text}"
    );
    let log = fs::read_to_string(dir.join("logs/subgpt.log")).unwrap_or_default();
    assert!(
        log.contains("migrated to 99"),
        "the new binary did run:\n{log}"
    );

    assert_eq!(usage_rows(&db), before, "the rows and schema are as before");
    let (out, text) = run(script(&dir, "status.sh"));
    assert_eq!(out.status.code(), Some(0), "the old version runs:\n{text}");
    assert!(text.contains("healthz:  ok"), "{text}");
    // What the failed version left is kept aside, not deleted.
    let backup = fs::read_dir(dir.join("backups"))
        .expect("backups/")
        .map(|e| e.expect("entry").path())
        .next()
        .expect("one backup");
    let aside = usage_rows(&backup.join("rolled-back/usage.db"));
    assert_eq!((aside.0, aside.1.len()), (99, 0));

    let (out, text) = run(script(&dir, "stop.sh"));
    assert!(out.status.success(), "stop.sh:\n{text}");
}
