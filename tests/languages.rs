//! The bot in Russian and English (SPEC §3 `BOT_LANGUAGE`, §5 menus), through the real binary:
//! the language follows the user's `language_code` or is forced; the menus are registered per
//! language and, with `/stats`, in each admin's chat.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const RU_HELP: &str = "Привет! Я ИИ-ассистент для подписчиков";
const EN_HELP: &str = "Hi! I'm an AI assistant for the subscribers of";

/// The last message `user` got, once they have `n`.
async fn nth(app: &TestApp, user: i64, n: usize) -> String {
    app.wait_messages(user, n).await.pop().unwrap()
}

/// Waits until the usage store has `n` rows for `user` (it is written in the background).
async fn wait_rows(app: &TestApp, user: i64, n: i64) {
    let path = app.db_path();
    eventually("the usage rows", Duration::from_secs(20), || {
        rusqlite::Connection::open(&path)
            .and_then(|c| {
                c.query_row(
                    "SELECT COUNT(*) FROM user_analytics WHERE user_id = ?1",
                    [user],
                    |r| r.get::<_, i64>(0),
                )
            })
            .is_ok_and(|rows| rows >= n)
    })
    .await;
}

/// The `setMyCommands` call for `scope` (`None`: the default) and `language_code`.
fn menu_call(app: &TestApp, scope: Value, language: Option<&str>) -> Vec<(String, String)> {
    let calls = app.telegram.calls("setMyCommands");
    let call = calls
        .iter()
        .find(|c| {
            c.params["scope"] == scope
                && c.params.get("language_code").and_then(Value::as_str) == language
        })
        .unwrap_or_else(|| {
            let all: Vec<&Value> = calls.iter().map(|c| &c.params).collect();
            panic!("no setMyCommands for {scope} / {language:?}: {all:#?}")
        });
    call.params["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["command"].as_str().unwrap().to_string(),
                c["description"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn names(menu: &[(String, String)]) -> Vec<&str> {
    menu.iter().map(|(c, _)| c.as_str()).collect()
}

const EVERYONE: [&str; 7] = [
    "start",
    "help",
    "reset",
    "history",
    "export",
    "usage",
    "subscribe",
];

#[tokio::test]
async fn auto_answers_russian_users_in_russian_and_everyone_else_in_english() {
    let app = Spawn::default()
        .env("DAILY_TOKEN_LIMIT", "30")
        .start()
        .await;
    // /help: Russian for `ru` and `ru-RU`, English for `en`, for another language and for none.
    app.send_text_in(1, 501, "/help", "ru").await;
    app.send_text_in(2, 502, "/help", "ru-RU").await;
    app.send_text_in(3, 503, "/help", "en").await;
    app.send_text_in(4, 504, "/help", "de").await;
    app.send_text(5, 505, "/help").await;
    for user in [501, 502] {
        let help = nth(&app, user, 1).await;
        assert!(help.contains(RU_HELP), "{help}");
        assert!(help.contains("https://t.me/test_channel"), "{help}");
        assert!(
            help.contains("data/state.db") && help.contains("пока на него не будет дан ответ"),
            "the privacy note: {help}"
        );
        assert!(!help.contains("/stats"), "not an admin: {help}");
    }
    for user in [503, 504, 505] {
        let help = nth(&app, user, 1).await;
        assert!(help.contains(EN_HELP), "{help}");
        assert!(
            help.contains("only until it is answered"),
            "the privacy note: {help}"
        );
    }

    // A conversation: the model gets the user's words and the same instructions for everyone,
    // so it answers in the user's language without being told one.
    app.send_text_in(6, 501, "Привет, как дела?", "ru").await;
    assert_eq!(nth(&app, 501, 2).await, "Echo: Привет, как дела?");
    app.send_text_in(7, 503, "hello", "en").await;
    assert_eq!(nth(&app, 503, 2).await, "Echo: hello");
    let instructions: Vec<Value> = app.openai.with(|s| {
        s.requests
            .iter()
            .map(|r| r.body["instructions"].clone())
            .collect()
    });
    assert_eq!(instructions.len(), 2);
    assert_eq!(instructions[0], instructions[1]);

    // /usage and the daily limit, with Russian plurals.
    wait_rows(&app, 501, 1).await;
    app.send_text_in(8, 501, "/usage", "ru").await;
    let usage = nth(&app, 501, 3).await;
    assert!(usage.contains("<b>Ваш расход</b>\nСегодня: "), "{usage}");
    assert!(usage.contains("Дневной лимит: 30 токенов"), "{usage}");
    app.send_text_in(9, 501, "ещё вопрос", "ru").await;
    let refusal = nth(&app, 501, 4).await;
    assert!(
        refusal.starts_with("На сегодня лимит исчерпан: вы потратили 30 токенов")
            && refusal.contains("в 00:00 (UTC)"),
        "{refusal}"
    );
    app.send_text_in(10, 503, "/usage", "en").await;
    let usage = nth(&app, 503, 3).await;
    assert!(usage.contains("<b>Your usage</b>\nToday: "), "{usage}");

    // The small texts: an unknown command, a non-text message, /stats for a non-admin.
    app.send_text_in(11, 502, "/nonsense", "ru").await;
    assert_eq!(
        nth(&app, 502, 2).await,
        "Такой команды я не знаю. Отправьте /help — там всё, что я умею."
    );
    app.send_text_in(12, 502, "/stats", "ru").await;
    assert_eq!(
        nth(&app, 502, 3).await,
        "Команда /stats доступна только администраторам бота."
    );
    app.send_text(13, 505, "/stats").await;
    assert_eq!(nth(&app, 505, 2).await, "/stats is for the bot's admins.");

    // The apology, reference id included.
    app.openai.with(|s| s.model_missing = true);
    app.send_text_in(14, 502, "вопрос", "ru").await;
    let apology = nth(&app, 502, 4).await;
    assert!(
        apology.starts_with("Извините, сейчас не получилось получить ответ.")
            && apology.contains("(Код для поддержки: "),
        "{apology}"
    );
    app.send_text(15, 504, "question").await;
    let apology = nth(&app, 504, 2).await;
    assert!(apology.contains("(reference: "), "{apology}");

    // The gate speaks the user's language too.
    app.telegram.set_member(CHANNEL, 506, "left");
    app.send_text_in(16, 506, "пусти", "ru").await;
    let refused = nth(&app, 506, 1).await;
    assert!(
        refused
            .starts_with("Этот ассистент — для подписчиков <a href=\"https://t.me/test_channel\">"),
        "{refused}"
    );
}

#[tokio::test]
async fn the_menus_are_registered_in_both_languages_and_with_stats_for_admins() {
    let app = Spawn::default()
        .env("ADMIN_USER_IDS", "700,701")
        .start()
        .await;
    eventually("the menus", Duration::from_secs(10), || {
        app.telegram.calls("setMyCommands").len() >= 6
    })
    .await;
    let default = json!({"type": "default"});
    let english = menu_call(&app, default.clone(), None);
    assert_eq!(names(&english), EVERYONE);
    assert!(english.contains(&("help".into(), "What this bot does, and privacy".into())));
    let russian = menu_call(&app, default, Some("ru"));
    assert_eq!(names(&russian), EVERYONE);
    assert!(russian.contains(&("reset".into(), "Начать новый разговор".into())));
    for admin in [700, 701] {
        let scope = json!({"type": "chat", "chat_id": admin});
        let english = menu_call(&app, scope.clone(), None);
        let russian = menu_call(&app, scope, Some("ru"));
        let mut with_stats = EVERYONE.to_vec();
        with_stats.push("stats");
        assert_eq!(names(&english), with_stats);
        assert_eq!(names(&russian), with_stats);
        assert!(english.contains(&("stats".into(), "Usage of all users (admins)".into())));
        assert!(russian.contains(&("stats".into(), "Статистика по всем (для админов)".into())));
    }
    assert_eq!(app.telegram.calls("setMyCommands").len(), 6);

    // An admin's /help and /stats in Russian: the chart's caption too.
    app.send_text_in(1, 700, "/help", "ru").await;
    let help = nth(&app, 700, 1).await;
    assert!(
        help.contains("/stats — статистика по всем пользователям"),
        "{help}"
    );
    app.send_text_in(2, 700, "/stats", "ru").await;
    let stats = nth(&app, 700, 2).await;
    assert!(
        stats.starts_with("<b>Статистика</b> (UTC)\n\n<b>Сегодня</b>: 0 запросов, 0 пользователей, 0 токенов\n<b>За 30 дней</b>: "),
        "{stats}"
    );
    eventually("the chart", Duration::from_secs(10), || {
        !app.telegram.calls("sendPhoto").is_empty()
    })
    .await;
    let photo = app.telegram.calls("sendPhoto").pop().unwrap().params;
    assert_eq!(photo["caption"], "Токены по дням за 30 дней (UTC)");
}

#[tokio::test]
async fn an_admin_taken_off_the_list_gets_the_everyday_menu_back() {
    let app = Spawn::default()
        .env("ADMIN_USER_IDS", "700,701")
        .start()
        .await;
    assert!(app.telegram.calls("deleteMyCommands").is_empty());
    app.terminate();
    app.wait_exit(Duration::from_secs(10)).await;
    let app = app.restart(&[("ADMIN_USER_IDS", "700")]).await;
    let deleted: Vec<Value> = app
        .telegram
        .calls("deleteMyCommands")
        .into_iter()
        .map(|c| c.params)
        .collect();
    let scope = json!({"type": "chat", "chat_id": 701});
    assert_eq!(
        deleted,
        vec![
            json!({"scope": scope}),
            json!({"scope": scope, "language_code": "ru"})
        ]
    );
    // Done once: the next start has nothing to take back.
    app.terminate();
    app.wait_exit(Duration::from_secs(10)).await;
    let app = app.restart(&[("ADMIN_USER_IDS", "700")]).await;
    assert_eq!(app.telegram.calls("deleteMyCommands").len(), 2);
}

#[tokio::test]
async fn a_former_admins_menu_that_cannot_be_reset_now_is_tried_again_at_the_next_start() {
    let app = Spawn::default()
        .env("ADMIN_USER_IDS", "700,701,702")
        .start()
        .await;
    app.terminate();
    app.wait_exit(Duration::from_secs(10)).await;
    // 701 never opened the bot (Telegram: "chat not found", nothing to reset); for 702 Telegram
    // has a bad minute.
    app.telegram.with(|s| {
        s.unknown_chats = vec![701];
        s.menu_failing_chats = vec![702];
    });
    let app = app.restart(&[("ADMIN_USER_IDS", "700")]).await;
    app.wait_log("a former admin's chat has no menu to reset")
        .await;
    app.wait_log("trying again at the next start").await;
    let asked = |app: &TestApp, chat: i64| {
        app.telegram
            .calls("deleteMyCommands")
            .iter()
            .filter(|c| c.params["scope"]["chat_id"] == chat)
            .count()
    };
    assert_eq!(asked(&app, 701), 1, "given up at the first 400");
    assert!(asked(&app, 702) >= 1);
    // The next start: Telegram is fine again; only 702 is asked, for both menus.
    app.terminate();
    app.wait_exit(Duration::from_secs(10)).await;
    let before = (asked(&app, 701), asked(&app, 702));
    app.telegram.with(|s| s.menu_failing_chats.clear());
    let app = app.restart(&[("ADMIN_USER_IDS", "700")]).await;
    assert_eq!(asked(&app, 701), before.0, "701 is not asked again");
    assert_eq!(asked(&app, 702), before.1 + 2, "both of 702's menus reset");
    // And then nobody is left to ask.
    app.terminate();
    app.wait_exit(Duration::from_secs(10)).await;
    let app = app.restart(&[("ADMIN_USER_IDS", "700")]).await;
    assert_eq!(
        (asked(&app, 701), asked(&app, 702)),
        (before.0, before.1 + 2)
    );
}

#[tokio::test]
async fn bot_language_forces_one_language_for_everyone() {
    let app = Spawn::default().env("BOT_LANGUAGE", "ru").start().await;
    app.send_text_in(1, 511, "/help", "en").await;
    app.send_text(2, 512, "/help").await;
    for user in [511, 512] {
        let help = nth(&app, user, 1).await;
        assert!(help.contains(RU_HELP), "{help}");
    }
    // Every menu is Russian, the language-less default included.
    eventually("the menus", Duration::from_secs(10), || {
        app.telegram.calls("setMyCommands").len() >= 2
    })
    .await;
    let default = menu_call(&app, json!({"type": "default"}), None);
    assert!(default.contains(&("reset".into(), "Начать новый разговор".into())));

    let app = Spawn::default().env("BOT_LANGUAGE", "en").start().await;
    app.send_text_in(1, 513, "/help", "ru").await;
    let help = nth(&app, 513, 1).await;
    assert!(help.contains(EN_HELP), "{help}");
    eventually("the menus", Duration::from_secs(10), || {
        app.telegram.calls("setMyCommands").len() >= 2
    })
    .await;
    let russian = menu_call(&app, json!({"type": "default"}), Some("ru"));
    assert!(russian.contains(&("reset".into(), "Start a new conversation".into())));
}

#[tokio::test]
async fn the_dispatchers_busy_notice_is_in_the_senders_language() {
    let app = Spawn::default().env("USER_QUEUE_LIMIT", "1").start().await;
    app.openai.with(|s| s.delay = Duration::from_millis(500));
    app.send_text_in(1, 521, "раз", "ru").await;
    let openai = app.openai.clone();
    eventually("the first is at OpenAI", Duration::from_secs(10), || {
        openai.request_count() == 1
    })
    .await;
    app.send_text_in(2, 521, "два", "ru").await;
    app.send_text_in(3, 521, "три", "ru").await;
    let texts = app.wait_messages(521, 3).await;
    assert!(
        texts.contains(
            &"Я ещё отвечаю на ваши предыдущие сообщения. Дождитесь ответов и напишите снова — последнее сообщение я не принял."
                .to_string()
        ),
        "{texts:?}"
    );
    assert!(texts.contains(&"Echo: раз".to_string()), "{texts:?}");
}

#[tokio::test]
async fn history_and_export_headings_follow_the_language() {
    let app = TestApp::spawn().await;
    app.send_text_in(1, 531, "первый вопрос", "ru").await;
    assert_eq!(nth(&app, 531, 1).await, "Echo: первый вопрос");
    app.send_text_in(2, 531, "/history", "ru").await;
    let history = nth(&app, 531, 2).await;
    assert!(
        history.starts_with("<b>Последние сообщения этого разговора</b>"),
        "{history}"
    );
    assert!(history.contains("<b>Вы:</b> первый вопрос"), "{history}");
    assert!(
        history.contains("<b>Ассистент:</b> Echo: первый вопрос"),
        "{history}"
    );
    app.send_text_in(3, 531, "/export", "ru").await;
    eventually("the document", Duration::from_secs(10), || {
        !app.telegram.calls("sendDocument").is_empty()
    })
    .await;
    let doc = app.telegram.calls("sendDocument").pop().unwrap().params;
    assert_eq!(doc["caption"], "Ваш разговор: 2 сообщения.");
    let text = doc["document"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("# Разговор\n") && text.contains("## Вы\n\nпервый вопрос"),
        "{text}"
    );
}
