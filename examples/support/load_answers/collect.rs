//! Collecting the answers: which of our updates each delivered `sendMessage` answers, when it
//! came, and waking the users who wait for it.

use std::collections::HashMap;
use std::time::Instant;

use tokio::sync::oneshot;

use super::MARKER;
use crate::telegram::FakeTelegram;

/// What the fake Telegram delivered that answers one of our messages.
pub(super) struct Delivered {
    pub(super) update_id: i64,
    pub(super) chat: i64,
}

/// Watches the fake Telegram's calls: which update each answer belongs to, and who is waiting.
#[derive(Default)]
pub(super) struct Answers {
    seen_calls: usize,
    pub(super) delivered: Vec<Delivered>,
    /// Last answer time per update.
    pub(super) last: HashMap<i64, Instant>,
    /// `sendMessage` calls (ok) that answer none of our messages: apologies, busy notes.
    pub(super) other_messages: usize,
    pub(super) waiting: HashMap<i64, oneshot::Sender<()>>,
}

impl Answers {
    /// Takes in the calls the fake recorded since the last look.
    pub(super) fn collect(&mut self, telegram: &FakeTelegram) {
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
pub(super) fn update_of(text: &str) -> Option<i64> {
    let rest = &text[text.find(MARKER)? + MARKER.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}
