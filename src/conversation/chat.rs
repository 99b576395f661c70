//! Chat Completions: the bot keeps each user's history (with a TTL), trimmed to a token
//! budget, and sends it along with every question.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::live::{Follow, LATE, follow, interrupted};
use super::{ConversationError, UserState};
use crate::config::ConversationConfig;
use crate::openai::chat::{ChatMessage, ChatRequest};
use crate::openai::{OpenAi, Reply, Role, Turn};

/// The Chat Completions flow.
pub struct ChatConversations {
    api: OpenAi,
    state: UserState,
    ns: String,
    instructions: String,
    ttl: Duration,
    budget: usize,
    /// A stream silent this long is cancelled.
    idle: Duration,
    /// The bound on one streamed answer.
    limit: Duration,
}

/// A rough token count (about four characters a token), enough to trim a history.
fn approx_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4) + 4
}

impl ChatConversations {
    /// The flow, with histories under `{ns}:hist:{user}` in `state`.
    pub fn new(api: OpenAi, state: UserState, ns: String, config: &ConversationConfig) -> Self {
        ChatConversations {
            api,
            state,
            ns,
            instructions: config.instructions.clone(),
            ttl: config.history_ttl,
            budget: config.history_token_budget,
            idle: config.stream_idle,
            limit: config.answer_deadline,
        }
    }

    fn key(&self, user: i64) -> String {
        format!("{}:hist:{user}", self.ns)
    }

    async fn load(&self, user: i64) -> Result<Vec<Turn>, ConversationError> {
        let raw = self.state.get(&self.key(user), Some(self.ttl)).await?;
        Ok(raw
            .and_then(|r| serde_json::from_str(&r).ok())
            .unwrap_or_default())
    }

    /// The request for `text` after `history` (trimmed to the budget first).
    fn request<'a>(&'a self, history: &'a mut Vec<Turn>, text: &'a str) -> ChatRequest<'a> {
        trim_to_budget(history, self.budget.saturating_sub(approx_tokens(text)));
        let mut messages = vec![ChatMessage {
            role: "system",
            content: &self.instructions,
        }];
        messages.extend(history.iter().map(|t| ChatMessage {
            role: t.role.as_str(),
            content: &t.text,
        }));
        messages.push(ChatMessage {
            role: "user",
            content: text,
        });
        ChatRequest {
            model: self.api.model(),
            messages,
        }
    }

    /// Answers `text` with the kept history, then appends both turns to it.
    /// Cut off at `until` (the answer was not in time: nothing of it to show).
    pub async fn reply(
        &self,
        user: i64,
        text: &str,
        until: Instant,
    ) -> Result<Reply, ConversationError> {
        let mut history = self.load(user).await?;
        let request = self.request(&mut history, text);
        let asked = self.api.chat_completion(&request);
        let Ok(completion) = tokio::time::timeout_at(until, asked).await else {
            return Err(interrupted(String::new(), LATE.into()));
        };
        let completion = completion?;
        let answer = completion
            .answer()
            .ok_or_else(|| ConversationError::NoAnswer("no message content".into()))?;
        let reply = Reply {
            text: answer,
            usage: completion.usage,
            model: completion.model.clone(),
        };
        self.remember(user, history, text, &reply.text).await?;
        Ok(reply)
    }

    /// Like [`ChatConversations::reply`], streamed (`stream_options.include_usage`).
    pub async fn reply_live(
        &self,
        user: i64,
        text: &str,
        until: Instant,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Reply, ConversationError> {
        let mut history = self.load(user).await?;
        let stream = self
            .api
            .stream_chat(&self.request(&mut history, text), self.limit)
            .await?;
        let how = Follow {
            api: &self.api,
            receipt: None,
            response_id: None,
            idle: self.idle,
            limit: self.limit,
            until,
            // Nothing to cancel in chat mode: the deadline bounds no wait here.
            deadline: until,
        };
        let reply = follow(stream, how, on_text).await?;
        self.remember(user, history, text, &reply.text).await?;
        Ok(reply)
    }

    /// Appends the question and its answer to the kept history.
    async fn remember(
        &self,
        user: i64,
        mut history: Vec<Turn>,
        text: &str,
        answer: &str,
    ) -> Result<(), ConversationError> {
        history.push(Turn {
            role: Role::User,
            text: text.to_string(),
        });
        history.push(Turn {
            role: Role::Assistant,
            text: answer.to_string(),
        });
        trim_to_budget(&mut history, self.budget);
        let stored =
            serde_json::to_string(&history).unwrap_or_else(|_| Value::Array(vec![]).to_string());
        self.state
            .set(&self.key(user), &stored, Some(self.ttl))
            .await?;
        Ok(())
    }

    /// The kept history, oldest first (the last `limit` turns when given).
    pub async fn history(
        &self,
        user: i64,
        limit: Option<usize>,
    ) -> Result<Vec<Turn>, ConversationError> {
        let mut history = self.load(user).await?;
        if let Some(limit) = limit {
            let skip = history.len().saturating_sub(limit);
            history.drain(..skip);
        }
        Ok(history)
    }

    /// Forgets the history.
    pub async fn reset(&self, user: i64) -> Result<(), ConversationError> {
        Ok(self.state.remove(&self.key(user)).await?)
    }
}

/// Drops the oldest turns (a question with its answer) until the history fits `budget`.
fn trim_to_budget(history: &mut Vec<Turn>, budget: usize) {
    let mut total: usize = history.iter().map(|t| approx_tokens(&t.text)).sum();
    let mut drop = 0;
    while total > budget && drop < history.len() {
        total -= approx_tokens(&history[drop].text);
        drop += 1;
    }
    // Never start the kept history with an answer whose question was dropped.
    while drop < history.len() && history[drop].role == Role::Assistant {
        drop += 1;
    }
    history.drain(..drop);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_keeps_the_newest_turns_and_starts_with_a_question() {
        let turn = |role, n: usize| Turn {
            role,
            text: "x".repeat(n),
        };
        let mut h = vec![
            turn(Role::User, 400),
            turn(Role::Assistant, 400),
            turn(Role::User, 40),
            turn(Role::Assistant, 40),
        ];
        trim_to_budget(&mut h, 150);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].role, Role::User);
    }
}
