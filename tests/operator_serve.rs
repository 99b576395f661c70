//! `serve` as an operator runs it (SPEC §4): the drain on SIGTERM, `/metrics` and JSON logs,
//! slow clients cut off by the HTTP time-outs, and a start-up that waits out a Telegram outage
//! but not a rejected token.

mod support;

use std::time::Duration;

use support::operator::run;
use support::*;

#[tokio::test]
async fn sigterm_finishes_answers_in_flight_and_refuses_new_updates() {
    let app = TestApp::spawn().await;
    // The answer is held until the drain has been seen to wait for it.
    app.openai.hold();
    app.send_text(1, 70, "in flight").await;
    app.openai.wait_in_flight(1).await;
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
    app.openai.release();
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
    app.wait_metrics(&[
        "subgpt_updates_received_total 1",
        r#"subgpt_updates_rejected_total{reason="unauthorized"} 1"#,
        r#"subgpt_gate_decisions_total{outcome="allowed",source="telegram"} 1"#,
        r#"subgpt_openai_requests_total{endpoint="responses",status="ok"} "#,
        "subgpt_openai_request_duration_seconds_bucket",
        r#"subgpt_telegram_requests_total{method="sendMessage",status="200"} 1"#,
        "subgpt_in_flight_conversations",
    ])
    .await;
    let in_update = || {
        app.logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["span"]["name"] == "update")
    };
    eventually(
        "a JSON log line inside an update span",
        Duration::from_secs(10),
        || in_update().is_some(),
    )
    .await;
    let line = in_update().unwrap();
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
    app.wait_log("request failed; retrying").await;
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
