//! Responses + Conversations: one OpenAI Conversation per user, each answer a
//! `POST /responses` in that conversation. The user → conversation id map lives in the kv.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{OpenAi, OpenAiError, Reply, Role, Turn};
use crate::config::Config;
use crate::store::kv::Kv;

/// Conversation items fetched per page for `/history` and `/export`.
const PAGE: usize = 100;
/// The most pages read for one `/history` or `/export` (10,000 items): a bound on the loop
/// even when the server keeps saying `has_more`.
const MAX_PAGES: usize = 100;

/// The Responses + Conversations assistant.
pub struct ResponsesAssistant {
    api: OpenAi,
    kv: Kv,
    ns: String,
    instructions: String,
}

#[derive(Serialize)]
struct CreateResponse<'a> {
    model: &'a str,
    conversation: &'a str,
    instructions: &'a str,
    input: &'a str,
}

/// `POST /conversations` body: no items, no metadata (nothing about the user is sent).
#[derive(Serialize)]
struct CreateConversation {}

#[derive(Deserialize)]
struct ResponseObject {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    output: Vec<Value>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
pub(super) struct Usage {
    #[serde(default)]
    pub(super) total_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ConversationResource {
    id: String,
}

#[derive(Deserialize)]
struct ItemList {
    #[serde(default)]
    data: Vec<Value>,
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    last_id: Option<String>,
}

impl ResponsesAssistant {
    /// The assistant, with conversation ids under `{ns}:conv:{user}` in `kv`.
    pub fn new(api: OpenAi, kv: Kv, ns: String, config: &Config) -> Self {
        ResponsesAssistant {
            api,
            kv,
            ns,
            instructions: config.assistant_instructions.clone(),
        }
    }

    pub(super) fn api(&self) -> &OpenAi {
        &self.api
    }

    fn key(&self, user: i64) -> String {
        format!("{}:conv:{user}", self.ns)
    }

    async fn conversation(&self, user: i64) -> Result<String, OpenAiError> {
        if let Some(id) = self.kv.get(&self.key(user)).await? {
            return Ok(id);
        }
        let created: ConversationResource = self
            .api
            .request(Method::POST, "/conversations", Some(&CreateConversation {}))
            .await?;
        self.kv.set(&self.key(user), &created.id, None).await?;
        Ok(created.id)
    }

    /// Answers `text` in the user's conversation, starting one if needed (or if OpenAI no
    /// longer knows the stored one).
    pub async fn reply(&self, user: i64, text: &str) -> Result<Reply, OpenAiError> {
        let conversation = self.conversation(user).await?;
        match self.respond(&conversation, text).await {
            // Only OpenAI saying the conversation itself is unknown loses it; a missing model,
            // a bad key or a quota is an error for the user's apology, and the mapping stays.
            Err(e) if e.is_conversation_not_found() => {
                tracing::warn!(error = %e, "stored conversation is gone upstream; starting a new one");
                self.kv.del(&self.key(user)).await?;
                let conversation = self.conversation(user).await?;
                self.respond(&conversation, text).await
            }
            other => other,
        }
    }

    async fn respond(&self, conversation: &str, text: &str) -> Result<Reply, OpenAiError> {
        let body = CreateResponse {
            model: self.api.model(),
            conversation,
            instructions: &self.instructions,
            input: text,
        };
        let response: ResponseObject = self
            .api
            .request(Method::POST, "/responses", Some(&body))
            .await?;
        let text = output_text(&response.output);
        if text.trim().is_empty() {
            return Err(OpenAiError::Decode {
                path: "/responses".into(),
                detail: format!(
                    "no output text (status {})",
                    response.status.as_deref().unwrap_or("unknown")
                ),
            });
        }
        Ok(Reply {
            text,
            total_tokens: response.usage.and_then(|u| u.total_tokens),
        })
    }

    /// The conversation's turns, oldest first (the last `limit` when given).
    pub async fn history(&self, user: i64, limit: Option<usize>) -> Result<Vec<Turn>, OpenAiError> {
        let Some(conversation) = self.kv.get(&self.key(user)).await? else {
            return Ok(Vec::new());
        };
        // Newest first, so `/history` needs one page; `/export` pages through everything.
        let mut turns = Vec::new();
        let mut after: Option<String> = None;
        for page_no in 1..=MAX_PAGES {
            let mut path = format!("/conversations/{conversation}/items?order=desc&limit={PAGE}");
            if let Some(after) = &after {
                path.push_str(&format!("&after={after}"));
            }
            let page: ItemList = match self.api.request::<(), _>(Method::GET, &path, None).await {
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
    pub async fn reset(&self, user: i64) -> Result<(), OpenAiError> {
        if let Some(conversation) = self.kv.get(&self.key(user)).await? {
            self.kv.del(&self.key(user)).await?;
            let path = format!("/conversations/{conversation}");
            if let Err(e) = self
                .api
                .request::<(), Value>(Method::DELETE, &path, None)
                .await
            {
                tracing::warn!(error = %e, "could not delete the old conversation upstream");
            }
        }
        Ok(())
    }
}

/// The text of the `message` output items (`output_text` and `refusal` parts).
fn output_text(output: &[Value]) -> String {
    let mut text = String::new();
    for item in output.iter().filter(|i| i["type"] == "message") {
        for part in item["content"].as_array().into_iter().flatten() {
            let piece = match part["type"].as_str() {
                Some("output_text") => part["text"].as_str(),
                Some("refusal") => part["refusal"].as_str(),
                _ => None,
            };
            if let Some(piece) = piece {
                if !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(piece);
            }
        }
    }
    text
}

/// A conversation item as a turn, if it is a user or assistant message with text.
fn turn_of_item(item: &Value) -> Option<Turn> {
    if item["type"] != "message" {
        return None;
    }
    let role = match item["role"].as_str()? {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        _ => return None,
    };
    let text = match &item["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str().or_else(|| p["refusal"].as_str()))
            .collect::<Vec<_>>()
            .join("\n\n"),
        _ => return None,
    };
    (!text.is_empty()).then_some(Turn { role, text })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn output_text_reads_message_items_only() {
        let output = json!([
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": "Hello", "annotations": []}]}
        ]);
        assert_eq!(output_text(output.as_array().unwrap()), "Hello");
    }

    #[test]
    fn items_become_turns() {
        let user = json!({"type": "message", "id": "m1", "role": "user", "content": [{"type": "input_text", "text": "hi"}]});
        let tool = json!({"type": "function_call", "id": "f1"});
        assert_eq!(
            turn_of_item(&user),
            Some(Turn {
                role: Role::User,
                text: "hi".into()
            })
        );
        assert_eq!(turn_of_item(&tool), None);
    }
}
