//! The usage store's queries against real SQLite files, and group commit under many callers.

#[path = "support/usage_db.rs"]
mod usage_db;

use std::time::Duration;

use chrono::NaiveDate;
use subgpt::store::usage::{DayTotals, UsageStore, UserDayUsage};
use usage_db::{check_rollups, day, raw_count, row, sample_store};

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
                tokens: 160,
                cost_micro_usd: None
            },
            UserDayUsage {
                user_id: 2,
                username: Some("bob".into()),
                requests: 1,
                tokens: 40,
                cost_micro_usd: None
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
                tokens: 200,
                cost_micro_usd: None
            },
            DayTotals {
                date: day("2025-03-02"),
                requests: 2,
                users: 2,
                tokens: 510,
                cost_micro_usd: None
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
    let batches = store.batches_written();
    assert!(
        batches * 4 < 64 * 50,
        "{batches} transactions for 3200 rows: not grouped"
    );
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
