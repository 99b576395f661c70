//! Streamed answers on the wire: server-sent events from `POST /responses` (and
//! `GET /responses/{id}?stream=true`, to resume) and from `POST /chat/completions` with
//! `stream: true`, parsed by `eventsource-stream` into a few [`StreamEvent`]s.

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use reqwest::Method;
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;

use super::chat::ChatRequest;
use super::responses::CreateResponse;
use super::{OpenAi, OpenAiError, TokenUsage};

/// What a stream says, as far as the bot cares.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The response exists upstream (`response.created`); its id.
    Created { id: String },
    /// More of the answer's text.
    Delta(String),
    /// The answer is complete (`response.completed`, or the chat stream's `[DONE]`), with the
    /// usage when the upstream reported it, and the model that answered.
    Completed {
        usage: Option<TokenUsage>,
        model: Option<String>,
    },
}

type Events = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + Send>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Responses,
    Chat,
}

/// An answer arriving as server-sent events.
pub struct AnswerStream {
    events: Events,
    api: Api,
    path: String,
    /// Responses: the `sequence_number` of the last event read (for `starting_after`).
    last_sequence: Option<u64>,
    /// Chat: the usage chunk and the model, kept until `[DONE]`.
    usage: Option<TokenUsage>,
    model: Option<String>,
    done: bool,
}

/// `POST /responses` with `stream: true` (and `background: true`, so it can be resumed).
#[derive(Serialize)]
struct StreamResponse<'a> {
    #[serde(flatten)]
    create: &'a CreateResponse<'a>,
    stream: bool,
}

/// `POST /chat/completions` with `stream: true` and the usage chunk.
#[derive(Serialize)]
struct StreamChat<'a> {
    #[serde(flatten)]
    request: &'a ChatRequest<'a>,
    stream: bool,
    stream_options: StreamOptions,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// One Responses streaming event (ResponseStreamEvent; the fields the bot reads).
#[derive(Deserialize)]
struct ResponsesEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    sequence_number: Option<u64>,
    #[serde(default)]
    delta: Option<String>,
    #[serde(default)]
    response: Option<Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// One chat completion chunk (CreateChatCompletionStreamResponse; the fields the bot reads).
#[derive(Deserialize)]
struct ChatChunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<TokenUsage>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: ChunkDelta,
}

#[derive(Default, Deserialize)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

impl OpenAi {
    /// `POST /responses` as a stream, in the background so that a dropped stream can be
    /// resumed. `limit` bounds the whole stream.
    pub async fn stream_response(
        &self,
        create: &CreateResponse<'_>,
        limit: Duration,
    ) -> Result<AnswerStream, OpenAiError> {
        let body = StreamResponse {
            create,
            stream: true,
        };
        let response = self
            .open_stream(Method::POST, "/responses", Some(&body), limit)
            .await?;
        Ok(AnswerStream::new(response, Api::Responses, "/responses"))
    }

    /// `GET /responses/{id}?stream=true`: the events of a background response, after the
    /// event `starting_after` when given (from the start otherwise).
    pub async fn resume_response(
        &self,
        id: &str,
        starting_after: Option<u64>,
        limit: Duration,
    ) -> Result<AnswerStream, OpenAiError> {
        let mut path = format!("/responses/{id}?stream=true");
        if let Some(n) = starting_after {
            path.push_str(&format!("&starting_after={n}"));
        }
        let response = self
            .open_stream::<()>(Method::GET, &path, None, limit)
            .await?;
        let mut stream = AnswerStream::new(response, Api::Responses, "/responses");
        stream.last_sequence = starting_after;
        Ok(stream)
    }

    /// `POST /chat/completions` as a stream, with the usage chunk at its end.
    pub async fn stream_chat(
        &self,
        request: &ChatRequest<'_>,
        limit: Duration,
    ) -> Result<AnswerStream, OpenAiError> {
        let body = StreamChat {
            request,
            stream: true,
            stream_options: StreamOptions {
                include_usage: true,
            },
        };
        let response = self
            .open_stream(Method::POST, "/chat/completions", Some(&body), limit)
            .await?;
        Ok(AnswerStream::new(response, Api::Chat, "/chat/completions"))
    }
}

impl AnswerStream {
    fn new(response: reqwest::Response, api: Api, path: &str) -> Self {
        Self::of_bytes(response.bytes_stream(), api, path)
    }

    fn of_bytes<S>(bytes: S, api: Api, path: &str) -> Self
    where
        S: Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Send + 'static,
    {
        AnswerStream {
            events: Box::pin(bytes.eventsource()),
            api,
            path: path.into(),
            last_sequence: None,
            usage: None,
            model: None,
            done: false,
        }
    }

    /// The `sequence_number` of the last event read (Responses), to resume after it.
    pub fn last_sequence(&self) -> Option<u64> {
        self.last_sequence
    }

    /// The next event. `None` when the stream has ended: after [`StreamEvent::Completed`], or
    /// early (the connection dropped) — then the caller may resume.
    pub async fn next(&mut self) -> Option<Result<StreamEvent, OpenAiError>> {
        while !self.done {
            let event = match self.events.next().await? {
                Ok(event) => event,
                Err(EventStreamError::Transport(e)) => {
                    return Some(Err(OpenAiError::Http {
                        path: self.path.clone(),
                        source: e.without_url(),
                    }));
                }
                Err(e) => return Some(Err(self.decode_error(e.to_string()))),
            };
            let parsed = match self.api {
                Api::Responses => self.responses_event(&event.data),
                Api::Chat => self.chat_event(&event.data),
            };
            match parsed {
                Ok(Some(event)) => return Some(Ok(event)),
                Ok(None) => continue,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }

    fn decode_error(&self, detail: String) -> OpenAiError {
        OpenAiError::Decode {
            path: self.path.clone(),
            detail,
        }
    }

    fn failed(&self, detail: String) -> OpenAiError {
        OpenAiError::Stream {
            path: self.path.clone(),
            detail,
        }
    }

    fn responses_event(&mut self, data: &str) -> Result<Option<StreamEvent>, OpenAiError> {
        let event: ResponsesEvent =
            serde_json::from_str(data).map_err(|e| self.decode_error(e.to_string()))?;
        if let Some(n) = event.sequence_number {
            self.last_sequence = Some(n);
        }
        let response = event.response.unwrap_or_default();
        Ok(match event.kind.as_str() {
            "response.created" => response["id"]
                .as_str()
                .map(|id| StreamEvent::Created { id: id.into() }),
            "response.output_text.delta" => event.delta.map(StreamEvent::Delta),
            "response.completed" | "response.incomplete" => {
                if event.kind == "response.incomplete" {
                    tracing::warn!(
                        reason = %response["incomplete_details"],
                        "the response ended incomplete; sending what it has"
                    );
                }
                self.done = true;
                let usage = serde_json::from_value(response["usage"].clone()).ok();
                let model = response["model"].as_str().map(str::to_string);
                Some(StreamEvent::Completed { usage, model })
            }
            "response.failed" => return Err(self.failed(response["error"].to_string())),
            "error" => {
                return Err(self.failed(format!(
                    "{} ({})",
                    event.message.unwrap_or_default(),
                    event.code.unwrap_or_default()
                )));
            }
            _ => None,
        })
    }

    fn chat_event(&mut self, data: &str) -> Result<Option<StreamEvent>, OpenAiError> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(Some(StreamEvent::Completed {
                usage: self.usage.take(),
                model: self.model.take(),
            }));
        }
        let chunk: ChatChunk =
            serde_json::from_str(data).map_err(|e| self.decode_error(e.to_string()))?;
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        if chunk.model.is_some() {
            self.model = chunk.model;
        }
        let text: String = chunk
            .choices
            .into_iter()
            .filter_map(|c| c.delta.content.or(c.delta.refusal))
            .collect();
        Ok((!text.is_empty()).then_some(StreamEvent::Delta(text)))
    }
}

#[cfg(test)]
mod tests;
