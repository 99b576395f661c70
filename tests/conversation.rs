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
    app.wait_log(reference).await;
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
    let lines = reply.matches("let x = a < b && c > d;").count();
    app.openai.answer_with(move |input| match input {
        "and now?" => "That is all.".into(),
        _ => reply.clone(),
    });
    app.send_text(1, 6, "long please").await;
    app.send_text(2, 6, "and now?").await;
    // One user's answers go out in order, so every part is in once the next answer is.
    eventually("the next answer", Duration::from_secs(20), || {
        app.telegram.sent_texts(6).last().map(String::as_str) == Some("That is all.")
    })
    .await;
    let mut parts = app.telegram.sent_texts(6);
    parts.pop();
    assert!(parts.len() >= 3, "split into parts: {}", parts.len());
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
    assert_eq!(
        all.matches("let x = a &lt; b &amp;&amp; c &gt; d;").count(),
        lines,
        "nothing lost"
    );
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
    assert!(text.contains("keeps no text"), "{text}");
    assert!(
        text.contains("data/state.db") && text.contains("until it is answered"),
        "{text}"
    );
    assert_eq!(app.openai.request_count(), 0);
    let commands = app.telegram.calls("setMyCommands");
    assert_eq!(
        commands.len(),
        2,
        "menus registered at start-up: English, and Russian (tests/languages.rs)"
    );
    assert!(commands[0].params.get("language_code").is_none());
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
async fn in_chat_mode_help_says_the_bot_keeps_the_conversation_and_for_how_long() {
    let app = Spawn::default()
        .env("OPENAI_API_MODE", "chat")
        .env("CHAT_HISTORY_TTL_SECS", "7200")
        .start()
        .await;
    app.send_text(1, 11, "/help").await;
    let text = app.wait_messages(11, 1).await.pop().unwrap();
    assert!(!text.contains("keeps no text"), "{text}");
    assert!(
        text.contains("keeps its text") && text.contains("for 2 hours after your last message"),
        "{text}"
    );
    assert!(text.contains("/reset erases it now"), "{text}");
    app.send_text_in(2, 12, "/help", "ru").await;
    let text = app.wait_messages(12, 1).await.pop().unwrap();
    assert!(
        text.contains("хранит его текст") && text.contains("2 часа"),
        "{text}"
    );
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
