//! For the operator-command tests (`tests/operator_*.rs`): a command run to its exit, and a
//! set-up that `check` passes.

use std::time::Duration;

use serde_json::json;

use super::{CHANNEL, FakeOpenAi, FakeTelegram, RedisServer, Spawn, telegram};

/// Runs the command to its exit; returns its exit code (-1 when a signal ended it) and output.
pub async fn run(spawn: Spawn) -> (i32, String) {
    let app = spawn.launch().await;
    let status = app.wait_exit(Duration::from_secs(30)).await;
    (status.code().unwrap_or(-1), app.logs())
}

/// A fully healthy set-up for `check`.
pub async fn healthy(redis: &RedisServer) -> (FakeTelegram, FakeOpenAi, Spawn) {
    let telegram = FakeTelegram::start().await;
    let openai = FakeOpenAi::start().await;
    telegram.set_member(CHANNEL, telegram::BOT_ID, "administrator");
    telegram.with(|s| {
        s.webhook = json!({"url": "https://bot.example.com/webhook", "has_custom_certificate": false,
            "pending_update_count": 0, "allowed_updates": ["message", "chat_member"]})
    });
    let spawn = Spawn::default()
        .fakes(&telegram, &openai)
        .env("REDIS_URL", &redis.url())
        .env("WEBHOOK_URL", "https://bot.example.com/webhook")
        .command(&["check"]);
    (telegram, openai, spawn)
}
