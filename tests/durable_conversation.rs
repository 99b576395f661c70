//! Conversations are not lost by accident, and an answer is not paid for twice (SPEC §5):
//! the user → conversation map is durable in state.db, Redis shares it; a response asked for
//! before a crash is picked up, not asked again.

mod support;

use std::time::Duration;

use support::*;

const CONV_KEY: &str = "subgpt:123456:conv:";

fn conversation_of(request: &serde_json::Value) -> String {
    request["conversation"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn flushall_on_a_redis_without_persistence_keeps_the_conversation() {
    let redis = RedisServer::start();
    let app = Spawn::default()
        .env("REDIS_URL", &redis.url())
        .start()
        .await;
    app.send_text(1, 51, "one").await;
    app.wait_messages(51, 1).await;
    let id = redis.cli(&["GET", &format!("{CONV_KEY}51")]);
    assert!(id.starts_with("conv_"), "{id}");

    assert_eq!(redis.cli(&["FLUSHALL"]), "OK");
    app.send_text(2, 51, "two").await;
    assert_eq!(app.wait_messages(51, 2).await[1], "Echo: two");
    let bodies: Vec<String> = app.openai.with(|s| {
        s.requests
            .iter()
            .map(|r| conversation_of(&r.body))
            .collect()
    });
    assert_eq!(
        bodies,
        vec![id.clone(), id.clone()],
        "the same conversation"
    );
    assert_eq!(app.openai.with(|s| s.conversations_created), 1);
    // And Redis has it again, for the other instances.
    assert_eq!(redis.cli(&["GET", &format!("{CONV_KEY}51")]), id);
}

#[tokio::test]
async fn a_chat_history_written_back_to_redis_keeps_its_time_to_live() {
    let redis = RedisServer::start();
    let app = Spawn::default()
        .env("REDIS_URL", &redis.url())
        .env("OPENAI_API_MODE", "chat")
        .env("CHAT_HISTORY_TTL_SECS", "3600")
        .start()
        .await;
    app.send_text(1, 56, "one").await;
    app.wait_messages(56, 1).await;
    assert_eq!(redis.cli(&["FLUSHALL"]), "OK");
    // Read (and written back from state.db) before the answer is stored again: the answer is
    // held while the test looks, since the history may not stay in Redis for ever in between.
    app.openai.hold();
    app.send_text(2, 56, "two").await;
    app.openai.wait_in_flight(1).await;
    let key = "subgpt:123456:hist:56";
    let ttl: i64 = redis.cli(&["TTL", key]).parse().unwrap();
    assert!(
        ttl > 3000 && ttl <= 3600,
        "written back with a time to live, not {ttl}"
    );
    app.openai.release();
    assert_eq!(app.wait_messages(56, 2).await[1], "Echo: two");
}

#[tokio::test]
async fn a_redis_read_that_times_out_changes_no_mapping() {
    let redis = RedisServer::start();
    let app = Spawn::default()
        .env("REDIS_URL", &redis.url())
        .start()
        .await;
    app.send_text(1, 52, "one").await;
    app.wait_messages(52, 1).await;
    let id = redis.cli(&["GET", &format!("{CONV_KEY}52")]);

    redis.pause();
    app.send_text(2, 52, "two").await;
    let texts = app.wait_messages(52, 2).await;
    redis.resume();
    assert_eq!(texts[1], "Echo: two", "answered from this instance's copy");
    assert_eq!(app.openai.with(|s| s.conversations_created), 1);
    let last = app
        .openai
        .with(|s| conversation_of(&s.requests.last().unwrap().body));
    assert_eq!(last, id);
    assert_eq!(
        redis.cli(&["GET", &format!("{CONV_KEY}52")]),
        id,
        "unchanged"
    );
    app.wait_log("Redis failed; using this instance's copy of the conversation state")
        .await;
}

#[tokio::test]
async fn an_instance_keeps_a_conversation_another_one_started_through_a_redis_outage() {
    let mut redis = RedisServer::start();
    let (telegram, openai) = (FakeTelegram::start().await, FakeOpenAi::start().await);
    let (first, second) = two_instances(&redis, &telegram, &openai).await;
    first.send_text(1, 55, "one").await;
    first.wait_messages(55, 1).await;
    let id = redis.cli(&["GET", &format!("{CONV_KEY}55")]);
    // The second instance learns the conversation from Redis ...
    second.send_text(2, 55, "two").await;
    second.wait_messages(55, 2).await;
    // ... and goes on with it while Redis is down, instead of apologising.
    redis.stop();
    second.send_text(3, 55, "three").await;
    assert_eq!(second.wait_messages(55, 3).await[2], "Echo: three");
    let conversations: Vec<String> = openai.with(|s| {
        s.requests
            .iter()
            .map(|r| conversation_of(&r.body))
            .collect()
    });
    assert_eq!(conversations, vec![id.clone(), id.clone(), id]);
    assert_eq!(openai.with(|s| s.conversations_created), 1);
}

#[tokio::test]
async fn a_conversation_survives_a_restart_without_redis() {
    let app = TestApp::spawn().await;
    app.send_text(1, 53, "one").await;
    app.wait_messages(53, 1).await;
    app.terminate();
    app.wait_exit(Duration::from_secs(10)).await;
    let app = app.restart(&[]).await;
    app.send_text(2, 53, "two").await;
    app.wait_messages(53, 2).await;
    assert_eq!(app.openai.with(|s| s.conversations_created), 1);
    let history = {
        app.send_text(3, 53, "/history").await;
        app.wait_messages(53, 3).await.pop().unwrap()
    };
    assert!(
        history.contains("one") && history.contains("two"),
        "{history}"
    );
}

#[tokio::test]
async fn sigkill_after_the_response_was_asked_for_picks_it_up_instead_of_asking_again() {
    let app = TestApp::spawn().await;
    app.openai.with(|s| s.delay = Duration::from_secs(2));
    app.send_text(1, 54, "expensive question").await;
    let state = app.dir.path().join("data/state.db");
    eventually(
        "the response id is recorded with the inbox row",
        Duration::from_secs(10),
        || {
            let conn = rusqlite::Connection::open(&state).unwrap();
            conn.query_row(
                "SELECT response_id FROM inbox WHERE update_id = 1",
                [],
                |r| r.get::<_, Option<String>>(0),
            )
            .is_ok_and(|id| id.is_some())
        },
    )
    .await;
    app.kill().await;
    assert!(app.telegram.sent_texts(54).is_empty(), "not answered yet");

    let app = app.restart(&[]).await;
    let texts = app.wait_messages(54, 1).await;
    assert_eq!(texts, vec!["Echo: expensive question"]);
    assert_eq!(app.openai.posts_of("expensive question"), 1, "asked once");
    app.wait_log("picking up the response asked for before the restart")
        .await;
    // Its usage is recorded once too.
    let db = app.db_path();
    eventually("one usage row", Duration::from_secs(10), || {
        rusqlite::Connection::open(&db)
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM user_analytics", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .is_ok_and(|n| n == 1)
    })
    .await;
}
