//! Micro-benchmark: the cost of a cached gate decision.
//!
//!     cargo run --release --example bench_gate [-- redis://127.0.0.1:6379/0]
//!
//! Without an argument the cache is the in-process store; with a Redis URL it is Redis
//! (one round trip per decision). Telegram is never asked: every decision is cached first.

use std::collections::HashMap;
use std::time::Instant;

use subgpt::config::{Config, Purpose};
use subgpt::gate::Gate;
use subgpt::store::kv::Kv;
use subgpt::telegram::Bot;

#[tokio::main]
async fn main() {
    let redis = std::env::args().nth(1);
    let vars: HashMap<String, String> = [
        ("TELEGRAM_BOT_TOKEN", "1:bench"),
        ("OPENAI_API_KEY", "sk-bench"),
        ("CHANNEL_ID", "@bench_channel"),
        // Nothing listens here: a cache miss would fail loudly instead of timing the network.
        ("TELEGRAM_API_URL", "http://127.0.0.1:9"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = Config::from_vars(&vars, Purpose::Bot).expect("config");
    let kv = match &redis {
        Some(url) => Kv::redis(url).expect("redis url"),
        None => Kv::memory(),
    };
    let users = 10_000i64;
    for user in 0..users {
        kv.set(
            &format!("subgpt:1:sub:{user}:@bench_channel"),
            "1",
            Some(std::time::Duration::from_secs(600)),
        )
        .await
        .unwrap();
    }
    let gate = Gate::new(
        config.gate.clone(),
        config.bot.clone(),
        Bot::new(&config.telegram.api_url, config.telegram.bot_token.clone()),
        kv,
        config.kv_namespace(),
    );
    let n: i64 = if redis.is_some() { 100_000 } else { 2_000_000 };
    // Warm up.
    for user in 0..1000 {
        gate.check(user, false).await;
    }
    let started = Instant::now();
    for i in 0..n {
        let (decision, _) = gate.check(i % users, false).await;
        assert_eq!(decision, subgpt::gate::Decision::Allowed);
    }
    let elapsed = started.elapsed();
    println!(
        "{} cached decisions ({}): {:.0} ns each, {:.0} decisions/s",
        n,
        if redis.is_some() {
            "redis"
        } else {
            "in process"
        },
        elapsed.as_nanos() as f64 / n as f64,
        n as f64 / elapsed.as_secs_f64()
    );
}
