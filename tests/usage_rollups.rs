//! The roll-ups against the raw rows after every kind of write SQL allows (SPEC §6): inserts
//! with and without a cost, deletes that empty a day or a user, updates of date, user, tokens
//! and cost, and a file that drifted before migration 0003.

#[path = "support/usage_db.rs"]
mod usage_db;

use std::time::Duration;

use rusqlite::Connection;
use subgpt::store::usage::UsageStore;
use subgpt::store::usage::migrate::MIGRATIONS;
use usage_db::{Expected, check_rollups, day, insert_raw, sample_store};

/// Runs `sql` on its own connection (as sqlite3 would), then compares every roll-up.
fn write_and_check(path: &std::path::Path, sql: &str) {
    Connection::open(path).unwrap().execute_batch(sql).unwrap();
    check_rollups(path);
}

fn user_row(conn: &Connection, user: i64) -> Option<(Option<String>, i64, String, String)> {
    conn.query_row(
        "SELECT username, tokens, first_date, last_date FROM usage_user WHERE user_id = ?1",
        [user],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .ok()
}

#[tokio::test]
async fn every_write_through_sql_keeps_the_rollups_equal_to_the_raw_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path()).await;
    let path = dir.path().join("usage.db");
    check_rollups(&path);

    // Inserts, one priced and one as the Python bot writes them, one with a NULL username.
    write_and_check(
        &path,
        "INSERT INTO user_analytics (user_id, username, request_date, tokens_used, cost_micro_usd)
           VALUES (4, 'dan', '2025-02-15', 70, 1500);
         INSERT INTO user_analytics (user_id, username, request_date, tokens_used)
           VALUES (4, NULL, '2025-03-05', 30), (1, 'alice_py', '2025-03-01', 1);",
    );
    let conn = Connection::open(&path).unwrap();
    assert_eq!(
        user_row(&conn, 4),
        Some((
            Some("dan".into()),
            100,
            "2025-02-15".into(),
            "2025-03-05".into()
        )),
        "a NULL username does not hide the last known one"
    );

    // Deleting a user's first and last days moves them; deleting all their rows removes them.
    write_and_check(
        &path,
        "DELETE FROM user_analytics WHERE user_id = 2 AND request_date = '2025-03-01';",
    );
    write_and_check(
        &path,
        "DELETE FROM user_analytics WHERE user_id = 2 AND request_date = '2025-04-01';",
    );
    assert_eq!(
        user_row(&conn, 2).map(|u| (u.2, u.3)),
        Some(("2025-03-31".into(), "2025-03-31".into()))
    );
    write_and_check(&path, "DELETE FROM user_analytics WHERE user_id = 3;");
    assert_eq!(user_row(&conn, 3), None);

    // Updates: a row moves to another day, changes tokens, cost, owner and name.
    write_and_check(
        &path,
        "UPDATE user_analytics SET request_date = '2024-12-31', tokens_used = tokens_used * 10
           WHERE user_id = 1 AND tokens_used = 100;",
    );
    assert_eq!(user_row(&conn, 1).unwrap().2, "2024-12-31");
    write_and_check(
        &path,
        "UPDATE user_analytics SET cost_micro_usd = 42 WHERE user_id = 1;",
    );
    write_and_check(
        &path,
        "UPDATE user_analytics SET cost_micro_usd = NULL WHERE tokens_used = 60;",
    );
    write_and_check(
        &path,
        "UPDATE user_analytics SET user_id = 5 WHERE username = 'alice_new';",
    );
    write_and_check(
        &path,
        "UPDATE user_analytics SET username = 'renamed' WHERE user_id = 4 AND username = 'dan';",
    );
    assert_eq!(user_row(&conn, 4).unwrap().0.as_deref(), Some("renamed"));
    // An outer REPLACE policy must not wipe a roll-up row (the triggers never conflict).
    write_and_check(
        &path,
        "INSERT OR REPLACE INTO user_analytics (user_id, username, request_date, tokens_used)
           VALUES (1, 'alice', '2024-12-31', 3);",
    );

    // The store's own reads agree with the raw rows.
    let e = Expected::from_raw(&conn);
    assert_eq!(store.user_total_usage(1).await.unwrap(), e.users[&1].tokens);
    assert_eq!(
        store.user_daily_usage(1, day("2024-12-31")).await.unwrap(),
        e.user_days[&(1, "2024-12-31".to_owned())].1
    );
    let spend = store.user_spend(1, None, None).await.unwrap();
    assert_eq!(spend.cost_micro_usd, e.user_cost[&1]);
    let full = subgpt::store::usage::rollups::Depth::Full;
    assert!(store.check_rollups(full).await.unwrap().matches);
    store.close(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn migration_0003_repairs_a_file_that_drifted_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    {
        let mut conn = Connection::open(&path).unwrap();
        MIGRATIONS.to_version(&mut conn, 2).unwrap();
        // At version 2 only the service's writer kept the roll-ups: these rows bypass them.
        insert_raw(
            &conn,
            &[
                (1, Some("a"), "2025-05-01", 10),
                (2, Some("b"), "2025-05-02", 20),
            ],
        );
        conn.execute("DELETE FROM user_analytics WHERE user_id = 2", [])
            .unwrap();
        let rolled: i64 = conn
            .query_row("SELECT COUNT(*) FROM usage_user", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rolled, 0, "drifted: the roll-ups miss the rows");
    }
    let store = UsageStore::open(&path).unwrap();
    store.close(Duration::from_secs(5)).await.unwrap();
    check_rollups(&path);
    assert_eq!(
        Expected::from_raw(&Connection::open(&path).unwrap()).tokens,
        10
    );
}

#[tokio::test]
async fn the_full_check_sees_tokens_changed_behind_a_dropped_trigger() {
    use subgpt::store::usage::rollups::{Depth, check, rebuild};
    let dir = tempfile::tempdir().unwrap();
    let store = sample_store(dir.path()).await;
    store.close(Duration::from_secs(5)).await.unwrap();
    let mut conn = Connection::open(dir.path().join("usage.db")).unwrap();
    conn.execute_batch(
        "DROP TRIGGER usage_rollups_update;
         UPDATE user_analytics SET tokens_used = tokens_used + 1 WHERE user_id = 1;",
    )
    .unwrap();
    let quick = check(&conn, Depth::Quick).unwrap();
    assert_eq!(quick.problems, ["trigger usage_rollups_update is missing"]);
    let full = check(&conn, Depth::Full).unwrap();
    assert!(
        full.problems
            .iter()
            .any(|p| p.starts_with("usage_daily has")),
        "{full:?}"
    );
    rebuild(&mut conn).unwrap();
    Expected::from_raw(&conn).assert_rollups_match(&conn);
}
