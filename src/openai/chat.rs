//! Chat Completions on the wire: `POST /chat/completions` and its answer.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::{OpenAi, OpenAiError, Usage};

/// `POST /chat/completions` body (CreateChatCompletionRequest, the fields the bot sets).
#[derive(Serialize)]
pub struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: Vec<ChatMessage<'a>>,
}

/// One message of a chat request.
#[derive(Serialize)]
pub struct ChatMessage<'a> {
    pub role: &'a str,
    pub content: &'a str,
}

/// A chat completion (the fields the bot reads).
#[derive(Deserialize)]
pub struct Completion {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

impl Completion {
    /// The first choice's text, or its refusal.
    pub fn answer(&self) -> Option<String> {
        let message = &self.choices.first()?.message;
        message
            .content
            .clone()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| message.refusal.clone())
    }
}

impl OpenAi {
    /// `POST /chat/completions`.
    pub async fn chat_completion(&self, body: &ChatRequest<'_>) -> Result<Completion, OpenAiError> {
        self.request(Method::POST, "/chat/completions", Some(body))
            .await
    }
}
