//! `subgpt check`, the operator's doctor (SPEC §2): every check passes on a healthy set-up, a
//! Redis that keeps nothing on disk is only a warning, and each broken part fails on its own
//! line naming its fix.

mod support;

use serde_json::json;
use support::operator::{healthy, run};
use support::*;

#[tokio::test]
async fn check_passes_when_everything_is_right() {
    let redis = RedisServer::start();
    assert_eq!(redis.cli(&["CONFIG", "SET", "appendonly", "yes"]), "OK");
    let (_t, _o, spawn) = healthy(&redis).await;
    let (code, out) = run(spawn).await;
    assert_eq!(code, 0, "{out}");
    for name in [
        "configuration",
        "prices",
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
async fn check_reaches_redis_over_tls_only_with_a_certificate_the_host_trusts() {
    let redis = RedisServer::start_tls();
    // The check's own line (a log line may also name Redis).
    let redis_line = |out: &str| {
        out.lines()
            .find(|l| l.split_whitespace().nth(1) == Some("redis:"))
            .unwrap_or_default()
            .to_string()
    };
    let (_t, _o, spawn) = healthy(&redis).await;
    let ca = redis.ca_file();
    let (_, out) = run(spawn.env("SSL_CERT_FILE", ca.to_str().unwrap())).await;
    // Reached: what is left to say is the persistence warning.
    assert!(redis_line(&out).starts_with("WARN"), "{out}");

    let (_t, _o, spawn) = healthy(&redis).await;
    let (code, out) = run(spawn).await;
    assert_eq!(code, 1, "{out}");
    let line = redis_line(&out);
    assert!(
        line.starts_with("FAIL")
            && line.contains("UnknownIssuer")
            && line.contains("SSL_CERT_FILE"),
        "{out}"
    );
}

#[tokio::test]
async fn check_warns_about_a_model_without_a_price_and_refuses_an_unreadable_price_file() {
    let redis = RedisServer::start();
    assert_eq!(redis.cli(&["CONFIG", "SET", "appendonly", "yes"]), "OK");
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("prices.toml");
    std::fs::write(
        &table,
        "date = \"2026-12-01\"\n[\"other-model\"]\ninput = 1.0\ncached_input = 0.1\noutput = 2.0\n",
    )
    .unwrap();
    let (_t, _o, spawn) = healthy(&redis).await;
    let (code, out) = run(spawn.env("MODEL_PRICES_FILE", table.to_str().unwrap())).await;
    assert_eq!(code, 0, "a warning, not a failure: {out}");
    let line = out
        .lines()
        .find(|l| l.contains("prices"))
        .unwrap_or_default();
    assert!(
        line.starts_with("WARN") && line.contains("gpt-5.4-mini has no price in 1 model(s)"),
        "{out}"
    );
    assert!(line.contains("dated 2026-12-01"), "{line}");

    // A price file that cannot be read is bad configuration (exit 2), for check and serve alike,
    // before anything reaches the network.
    let missing = dir.path().join("missing.toml");
    for command in [&["check"][..], &["serve"][..]] {
        let (t, o, spawn) = healthy(&redis).await;
        let spawn = spawn
            .env("MODEL_PRICES_FILE", missing.to_str().unwrap())
            .command(command);
        let (code, out) = run(spawn).await;
        assert_eq!(code, 2, "{command:?}: {out}");
        assert!(
            out.contains("MODEL_PRICES_FILE") && out.contains("missing.toml"),
            "{out}"
        );
        assert!(t.with(|s| s.calls.is_empty()), "no call to Telegram");
        assert_eq!(o.request_count(), 0);
    }
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
async fn check_into_a_closed_pipe_exits_with_its_verdict_not_a_panic() {
    // `subgpt check | head -1` closes the pipe early; the report lines that follow go nowhere.
    let redis = RedisServer::start();
    let (_t, _o, spawn) = healthy(&redis).await;
    let (code, out) = run(spawn.stdout_closed()).await;
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("panicked"), "{out}");

    let (code, out) = run(Spawn::default()
        .command(&["check"])
        .unset("TELEGRAM_BOT_TOKEN")
        .stdout_closed())
    .await;
    assert_eq!(code, 2, "bad configuration still exits 2:\n{out}");
    assert!(!out.contains("panicked"), "{out}");
}
