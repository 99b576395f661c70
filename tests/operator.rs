//! Operator commands (SPEC §2, §8): webhook set/info/delete, check, poll, and the drain on SIGTERM.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

async fn run(spawn: Spawn) -> (i32, String) {
    let app = spawn.launch().await;
    let status = app.wait_exit(Duration::from_secs(30)).await;
    (status.code().unwrap_or(-1), app.logs())
}

#[tokio::test]
async fn webhook_set_info_delete() {
    let telegram = FakeTelegram::start().await;
    let openai = FakeOpenAi::start().await;
    let base = || {
        Spawn::default()
            .fakes(&telegram, &openai)
            .env("WEBHOOK_URL", "https://bot.example.com/webhook")
    };

    let (code, out) = run(base().command(&["webhook", "set", "--drop-pending"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Webhook set: https://bot.example.com/webhook"),
        "{out}"
    );
    let call = telegram.calls("setWebhook").pop().unwrap().params;
    assert_eq!(call["url"], "https://bot.example.com/webhook");
    assert_eq!(call["secret_token"], SECRET);
    assert_eq!(call["drop_pending_updates"], true);
    let allowed: Vec<&str> = call["allowed_updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        allowed.contains(&"message") && allowed.contains(&"chat_member"),
        "{allowed:?}"
    );
    assert!(!out.contains(SECRET), "the secret is not printed");

    telegram.with(|s| {
        s.webhook["pending_update_count"] = json!(7);
        s.webhook["last_error_date"] = json!(1_700_000_000);
        s.webhook["last_error_message"] =
            json!("Wrong response from the webhook: 401 Unauthorized");
    });
    let (code, out) = run(base().command(&["webhook", "info"])).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("https://bot.example.com/webhook"), "{out}");
    assert!(out.contains("Pending updates:  7"), "{out}");
    assert!(
        out.contains("2023-11-14 22:13:20 UTC — Wrong response from the webhook: 401 Unauthorized"),
        "{out}"
    );

    let (code, out) = run(base().command(&["webhook", "delete"])).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(telegram.calls("deleteWebhook").len(), 1);

    // `set` without WEBHOOK_URL is a configuration error, before any call.
    let calls = telegram.state.lock().calls.len();
    let (code, out) = run(Spawn::default()
        .fakes(&telegram, &openai)
        .command(&["webhook", "set"]))
    .await;
    assert_eq!(code, 2);
    assert!(out.contains("WEBHOOK_URL"), "{out}");
    assert_eq!(telegram.state.lock().calls.len(), calls);
}

/// A fully healthy set-up for `check`.
async fn healthy(redis: &RedisServer) -> (FakeTelegram, FakeOpenAi, Spawn) {
    let telegram = FakeTelegram::start().await;
    let openai = FakeOpenAi::start().await;
    telegram.set_member(CHANNEL, telegram::BOT_ID, "administrator");
    telegram.with(|s| {
        s.webhook = json!({"url": "https://bot.example.com/webhook", "has_custom_certificate": false,
            "pending_update_count": 0, "allowed_updates": ["message", "chat_member"]})
    });
    let spawn = Spawn::default()
        .fakes(&telegram, &openai)
        .env("REDIS_URL", &redis.url())
        .env("WEBHOOK_URL", "https://bot.example.com/webhook")
        .command(&["check"]);
    (telegram, openai, spawn)
}

#[tokio::test]
async fn check_passes_when_everything_is_right() {
    let redis = RedisServer::start();
    assert_eq!(redis.cli(&["CONFIG", "SET", "appendonly", "yes"]), "OK");
    let (_t, _o, spawn) = healthy(&redis).await;
    let (code, out) = run(spawn).await;
    assert_eq!(code, 0, "{out}");
    for name in [
        "configuration",
        "sqlite",
        "state",
        "redis",
        "telegram",
        "channel @test_channel",
        "openai",
        "webhook",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with("ok") && l.contains(name)),
            "{name}: {out}"
        );
    }
    assert!(!out.contains("FAIL"));
}

#[tokio::test]
async fn check_warns_about_a_redis_that_keeps_nothing_on_disk() {
    // The test server runs with `--save "" --appendonly no`.
    let redis = RedisServer::start();
    let (_t, _o, spawn) = healthy(&redis).await;
    let (code, out) = run(spawn).await;
    assert_eq!(code, 0, "a warning does not fail the check: {out}");
    let line = out
        .lines()
        .find(|l| l.contains("redis"))
        .unwrap_or_default();
    assert!(
        line.starts_with("WARN") && line.contains("appendonly yes"),
        "{out}"
    );
}

#[tokio::test]
async fn check_names_each_failure_and_its_fix() {
    let redis = RedisServer::start();
    type Breaks = Box<dyn Fn(&FakeTelegram, Spawn) -> Spawn>;
    let cases: Vec<(&str, Breaks, &str)> = vec![
        (
            "telegram",
            Box::new(|t, s| {
                t.with(|st| st.reject_token = true);
                s
            }),
            "copy TELEGRAM_BOT_TOKEN again",
        ),
        (
            "channel @test_channel",
            Box::new(|t, s| {
                t.set_member(CHANNEL, telegram::BOT_ID, "member");
                s
            }),
            "make the bot an administrator of @test_channel",
        ),
        (
            "openai",
            Box::new(|_, s| s.env("OPENAI_API_KEY", "sk-wrong")),
            "set a valid OPENAI_API_KEY",
        ),
        (
            "openai",
            Box::new(|_, s| s.env("OPENAI_MODEL", "no-such-model")),
            "set OPENAI_MODEL",
        ),
        (
            "redis",
            Box::new(|_, s| s.env("REDIS_URL", &format!("redis://127.0.0.1:{}/0", free_port()))),
            "start Redis",
        ),
        (
            "sqlite",
            Box::new(|_, s| s.env("ANALYTICS_DB_PATH", "/dev/null/usage.db")),
            "writable",
        ),
        (
            "webhook",
            Box::new(|t, s| {
                t.with(|st| st.webhook["url"] = json!(""));
                s
            }),
            "run `subgpt webhook set`",
        ),
        (
            "webhook",
            Box::new(|t, s| {
                let now = chrono::Utc::now().timestamp();
                t.with(|st| {
                    st.webhook["last_error_date"] = json!(now - 60);
                    st.webhook["last_error_message"] = json!("Connection refused");
                });
                s
            }),
            "troubleshooting",
        ),
    ];
    for (name, breaks, fix) in cases {
        let (telegram, _o, spawn) = healthy(&redis).await;
        let (code, out) = run(breaks(&telegram, spawn)).await;
        assert_eq!(code, 1, "{name}: {out}");
        let line = out
            .lines()
            .find(|l| l.starts_with("FAIL"))
            .unwrap_or_else(|| panic!("no FAIL line: {out}"));
        assert!(line.contains(name) && line.contains(fix), "{name}: {line}");
        // A rejected token also leaves the channel checks undone; anything else fails alone.
        let expected = if name == "telegram" { 2 } else { 1 };
        assert_eq!(
            out.lines().filter(|l| l.starts_with("FAIL")).count(),
            expected,
            "{out}"
        );
    }
    let (_t, _o, spawn) = healthy(&redis).await;
    let (code, out) = run(spawn.env("CHANNEL_POLICY", "sometimes")).await;
    assert_eq!(code, 2);
    assert!(out.contains("FAIL  configuration: CHANNEL_POLICY"), "{out}");
}

#[tokio::test]
async fn poll_answers_and_resumes_without_repeats() {
    let telegram = FakeTelegram::start().await;
    let openai = FakeOpenAi::start().await;
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    telegram.with(|s| {
        s.updates
            .extend([text_update(10, 1, "first"), text_update(11, 1, "second")])
    });
    let app = Spawn::default()
        .fakes(&telegram, &openai)
        .dir(&dir)
        .command(&["poll"])
        .launch()
        .await;
    app.wait_messages(1, 2).await;
    eventually(
        "the offset to be confirmed",
        Duration::from_secs(10),
        || telegram.with(|s| s.confirmed_offset) == 12,
    )
    .await;
    app.terminate();
    assert_eq!(app.wait_exit(Duration::from_secs(20)).await.code(), Some(0));

    // Telegram re-sends 11 (as if unconfirmed) with a new one; only the new one is handled.
    telegram.with(|s| {
        s.updates
            .extend([text_update(11, 1, "second"), text_update(12, 1, "third")])
    });
    telegram.with(|s| s.confirmed_offset = 0);
    let again = Spawn::default()
        .fakes(&telegram, &openai)
        .dir(&dir)
        .command(&["poll"])
        .launch()
        .await;
    again.wait_messages(1, 3).await;
    eventually("the new offset", Duration::from_secs(10), || {
        telegram.with(|s| s.confirmed_offset) == 13
    })
    .await;
    assert_eq!(openai.inputs(), vec!["first", "second", "third"]);
    let first_poll = telegram
        .calls("getUpdates")
        .into_iter()
        .rev()
        .find(|c| c.params["offset"] == 12);
    assert!(first_poll.is_some(), "resumed from the saved offset");
    again.terminate();
    assert_eq!(
        again.wait_exit(Duration::from_secs(20)).await.code(),
        Some(0)
    );
}

#[tokio::test]
async fn poll_explains_a_webhook_and_a_second_poller() {
    let telegram = FakeTelegram::start().await;
    let openai = FakeOpenAi::start().await;
    let poll_once = || {
        run(Spawn::default()
            .fakes(&telegram, &openai)
            .command(&["poll"]))
    };
    telegram.with(|s| s.webhook["url"] = json!("https://bot.example.com/webhook"));
    let (code, out) = poll_once().await;
    assert_eq!(code, 1);
    assert!(
        out.contains("a webhook is set") && out.contains("subgpt webhook delete"),
        "{out}"
    );

    telegram.with(|s| {
        s.webhook["url"] = json!("");
        s.polling_conflict = true;
    });
    let (code, out) = poll_once().await;
    assert_eq!(code, 1);
    assert!(
        out.contains("another process is polling this bot") && out.contains("409 Conflict"),
        "{out}"
    );
}

#[tokio::test]
async fn sigterm_finishes_answers_in_flight_and_refuses_new_updates() {
    let app = TestApp::spawn().await;
    app.openai.with(|s| s.delay = Duration::from_secs(2));
    app.send_text(1, 70, "in flight").await;
    eventually("OpenAI to be asked", Duration::from_secs(5), || {
        app.openai.with(|s| s.in_flight) == 1
    })
    .await;
    app.terminate();
    // From the moment shutdown starts, the webhook says 503 so Telegram re-delivers later.
    eventually("the drain to start", Duration::from_secs(5), || {
        app.logs().contains("shutting down")
    })
    .await;
    assert_eq!(app.post_update(&text_update(2, 71, "too late")).await, 503);
    assert_eq!(
        app.openai.with(|s| s.in_flight),
        1,
        "the answer is still in flight"
    );
    let status = app.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "{}", app.logs());
    assert_eq!(app.telegram.sent_texts(70), vec!["Echo: in flight"]);
    assert!(app.telegram.sent_texts(71).is_empty());
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    let rows: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM user_analytics WHERE user_id = 70",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 1, "the answer's usage row was written before exit");
}

#[tokio::test]
async fn metrics_and_json_logs() {
    let app = Spawn::default().env("LOG_FORMAT", "json").start().await;
    app.send_text(1, 80, "count me").await;
    app.wait_messages(80, 1).await;
    let _ = app
        .http
        .post(format!("{}/webhook", app.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    let metrics = app.metrics().await;
    for needle in [
        "subgpt_updates_received_total 1",
        r#"subgpt_updates_rejected_total{reason="unauthorized"} 1"#,
        r#"subgpt_gate_decisions_total{outcome="allowed",source="telegram"} 1"#,
        r#"subgpt_openai_requests_total{endpoint="responses",status="ok"} "#,
        "subgpt_openai_request_duration_seconds_bucket",
        r#"subgpt_telegram_requests_total{method="sendMessage",status="200"} 1"#,
        "subgpt_in_flight_conversations",
    ] {
        assert!(metrics.contains(needle), "{needle} missing:\n{metrics}");
    }
    let logs = app.logs();
    let answered = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["span"]["name"] == "update");
    let line = answered.unwrap_or_else(|| panic!("no log line inside an update span:\n{logs}"));
    assert_eq!(line["span"]["update_id"], 1);
    assert_eq!(line["span"]["user_id"], 80);
}

/// Sends `fast` at once and then `slow` one byte a second on a fresh connection, reading
/// whatever comes back; returns what the server sent and how long the connection lasted.
/// Panics when the server still holds the connection after `limit`.
async fn trickle(base: &str, fast: &[u8], slow: &[u8], limit: Duration) -> (String, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut read, mut write) = stream.into_split();
    let started = std::time::Instant::now();
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        let _ = read.read_to_end(&mut seen).await;
        String::from_utf8_lossy(&seen).into_owned()
    });
    let (fast, slow) = (fast.to_vec(), slow.to_vec());
    let writer = tokio::spawn(async move {
        if write.write_all(&fast).await.is_err() {
            return;
        }
        for byte in slow {
            if write.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // Keep the connection open: only the server may end it.
        std::future::pending::<()>().await;
    });
    let answer = tokio::time::timeout(limit, reader).await;
    let lasted = started.elapsed();
    writer.abort();
    let answer = answer
        .unwrap_or_else(|_| panic!("the server kept a trickling client for {limit:?}"))
        .unwrap();
    (answer, lasted)
}

#[tokio::test]
async fn slow_clients_are_cut_off_by_the_time_outs() {
    let app = Spawn::default()
        .env("HTTP_HEADER_TIMEOUT_SECS", "2")
        .env("HTTP_REQUEST_TIMEOUT_SECS", "3")
        .start()
        .await;
    let limit = Duration::from_secs(12);
    // Slow-loris: headers one byte a second would take 34 s.
    let headers = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
    let (answer, _) = trickle(&app.base, b"", headers, limit).await;
    assert!(
        !answer.contains("200 OK"),
        "the trickled request must not be served: {answer:?}"
    );

    // Headers at once, then the body one byte a second: the request time-out answers 408.
    let body = br#"{"update_id": 1, "message": {"text": "slow"}}"#;
    let headers = format!(
        "POST /webhook HTTP/1.1\r\nHost: a\r\nX-Telegram-Bot-Api-Secret-Token: {SECRET}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (answer, _) = trickle(&app.base, headers.as_bytes(), body, limit).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert_eq!(app.openai.request_count(), 0);
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, 200, "the server still serves others");
}

#[tokio::test]
async fn start_up_waits_out_a_telegram_outage_but_not_a_rejected_token() {
    let telegram = FakeTelegram::start().await;
    let openai = FakeOpenAi::start().await;
    telegram.with(|s| s.get_me_failures = 2);
    let app = Spawn::default().fakes(&telegram, &openai).start().await;
    let get_me: Vec<bool> = telegram.calls("getMe").iter().map(|c| c.ok).collect();
    assert_eq!(get_me, vec![false, false, true], "{}", app.logs());
    assert!(
        app.logs().contains("request failed; retrying"),
        "each failure is logged:\n{}",
        app.logs()
    );
    app.send_text(1, 90, "after the outage").await;
    app.wait_messages(90, 1).await;
    drop(app);

    // A rejected token is not waited out.
    telegram.with(|s| s.reject_token = true);
    let started = std::time::Instant::now();
    let (code, out) = run(Spawn::default().fakes(&telegram, &openai)).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("Telegram rejected TELEGRAM_BOT_TOKEN"),
        "{out}"
    );
    assert_eq!(
        telegram.calls("getMe").len(),
        4,
        "one more getMe, no retries"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

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
