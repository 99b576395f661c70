//! `load answers`: N private messages from M users to the webhook, each user's in order; waits
//! (bounded) for every answer and checks them against the fake Telegram's `sendMessage` calls.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{Semaphore, oneshot};

use crate::percentiles::{Percentiles, ms};
use crate::telegram::FakeTelegram;
use crate::{Rig, SECRET};

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

/// What the fake Telegram delivered that answers one of our messages.
struct Delivered {
    update_id: i64,
    chat: i64,
}

/// Watches the fake Telegram's calls: which update each answer belongs to, and who is waiting.
#[derive(Default)]
struct Answers {
    seen_calls: usize,
    delivered: Vec<Delivered>,
    /// Last answer time per update.
    last: HashMap<i64, Instant>,
    /// `sendMessage` calls (ok) that answer none of our messages: apologies, busy notes.
    other_messages: usize,
    waiting: HashMap<i64, oneshot::Sender<()>>,
}

impl Answers {
    /// Takes in the calls the fake recorded since the last look.
    fn collect(&mut self, telegram: &FakeTelegram) {
        let fresh: Vec<(i64, Option<i64>, Instant)> = {
            let state = telegram.state.lock();
            let calls = &state.calls[self.seen_calls.min(state.calls.len())..];
            self.seen_calls = state.calls.len();
            calls
                .iter()
                .filter(|c| c.method == "sendMessage" && c.ok)
                .map(|c| {
                    let chat = c.params["chat_id"].as_i64().unwrap_or_default();
                    let text = c.params["text"].as_str().unwrap_or_default();
                    (chat, update_of(text), c.at)
                })
                .collect()
        };
        for (chat, update, at) in fresh {
            let Some(update_id) = update else {
                self.other_messages += 1;
                continue;
            };
            self.delivered.push(Delivered { update_id, chat });
            self.last.insert(update_id, at);
            if let Some(waiter) = self.waiting.remove(&update_id) {
                let _ = waiter.send(());
            }
        }
    }
}

/// The update id an answer text carries, if it answers one of our messages.
fn update_of(text: &str) -> Option<i64> {
    let rest = &text[text.find(MARKER)? + MARKER.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
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

fn report(
    rig: &Rig,
    sent: &[Sent],
    answers: &Answers,
    latency: Duration,
    acked_in: Duration,
    answered_in: Duration,
) {
    let acked = sent.iter().filter(|s| s.status == 200).count();
    let acks = Percentiles::new(sent.iter().map(|s| s.ack).collect());
    println!(
        "sent {} updates from {} users in {:.2} s: {acked} acknowledged (200), {} not; ack {}",
        sent.len(),
        sent.iter()
            .map(|s| s.user)
            .collect::<std::collections::HashSet<_>>()
            .len(),
        acked_in.as_secs_f64(),
        sent.len() - acked,
        acks.summary(),
    );

    let mut per_update: HashMap<i64, usize> = HashMap::new();
    let mut per_user: HashMap<i64, Vec<i64>> = HashMap::new();
    for d in &answers.delivered {
        *per_update.entry(d.update_id).or_default() += 1;
        per_user.entry(d.chat).or_default().push(d.update_id);
    }
    let duplicates: usize = per_update.values().map(|n| n - 1).sum();
    let violations: usize = per_user
        .values()
        .map(|ids| ids.windows(2).filter(|w| w[1] < w[0]).count())
        .sum();
    let missing = sent
        .iter()
        .filter(|s| s.status == 200 && !per_update.contains_key(&s.update_id))
        .count();
    println!(
        "answers delivered: {} of {acked} in {:.2} s ({missing} missing); duplicates {duplicates}; \
         per-user order violations {violations}; other messages (apologies, notes) {}",
        per_update.len(),
        answered_in.as_secs_f64(),
        answers.other_messages,
    );

    // Overhead: from when the service could start on the update (its POST, or the previous
    // answer to the same user, whichever is later) to its last message, minus the fake latency.
    let mut by_user: HashMap<i64, Vec<&Sent>> = HashMap::new();
    for s in sent.iter().filter(|s| s.status == 200) {
        by_user.entry(s.user).or_default().push(s);
    }
    let asked = asked_at(rig);
    let mut overheads = Vec::with_capacity(acked);
    // A user's first answer also checks the subscription and starts a conversation upstream.
    let (mut firsts, mut later) = (Vec::new(), Vec::with_capacity(acked));
    // The same overhead in two parts: until the fake OpenAI got the request, and after.
    let (mut before, mut after) = (Vec::with_capacity(acked), Vec::with_capacity(acked));
    for list in by_user.values_mut() {
        list.sort_by_key(|s| s.update_id);
        let mut previous: Option<Instant> = None;
        for s in list.iter() {
            let Some(&last) = answers.last.get(&s.update_id) else {
                continue;
            };
            let from = previous.map_or(s.posted, |p| p.max(s.posted));
            let overhead = last.saturating_duration_since(from).saturating_sub(latency);
            overheads.push(overhead);
            match previous {
                None => firsts.push(overhead),
                Some(_) => later.push(overhead),
            }
            if let Some(&started) = asked.get(&s.update_id) {
                before.push(started.saturating_duration_since(from));
                after.push(
                    last.saturating_duration_since(started)
                        .saturating_sub(latency),
                );
            }
            previous = Some(last);
        }
    }
    println!(
        "overhead per answer (last sendMessage − max(POST, previous answer) − {} ms): {}",
        ms(latency),
        Percentiles::new(overheads).summary()
    );
    println!(
        "  of which before the request reached the fake OpenAI: {}; after it (− {} ms): {}",
        Percentiles::new(before).summary(),
        ms(latency),
        Percentiles::new(after).summary()
    );
    println!(
        "  each user's first answer: {}; the others: {}",
        Percentiles::new(firsts).summary(),
        Percentiles::new(later).summary()
    );

    let delivered = per_update.len().max(1) as f64;
    let (posts, gets, conversations) = rig
        .openai
        .with(|s| (s.requests.len(), s.response_gets, s.conversations_created));
    let mut methods: Vec<(String, usize)> = {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for c in &rig.telegram.state.lock().calls {
            *counts.entry(c.method.clone()).or_default() += 1;
        }
        counts.into_iter().collect()
    };
    methods.sort();
    let telegram: Vec<String> = methods
        .iter()
        .map(|(m, n)| format!("{m} {:.2}", *n as f64 / delivered))
        .collect();
    println!(
        "upstream calls per answer: OpenAI POST {:.2}, GET /responses/{{id}} {:.2}, conversations \
         created {:.2}; Telegram {}",
        posts as f64 / delivered,
        gets as f64 / delivered,
        conversations as f64 / delivered,
        telegram.join(", "),
    );
    if let Some(cpu) = rig.subgpt.cpu_time() {
        println!(
            "CPU time of subgpt per answer: {:.2} ms (all of the service's work, acks included)",
            ms(cpu) / delivered
        );
    }
    first_visible(rig, &by_user, answers, &asked, latency);
}

/// When the fake OpenAI got each update's answer request (its input carries the update id).
fn asked_at(rig: &Rig) -> HashMap<i64, Instant> {
    rig.openai.with(|s| {
        s.requests
            .iter()
            .filter_map(|r| {
                let input = r.body["input"].as_str().map(str::to_string).or_else(|| {
                    r.body["messages"]
                        .as_array()
                        .and_then(|m| m.last())
                        .and_then(|m| m["content"].as_str())
                        .map(str::to_string)
                })?;
                Some((update_of(&input)?, r.started))
            })
            .collect()
    })
}

/// How long after the first token could have come each answer showed its first text: its first
/// draft, or its message when it went out without one (an answer complete before the first
/// draft was due).
fn first_visible(
    rig: &Rig,
    by_user: &HashMap<i64, Vec<&Sent>>,
    answers: &Answers,
    asked: &HashMap<i64, Instant>,
    first_token: Duration,
) {
    // Per chat, in order: each draft and message Telegram took (true for a draft).
    let mut shown: HashMap<i64, Vec<(Instant, bool)>> = HashMap::new();
    for c in rig.telegram.state.lock().calls.iter() {
        let draft = c.method.ends_with("Draft");
        if !(c.ok && (draft || c.method == "sendMessage" || c.method == "sendRichMessage")) {
            continue;
        }
        let chat = c.params["chat_id"].as_i64().unwrap_or_default();
        shown.entry(chat).or_default().push((c.at, draft));
    }
    let mut waits = Vec::new();
    let mut drafted = 0usize;
    for (user, list) in by_user {
        let Some(events) = shown.get_mut(user) else {
            continue;
        };
        events.sort_by_key(|(at, _)| *at);
        // Answers to one user come in update order: each one's first text is the first event
        // after the previous answer's last message.
        let mut previous: Option<Instant> = None;
        for s in list {
            let Some(&last) = answers.last.get(&s.update_id) else {
                continue;
            };
            let first = events
                .iter()
                .find(|(at, _)| previous.is_none_or(|p| *at > p) && *at <= last);
            if let (Some(&(at, draft)), Some(started)) = (first, asked.get(&s.update_id)) {
                drafted += usize::from(draft);
                waits.push(at.saturating_duration_since(*started + first_token));
            }
            previous = Some(last);
        }
    }
    let shown_answers = waits.len();
    println!(
        "first text shown after the first token (first draft, or the message when there was none, \
         − (request at the fake + {} ms)): {}; {drafted} of {shown_answers} answers showed a draft first",
        ms(first_token),
        Percentiles::new(waits).summary(),
    );
}
