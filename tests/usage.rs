//! Usage recording through the real service (SPEC §6): one row per answer, privacy, write
//! failures, the daily limit, `/usage` and `/stats`.

mod support;

use std::time::Duration;

use rusqlite::Connection;
use support::openai::tokens_for;
use support::*;

fn rows(app: &TestApp) -> Vec<(i64, String, String, i64)> {
    let Ok(conn) = Connection::open(app.db_path()) else {
        return Vec::new();
    };
    let Ok(mut stmt) = conn.prepare(
        "SELECT user_id, username, request_date, tokens_used FROM user_analytics ORDER BY id",
    ) else {
        return Vec::new();
    };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

async fn wait_rows(app: &TestApp, n: usize) -> Vec<(i64, String, String, i64)> {
    eventually(&format!("{n} usage rows"), Duration::from_secs(20), || {
        rows(app).len() >= n
    })
    .await;
    rows(app)
}

fn today_in(tz: chrono_tz::Tz) -> String {
    chrono::Utc::now()
        .with_timezone(&tz)
        .date_naive()
        .to_string()
}

#[tokio::test]
async fn each_answer_records_one_row_with_the_upstream_tokens() {
    let app = Spawn::default()
        .env("ANALYTICS_TIMEZONE", "Pacific/Kiritimati")
        .start()
        .await;
    app.send_text(1, 301, "alpha").await;
    app.send_text(2, 302, "beta").await;
    app.send_text(3, 301, "gamma").await;
    app.wait_messages(301, 2).await;
    let rows = wait_rows(&app, 3).await;
    let today = today_in(chrono_tz::Pacific::Kiritimati);
    let mut expected = vec![
        (
            301,
            "user301".to_string(),
            today.clone(),
            tokens_for("alpha", "Echo: alpha") as i64,
        ),
        (
            302,
            "user302".to_string(),
            today.clone(),
            tokens_for("beta", "Echo: beta") as i64,
        ),
        (
            301,
            "user301".to_string(),
            today.clone(),
            tokens_for("gamma", "Echo: gamma") as i64,
        ),
    ];
    let mut got = rows.clone();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    // Commands cost nothing: after /help and one more answer there is exactly one row more.
    app.send_text(4, 301, "/help").await;
    app.wait_messages(301, 3).await;
    app.send_text(5, 301, "delta").await;
    app.wait_messages(301, 4).await;
    let after = wait_rows(&app, 4).await;
    assert_eq!(after.len(), 4, "{after:?}");
    assert_eq!(after[3].3, tokens_for("delta", "Echo: delta") as i64);
}

#[tokio::test]
async fn a_reply_without_usage_is_recorded_as_an_estimate_with_a_warning() {
    let app = TestApp::spawn().await;
    app.openai.with(|s| s.omit_usage = true);
    app.send_text(1, 303, "free?").await;
    let rows = wait_rows(&app, 1).await;
    // About four characters a token: "free?" (5) → 2, "Echo: free?" (11) → 3.
    assert_eq!(rows[0].3, 5);
    app.wait_log("reported no token usage; recording an estimate")
        .await;
}

/// The app of the late-answer tests: `ANSWER_DEADLINE_SECS=2`, and an answer that takes 8 s
/// (sixteen pieces, one every 500 ms; unstreamed in chat mode, nothing for 8 s).
async fn late_answer(mode: &str, streaming: &str) -> TestApp {
    let app = Spawn::default()
        .env("OPENAI_API_MODE", mode)
        .env("ANSWER_DEADLINE_SECS", "2")
        .env("STREAMING", streaming)
        // Responses mode: the cancelled response's usage is recorded once OpenAI settles it.
        .env("OPENAI_SETTLE_AFTER_SECS", "1")
        .start()
        .await;
    app.openai
        .answer_with(|_| "A long and winding answer that takes its time.".into());
    app.openai.with(|s| match (mode, streaming) {
        ("chat", "off") => s.delay = Duration::from_secs(8),
        _ => s.token_every = Duration::from_millis(500),
    });
    app
}

/// The user's messages once the late answer was cut off: streamed, what came (marked as cut
/// off), then the apology; otherwise the apology alone. Cut in the answer's own time, not by
/// the dispatcher's backstop.
async fn cut_off(app: &TestApp, user: i64, streaming: &str) -> Vec<String> {
    app.wait_log("not complete within ANSWER_DEADLINE_SECS")
        .await;
    let texts = app
        .wait_messages(user, if streaming == "on" { 2 } else { 1 })
        .await;
    if streaming == "on" {
        assert!(texts[0].starts_with("A long"), "{texts:?}");
        assert!(texts[0].contains("cut off"), "{texts:?}");
    }
    assert!(
        texts.last().unwrap().contains("reference:"),
        "{streaming}: {texts:?}"
    );
    eventually("the update is finished", Duration::from_secs(10), || {
        app.inbox_len() == 0
    })
    .await;
    assert!(!app.logs().contains("ran past ANSWER_DEADLINE_SECS"));
    texts
}

#[tokio::test]
async fn an_answer_late_for_its_deadline_is_cancelled_upstream_and_its_usage_recorded() {
    for streaming in ["on", "off"] {
        let app = late_answer("responses", streaming).await;
        app.send_text(1, 304, "slow").await;
        let rows = wait_rows(&app, 1).await;
        // What OpenAI reports for the cancelled response (the fake: the input it read).
        assert_eq!(rows[0].3 as u64, tokens_for("slow", ""), "{streaming}");
        let model: Option<String> = Connection::open(app.db_path())
            .unwrap()
            .query_row("SELECT model FROM user_analytics", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            model.as_deref(),
            Some("gpt-5.4-mini"),
            "its model, for its price"
        );
        assert_eq!(app.openai.with(|s| s.cancelled.len()), 1, "{streaming}");
        app.wait_metrics(&["subgpt_answers_cut_off_total 1"]).await;
        cut_off(&app, 304, streaming).await;
    }
}

#[tokio::test]
async fn a_chat_answer_late_for_its_deadline_is_cut_off_and_its_usage_estimated() {
    for streaming in ["on", "off"] {
        let app = late_answer("chat", streaming).await;
        app.send_text(1, 305, "slow").await;
        // The connection is closed (no cancel to ask for); what was spent is estimated.
        let rows = wait_rows(&app, 1).await;
        assert!(rows[0].3 > 0, "{streaming}");
        app.wait_log("recording an estimate").await;
        cut_off(&app, 305, streaming).await;
    }
}

#[tokio::test]
async fn the_database_never_holds_a_word_of_the_conversation() {
    let app = TestApp::spawn().await;
    let questions = [
        "zebra quantum marmalade 7781",
        "Привет, секретный вопрос",
        "pineapple-orbit-secret",
    ];
    for (i, q) in questions.iter().enumerate() {
        app.send_text(i as i64 + 1, 304, q).await;
    }
    app.wait_messages(304, 3).await;
    wait_rows(&app, 3).await;
    let bytes: Vec<u8> = ["usage.db", "usage.db-wal"]
        .iter()
        .filter_map(|f| std::fs::read(app.dir.path().join(f)).ok())
        .flatten()
        .collect();
    assert!(bytes.len() > 4096);
    for q in questions {
        for needle in [q.to_string(), format!("Echo: {q}")] {
            let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
            assert!(!found, "{needle:?} is in the database file");
        }
        // Even a fragment of it.
        let word = q.split_whitespace().next().unwrap();
        assert!(
            !bytes.windows(word.len()).any(|w| w == word.as_bytes()),
            "{word:?} is in the database file"
        );
    }
}

#[tokio::test]
async fn rows_written_while_the_database_is_locked_arrive_later() {
    let app = Spawn::default()
        .env("SQLITE_BUSY_TIMEOUT_MS", "50")
        .start()
        .await;
    app.send_text(1, 305, "before").await;
    wait_rows(&app, 1).await;

    // Another process takes the write lock: the bot's writes fail with SQLITE_BUSY.
    let locker = Connection::open(app.db_path()).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    for (i, text) in ["during one", "during two", "during three"]
        .iter()
        .enumerate()
    {
        app.send_text(i as i64 + 2, 305, text).await;
    }
    // Answers are not held up by the failing writes.
    app.wait_messages(305, 4).await;
    eventually("a failed write", Duration::from_secs(10), || {
        app.logs().contains("usage write failed")
    })
    .await;
    assert_eq!(rows(&app).len(), 1);
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    let rows = wait_rows(&app, 4).await;
    assert_eq!(rows.len(), 4);
    assert_eq!(
        app.logs().matches("usage write failed").count(),
        1,
        "logged once per outage"
    );
}

#[tokio::test]
async fn pending_rows_are_written_before_a_clean_shutdown() {
    let app = Spawn::default()
        .env("SQLITE_BUSY_TIMEOUT_MS", "50")
        .start()
        .await;
    let locker = Connection::open(app.db_path()).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    app.send_text(1, 306, "kept for later").await;
    app.wait_messages(306, 1).await;
    eventually("a failed write", Duration::from_secs(10), || {
        app.logs().contains("usage write failed")
    })
    .await;
    app.terminate();
    // Release the lock while the process drains: the pending row must still be written.
    eventually("the drain to start", Duration::from_secs(10), || {
        app.logs().contains("shutting down")
    })
    .await;
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    assert_eq!(
        app.wait_exit(Duration::from_secs(40)).await.code(),
        Some(0),
        "{}",
        app.logs()
    );
    assert_eq!(rows(&app).len(), 1);
}

#[tokio::test]
async fn usage_command_reports_today_month_total_and_the_limit() {
    let app = Spawn::default()
        .env("DAILY_TOKEN_LIMIT", "100000")
        .start()
        .await;
    app.send_text(1, 307, "count this").await;
    app.wait_messages(307, 1).await;
    wait_rows(&app, 1).await;
    app.send_text(2, 307, "/usage").await;
    let text = app.wait_messages(307, 2).await.pop().unwrap();
    let spent = tokens_for("count this", "Echo: count this");
    assert!(text.contains(&format!("Today: {spent} tokens")), "{text}");
    assert!(
        text.contains(&format!("This month: {spent} tokens")),
        "{text}"
    );
    assert!(
        text.contains(&format!("In total: {spent} tokens")),
        "{text}"
    );
    let left = 100_000 - spent;
    let left = format!("{}\u{202f}{:03}", left / 1000, left % 1000);
    assert!(text.contains(&format!("{left} left today")), "{text}");
}

#[tokio::test]
async fn the_daily_limit_refuses_politely_without_calling_openai() {
    let app = Spawn::default()
        .env("DAILY_TOKEN_LIMIT", "30")
        .env("ADMIN_USER_IDS", "399")
        .start()
        .await;
    app.send_text(1, 308, "a question long enough to pass the limit")
        .await;
    app.wait_messages(308, 1).await;
    wait_rows(&app, 1).await;
    app.send_text(2, 308, "one more").await;
    let text = app.wait_messages(308, 2).await.pop().unwrap();
    assert!(
        text.contains("today's allowance") && text.contains("resets at 00:00 UTC"),
        "{text}"
    );
    assert_eq!(app.openai.request_count(), 1);
    // Admins are exempt.
    for i in 0..2 {
        app.send_text(10 + i, 399, "admin question that is long enough")
            .await;
    }
    let admin = app.wait_messages(399, 2).await;
    assert!(admin.iter().all(|t| t.starts_with("Echo:")), "{admin:?}");
}

#[tokio::test]
async fn stats_is_for_admins_and_comes_with_a_chart() {
    let app = Spawn::default().env("ADMIN_USER_IDS", "400").start().await;
    app.send_text(1, 401, "hello there").await;
    app.send_text(2, 402, "hi").await;
    app.wait_messages(401, 1).await;
    app.wait_messages(402, 1).await;
    wait_rows(&app, 2).await;
    app.send_text(3, 401, "/stats").await;
    assert_eq!(
        app.wait_messages(401, 2).await[1],
        "/stats is for the bot's admins."
    );
    app.send_text(4, 400, "/stats").await;
    let text = app.wait_messages(400, 1).await.pop().unwrap();
    let total = tokens_for("hello there", "Echo: hello there") + tokens_for("hi", "Echo: hi");
    assert!(
        text.contains(&format!(
            "<b>Today</b>: 2 requests, 2 users, {total} tokens"
        )),
        "{text}"
    );
    assert!(text.contains("1. user401 (401) — "), "{text}");
    assert!(text.contains("1 request\n"), "{text}");
    eventually("the chart", Duration::from_secs(10), || {
        !app.telegram.calls("sendPhoto").is_empty()
    })
    .await;
    let photo = app.telegram.calls("sendPhoto").pop().unwrap().params;
    assert_eq!(photo["chat_id"], 400);
    assert_eq!(photo["photo"]["png"], true);
    assert!(photo["photo"]["len"].as_u64().unwrap() > 1000);
}
