//! Answers that appear as they are written (SPEC §5 Streaming, Rich messages): drafts while
//! the fake OpenAI streams SSE in odd chunks, then the final message(s); both API modes.

mod support;

use std::time::{Duration, Instant};

use support::*;

const USER: i64 = 77;

/// An answer of `pieces` three-character pieces with a multi-byte character in each.
fn long_answer(pieces: usize) -> String {
    "ab€".repeat(pieces)
}

async fn streaming_app(mode: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut spawn = Spawn::default().env("OPENAI_API_MODE", mode);
    for (k, v) in extra {
        spawn = spawn.env(k, v);
    }
    spawn.start().await
}

fn first_final_at(app: &TestApp, method: &str) -> Instant {
    app.telegram
        .calls(method)
        .iter()
        .find(|c| c.ok && c.params["chat_id"].as_i64() == Some(USER))
        .map(|c| c.at)
        .expect("a final message")
}

#[tokio::test]
async fn drafts_come_before_the_final_message_in_both_modes() {
    for mode in ["responses", "chat"] {
        let app = streaming_app(mode, &[]).await;
        let answer = long_answer(60);
        let expected = answer.clone();
        app.openai.answer_with(move |_| expected.clone());
        app.openai.with(|s| {
            s.delay = Duration::from_millis(200);
            s.token_every = Duration::from_millis(40);
        });
        app.send_text(1, USER, "write something long").await;
        let texts = app.wait_messages(USER, 1).await;
        assert_eq!(
            texts,
            vec![answer.clone()],
            "{mode}: the final text is the answer"
        );
        let drafts = app.telegram.drafts(USER);
        assert!(!drafts.is_empty(), "{mode}: drafts were shown");
        assert!(drafts.iter().all(|d| d.method == "sendMessageDraft"));
        assert!(drafts[0].at < first_final_at(&app, "sendMessage"), "{mode}");
        let ids: std::collections::HashSet<i64> = drafts
            .iter()
            .map(|d| d.params["draft_id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids.len(), 1, "{mode}: one draft id per answer");
        assert!(!ids.contains(&0));
        let last = drafts.last().unwrap().params["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            answer.starts_with(&last) && !last.is_empty(),
            "{mode}: drafts grow: {last}"
        );
        assert_eq!(app.openai.with(|s| s.streams_opened), 1, "{mode}");
    }
}

#[tokio::test]
async fn a_twenty_second_answer_gets_about_one_draft_a_second() {
    let app = streaming_app("responses", &[]).await;
    // 400 pieces, one every 50 ms: the answer takes 20 s to write.
    let answer = long_answer(400);
    let expected = answer.clone();
    app.openai.answer_with(move |_| expected.clone());
    app.openai
        .with(|s| s.token_every = Duration::from_millis(50));
    app.send_text(1, USER, "a long one").await;
    let deadline = Duration::from_secs(60);
    let telegram = app.telegram.clone();
    eventually("the final message", deadline, || {
        !telegram.sent_texts(USER).is_empty()
    })
    .await;
    let drafts = app.telegram.drafts(USER);
    assert!(
        (10..=22).contains(&drafts.len()),
        "about one draft a second over 20 s, got {}",
        drafts.len()
    );
    for pair in drafts.windows(2) {
        assert!(
            pair[1].at.duration_since(pair[0].at) >= Duration::from_millis(900),
            "drafts at most once a second"
        );
    }
    assert_eq!(app.telegram.sent_texts(USER), vec![answer]);
}

#[tokio::test]
async fn a_server_without_drafts_gets_the_final_message_only() {
    let app = streaming_app("responses", &[]).await;
    app.telegram.with(|s| s.drafts_unsupported = true);
    // Streamed over ~1 s: a first draft goes out a quarter second in, and Telegram's refusal
    // of it is handled long before the answer ends.
    app.openai
        .with(|s| s.token_every = Duration::from_millis(250));
    app.send_text(1, USER, "first").await;
    assert_eq!(app.wait_messages(USER, 1).await, vec!["Echo: first"]);
    let tried = app.telegram.calls("sendMessageDraft").len();
    assert_eq!(tried, 1, "one refused draft turns drafts off");
    app.send_text(2, USER, "second").await;
    assert_eq!(app.wait_messages(USER, 2).await[1], "Echo: second");
    assert_eq!(
        app.telegram.calls("sendMessageDraft").len(),
        tried,
        "no more drafts"
    );
    app.wait_log("Telegram refused a draft").await;
}

#[tokio::test]
async fn a_draft_flood_widens_the_gap_and_the_answer_still_arrives() {
    let app = streaming_app("responses", &[]).await;
    app.telegram.with(|s| s.draft_floods = 1);
    let answer = long_answer(100);
    let expected = answer.clone();
    app.openai.answer_with(move |_| expected.clone());
    app.openai
        .with(|s| s.token_every = Duration::from_millis(40));
    app.send_text(1, USER, "go").await;
    assert_eq!(app.wait_messages(USER, 1).await, vec![answer]);
    let calls = app.telegram.calls("sendMessageDraft");
    assert!(!calls[0].ok, "the first draft was flooded");
    if let Some(next) = calls.get(1) {
        assert!(
            next.at.duration_since(calls[0].at) >= Duration::from_secs(2),
            "retry_after honoured"
        );
    }
}

#[tokio::test]
async fn a_stalled_stream_sends_what_came_and_the_apology_in_both_modes() {
    const ANSWER: &str = "The first part of it, and the rest.";
    for mode in ["responses", "chat"] {
        let quick = [
            ("OPENAI_STREAM_IDLE_SECS", "1"),
            ("OPENAI_SETTLE_AFTER_SECS", "1"),
        ];
        let app = streaming_app(mode, &quick).await;
        app.openai.answer_with(|_| ANSWER.into());
        // Twelve pieces, one every 500 ms: still being written upstream when the stream has
        // been silent for a second after the fourth.
        app.openai.with(|s| {
            s.stall_after_pieces = Some(4);
            s.token_every = Duration::from_millis(500);
        });
        app.send_text(1, USER, "stall").await;
        let texts = app.wait_messages(USER, 2).await;
        // Four pieces of three characters arrived before the silence.
        assert!(texts[0].starts_with("The first pa\n"), "{mode}: {texts:?}");
        assert!(texts[0].contains("cut off"), "{mode}: {texts:?}");
        assert!(texts[1].contains("reference:"), "{mode}: {texts:?}");
        app.wait_log("no event from OpenAI for 1 s").await;
        // The tokens were spent and are recorded: in `responses` mode the background response
        // is cancelled, and OpenAI's usage for it recorded once settled; a chat stream has no usage to ask
        // for once closed, so an estimate is recorded, with a warning.
        let db = app.db_path();
        let tokens = || {
            rusqlite::Connection::open(&db).and_then(|c| {
                c.query_row("SELECT tokens_used FROM user_analytics", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
        };
        eventually("a usage row", Duration::from_secs(10), || {
            tokens().is_ok_and(|n| n > 0)
        })
        .await;
        if mode == "responses" {
            app.wait_log("cancelled the response upstream").await;
            assert_eq!(app.openai.with(|s| s.cancelled.len()), 1);
            assert_eq!(tokens().unwrap() as u64, openai::tokens_for("stall", ""));
        } else {
            app.wait_log("recording an estimate").await;
        }
    }
}

#[tokio::test]
async fn a_stalled_stream_whose_response_completed_upstream_gives_the_whole_answer() {
    const ANSWER: &str = "The first part of it, and the rest.";
    let app = streaming_app("responses", &[("OPENAI_STREAM_IDLE_SECS", "1")]).await;
    app.openai.answer_with(|_| ANSWER.into());
    // The stream goes silent after four pieces, but the response itself is complete.
    app.openai.with(|s| s.stall_after_pieces = Some(4));
    app.send_text(1, USER, "stall").await;
    assert_eq!(app.wait_messages(USER, 1).await, vec![ANSWER]);
    app.wait_log("the response had completed upstream").await;
    let db = app.db_path();
    eventually("its usage row", Duration::from_secs(10), || {
        rusqlite::Connection::open(&db)
            .and_then(|c| {
                c.query_row("SELECT tokens_used FROM user_analytics", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .is_ok_and(|n| n as u64 == openai::tokens_for("stall", ANSWER))
    })
    .await;
    assert_eq!(app.telegram.sent_texts(USER).len(), 1, "no apology");
}

#[tokio::test]
async fn a_dropped_stream_is_resumed_after_its_last_event_not_asked_again() {
    let app = streaming_app("responses", &[]).await;
    let answer = long_answer(30);
    let expected = answer.clone();
    app.openai.answer_with(move |_| expected.clone());
    app.openai.with(|s| {
        s.token_every = Duration::from_millis(10);
        s.drop_after_pieces = Some(5);
    });
    app.send_text(1, USER, "resume me").await;
    assert_eq!(app.wait_messages(USER, 1).await, vec![answer]);
    assert_eq!(app.openai.posts_of("resume me"), 1, "not started again");
    let resumed = app.openai.with(|s| s.resumed_after.clone());
    assert_eq!(resumed.len(), 1);
    // created, in_progress, output_item.added (0..=2), then up to five deltas (3..=7) before
    // the break; what the client had read when it broke is where it resumed. The final text
    // above, whole and not doubled, shows the stitching.
    assert!(
        matches!(resumed[0], Some(n) if (3..=7).contains(&n)),
        "{resumed:?}"
    );
    app.wait_log("resuming it").await;
}

#[tokio::test]
async fn usage_is_recorded_from_the_stream_and_estimated_without_it() {
    for (omit, mode) in [
        (false, "responses"),
        (true, "responses"),
        (false, "chat"),
        (true, "chat"),
    ] {
        let app = streaming_app(mode, &[]).await;
        app.openai.with(|s| s.omit_usage = omit);
        app.send_text(1, USER, "count me").await;
        app.wait_messages(USER, 1).await;
        let db = app.db_path();
        let mut tokens = 0;
        eventually("a usage row", Duration::from_secs(10), || {
            tokens = rusqlite::Connection::open(&db)
                .and_then(|c| {
                    c.query_row("SELECT tokens_used FROM user_analytics", [], |r| r.get(0))
                })
                .unwrap_or(0);
            tokens > 0
        })
        .await;
        if omit {
            // "count me" (8) → 2, "Echo: count me" (14) → 4.
            assert_eq!(tokens, 6, "{mode}: an estimate");
            app.wait_log("recording an estimate").await;
        } else {
            assert!(tokens > 6, "{mode}: the reported usage ({tokens})");
            assert!(!app.logs().contains("recording an estimate"), "{mode}");
        }
    }
}

#[tokio::test]
async fn an_answer_streamed_at_once_gets_no_draft_in_both_modes() {
    for mode in ["responses", "chat"] {
        let app = streaming_app(mode, &[]).await;
        // The whole answer arrives together, as a short answer from the model does.
        app.openai.with(|s| {
            s.delay = Duration::from_millis(100);
            s.token_every = Duration::ZERO;
        });
        app.send_text(1, USER, "hi").await;
        assert_eq!(app.wait_messages(USER, 1).await, vec!["Echo: hi"], "{mode}");
        assert_eq!(app.openai.with(|s| s.streams_opened), 1, "{mode}: streamed");
        // The drafts stop before the final message is sent: none can come after it.
        assert!(
            app.telegram.drafts(USER).is_empty(),
            "{mode}: no draft flashes before a message that is already complete"
        );
    }
}

#[tokio::test]
async fn streaming_off_types_then_answers_without_drafts() {
    let app = streaming_app("responses", &[("STREAMING", "off")]).await;
    app.openai.with(|s| s.delay = Duration::from_millis(300));
    app.send_text(1, USER, "plain").await;
    assert_eq!(app.wait_messages(USER, 1).await, vec!["Echo: plain"]);
    assert!(app.telegram.drafts(USER).is_empty());
    assert!(!app.telegram.calls("sendChatAction").is_empty());
    assert_eq!(app.openai.with(|s| s.streams_opened), 0);
}

#[tokio::test]
async fn rich_messages_carry_the_models_markdown_in_one_message() {
    let app = streaming_app("responses", &[("TELEGRAM_RICH_MESSAGES", "on")]).await;
    let markdown = "## Results\n\n| x | x < 2 & y |\n|---|---|\n| 1 | yes |\n\n\
                    ```rust\nif a < b && c > d { println!(\"&\"); }\n```\n\n\
                    The formula $$E = mc^2$$ and [a link](https://example.com).\n\n";
    let long = format!("{markdown}{}", "Lorem ipsum dolor sit amet. ".repeat(360));
    assert!(long.chars().count() > 10_000);
    let expected = long.clone();
    app.openai.answer_with(move |_| expected.clone());
    app.openai
        .with(|s| s.token_every = Duration::from_millis(1));
    app.send_text(1, USER, "rich").await;
    let telegram = app.telegram.clone();
    eventually("a rich message", Duration::from_secs(20), || {
        !telegram.rich_texts(USER).is_empty()
    })
    .await;
    assert_eq!(
        app.telegram.rich_texts(USER),
        vec![long],
        "one message, the model's Markdown"
    );
    assert!(app.telegram.sent_texts(USER).is_empty(), "no HTML parts");
    let drafts = app.telegram.drafts(USER);
    assert!(drafts.iter().all(|d| d.method == "sendRichMessageDraft"));
}

#[tokio::test]
async fn a_refused_rich_message_falls_back_to_html_parts() {
    let app = streaming_app("responses", &[("TELEGRAM_RICH_MESSAGES", "on")]).await;
    app.telegram.with(|s| {
        s.reject_rich = Some("Bad Request: can't parse rich message: unclosed formula".into())
    });
    let long = "Paragraph with <tags> & more.\n\n".repeat(400);
    let expected = long.clone();
    app.openai.answer_with(move |_| expected.clone());
    app.send_text(1, USER, "rich but refused").await;
    let telegram = app.telegram.clone();
    eventually("HTML parts", Duration::from_secs(20), || {
        telegram.sent_texts(USER).len() >= 3
    })
    .await;
    let parts = app.telegram.sent_texts(USER);
    assert!(parts.iter().all(|p| p.encode_utf16().count() <= 4096));
    assert!(parts[0].contains("&lt;tags&gt; &amp; more"));
    app.wait_log("Telegram refused the rich message").await;
    app.wait_log("unclosed formula").await;
}
