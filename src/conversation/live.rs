//! Following a streamed answer: text as it comes (handed to a callback for the drafts), the
//! response id recorded as soon as the stream names it, a dropped Responses stream resumed
//! after its last event, and a stream silent for too long, or still going when the update's
//! time is up, cancelled with what arrived so far.

use std::time::Duration;

use tokio::time::Instant;

use super::ConversationError;
use crate::intake::Receipt;
use crate::openai::stream::{AnswerStream, StreamEvent};
use crate::openai::{OpenAi, OpenAiError, Reply};

/// How many times one answer's dropped stream is resumed before giving up.
const MAX_RESUMES: u32 = 3;
/// The longest wait for OpenAI to confirm a cancelled response (less when the update's
/// deadline is nearer).
const CANCEL_WAIT: Duration = Duration::from_secs(3);

/// What the follower needs to know.
pub(super) struct Follow<'a> {
    pub api: &'a OpenAi,
    /// Responses mode: where to record the id; `None` in chat mode (no resuming either).
    pub receipt: Option<&'a Receipt>,
    /// The response already known (a replay), for resuming.
    pub response_id: Option<String>,
    /// The longest silence before the stream is cancelled.
    pub idle: Duration,
    /// The bound on one (re)opened stream.
    pub limit: Duration,
    /// When the answer must be in ([`Receipt::answer_by`]).
    pub until: Instant,
    /// When the update is cut off ([`Receipt::deadline`]): a cancel waits for part of what
    /// is left.
    pub deadline: Instant,
}

/// Reads `stream` to its end; the answer, or what arrived before it broke.
pub(super) async fn follow(
    mut stream: AnswerStream,
    how: Follow<'_>,
    on_text: &mut (dyn FnMut(&str) + Send),
) -> Result<Reply, ConversationError> {
    let mut text = String::new();
    let mut id = how.response_id.clone();
    let mut resumes = 0;
    loop {
        let silent_at = Instant::now() + how.idle;
        let event = match tokio::time::timeout_at(silent_at.min(how.until), stream.next()).await {
            Err(_) => {
                let why = if how.until < silent_at {
                    LATE.to_string()
                } else {
                    format!("no event from OpenAI for {} s", how.idle.as_secs())
                };
                let upstream = how.receipt.and(id.as_deref());
                return stop(how.api, upstream, text, why, how.deadline).await;
            }
            Ok(event) => event,
        };
        let broke = match event {
            Some(Ok(StreamEvent::Created { id: created })) => {
                if let Some(receipt) = how.receipt
                    && let Err(e) = receipt.record_response(&created).await
                {
                    tracing::warn!(error = %e, "could not record the response id in the inbox");
                }
                id = Some(created);
                continue;
            }
            Some(Ok(StreamEvent::Delta(delta))) => {
                text.push_str(&delta);
                on_text(&text);
                continue;
            }
            Some(Ok(StreamEvent::Completed { usage, model })) => {
                if text.trim().is_empty() {
                    return Err(ConversationError::NoAnswer("the stream had no text".into()));
                }
                return Ok(Reply { text, usage, model });
            }
            // The connection dropped (or ended early): resumable.
            None => "the stream ended before the answer was complete".to_string(),
            Some(Err(e @ OpenAiError::Http { .. })) => e.to_string(),
            // OpenAI said it failed, or sent what cannot be read: not worth asking again.
            Some(Err(e)) => {
                let upstream = how.receipt.and(id.as_deref());
                return stop(how.api, upstream, text, e.to_string(), how.deadline).await;
            }
        };
        let upstream = how.receipt.and(id.as_deref());
        let Some(response) = upstream.filter(|_| resumes < MAX_RESUMES) else {
            return stop(how.api, upstream, text, broke, how.deadline).await;
        };
        resumes += 1;
        let after = stream.last_sequence();
        tracing::warn!(
            reason = broke,
            starting_after = after,
            resumes,
            "the answer's stream broke; resuming it"
        );
        stream = match how.api.resume_response(response, after, how.limit).await {
            Ok(resumed) => resumed,
            Err(e) => {
                let why = format!("{broke}; resuming failed: {e}");
                return stop(how.api, Some(response), text, why, how.deadline).await;
            }
        };
    }
}

/// Why an answer still coming at the update's `answer_by` is cut off.
pub(super) const LATE: &str = "the answer was not complete within ANSWER_DEADLINE_SECS";

/// An answer given up on (silent too long, broken, or not in by the update's `answer_by`),
/// `text` what came of it so far. A background response (`id`, in `responses` mode) is
/// cancelled first, so that OpenAI stops writing (and billing) an answer nobody will see. If
/// OpenAI says it had completed after all, that answer is returned whole; otherwise it is cut
/// off, with the usage OpenAI reports for it so far, and the response is left to be settled:
/// only a later look tells how it really ended.
pub(super) async fn stop(
    api: &OpenAi,
    id: Option<&str>,
    text: String,
    reason: String,
    deadline: Instant,
) -> Result<Reply, ConversationError> {
    let mut partial = Reply {
        text,
        usage: None,
        model: None,
    };
    if let Some(id) = id {
        // Half of what is left at most: the rest is for the messages and the usage.
        let wait = CANCEL_WAIT.min(deadline.saturating_duration_since(Instant::now()) / 2);
        match tokio::time::timeout(wait, api.cancel_response(id)).await {
            Ok(Ok(response)) => {
                let status = response.status.as_deref().unwrap_or("unknown");
                let whole = response.output_text();
                if status == "completed" && !whole.trim().is_empty() {
                    tracing::info!(
                        response_id = id,
                        reason,
                        "the response had completed upstream; answering with it"
                    );
                    return Ok(Reply {
                        text: whole,
                        usage: response.usage,
                        model: response.model,
                    });
                }
                tracing::info!(response_id = id, status, "cancelled the response upstream");
                if whole.len() > partial.text.len() {
                    partial.text = whole;
                }
                partial.usage = response.usage;
                partial.model = response.model;
            }
            Ok(Err(e)) => {
                tracing::warn!(response_id = id, error = %e, "could not cancel the response upstream")
            }
            Err(_) => tracing::warn!(
                response_id = id,
                "OpenAI did not confirm the cancel in time"
            ),
        }
    }
    Err(ConversationError::Interrupted {
        partial,
        reason,
        unsettled: id.map(str::to_string),
    })
}

pub(super) fn interrupted(text: String, reason: String) -> ConversationError {
    ConversationError::Interrupted {
        partial: Reply {
            text,
            usage: None,
            model: None,
        },
        reason,
        unsettled: None,
    }
}
