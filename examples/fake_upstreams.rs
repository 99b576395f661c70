//! Fake Telegram and OpenAI servers on loopback, to try the real binary by hand or load it
//! without touching the internet (the same fakes the integration tests use).
//!
//!     cargo run --example fake_upstreams -- 18081 18082
//!
//! then run `subgpt serve` with `TELEGRAM_API_URL=http://127.0.0.1:18081`,
//! `OPENAI_BASE_URL=http://127.0.0.1:18082/v1`, and the token and key printed here.
//! Every call the bot makes is printed as it happens; Ctrl-C stops.

#[path = "../tests/support/net.rs"]
mod net;
#[allow(dead_code)]
#[path = "../tests/support/openai/mod.rs"]
mod openai;
#[allow(dead_code)]
#[path = "../tests/support/sse.rs"]
mod sse;
#[allow(dead_code)]
#[path = "../tests/support/telegram/mod.rs"]
mod telegram;

use std::time::Duration;

#[tokio::main]
async fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u16>().expect("a port number"));
    let tg_port = args.next().unwrap_or(18081);
    let ai_port = args.next().unwrap_or(18082);
    let telegram = telegram::FakeTelegram::start_on(tg_port).await;
    let openai = openai::FakeOpenAi::start_on(ai_port).await;
    if let Ok(ms) = std::env::var("FAKE_OPENAI_DELAY_MS") {
        let delay = Duration::from_millis(ms.parse().expect("milliseconds"));
        openai.with(|s| s.delay = delay);
    }
    // A piece of three characters every this many ms (streams and background responses).
    if let Ok(ms) = std::env::var("FAKE_OPENAI_TOKEN_MS") {
        let every = Duration::from_millis(ms.parse().expect("milliseconds"));
        openai.with(|s| s.token_every = every);
    }
    // `POST /responses/{id}/cancel` fails with this status, and the response goes on.
    if let Ok(status) = std::env::var("FAKE_OPENAI_CANCEL_FAILS") {
        let status: u16 = status.parse().expect("an HTTP status");
        openai.with(|s| s.cancel_fails = Some(status));
    }
    // A cancelled response still completes at its time (and then shows as `completed`).
    if std::env::var_os("FAKE_OPENAI_COMPLETES_DESPITE_CANCEL").is_some() {
        openai.with(|s| s.completes_despite_cancel = true);
    }
    println!("TELEGRAM_API_URL={}", telegram.url);
    println!("TELEGRAM_BOT_TOKEN={}", telegram::TOKEN);
    println!("OPENAI_BASE_URL={}", openai.url);
    println!("OPENAI_API_KEY={}", openai::API_KEY);
    let mut seen = 0;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let calls = telegram.state.lock().calls.clone();
        for call in &calls[seen.min(calls.len())..] {
            if std::env::var_os("QUIET").is_none() {
                println!("telegram {} {}", call.method, call.params);
            }
        }
        seen = calls.len();
    }
    println!(
        "{} Telegram calls, {} OpenAI answers, {} cancelled ({} cancel calls), {} response looks",
        seen,
        openai.request_count(),
        openai.with(|s| s.cancelled.len()),
        openai.with(|s| s.cancel_calls),
        openai.with(|s| s.response_gets)
    );
}
