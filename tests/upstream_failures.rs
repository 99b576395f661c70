//! Upstream failures (SPEC §5, "Retries never bill twice", "Bounded work"): what is sent
//! again and what is not, which OpenAI errors lose a conversation, a paging cursor that never
//! moves, Telegram sends that fail on the way, and how many are in flight at once.

mod support;

use std::time::Duration;

use support::*;

/// The conversation id each answer request was sent in, oldest first.
fn conversations_used(app: &TestApp) -> Vec<String> {
    app.openai.with(|s| {
        s.requests
            .iter()
            .map(|r| {
                r.body["conversation"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    })
}

#[tokio::test]
async fn a_time_out_after_the_request_was_sent_is_not_repeated() {
    let app = Spawn::default()
        .env("OPENAI_TIMEOUT_SECS", "1")
        .start()
        .await;
    app.openai.with(|s| s.post_delay = Duration::from_secs(4));
    app.send_text(1, 20, "slow one").await;
    let texts = app.wait_messages(20, 1).await;
    assert!(
        texts[0].starts_with("Sorry, I couldn't get an answer"),
        "{texts:?}"
    );
    // The apology comes after the client gave up, so no later POST can follow for this input.
    assert_eq!(
        app.openai.with(|s| s.responses_posted),
        1,
        "one POST, never repeated"
    );
    app.wait_log("not sending it again").await;
}

#[tokio::test]
async fn model_not_found_is_an_error_not_a_lost_conversation() {
    let app = TestApp::spawn().await;
    app.send_text(1, 21, "first").await;
    app.wait_messages(21, 1).await;
    app.openai.with(|s| s.model_missing = true);
    app.send_text(2, 21, "second").await;
    let texts = app.wait_messages(21, 2).await;
    assert!(
        texts[1].starts_with("Sorry, I couldn't get an answer"),
        "{texts:?}"
    );
    let (created, deleted, posted) = app.openai.with(|s| {
        (
            s.conversations_created,
            s.deleted.clone(),
            s.responses_posted,
        )
    });
    assert_eq!(created, 1, "no POST /conversations");
    assert!(deleted.is_empty(), "no DELETE");
    assert_eq!(posted, 2, "a 404 is not retried");
    app.wait_log("model_not_found").await;
    // The model is fixed: the same conversation goes on.
    app.openai.with(|s| s.model_missing = false);
    app.send_text(3, 21, "third").await;
    assert_eq!(app.wait_messages(21, 3).await[2], "Echo: third");
    let used = conversations_used(&app);
    assert_eq!(used.len(), 2);
    assert_eq!(used[0], used[1], "the mapping was kept");
}

#[tokio::test]
async fn a_conversation_openai_no_longer_knows_is_started_again() {
    started_again(TestApp::spawn().await).await;
}

/// The same without streaming: the background response is polled instead of streamed.
#[tokio::test]
async fn a_conversation_openai_no_longer_knows_is_started_again_without_streaming() {
    started_again(Spawn::default().env("STREAMING", "off").start().await).await;
}

async fn started_again(app: TestApp) {
    app.send_text(1, 22, "first").await;
    app.wait_messages(22, 1).await;
    app.openai.with(|s| s.forget_conversations());
    app.send_text(2, 22, "second").await;
    assert_eq!(app.wait_messages(22, 2).await[1], "Echo: second");
    app.send_text(3, 22, "third").await;
    app.wait_messages(22, 3).await;
    assert_eq!(app.openai.with(|s| s.conversations_created), 2);
    let used = conversations_used(&app);
    let known = app.openai.with(|s| s.conversation_ids());
    assert_eq!(used.len(), 3);
    assert_ne!(used[0], used[1], "a new conversation after the 404");
    assert_eq!(used[1], used[2], "and the new mapping is kept");
    assert_eq!(known, vec![used[2].clone()]);
}

#[tokio::test]
async fn a_cursor_that_never_advances_ends_the_history() {
    let app = TestApp::spawn().await;
    app.send_text(1, 23, "hello").await;
    app.wait_messages(23, 1).await;
    app.openai.with(|s| s.stuck_cursor = true);
    app.send_text(2, 23, "/history").await;
    eventually("the history", Duration::from_secs(5), || {
        app.telegram.sent_texts(23).len() >= 2
    })
    .await;
    let history = app.telegram.sent_texts(23).pop().unwrap();
    assert_eq!(history.matches("hello").count(), 1, "{history}");
    assert_eq!(
        app.openai.with(|s| s.item_pages_served),
        2,
        "stopped at the first page that did not move the cursor"
    );
    app.send_text(3, 23, "still there?").await;
    assert_eq!(app.wait_messages(23, 3).await[2], "Echo: still there?");
}

/// Sends `text` from `user`, waits for its answer, then a second message and its answer, so
/// any late duplicate of the first would have arrived before the second. Returns the texts.
async fn answered_once(app: &TestApp, user: i64, text: &str) -> Vec<String> {
    app.send_text(1, user, text).await;
    app.wait_messages(user, 1).await;
    app.send_text(2, user, "next").await;
    app.wait_messages(user, 2).await
}

#[tokio::test]
async fn telegram_5xx_on_send_message_is_retried_and_the_answer_arrives_once() {
    let app = TestApp::spawn().await;
    app.telegram
        .with(|s| s.fail_next_messages.extend([502, 503]));
    let texts = answered_once(&app, 24, "hi").await;
    assert_eq!(texts, vec!["Echo: hi", "Echo: next"]);
    assert_eq!(
        app.telegram.delivered("sendMessage"),
        vec![false, false, true, true]
    );
    let sends = app.telegram.calls("sendMessage");
    assert!(
        sends[1].at.duration_since(sends[0].at) >= Duration::from_millis(250),
        "backed off before re-sending"
    );
}

#[tokio::test]
async fn a_connection_lost_on_send_message_is_retried_and_the_answer_arrives_once() {
    let app = TestApp::spawn().await;
    app.telegram.with(|s| s.drop_next_messages = 1);
    let texts = answered_once(&app, 25, "hi").await;
    assert_eq!(texts, vec!["Echo: hi", "Echo: next"]);
    assert_eq!(
        app.telegram.delivered("sendMessage"),
        vec![false, true, true]
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_is_given_up_with_a_log_line() {
    let app = TestApp::spawn().await;
    app.telegram.with(|s| {
        s.flood_next_messages = 1;
        s.flood_retry_after = 3600;
    });
    app.send_text(1, 26, "hi").await;
    eventually("the give-up log line", Duration::from_secs(10), || {
        app.logs().contains("longer than the cap")
    })
    .await;
    assert_eq!(app.telegram.calls("sendMessage").len(), 1, "not re-sent");
    // The user's queue moves on.
    app.send_text(2, 26, "again").await;
    assert_eq!(app.wait_messages(26, 1).await, vec!["Echo: again"]);
}

#[tokio::test]
async fn a_read_that_timed_out_is_asked_again() {
    let app = Spawn::default()
        .env("OPENAI_TIMEOUT_SECS", "1")
        .start()
        .await;
    app.send_text(1, 27, "remember this").await;
    app.wait_messages(27, 1).await;
    app.openai.with(|s| s.slow_item_pages = 1);
    app.send_text(2, 27, "/history").await;
    let history = app.wait_messages(27, 2).await.pop().unwrap();
    assert!(history.contains("remember this"), "{history}");
    assert_eq!(
        app.openai.with(|s| s.item_pages_served),
        2,
        "the GET timed out once and was sent again"
    );
}

#[tokio::test]
async fn telegram_requests_in_flight_are_bounded_and_drafts_do_not_queue() {
    use std::sync::Arc;

    use subgpt::secret::Secret;
    use subgpt::telegram::{Bot, MAX_IN_FLIGHT, TelegramError};

    let fake = telegram::FakeTelegram::start().await;
    let hold = Arc::new(tokio::sync::Semaphore::new(0));
    fake.with(|s| s.hold_messages = Some(Arc::clone(&hold)));
    let bot = Bot::new(&fake.url, Secret::new(telegram::TOKEN));
    let total = MAX_IN_FLIGHT + 8;
    let sends: Vec<_> = (0..total)
        .map(|i| {
            let bot = bot.clone();
            tokio::spawn(async move { bot.send_message(30, &format!("part {i}"), None).await })
        })
        .collect();
    // Every request is either held by the fake or waiting for a turn.
    eventually(
        "all requests in flight or waiting",
        Duration::from_secs(20),
        || fake.with(|s| s.messages_in_flight) + bot.waiting_for_turn() == total,
    )
    .await;
    assert_eq!(bot.waiting_for_turn(), total - MAX_IN_FLIGHT);
    // Best-effort calls do not queue behind them: skipped at once, nothing sent.
    let typing = tokio::time::timeout(Duration::from_secs(5), bot.send_chat_action(30, "typing"))
        .await
        .expect("not held up");
    assert!(
        matches!(typing, Err(TelegramError::Busy { .. })),
        "{typing:?}"
    );
    let draft = tokio::time::timeout(
        Duration::from_secs(5),
        bot.send_message_draft(30, 1, "so far", None),
    )
    .await
    .expect("not held up");
    assert!(
        matches!(draft, Err(TelegramError::Busy { .. })),
        "{draft:?}"
    );
    hold.add_permits(total);
    for send in sends {
        send.await.expect("no panic").expect("sent");
    }
    assert_eq!(fake.calls("sendMessage").len(), total, "all were sent");
    assert!(fake.calls("sendChatAction").is_empty());
    assert!(fake.calls("sendMessageDraft").is_empty());
    // With turns free again, they go out.
    bot.send_chat_action(30, "typing").await.expect("sent");
    assert_eq!(
        fake.with(|s| s.max_messages_in_flight),
        MAX_IN_FLIGHT,
        "the rest waited for a turn"
    );
}
