//! The webhook's contract (SPEC §4): secret, size, parsing, dedup, ack before the answer.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

#[tokio::test]
async fn webhook_refuses_bad_requests_and_accepts_updates() {
    let app = TestApp::spawn().await;
    let update = text_update(1, 42, "hello");
    let json = update.to_string();
    assert_eq!(app.post_raw(None, json.clone()).await, 401);
    for wrong in ["webhook_Secret-124", "webhook", ""] {
        assert_eq!(
            app.post_raw(Some(wrong), json.clone()).await,
            401,
            "secret {wrong:?}"
        );
    }
    assert_eq!(
        app.post_raw(Some(SECRET), vec![b'a'; 1024 * 1024 + 1])
            .await,
        413
    );
    for body in [
        "not json",
        "{\"message\": {}}",
        "[1,2]",
        "{\"update_id\": \"x\"}",
    ] {
        assert_eq!(app.post_raw(Some(SECRET), body).await, 400, "body {body}");
    }
    assert_eq!(
        app.openai.request_count(),
        0,
        "nothing refused may reach OpenAI"
    );

    assert_eq!(app.post_update(&update).await, 200);
    let texts = app.wait_messages(42, 1).await;
    assert_eq!(texts, vec!["Echo: hello"]);

    // Unknown kinds and other chats: 200, ignored.
    assert_eq!(
        app.post_update(&json!({"update_id": 2, "poll": {"id": "1"}}))
            .await,
        200
    );
    let group = json!({"update_id": 3, "message": {"message_id": 1, "date": 0, "text": "hi",
        "from": {"id": 42, "is_bot": false, "first_name": "A"}, "chat": {"id": -100, "type": "supergroup", "title": "G"}}});
    assert_eq!(app.post_update(&group).await, 200);
    app.send_text(4, 42, "after").await;
    app.wait_messages(42, 2).await;
    assert_eq!(app.openai.inputs(), vec!["hello", "after"]);
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.get("/healthz").await,
        (reqwest::StatusCode::OK, "ok".to_string())
    );
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_ack_does_not_wait_for_openai() {
    let app = TestApp::spawn().await;
    // The model answers when the test says so.
    app.openai.hold();
    app.send_text(10, 7, "slow question").await;
    // The 200 came back; OpenAI is still working and nothing was answered yet.
    app.openai.wait_in_flight(1).await;
    assert!(app.telegram.sent_texts(7).is_empty());
    eventually("a second typing…", Duration::from_secs(10), || {
        app.telegram.calls("sendChatAction").len() == 2
    })
    .await;
    app.openai.release();
    let texts = app.wait_messages(7, 1).await;
    assert_eq!(texts[0], "Echo: slow question");
    // "typing…" at once and again about 4 s later, while the model works.
    let typing = app.telegram.calls("sendChatAction");
    assert_eq!(typing.len(), 2, "{typing:?}");
    let gap = typing[1].at.duration_since(typing[0].at);
    assert!(
        gap >= Duration::from_millis(3900) && gap < Duration::from_secs(8),
        "{gap:?}"
    );
}

#[tokio::test]
async fn answers_back_to_back_type_once_per_chat_every_few_seconds() {
    let app = TestApp::spawn().await;
    app.openai.with(|s| s.delay = Duration::from_millis(300));
    for i in 0..3 {
        app.send_text(20 + i, 7, &format!("queued {i}")).await;
    }
    app.send_text(30, 8, "another chat").await;
    let texts = app.wait_messages(7, 3).await;
    assert_eq!(
        texts,
        ["Echo: queued 0", "Echo: queued 1", "Echo: queued 2"]
    );
    app.wait_messages(8, 1).await;
    // Three answers to chat 7 within about a second: one "typing…", not one per answer
    // (Telegram: at most one chat action per chat every ~4 s). Chat 8 is not held back.
    let typing = |chat: i64| {
        app.telegram
            .calls("sendChatAction")
            .iter()
            .filter(|c| c.params["chat_id"].as_i64() == Some(chat))
            .count()
    };
    assert_eq!(typing(7), 1);
    assert_eq!(typing(8), 1);
}

#[tokio::test]
async fn a_repeated_update_is_handled_once_in_process() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        app.send_text(77, 5, "once").await;
    }
    app.send_text(78, 5, "next").await;
    app.wait_messages(5, 2).await;
    assert_eq!(app.openai.inputs(), vec!["once", "next"]);
    app.wait_metrics(&["subgpt_updates_duplicate_total 2"])
        .await;
}

#[tokio::test]
async fn a_repeated_update_is_handled_once_across_instances_with_redis() {
    let redis = RedisServer::start();
    let telegram = FakeTelegram::start().await;
    let openai = FakeOpenAi::start().await;
    let (first, second) = two_instances(&redis, &telegram, &openai).await;
    first.send_text(500, 9, "shared").await;
    second.send_text(500, 9, "shared").await;
    first.wait_messages(9, 1).await;
    second.send_text(501, 9, "later").await;
    first.wait_messages(9, 2).await;
    assert_eq!(openai.inputs(), vec!["shared", "later"]);
    assert_eq!(redis.cli(&["EXISTS", "subgpt:123456:upd:500"]), "1");
    let ttl: i64 = redis
        .cli(&["TTL", "subgpt:123456:upd:500"])
        .parse()
        .unwrap();
    assert!(
        ttl > 86_000 && ttl <= 86_400,
        "dedup mark lives 24 h, ttl {ttl}"
    );
}

/// Per-call count of one command in `INFO commandstats` (0 when it was never called).
fn calls(stats: &str, command: &str) -> u64 {
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn redis_commands_go_out_without_a_check_round_trip_before_each() {
    let redis = RedisServer::start();
    let app = Spawn::default()
        .env("REDIS_URL", &redis.url())
        .start()
        .await;
    assert_eq!(redis.cli(&["CONFIG", "RESETSTAT"]), "OK");
    for i in 0..5 {
        app.send_text(700 + i, 13, &format!("m{i}")).await;
    }
    app.wait_messages(13, 5).await;
    let stats = redis.cli(&["INFO", "commandstats"]);
    let work: u64 = ["get", "set", "eval", "del"]
        .iter()
        .map(|c| calls(&stats, c))
        .sum();
    // Dedup marks, gate, conversation and the user lock: several commands per update.
    assert!(work >= 15, "{stats}");
    // A pool that checks each connection out with UNWATCH + PING doubles the round trips.
    assert_eq!(calls(&stats, "unwatch"), 0, "{stats}");
    assert!(calls(&stats, "ping") <= 1, "{stats}");
}

#[tokio::test]
async fn redis_over_tls_with_a_private_ca_trusted_through_ssl_cert_file() {
    let redis = RedisServer::start_tls();
    // A private CA is trusted the usual way, through SSL_CERT_FILE.
    let app = Spawn::default()
        .env("REDIS_URL", &redis.url())
        .env("SSL_CERT_FILE", redis.ca_file().to_str().unwrap())
        .start()
        .await;
    app.send_text(800, 14, "over tls").await;
    assert_eq!(app.wait_messages(14, 1).await, vec!["Echo: over tls"]);
    assert_eq!(redis.cli(&["EXISTS", "subgpt:123456:upd:800"]), "1");
    assert!(!app.logs().contains("Redis is failing"), "{}", app.logs());
}

#[tokio::test]
async fn one_users_messages_are_answered_in_order_while_others_run_in_parallel() {
    let app = TestApp::spawn().await;
    app.openai.with(|s| s.delay = Duration::from_millis(300));
    for (i, text) in ["one", "two", "three"].iter().enumerate() {
        app.send_text(100 + i as i64, 11, text).await;
    }
    app.send_text(200, 12, "other user").await;
    let texts = app.wait_messages(11, 3).await;
    assert_eq!(texts, vec!["Echo: one", "Echo: two", "Echo: three"]);
    app.wait_messages(12, 1).await;
    let requests = app.openai.with(|s| s.requests.clone());
    let of = |input: &str| {
        requests
            .iter()
            .find(|r| r.body["input"] == input)
            .unwrap()
            .started
    };
    // User 11's requests never overlap; user 12 did not wait for all of them.
    assert!(of("two") >= of("one") + Duration::from_millis(290));
    assert!(of("three") >= of("two") + Duration::from_millis(290));
    assert!(
        of("other user") < of("three"),
        "another user runs in parallel"
    );
}

#[tokio::test]
async fn missing_configuration_exits_2_before_any_network_call() {
    let telegram = FakeTelegram::start().await;
    let openai = FakeOpenAi::start().await;
    for (var, value) in [
        ("OPENAI_API_KEY", ""),
        ("WEBHOOK_SECRET", "bad secret!"),
        ("TELEGRAM_BOT_TOKEN", ""),
    ] {
        let app = Spawn::default()
            .fakes(&telegram, &openai)
            .env(var, value)
            .launch()
            .await;
        let status = app.wait_exit(Duration::from_secs(10)).await;
        assert_eq!(status.code(), Some(2), "{var}");
        let logs = app.logs();
        assert_eq!(logs.lines().count(), 1, "one line: {logs}");
        assert!(logs.contains(var), "{logs}");
    }
    assert!(telegram.calls("getMe").is_empty());
}

#[tokio::test]
async fn dotenv_is_read_the_real_environment_wins_and_a_broken_one_exits_2() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    std::fs::write(
        dir.path().join(".env"),
        "OPENAI_MODEL=model-from-dotenv\nWEBHOOK_SECRET=not_the_one_used\n",
    )
    .unwrap();
    let app = Spawn::default().dir(&dir).start().await;
    app.send_text(1, 3, "which model?").await;
    app.wait_messages(3, 1).await;
    assert_eq!(
        app.openai.with(|s| s.requests[0].body["model"].clone()),
        "model-from-dotenv"
    );
    drop(app);

    std::fs::write(
        dir.path().join(".env"),
        "OPENAI_MODEL=x\nthis line is broken\n",
    )
    .unwrap();
    let app = Spawn::default().dir(&dir).launch().await;
    assert_eq!(app.wait_exit(Duration::from_secs(10)).await.code(), Some(2));
    app.wait_log(".env").await;
}

#[tokio::test]
async fn rust_log_in_dotenv_sets_the_log_level() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    std::fs::write(dir.path().join(".env"), "RUST_LOG=warn\n").unwrap();
    let app = Spawn::default().dir(&dir).unset("RUST_LOG").start().await;
    app.send_text(1, 4, "quiet please").await;
    app.wait_messages(4, 1).await;
    // A failure is still logged, with the update it belongs to.
    app.openai.with(|s| s.fail_next.push_back(400));
    app.send_text(2, 4, "this one fails").await;
    app.wait_messages(4, 2).await;
    app.wait_log("update_id=2").await;
    // Started, answered and logged nothing at info ("listening…", "answered").
    app.terminate();
    app.wait_exit(Duration::from_secs(10)).await;
    assert!(!app.logs().contains(" INFO "), "{}", app.logs());
}

#[tokio::test]
async fn two_instances_never_answer_one_user_at_the_same_time() {
    let redis = RedisServer::start();
    let telegram = FakeTelegram::start().await;
    let openai = FakeOpenAi::start().await;
    openai.with(|s| s.delay = Duration::from_millis(400));
    let (first, second) = two_instances(&redis, &telegram, &openai).await;
    let (one, two) = (
        text_update(1, 15, "via first"),
        text_update(2, 15, "via second"),
    );
    let (a, b) = tokio::join!(first.post_update(&one), second.post_update(&two));
    assert_eq!((a, b), (reqwest::StatusCode::OK, reqwest::StatusCode::OK));
    first.wait_messages(15, 2).await;
    let starts: Vec<_> = openai.with(|s| s.requests.iter().map(|r| r.started).collect());
    let gap = if starts[1] > starts[0] {
        starts[1] - starts[0]
    } else {
        starts[0] - starts[1]
    };
    assert!(
        gap >= Duration::from_millis(390),
        "the second answer started {gap:?} after the first"
    );
    eventually("the lock to be released", Duration::from_secs(5), || {
        redis.cli(&["EXISTS", "subgpt:123456:lock:15"]) == "0"
    })
    .await;
}
