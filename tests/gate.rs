//! The subscription gate (SPEC §5) through the real service.

mod support;

use std::time::Duration;

use support::*;

const REFUSAL: &str = "This assistant is for the subscribers of";

#[tokio::test]
async fn each_member_status_decides_access() {
    let app = TestApp::spawn().await;
    let cases = [
        ("creator", true),
        ("administrator", true),
        ("member", true),
        ("restricted_in", true),
        ("restricted_out", false),
        ("left", false),
        ("kicked", false),
    ];
    for (i, (status, allowed)) in cases.iter().enumerate() {
        let user = 1000 + i as i64;
        app.telegram.set_member(CHANNEL, user, status);
        app.send_text(i as i64 + 1, user, "question").await;
        let text = app.wait_messages(user, 1).await.pop().unwrap();
        if *allowed {
            assert_eq!(text, "Echo: question", "{status}");
        } else {
            assert!(text.starts_with(REFUSAL), "{status}: {text}");
            assert!(text.contains("https://t.me/test_channel"), "{text}");
        }
    }
    assert_eq!(
        app.openai.request_count(),
        4,
        "refused users never reach OpenAI"
    );
}

#[tokio::test]
async fn two_channels_with_all_and_any() {
    for (policy, expect_mixed) in [("all", false), ("any", true)] {
        let app = Spawn::default()
            .env("CHANNEL_ID", "@chan_one,@chan_two")
            .env("CHANNEL_POLICY", policy)
            .start()
            .await;
        // User 1 in both, user 2 in one, user 3 in none.
        app.telegram.set_member("@chan_two", 2, "left");
        app.telegram.set_member("@chan_one", 3, "left");
        app.telegram.set_member("@chan_two", 3, "kicked");
        for user in 1..=3 {
            app.send_text(user, user, "hi").await;
        }
        assert_eq!(app.wait_messages(1, 1).await[0], "Echo: hi", "{policy}");
        let mixed = app.wait_messages(2, 1).await.pop().unwrap();
        assert_eq!(mixed == "Echo: hi", expect_mixed, "{policy}: {mixed}");
        let none = app.wait_messages(3, 1).await.pop().unwrap();
        assert!(none.starts_with(REFUSAL), "{none}");
        assert!(none.contains("https://t.me/chan_one") && none.contains("https://t.me/chan_two"));
    }
}

#[tokio::test]
async fn a_burst_from_an_uncached_user_asks_telegram_once() {
    let app = TestApp::spawn().await;
    app.telegram
        .with(|s| s.chat_member_delay = Duration::from_millis(200));
    let sends = (0..20).map(|i| app.send_text(i + 1, 77, "burst"));
    futures::future::join_all(sends).await;
    app.wait_messages(77, 20).await;
    assert_eq!(app.telegram.chat_member_calls(77), 1);
}

#[tokio::test]
async fn cached_decisions_expire_and_negative_ones_sooner() {
    let app = Spawn::default()
        .env("SUBSCRIPTION_CACHE_TTL_SECS", "2")
        .env("SUBSCRIPTION_NEGATIVE_TTL_SECS", "1")
        .start()
        .await;
    app.send_text(1, 5, "a").await;
    app.send_text(2, 5, "b").await;
    app.wait_messages(5, 2).await;
    assert_eq!(
        app.telegram.chat_member_calls(5),
        1,
        "second message served from cache"
    );
    eventually(
        "the positive entry to expire",
        Duration::from_secs(10),
        || last_check_older_than(&app, 5, 2600),
    )
    .await;
    app.send_text(3, 5, "c").await;
    app.wait_messages(5, 3).await;
    assert_eq!(
        app.telegram.chat_member_calls(5),
        2,
        "asked again after the TTL"
    );

    // A refused user who joins is let in once the (shorter) negative entry lapses.
    app.telegram.set_member(CHANNEL, 6, "left");
    app.send_text(10, 6, "let me in").await;
    assert!(app.wait_messages(6, 1).await[0].starts_with(REFUSAL));
    app.telegram.set_member(CHANNEL, 6, "member");
    app.send_text(11, 6, "again").await;
    assert!(
        app.wait_messages(6, 2).await[1].starts_with(REFUSAL),
        "negative entry still cached"
    );
    let refused_at = app.telegram.calls("getChatMember").last().unwrap().at;
    eventually(
        "the negative entry to expire",
        Duration::from_secs(10),
        || refused_at.elapsed() > Duration::from_millis(1600),
    )
    .await;
    app.send_text(12, 6, "now?").await;
    assert_eq!(app.wait_messages(6, 3).await[2], "Echo: now?");
}

/// True once `ms` milliseconds passed since the last getChatMember for `user`.
fn last_check_older_than(app: &TestApp, user: i64, ms: u64) -> bool {
    let calls = app.telegram.calls("getChatMember");
    let last = calls
        .iter()
        .rev()
        .find(|c| c.params["user_id"].as_i64() == Some(user))
        .unwrap();
    last.at.elapsed() > Duration::from_millis(ms)
}

#[tokio::test]
async fn chat_member_updates_change_access_at_once() {
    let app = TestApp::spawn().await;
    app.send_text(1, 8, "hello").await;
    app.wait_messages(8, 1).await;
    // Leaves: refused on the very next message, though Telegram (stale) still says member.
    let leave = chat_member_update(2, CHANNEL, -1001, 8, "member", "left");
    assert_eq!(app.post_update(&leave).await, 200);
    eventually("the leave to be applied", Duration::from_secs(5), || {
        app.logs().contains("membership changed")
    })
    .await;
    app.send_text(3, 8, "still there?").await;
    assert!(app.wait_messages(8, 2).await[1].starts_with(REFUSAL));

    // Joins: let in without waiting for the negative TTL, though Telegram (stale) says left.
    app.telegram.set_member(CHANNEL, 9, "left");
    app.send_text(4, 9, "hi").await;
    assert!(app.wait_messages(9, 1).await[0].starts_with(REFUSAL));
    let join = chat_member_update(5, CHANNEL, -1001, 9, "left", "member");
    assert_eq!(app.post_update(&join).await, 200);
    let calls_before = app.telegram.chat_member_calls(9);
    eventually("the join to be applied", Duration::from_secs(5), || {
        app.logs().matches("membership changed").count() == 2
    })
    .await;
    app.send_text(6, 9, "joined").await;
    assert_eq!(app.wait_messages(9, 2).await[1], "Echo: joined");
    assert_eq!(
        app.telegram.chat_member_calls(9),
        calls_before,
        "no new getChatMember call"
    );

    // Another channel's changes don't count.
    let elsewhere = chat_member_update(7, "@other_channel", -1002, 9, "member", "left");
    assert_eq!(app.post_update(&elsewhere).await, 200);
    app.send_text(8, 9, "still in").await;
    assert_eq!(app.wait_messages(9, 3).await[2], "Echo: still in");
}

#[tokio::test]
async fn subscribe_rechecks_now_and_start_help_are_for_everyone() {
    let app = TestApp::spawn().await;
    app.telegram.set_member(CHANNEL, 4, "left");
    app.send_text(1, 4, "/start").await;
    assert!(app.wait_messages(4, 1).await[0].contains("keeps no text"));
    app.send_text(2, 4, "question").await;
    assert!(app.wait_messages(4, 2).await[1].starts_with(REFUSAL));
    app.send_text(3, 4, "/subscribe").await;
    assert!(app.wait_messages(4, 3).await[2].starts_with(REFUSAL));
    app.telegram.set_member(CHANNEL, 4, "member");
    app.send_text(4, 4, "/subscribe").await;
    let yes = app.wait_messages(4, 4).await.pop().unwrap();
    assert!(
        yes.contains("You're subscribed") && yes.contains("/reset"),
        "{yes}"
    );
    assert_eq!(
        app.telegram.chat_member_calls(4),
        3,
        "/subscribe bypasses the cached refusal"
    );
    app.send_text(5, 4, "question").await;
    assert_eq!(app.wait_messages(4, 5).await[4], "Echo: question");
    assert_eq!(
        app.telegram.chat_member_calls(4),
        3,
        "and refreshes the cache"
    );
}

#[tokio::test]
async fn a_leave_announced_while_telegram_is_being_asked_is_not_overwritten_by_its_answer() {
    let app = TestApp::spawn().await;
    app.telegram
        .with(|s| s.chat_member_delay = Duration::from_secs(2));
    app.send_text(1, 14, "hi").await;
    eventually("getChatMember asked", Duration::from_secs(10), || {
        app.telegram.with(|s| s.chat_member_asked) == 1
    })
    .await;
    let leave = chat_member_update(2, CHANNEL, -1001, 14, "member", "left");
    assert_eq!(app.post_update(&leave).await, 200);
    app.wait_log("membership changed").await;
    assert!(
        app.telegram.sent_texts(14).is_empty(),
        "the leave came in while Telegram was still being asked"
    );
    // Telegram's late "member" lets that message through, but is not cached over the leave.
    assert_eq!(app.wait_messages(14, 1).await[0], "Echo: hi");
    app.telegram.with(|s| s.chat_member_delay = Duration::ZERO);
    app.send_text(3, 14, "again").await;
    assert!(app.wait_messages(14, 2).await[1].starts_with(REFUSAL));
    assert_eq!(app.telegram.chat_member_calls(14), 1, "from the cache");
}

#[tokio::test]
async fn admins_pass_without_a_check() {
    let app = Spawn::default()
        .env("ADMIN_USER_IDS", "31, 32")
        .start()
        .await;
    app.telegram.set_default_status("left");
    app.send_text(1, 31, "admin here").await;
    assert_eq!(app.wait_messages(31, 1).await[0], "Echo: admin here");
    assert!(app.telegram.calls("getChatMember").is_empty());
    // Asked, the admin is told the truth about their own subscription, and still gets in.
    app.send_text(2, 31, "/subscribe").await;
    assert!(app.wait_messages(31, 2).await[1].starts_with(REFUSAL));
    assert_eq!(app.telegram.chat_member_calls(31), 1);
    app.send_text(3, 31, "still admin").await;
    assert_eq!(app.wait_messages(31, 3).await[2], "Echo: still admin");
}

#[tokio::test]
async fn redis_outage_falls_back_to_telegram_and_recovers() {
    let mut redis = RedisServer::start();
    let app = Spawn::default()
        .env("REDIS_URL", &redis.url())
        .start()
        .await;
    app.send_text(1, 21, "one").await;
    app.wait_messages(21, 1).await;
    assert_eq!(
        redis.cli(&["GET", "subgpt:123456:sub:21:@test_channel"]),
        "1"
    );

    redis.stop();
    app.send_text(2, 21, "two").await;
    app.send_text(3, 22, "three").await;
    // A known user goes on in the same conversation (this instance's durable copy).
    assert_eq!(app.wait_messages(21, 2).await[1], "Echo: two");
    // A user whose conversation only Redis could tell gets past the gate (Telegram is asked
    // directly), but no new conversation is started for them while Redis cannot be read.
    let text = app.wait_messages(22, 1).await[0].clone();
    assert!(text.contains("reference:"), "{text}");
    assert_eq!(app.telegram.chat_member_calls(22), 1);
    assert_eq!(app.openai.with(|s| s.conversations_created), 1);
    app.send_text(4, 21, "four").await;
    app.wait_messages(21, 3).await;
    app.wait_log("Redis is failing").await;
    assert_eq!(
        app.logs().matches("Redis is failing").count(),
        1,
        "logged once per outage"
    );
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("redis"), "{body}");

    redis.restart();
    app.send_text(5, 23, "five").await;
    app.wait_messages(23, 1).await;
    // The first command after the outage (this update's dedup mark) already reached Redis.
    assert_eq!(redis.cli(&["EXISTS", "subgpt:123456:upd:5"]), "1");
    eventually(
        "the cache to be used again",
        Duration::from_secs(10),
        || redis.cli(&["GET", "subgpt:123456:sub:23:@test_channel"]) == "1",
    )
    .await;
    app.wait_log("Redis is reachable again").await;
}

#[tokio::test]
async fn telegram_failing_with_nothing_cached_fails_closed() {
    let app = TestApp::spawn().await;
    app.telegram
        .with(|s| s.chat_member_error = Some((500, "Internal Server Error".into())));
    app.send_text(1, 40, "hi").await;
    let text = app.wait_messages(40, 1).await.pop().unwrap();
    assert_eq!(
        text,
        "I can't verify your subscription right now, try again in a minute."
    );
    assert_eq!(app.openai.request_count(), 0);
}

#[tokio::test]
async fn a_slow_telegram_times_out_without_blocking_others() {
    let app = Spawn::default()
        .env("TELEGRAM_CHECK_TIMEOUT_MS", "500")
        .env("ADMIN_USER_IDS", "2")
        .start()
        .await;
    app.telegram
        .with(|s| s.chat_member_delay = Duration::from_secs(5));
    app.send_text(1, 1, "slow").await;
    app.send_text(2, 2, "admin is not blocked").await;
    assert_eq!(
        app.wait_messages(2, 1).await[0],
        "Echo: admin is not blocked"
    );
    let text = app.wait_messages(1, 1).await.pop().unwrap();
    assert!(text.contains("can't verify"), "{text}");
}

#[tokio::test]
async fn the_bot_not_being_admin_is_logged_with_the_fix() {
    let app = TestApp::spawn().await;
    app.telegram.with(|s| {
        s.chat_member_error = Some((400, "Bad Request: member list is inaccessible".into()))
    });
    app.send_text(1, 50, "hi").await;
    let text = app.wait_messages(50, 1).await.pop().unwrap();
    assert!(
        text.starts_with("Sorry, I can't check subscriptions"),
        "{text}"
    );
    app.wait_log("make the bot an administrator of @test_channel")
        .await;
    assert_eq!(app.openai.request_count(), 0);
}

#[tokio::test]
async fn a_user_telegram_does_not_know_in_the_channel_is_refused_not_misconfigured() {
    let app = TestApp::spawn().await;
    app.telegram
        .with(|s| s.chat_member_error = Some((400, "Bad Request: user not found".into())));
    app.send_text(1, 51, "hi").await;
    let text = app.wait_messages(51, 1).await.pop().unwrap();
    assert!(text.starts_with(REFUSAL), "{text}");
    assert!(!app.logs().contains("make the bot an administrator"));
    assert_eq!(app.openai.request_count(), 0);
}

#[tokio::test]
async fn gate_decisions_are_counted_by_outcome_and_source() {
    let app = TestApp::spawn().await;
    app.send_text(1, 60, "a").await;
    app.send_text(2, 60, "b").await;
    app.wait_messages(60, 2).await;
    app.wait_metrics(&[
        r#"subgpt_gate_decisions_total{outcome="allowed",source="telegram"} 1"#,
        r#"subgpt_gate_decisions_total{outcome="allowed",source="cache"} 1"#,
    ])
    .await;
}

#[tokio::test]
async fn losing_admin_rights_in_the_channel_is_logged_loudly() {
    let app = TestApp::spawn().await;
    let mut update = chat_member_update(
        1,
        CHANNEL,
        -1001,
        telegram::BOT_ID,
        "administrator",
        "member",
    );
    let change = update
        .as_object_mut()
        .unwrap()
        .remove("chat_member")
        .unwrap();
    update["my_chat_member"] = change;
    assert_eq!(app.post_update(&update).await, 200);
    eventually("the warning", Duration::from_secs(5), || {
        app.logs()
            .contains("the bot is no longer an administrator of @test_channel")
    })
    .await;
}
