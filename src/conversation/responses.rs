//! Responses + Conversations: one OpenAI Conversation per user, each answer a background
//! `POST /responses` in it whose id is recorded with the update's inbox row before the answer
//! is awaited. A replay after a crash fetches that response instead of asking (and paying)
//! again.

use std::time::Duration;

use tokio::time::Instant;

use super::live::{Follow, LATE, follow, stop};
use super::{ConversationError, UserState};
use crate::config::ConversationConfig;
use crate::intake::Receipt;
use crate::openai::responses::{CreateResponse, ResponseObject, turn_of_item};
use crate::openai::{OpenAi, Reply, Turn};

/// Conversation items fetched per page for `/history` and `/export`.
const PAGE: usize = 100;
/// The most pages read for one `/history` or `/export` (10,000 items): a bound on the loop
/// even when the server keeps saying `has_more`.
const MAX_PAGES: usize = 100;
/// Waits between looks at a background response: from the first, growing to the last.
const POLL_FIRST: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_secs(2);
/// The most looks at one background response (about 20 minutes at the longest wait); the
/// update's deadline normally ends the wait long before.
const MAX_POLLS: usize = 600;

/// The Responses + Conversations flow.
pub struct ResponsesConversations {
    api: OpenAi,
    state: UserState,
    ns: String,
    instructions: String,
    /// A stream silent this long is cancelled.
    idle: Duration,
    /// The bound on one streamed answer.
    limit: Duration,
}

impl ResponsesConversations {
    /// The flow, with conversation ids under `{ns}:conv:{user}` in `state`.
    pub fn new(api: OpenAi, state: UserState, ns: String, config: &ConversationConfig) -> Self {
        ResponsesConversations {
            api,
            state,
            ns,
            instructions: config.instructions.clone(),
            idle: config.stream_idle,
            limit: config.answer_deadline,
        }
    }

    fn key(&self, user: i64) -> String {
        format!("{}:conv:{user}", self.ns)
    }

    async fn conversation(&self, user: i64) -> Result<String, ConversationError> {
        if let Some(id) = self.state.get(&self.key(user), None).await? {
            return Ok(id);
        }
        let id = self.api.create_conversation().await?;
        self.state.set(&self.key(user), &id, None).await?;
        Ok(id)
    }

    /// Answers `text` in the user's conversation, starting one if needed (or if OpenAI says
    /// the stored one no longer exists).
    pub async fn reply(
        &self,
        user: i64,
        text: &str,
        receipt: &Receipt,
    ) -> Result<Reply, ConversationError> {
        if let Some(id) = &receipt.response_id {
            tracing::info!(
                response_id = id,
                "picking up the response asked for before the restart"
            );
            let response = self.api.get_response(id).await?;
            return self.await_answer(response, receipt).await;
        }
        self.in_conversation(user, |conversation| async move {
            self.respond(&conversation, text, receipt).await
        })
        .await
    }

    /// Runs `ask` in the user's conversation, starting one if needed. Only OpenAI saying the
    /// conversation itself is unknown loses it: then it is forgotten and `ask` runs once more
    /// in a new one. A missing model, a bad key or a quota is an error for the user's apology,
    /// and the mapping stays.
    async fn in_conversation<T, F, Fut>(&self, user: i64, ask: F) -> Result<T, ConversationError>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, ConversationError>>,
    {
        let conversation = self.conversation(user).await?;
        match ask(conversation).await {
            Err(ConversationError::OpenAi(e)) if e.is_conversation_not_found() => {
                tracing::warn!(error = %e, "stored conversation is gone upstream; starting a new one");
                self.state.remove(&self.key(user)).await?;
                ask(self.conversation(user).await?).await
            }
            other => other,
        }
    }

    /// Answers `text` as a stream: `on_text` sees the answer grow. The response id is recorded
    /// with the inbox row as soon as the stream names it; a replay streams that response again
    /// instead of asking for a new one.
    pub async fn reply_live(
        &self,
        user: i64,
        text: &str,
        receipt: &Receipt,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Reply, ConversationError> {
        let stream = if let Some(id) = &receipt.response_id {
            tracing::info!(
                response_id = id,
                "picking up the response asked for before the restart"
            );
            self.api.resume_response(id, None, self.limit).await?
        } else {
            self.in_conversation(user, |conversation| async move {
                let create = self.create(&conversation, text);
                Ok(self.api.stream_response(&create, self.limit).await?)
            })
            .await?
        };
        let how = Follow {
            api: &self.api,
            receipt: Some(receipt),
            response_id: receipt.response_id.clone(),
            idle: self.idle,
            limit: self.limit,
            until: receipt.answer_by,
            deadline: receipt.deadline,
        };
        follow(stream, how, on_text).await
    }

    fn create<'a>(&'a self, conversation: &'a str, text: &'a str) -> CreateResponse<'a> {
        CreateResponse {
            model: self.api.model(),
            conversation,
            instructions: &self.instructions,
            input: text,
            background: true,
        }
    }

    async fn respond(
        &self,
        conversation: &str,
        text: &str,
        receipt: &Receipt,
    ) -> Result<Reply, ConversationError> {
        let response = self
            .api
            .create_response(&self.create(conversation, text))
            .await?;
        if let Err(e) = receipt.record_response(&response.id).await {
            // The answer still comes; only a crash before it would ask again.
            tracing::warn!(error = %e, "could not record the response id in the inbox");
        }
        self.await_answer(response, receipt).await
    }

    /// Looks at a background response until it ends; its answer. Still pending at the
    /// receipt's `answer_by`, it is cancelled.
    async fn await_answer(
        &self,
        mut response: ResponseObject,
        receipt: &Receipt,
    ) -> Result<Reply, ConversationError> {
        let until = receipt.answer_by;
        let mut wait = POLL_FIRST;
        let mut polls = 0;
        while response.is_pending() {
            if polls == MAX_POLLS {
                return Err(ConversationError::NoAnswer(format!(
                    "response {} still pending after {MAX_POLLS} looks",
                    response.id
                )));
            }
            if Instant::now() >= until {
                let text = response.output_text();
                let (id, late) = (Some(response.id.as_str()), LATE.into());
                return stop(&self.api, id, text, late, receipt.deadline).await;
            }
            polls += 1;
            tokio::time::sleep_until((Instant::now() + wait).min(until)).await;
            wait = (wait * 3 / 2).min(POLL_MAX);
            response = self.api.get_response(&response.id).await?;
        }
        let text = response.output_text();
        let status = response.status.as_deref().unwrap_or("unknown");
        // An incomplete response (say, out of output tokens) still has its text to give.
        if !matches!(status, "completed" | "incomplete") || text.trim().is_empty() {
            let detail = response
                .error
                .as_ref()
                .or(response.incomplete_details.as_ref())
                .map(|e| e.to_string())
                .unwrap_or_default();
            return Err(ConversationError::NoAnswer(format!(
                "response {} ended {status} with no text {detail}",
                response.id
            )));
        }
        Ok(Reply {
            text,
            usage: response.usage,
            model: response.model,
        })
    }

    /// The conversation's turns, oldest first (the last `limit` when given).
    pub async fn history(
        &self,
        user: i64,
        limit: Option<usize>,
    ) -> Result<Vec<Turn>, ConversationError> {
        let Some(conversation) = self.state.get(&self.key(user), None).await? else {
            return Ok(Vec::new());
        };
        // Newest first, so `/history` needs one page; `/export` pages through everything.
        let mut turns = Vec::new();
        let mut after: Option<String> = None;
        for page_no in 1..=MAX_PAGES {
            let page = match self
                .api
                .list_items(&conversation, after.as_deref(), PAGE)
                .await
            {
                Err(e) if e.is_conversation_not_found() => return Ok(Vec::new()),
                other => other?,
            };
            if after.is_some() && page.last_id == after {
                tracing::warn!(
                    pages = page_no,
                    "conversation items: the cursor did not advance; stopping"
                );
                break;
            }
            turns.extend(page.data.iter().filter_map(turn_of_item));
            let enough = limit.is_some_and(|l| turns.len() >= l);
            if !page.has_more || enough || page.last_id.is_none() {
                break;
            }
            if page_no == MAX_PAGES {
                tracing::warn!(
                    pages = page_no,
                    "conversation items: page cap reached; stopping"
                );
            }
            after = page.last_id;
        }
        if let Some(limit) = limit {
            turns.truncate(limit);
        }
        turns.reverse();
        Ok(turns)
    }

    /// Forgets the user's conversation, and asks OpenAI to delete it.
    pub async fn reset(&self, user: i64) -> Result<(), ConversationError> {
        if let Some(conversation) = self.state.get(&self.key(user), None).await? {
            self.state.remove(&self.key(user)).await?;
            if let Err(e) = self.api.delete_conversation(&conversation).await {
                tracing::warn!(error = %e, "could not delete the old conversation upstream");
            }
        }
        Ok(())
    }
}
