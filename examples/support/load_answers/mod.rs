//! `load answers`: N private messages from M users to the webhook, each user's in order; waits
//! (bounded) for every answer and checks them against the fake Telegram's `sendMessage` calls.

mod collect;
mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{Semaphore, oneshot};

use crate::{Rig, SECRET};
use collect::Answers;
use report::report;

/// Telegram user ids start here (so they never collide with the bot's id).
const FIRST_USER: i64 = 10_000;
/// Each message says this followed by its update id; the fake echoes it in the answer.
const MARKER: &str = "load-";

/// How each user sends.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Pace {
    /// The next message right after the webhook acknowledged the previous one (queues fill).
    Ack,
    /// The next message after the previous one was answered (as a person would).
    Answer,
}

#[derive(clap::Args)]
pub struct Options {
    /// Messages in all.
    #[arg(long, default_value_t = 10_000)]
    updates: usize,
    /// Distinct users (each gets updates / users messages, in order).
    #[arg(long, default_value_t = 1_000)]
    users: usize,
    /// Webhook requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, value_enum, default_value_t = Pace::Ack)]
    pace: Pace,
    /// Users start one after another, evenly over this many milliseconds (0: all at once).
    /// With a fixed fake latency, users who start together stay in step: their answers all
    /// finish in the same millisecond, and so do the next messages of their queues.
    #[arg(long, default_value_t = 0)]
    spread_ms: u64,
    /// The longest wait for all answers after the last acknowledgement.
    #[arg(long, default_value_t = 300)]
    wait_secs: u64,
}

/// One message sent: its update id, user, when it was posted and acknowledged.
struct Sent {
    update_id: i64,
    user: i64,
    posted: Instant,
    ack: Duration,
    status: u16,
}

/// Sends everything, waits for the answers, prints the report.
pub async fn run(rig: &Rig, options: &Options, latency: Duration) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.users > 0 && options.concurrency > 0,
        "users and concurrency must be positive"
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .build()?;
    let answers = Arc::new(Mutex::new(Answers::default()));
    let deadline_all = Instant::now()
        + Duration::from_secs(options.wait_secs)
        + latency * (options.updates / options.users + 1) as u32 * 4
        + Duration::from_millis(options.spread_ms);
    // Watches the fake's calls so that `Pace::Answer` users hear of their answers.
    let stop = tokio_util::sync::CancellationToken::new();
    let watcher = {
        let (answers, telegram, stop) = (Arc::clone(&answers), rig.telegram.clone(), stop.clone());
        tokio::spawn(async move {
            while Instant::now() < deadline_all && !stop.is_cancelled() {
                answers.lock().collect(&telegram);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(options.concurrency));
    let mut users = Vec::with_capacity(options.users);
    for j in 0..options.users {
        let count =
            options.updates / options.users + usize::from(j < options.updates % options.users);
        let (http, permits, answers, url) = (
            http.clone(),
            Arc::clone(&permits),
            Arc::clone(&answers),
            rig.subgpt.url.clone(),
        );
        let (users_total, pace) = (options.users, options.pace);
        let start =
            started + Duration::from_millis(options.spread_ms) * j as u32 / options.users as u32;
        users.push(tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let user = FIRST_USER + j as i64;
            let mut sent = Vec::with_capacity(count);
            for k in 0..count {
                let update_id = (k * users_total + j + 1) as i64;
                let answered = match pace {
                    Pace::Answer => {
                        let (tx, rx) = oneshot::channel();
                        answers.lock().waiting.insert(update_id, tx);
                        Some(rx)
                    }
                    Pace::Ack => None,
                };
                let permit = permits.acquire().await.expect("the semaphore stays open");
                let posted = Instant::now();
                let status = post(&http, &url, update_id, user).await;
                let ack = posted.elapsed();
                drop(permit);
                sent.push(Sent {
                    update_id,
                    user,
                    posted,
                    ack,
                    status,
                });
                if let Some(rx) = answered {
                    let left = deadline_all.saturating_duration_since(Instant::now());
                    if status != 200 || tokio::time::timeout(left, rx).await.is_err() {
                        break;
                    }
                }
            }
            sent
        }));
    }
    let mut sent = Vec::with_capacity(options.updates);
    for user in users {
        sent.extend(user.await?);
    }
    let acked_in = started.elapsed();
    // Wait, bounded, until every acknowledged update has its answer.
    let accepted: Vec<i64> = sent
        .iter()
        .filter(|s| s.status == 200)
        .map(|s| s.update_id)
        .collect();
    while Instant::now() < deadline_all {
        {
            let a = answers.lock();
            if accepted.iter().all(|id| a.last.contains_key(id)) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Late duplicates show up shortly after; give them a moment (bounded) to arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    let _ = watcher.await;
    answers.lock().collect(&rig.telegram);
    let answered_in = started.elapsed();
    report(rig, &sent, &answers.lock(), latency, acked_in, answered_in);
    Ok(())
}

async fn post(http: &reqwest::Client, url: &str, update_id: i64, user: i64) -> u16 {
    let update = json!({
        "update_id": update_id,
        "message": {
            "message_id": update_id, "date": 1_760_000_000, "text": format!("{MARKER}{update_id}"),
            "from": {"id": user, "is_bot": false, "first_name": "Load", "username": format!("load{user}")},
            "chat": {"id": user, "type": "private", "first_name": "Load", "username": format!("load{user}")},
        }
    });
    match http
        .post(url)
        .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
        .json(&update)
        .timeout(Duration::from_secs(30))
        .send()
        .await
    {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}
