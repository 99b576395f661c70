//! The Responses and Conversations APIs on the wire: request and answer types, and the calls
//! the bot makes (`POST /conversations`, `POST /responses` in the background,
//! `GET /responses/{id}` and its cancel, conversation items, `DELETE /conversations/{id}`).

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{OpenAi, OpenAiError, Role, TokenUsage, Turn};

/// `POST /responses` body (CreateResponse, the fields the bot sets).
#[derive(Serialize)]
pub struct CreateResponse<'a> {
    pub model: &'a str,
    pub conversation: &'a str,
    pub instructions: &'a str,
    pub input: &'a str,
    /// Run asynchronously: the answer carries the response id at once, and the result is
    /// fetched with `GET /responses/{id}` (so a crash after this call loses nothing).
    pub background: bool,
}

/// `POST /conversations` body: no items, no metadata (nothing about the user is sent).
#[derive(Serialize)]
struct CreateConversation {}

/// A Response object (the fields the bot reads).
#[derive(Debug, Deserialize)]
pub struct ResponseObject {
    pub id: String,
    /// `completed`, `failed`, `in_progress`, `cancelled`, `queued` or `incomplete`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub output: Vec<Value>,
    #[serde(default)]
    pub usage: Option<TokenUsage>,
    /// The model that answered, as the upstream names it.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub error: Option<Value>,
    #[serde(default)]
    pub incomplete_details: Option<Value>,
}

impl ResponseObject {
    /// Whether the response is still being produced.
    pub fn is_pending(&self) -> bool {
        matches!(self.status.as_deref(), Some("queued" | "in_progress"))
    }

    /// The text of its `message` output items (`output_text` and `refusal` parts).
    pub fn output_text(&self) -> String {
        output_text(&self.output)
    }
}

#[derive(Deserialize)]
struct ConversationResource {
    id: String,
}

/// One page of conversation items.
#[derive(Debug, Deserialize)]
pub struct ItemList {
    #[serde(default)]
    pub data: Vec<Value>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub last_id: Option<String>,
}

impl OpenAi {
    /// `POST /conversations`: a new, empty conversation; its id.
    pub async fn create_conversation(&self) -> Result<String, OpenAiError> {
        let created: ConversationResource = self
            .request(Method::POST, "/conversations", Some(&CreateConversation {}))
            .await?;
        Ok(created.id)
    }

    /// `POST /responses`.
    pub async fn create_response(
        &self,
        body: &CreateResponse<'_>,
    ) -> Result<ResponseObject, OpenAiError> {
        self.request(Method::POST, "/responses", Some(body)).await
    }

    /// `GET /responses/{id}`.
    pub async fn get_response(&self, id: &str) -> Result<ResponseObject, OpenAiError> {
        self.request::<(), _>(Method::GET, &format!("/responses/{id}"), None)
            .await
    }

    /// `POST /responses/{id}/cancel`: stops a background response; the response as it ended.
    pub async fn cancel_response(&self, id: &str) -> Result<ResponseObject, OpenAiError> {
        self.request::<(), _>(Method::POST, &format!("/responses/{id}/cancel"), None)
            .await
    }

    /// `GET /conversations/{id}/items`, newest first, `limit` a page, after the item `after`.
    pub async fn list_items(
        &self,
        conversation: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ItemList, OpenAiError> {
        let mut path = format!("/conversations/{conversation}/items?order=desc&limit={limit}");
        if let Some(after) = after {
            path.push_str(&format!("&after={after}"));
        }
        self.request::<(), _>(Method::GET, &path, None).await
    }

    /// `DELETE /conversations/{id}`.
    pub async fn delete_conversation(&self, id: &str) -> Result<(), OpenAiError> {
        self.request::<(), Value>(Method::DELETE, &format!("/conversations/{id}"), None)
            .await
            .map(drop)
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
pub fn turn_of_item(item: &Value) -> Option<Turn> {
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

    #[test]
    fn a_background_response_is_pending_until_it_ends() {
        let r: ResponseObject =
            serde_json::from_value(json!({"id": "resp_1", "status": "queued", "output": []}))
                .unwrap();
        assert!(r.is_pending());
        let r: ResponseObject =
            serde_json::from_value(json!({"id": "resp_1", "status": "completed"})).unwrap();
        assert!(!r.is_pending());
    }
}
