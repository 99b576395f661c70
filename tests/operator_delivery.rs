//! How updates reach the bot, driven as an operator does (SPEC §2): `webhook set/info/delete`
//! against the fake Bot API, and `poll`, which resumes from its saved offset without repeats
//! and explains why it cannot start while a webhook is set or another process polls.

mod support;

use std::time::Duration;

use serde_json::json;
use support::operator::run;
use support::*;

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
    // `subgpt webhook info | head -1`: the rest goes nowhere, and that is no failure.
    let (code, out) = run(base().command(&["webhook", "info"]).stdout_closed()).await;
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("panicked"), "{out}");

    // It needs the token only: a mistake in a variable it never reads does not stop it.
    let (code, out) = run(base()
        .env("ANALYTICS_TIMEZONE", "Mars/Base")
        .env(
            "ASSISTANT_INSTRUCTIONS_FILE",
            "/nonexistent/instructions.md",
        )
        .env("USER_QUEUE_LIMIT", "many")
        .command(&["webhook", "info"]))
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Pending updates:  7"), "{out}");

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
