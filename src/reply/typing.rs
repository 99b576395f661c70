//! "typing…" within Telegram's limits: at most one chat action per chat every few seconds,
//! across the answers of that chat (a user's queued messages are answered back to back, each
//! with its own typing loop), and later still when Telegram answers 429.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use crate::telegram::{Bot, TelegramError};

/// The shortest gap between two chat actions to one chat (Telegram shows one for ~5 s).
const TYPING_EVERY: Duration = Duration::from_secs(4);
/// With this many chats known, the ones that may type again are forgotten (and then again at
/// twice as many as are left, so the sweeps stay rare however many chats are busy).
const FORGET_AT: usize = 1024;

/// When each chat may next be sent "typing". Shared by all answers; cheap to clone. A chat
/// has one answer in progress at a time (its user's queue), so one loop asks per chat.
#[derive(Clone, Default)]
pub(super) struct TypingClock(Arc<Mutex<Chats>>);

#[derive(Default)]
struct Chats {
    next: HashMap<i64, Instant>,
    sweep_at: usize,
}

impl TypingClock {
    /// How long to wait before "typing" may be sent to `chat`.
    fn wait(&self, chat: i64) -> Duration {
        let now = Instant::now();
        self.0
            .lock()
            .next
            .get(&chat)
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(now))
    }

    /// "typing" was just sent to `chat` (or tried): the next one waits [`TYPING_EVERY`].
    fn sent(&self, chat: i64) {
        self.not_before(chat, Instant::now() + TYPING_EVERY);
    }

    /// Telegram asked to wait `retry_after` before the next request to `chat`.
    fn defer(&self, chat: i64, retry_after: Duration) {
        self.not_before(chat, Instant::now() + retry_after);
    }

    fn not_before(&self, chat: i64, until: Instant) {
        let now = Instant::now();
        let mut chats = self.0.lock();
        if chats.next.len() >= chats.sweep_at.max(FORGET_AT) {
            chats.next.retain(|_, at| *at > now);
            chats.sweep_at = chats.next.len() * 2;
        }
        let at = chats.next.entry(chat).or_insert(until);
        *at = (*at).max(until);
    }

    #[cfg(test)]
    fn chats(&self) -> usize {
        self.0.lock().next.len()
    }
}

/// "typing…" in one chat while it lasts; dropping it stops.
pub struct Typing {
    _task: AbortOnDropHandle<()>,
}

impl Typing {
    /// Sends "typing…" to `chat` whenever `clock` allows: at once, unless the chat got one
    /// within the last [`TYPING_EVERY`] (for its previous answer), then every few seconds.
    pub(super) fn start(telegram: Bot, clock: TypingClock, chat: i64) -> Typing {
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(clock.wait(chat)).await;
                let result = telegram.send_chat_action(chat, "typing").await;
                clock.sent(chat);
                match result {
                    Err(TelegramError::RetryAfter { seconds, .. }) => {
                        clock.defer(chat, Duration::from_secs(seconds));
                    }
                    Err(e) => tracing::debug!(error = %e, "typing action failed"),
                    Ok(()) => {}
                }
            }
        });
        Typing {
            _task: AbortOnDropHandle::new(task),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_action_per_chat_every_few_seconds_across_answers() {
        let clock = TypingClock::default();
        assert_eq!(clock.wait(1), Duration::ZERO, "the first one goes at once");
        clock.sent(1);
        assert_eq!(
            clock.wait(2),
            Duration::ZERO,
            "other chats are not held back"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        // The next answer to chat 1, a second later, waits for the rest of the gap.
        assert_eq!(clock.wait(1), Duration::from_secs(3));
        // Not sending (that answer was done first) leaves the slot for the next one.
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(clock.wait(1), Duration::ZERO);
        clock.sent(1);
        assert_eq!(clock.wait(1), TYPING_EVERY);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pushes_the_next_action_back() {
        let clock = TypingClock::default();
        clock.sent(1);
        clock.defer(1, Duration::from_secs(30));
        assert_eq!(clock.wait(1), Duration::from_secs(30));
        // A shorter retry_after, or a send, never brings it forward.
        clock.defer(1, Duration::from_secs(1));
        clock.sent(1);
        assert_eq!(clock.wait(1), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn chats_that_may_type_again_are_forgotten() {
        let clock = TypingClock::default();
        for chat in 0..FORGET_AT as i64 {
            clock.sent(chat);
        }
        tokio::time::advance(TYPING_EVERY + Duration::from_millis(1)).await;
        clock.sent(-1);
        assert_eq!(clock.chats(), 1);
    }
}
