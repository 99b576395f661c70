//! The report of `load answers`: acknowledgements, answers delivered (missing, duplicated, out
//! of order), the overhead per answer, upstream calls and CPU per answer, and the wait until
//! the first text was shown.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Sent;
use super::collect::{Answers, update_of};
use crate::Rig;
use crate::percentiles::{Percentiles, ms};

pub(super) fn report(
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
