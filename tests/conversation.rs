//! The conversation (SPEC §5): answers, retries, apologies, formatting, commands.

mod support;

use std::time::Duration;

use support::*;

#[tokio::test]
async fn telegram_429_is_waited_out_and_resent() {
    let app = TestApp::spawn().await;
    app.telegram.with(|s| s.flood_next_messages = 1);
    app.send_text(1, 3, "hi").await;
    let texts = app.wait_messages(3, 1).await;
    assert_eq!(texts, vec!["Echo: hi"]);
    let attempts = app.telegram.calls("sendMessage");
    assert_eq!(attempts.len(), 2);
    assert!(!attempts[0].ok && attempts[1].ok);
    assert!(
        attempts[1].at.duration_since(attempts[0].at) >= Duration::from_millis(950),
        "waited retry_after"
    );
}

#[tokio::test]
async fn openai_5xx_and_429_are_retried() {
    let app = TestApp::spawn().await;
    app.openai.with(|s| s.fail_next.extend([500, 429, 503]));
    app.send_text(1, 4, "retry me").await;
    let texts = app.wait_messages(4, 1).await;
    assert_eq!(texts, vec!["Echo: retry me"]);
    assert_eq!(app.openai.request_count(), 4);
}

#[tokio::test]
async fn persistent_failure_gets_one_polite_sentence_with_a_reference() {
    let app = TestApp::spawn().await;
    app.openai.with(|s| s.fail_always = Some(500));
    app.send_text(1, 5, "doomed").await;
    let texts = app.wait_messages(5, 1).await;
    assert_eq!(texts.len(), 1);
    let text = &texts[0];
    assert!(
        text.starts_with("Sorry, I couldn't get an answer just now."),
        "{text}"
    );
    assert!(
        !text.contains("secret-upstream-detail") && !text.contains("500"),
        "{text}"
    );
    let reference = text
        .rsplit("reference: ")
        .next()
        .unwrap()
        .trim_end_matches(')');
    assert_eq!(reference.len(), 8);
    assert!(
        app.logs().contains(reference),
        "the reference leads to the log line"
    );
    assert_eq!(app.openai.request_count(), 4, "first try and three retries");
}

#[tokio::test]
async fn long_answers_are_formatted_and_split() {
    let app = TestApp::spawn().await;
    let paragraph = "Some <b>words</b> & more words in a paragraph that goes on. ".repeat(12);
    let code = format!("```rust\n{}```", "let x = a < b && c > d;\n".repeat(120));
    let mut reply = String::new();
    while reply.chars().count() < 10_000 {
        reply.push_str(&format!(
            "**Bold** and _italic_ text. {paragraph}\n\n{code}\n\n"
        ));
    }
    app.openai.answer_with(move |_| reply.clone());
    app.send_text(1, 6, "long please").await;
    eventually("all parts", Duration::from_secs(20), || {
        app.telegram.sent_texts(6).len() >= 3
    })
    .await;
    // Let the remaining parts arrive: the last one closes the final code block.
    eventually("the final part", Duration::from_secs(20), || {
        app.telegram
            .sent_texts(6)
            .last()
            .is_some_and(|t| t.ends_with("</code></pre>") || t.ends_with('.'))
    })
    .await;
    let parts = app.telegram.sent_texts(6);
    for part in &parts {
        assert!(part.encode_utf16().count() <= 4096);
        assert!(!part.contains("<b>words</b>"), "raw HTML is shown escaped");
        assert_eq!(
            part.matches("<pre>").count(),
            part.matches("</pre>").count(),
            "balanced: {part}"
        );
    }
    let all = parts.join("");
    assert!(all.contains("&lt;b&gt;words&lt;/b&gt; &amp; more"));
    assert!(all.contains("<b>Bold</b>") && all.contains("<i>italic</i>"));
    assert!(
        all.contains("<pre><code class=\"language-rust\">let x = a &lt; b &amp;&amp; c &gt; d;")
    );
    let sends = app.telegram.calls("sendMessage");
    assert!(sends.iter().all(|c| c.params["parse_mode"] == "HTML"));
}

#[tokio::test]
async fn a_part_telegram_cannot_parse_is_resent_as_plain_text() {
    let app = TestApp::spawn().await;
    app.telegram.with(|s| s.reject_html = true);
    app.openai.answer_with(|_| "**Bold** <tag> & done".into());
    app.send_text(1, 8, "x").await;
    let texts = app.wait_messages(8, 1).await;
    assert_eq!(texts, vec!["Bold <tag> & done"]);
    let last = app.telegram.calls("sendMessage").pop().unwrap();
    assert!(last.params.get("parse_mode").is_none());
}

#[tokio::test]
async fn history_export_and_reset() {
    let app = TestApp::spawn().await;
    app.send_text(1, 9, "/history").await;
    assert!(app.wait_messages(9, 1).await[0].contains("empty"));
    app.send_text(2, 9, "first question").await;
    app.send_text(3, 9, "second <question>").await;
    app.wait_messages(9, 3).await;

    app.send_text(4, 9, "/history").await;
    let history = app.wait_messages(9, 4).await.pop().unwrap();
    assert!(history.contains("<b>You:</b> first question"), "{history}");
    assert!(
        history.contains("<b>Assistant:</b> Echo: second &lt;question&gt;"),
        "{history}"
    );
    assert!(
        history.find("first question").unwrap() < history.find("second").unwrap(),
        "oldest first"
    );

    app.send_text(5, 9, "/export").await;
    eventually("the document", Duration::from_secs(10), || {
        !app.telegram.calls("sendDocument").is_empty()
    })
    .await;
    let doc = app.telegram.calls("sendDocument").pop().unwrap().params;
    assert_eq!(doc["chat_id"], 9);
    assert!(
        doc["document"]["file_name"]
            .as_str()
            .unwrap()
            .ends_with(".md")
    );
    let text = doc["document"]["text"].as_str().unwrap();
    assert!(
        text.contains("## You\n\nfirst question")
            && text.contains("## Assistant\n\nEcho: second <question>"),
        "{text}"
    );

    app.send_text(6, 9, "/reset").await;
    assert!(app.wait_messages(9, 5).await[4].contains("new conversation"));
    assert_eq!(
        app.openai.with(|s| s.deleted.len()),
        1,
        "the old conversation is deleted upstream"
    );
    app.send_text(7, 9, "fresh start").await;
    app.wait_messages(9, 6).await;
    app.send_text(8, 9, "/history").await;
    let history = app.wait_messages(9, 7).await.pop().unwrap();
    assert!(
        history.contains("fresh start") && !history.contains("first question"),
        "{history}"
    );
    assert_eq!(app.openai.with(|s| s.conversations_created), 2);
}

#[tokio::test]
async fn help_names_the_channel_and_the_privacy_promise() {
    let app = TestApp::spawn().await;
    app.send_text(1, 10, "/start").await;
    let text = app.wait_messages(10, 1).await.pop().unwrap();
    assert!(text.contains("https://t.me/test_channel"), "{text}");
    assert!(text.contains("stores no text"), "{text}");
    assert_eq!(app.openai.request_count(), 0);
    let commands = app.telegram.calls("setMyCommands");
    assert_eq!(commands.len(), 1, "menu registered at start-up");
    let names: Vec<&str> = commands[0].params["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    for name in ["help", "reset", "history", "export", "usage", "subscribe"] {
        assert!(names.contains(&name), "{names:?}");
    }
}

#[tokio::test]
async fn chat_mode_keeps_the_history_itself() {
    let app = Spawn::default()
        .env("OPENAI_API_MODE", "chat")
        .start()
        .await;
    app.send_text(1, 13, "remember me").await;
    app.send_text(2, 13, "and this").await;
    let texts = app.wait_messages(13, 2).await;
    assert_eq!(texts, vec!["Echo: remember me", "Echo: and this"]);
    let second = app.openai.with(|s| s.requests[1].body.clone());
    let roles: Vec<&str> = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, vec!["system", "user", "assistant", "user"]);
    app.send_text(3, 13, "/reset").await;
    app.wait_messages(13, 3).await;
    app.send_text(4, 13, "new").await;
    app.wait_messages(13, 4).await;
    let third = app.openai.with(|s| s.requests[2].body.clone());
    assert_eq!(
        third["messages"].as_array().unwrap().len(),
        2,
        "history forgotten after /reset"
    );
}

#[tokio::test]
async fn no_secret_reaches_the_logs() {
    // Debug logging, a Telegram that is down for sends, and failing OpenAI: the paths that
    // print URLs and errors.
    let app = Spawn::default()
        .env("RUST_LOG", "debug")
        .env("LOG_FORMAT", "json")
        .start()
        .await;
    app.openai.with(|s| s.fail_always = Some(401));
    app.telegram.with(|s| s.reject_html = true);
    app.send_text(1, 14, "hello").await;
    app.wait_messages(14, 1).await;
    let url = format!("{}/webhook", app.base);
    let _ = app
        .http
        .post(&url)
        .header("X-Telegram-Bot-Api-Secret-Token", "wrong")
        .body("{}")
        .send()
        .await
        .unwrap();
    app.terminate();
    app.wait_exit(Duration::from_secs(20)).await;
    let logs = app.logs();
    assert!(logs.lines().count() > 5, "{logs}");
    for secret in [
        telegram::TOKEN,
        "TEST-token_abcdefghijklmnop",
        openai::API_KEY,
        SECRET,
    ] {
        assert!(!logs.contains(secret), "secret {secret} in logs:\n{logs}");
    }
    assert!(!logs.contains("hello"), "no message text in logs");
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|_| panic!("not JSON: {line}"));
    }
}

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
    app.openai.with(|s| s.delay = Duration::from_secs(4));
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
    assert_eq!(app.openai.inputs(), vec!["slow one"]);
    assert!(
        app.logs().contains("not sending it again"),
        "{}",
        app.logs()
    );
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
    assert!(
        app.logs().contains("model_not_found"),
        "the log names the cause"
    );
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
    let app = TestApp::spawn().await;
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
    let sends = app.telegram.calls("sendMessage");
    let oks: Vec<bool> = sends.iter().map(|c| c.ok).collect();
    assert_eq!(oks, vec![false, false, true, true]);
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
    let oks: Vec<bool> = app
        .telegram
        .calls("sendMessage")
        .iter()
        .map(|c| c.ok)
        .collect();
    assert_eq!(oks, vec![false, true, true]);
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
