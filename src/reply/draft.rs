//! Drafts: an answer shown while it is written (`sendMessageDraft`, or `sendRichMessageDraft`
//! with rich messages), through one background task per answer that sends the newest text at
//! most once a second: a quarter second after the first text, then after a gap that widens when
//! Telegram says 429 (its `retry_after` honoured). An answer finished within that quarter
//! second goes out as the final message alone, without a draft flashing before it. A draft
//! refused with 400 or 404 turns drafts off for the chat; the final message is sent either
//! way, by the caller.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;

use super::{RICH_MAX_CHARS, Replier};
use crate::telegram::format::{self, TELEGRAM_LIMIT};
use crate::telegram::{ParseMode, TelegramError};

/// The wait from the first text to the first draft (SPEC §5: within 1 s). Short answers are
/// often complete by then; a draft for them would be one more Telegram call per answer, shown
/// for a moment before the message replaces it.
const FIRST_DRAFT_AFTER: Duration = Duration::from_millis(250);
/// The usual gap between two drafts of one answer.
const GAP: Duration = Duration::from_secs(1);
/// The widest gap, however often Telegram asks to slow down.
const MAX_GAP: Duration = Duration::from_secs(60);

/// The drafts of one answer; dropping it stops them.
pub struct Live {
    replier: Replier,
    chat: i64,
    /// Started by the first text: while the model has written nothing, no task waits.
    drafting: Option<Drafting>,
}

/// The task that sends the drafts, and the newest text it sends from.
struct Drafting {
    /// First, so the task is aborted before the text's sender goes.
    _task: AbortOnDropHandle<()>,
    text: watch::Sender<String>,
}

impl Live {
    pub(super) fn new(replier: Replier, chat: i64) -> Live {
        Live {
            replier,
            chat,
            drafting: None,
        }
    }

    /// The answer so far (the whole of it, Markdown).
    pub fn update(&mut self, text: &str) {
        if let Some(drafting) = &self.drafting {
            drafting.text.send_replace(text.to_string());
            return;
        }
        let (sender, rx) = watch::channel(text.to_string());
        // One non-zero id per answer: Telegram animates the changes of one draft.
        let draft_id = i64::from(fastrand::i32(1..));
        let task = tokio::spawn(run(self.replier.clone(), self.chat, draft_id, rx));
        self.drafting = Some(Drafting {
            _task: AbortOnDropHandle::new(task),
            text: sender,
        });
    }
}

/// Sends drafts from the first text (already in `rx`) until the answer is done.
async fn run(replier: Replier, chat: i64, draft_id: i64, mut rx: watch::Receiver<String>) {
    let mut gap = GAP;
    let mut sent = 0u32;
    // The task is aborted when the answer is done, so a finished answer gets no draft.
    tokio::time::sleep(FIRST_DRAFT_AFTER).await;
    rx.mark_changed();
    loop {
        // Waits for new text; the sender is gone when the answer is done.
        if rx.changed().await.is_err() {
            return;
        }
        let text = rx.borrow_and_update().clone();
        if text.trim().is_empty() {
            continue;
        }
        match send(&replier, chat, draft_id, &text).await {
            Ok(()) => {
                sent += 1;
                gap = GAP;
            }
            Err(TelegramError::RetryAfter { seconds, .. }) => {
                gap = (gap * 2).max(Duration::from_secs(seconds)).min(MAX_GAP);
                tracing::info!(
                    wait_s = gap.as_secs(),
                    "drafts slowed down at Telegram's request"
                );
            }
            Err(e) if matches!(e.code(), Some(400 | 404)) => {
                tracing::warn!(error = %e, drafts = sent, "Telegram refused a draft; no more drafts in this chat");
                replier.refuse_drafts(chat);
                return;
            }
            // Every request turn was taken: this draft is skipped, the next one tries again.
            Err(TelegramError::Busy { .. }) => gap = GAP,
            Err(e) => {
                gap = (gap * 2).min(MAX_GAP);
                tracing::debug!(error = %e, "a draft failed");
            }
        }
        tokio::time::sleep(gap).await;
    }
}

async fn send(
    replier: &Replier,
    chat: i64,
    draft_id: i64,
    markdown: &str,
) -> Result<(), TelegramError> {
    let telegram = replier.telegram();
    if replier.rich() {
        return telegram
            .send_rich_message_draft(chat, draft_id, tail_chars(markdown, RICH_MAX_CHARS))
            .await;
    }
    // Longer than one message: show the part being written, as the final split will have it.
    let parts = format::render(markdown, TELEGRAM_LIMIT);
    let Some(last) = parts.last() else {
        return Ok(());
    };
    telegram
        .send_message_draft(chat, draft_id, &last.html, Some(ParseMode::Html))
        .await
}

/// The end of `text`, at most `max` characters, starting at a line when it can.
fn tail_chars(text: &str, max: usize) -> &str {
    let count = text.chars().count();
    if count <= max {
        return text;
    }
    let start = text.char_indices().nth(count - max).map_or(0, |(i, _)| i);
    let tail = &text[start..];
    match tail.find('\n') {
        Some(nl) if nl + 1 < tail.len() => &tail[nl + 1..],
        _ => tail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_short_enough_and_starts_at_a_line() {
        let text = format!("{}\nsecond line ü\nthird", "a".repeat(100));
        assert_eq!(tail_chars(&text, 1000), text);
        assert_eq!(tail_chars(&text, 20), "second line ü\nthird");
        assert_eq!(tail_chars(&text, 8), "third");
        assert!(tail_chars(&"ü".repeat(50), 10).chars().count() == 10);
    }
}
