//! Following a streamed answer: text as it comes (handed to a callback for the drafts), the
//! response id recorded as soon as the stream names it, a dropped Responses stream resumed
//! after its last event, and a stream silent for too long cancelled with what arrived so far.

use std::time::Duration;

use super::ConversationError;
use crate::intake::Receipt;
use crate::openai::stream::{AnswerStream, StreamEvent};
use crate::openai::{OpenAi, OpenAiError, Reply};

/// How many times one answer's dropped stream is resumed before giving up.
const MAX_RESUMES: u32 = 3;

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
        let event = match tokio::time::timeout(how.idle, stream.next()).await {
            Err(_) => {
                return Err(interrupted(
                    text,
                    format!("no event from OpenAI for {} s", how.idle.as_secs()),
                ));
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
            Some(Err(e)) => return Err(interrupted(text, e.to_string())),
        };
        let resumable = how.receipt.is_some() && resumes < MAX_RESUMES;
        let Some(response) = id.as_deref().filter(|_| resumable) else {
            return Err(interrupted(text, broke));
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
            Err(e) => return Err(interrupted(text, format!("{broke}; resuming failed: {e}"))),
        };
    }
}

fn interrupted(text: String, reason: String) -> ConversationError {
    ConversationError::Interrupted {
        partial: Reply {
            text,
            usage: None,
            model: None,
        },
        reason,
    }
}
