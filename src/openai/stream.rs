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
use super::{OpenAi, OpenAiError, Usage};

/// What a stream says, as far as the bot cares.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The response exists upstream (`response.created`); its id.
    Created { id: String },
    /// More of the answer's text.
    Delta(String),
    /// The answer is complete (`response.completed`, or the chat stream's `[DONE]`), with the
    /// usage when the upstream reported it.
    Completed { usage: Option<Usage> },
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
    /// Chat: the usage chunk, kept until `[DONE]`.
    usage: Option<Usage>,
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
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<Usage>,
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
                Some(StreamEvent::Completed { usage })
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
            }));
        }
        let chunk: ChatChunk =
            serde_json::from_str(data).map_err(|e| self.decode_error(e.to_string()))?;
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
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
mod tests {
    use super::*;

    /// The stream cut into pieces of `size` bytes, splitting lines and characters anywhere.
    fn chopped(text: &str, api: Api, size: usize) -> AnswerStream {
        let pieces: Vec<Result<bytes::Bytes, reqwest::Error>> = text
            .as_bytes()
            .chunks(size)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        AnswerStream::of_bytes(futures::stream::iter(pieces), api, "/test")
    }

    async fn collect(mut stream: AnswerStream) -> (String, Vec<StreamEvent>) {
        let mut text = String::new();
        let mut events = Vec::new();
        while let Some(event) = stream.next().await {
            match event.unwrap() {
                StreamEvent::Delta(d) => text.push_str(&d),
                other => events.push(other),
            }
        }
        (text, events)
    }

    const RESPONSES: &str = "event: response.created\n\
data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\"}}\n\n\
event: response.output_text.delta\n\
data: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Grüße, \",\"logprobs\":[]}\n\n\
: a comment line\n\n\
event: response.output_text.delta\r\n\
data: {\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"мир 🌍\",\"logprobs\":[]}\r\n\r\n\
event: response.completed\n\
data: {\"type\":\"response.completed\",\"sequence_number\":3,\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"usage\":{\"input_tokens\":5,\"output_tokens\":4,\"total_tokens\":9}}}\n\n";

    #[tokio::test]
    async fn responses_events_survive_any_chunking() {
        for size in [1, 2, 3, 7, 64, 4096] {
            let (text, events) = collect(chopped(RESPONSES, Api::Responses, size)).await;
            assert_eq!(text, "Grüße, мир 🌍", "chunks of {size}");
            assert_eq!(
                events,
                vec![
                    StreamEvent::Created {
                        id: "resp_1".into()
                    },
                    StreamEvent::Completed {
                        usage: Some(Usage {
                            total_tokens: Some(9)
                        })
                    }
                ]
            );
        }
    }

    #[tokio::test]
    async fn a_dropped_stream_ends_without_completion_and_knows_where_it_was() {
        let cut = &RESPONSES[..RESPONSES.find("event: response.completed").unwrap()];
        let mut stream = chopped(cut, Api::Responses, 5);
        let mut deltas = 0;
        while let Some(event) = stream.next().await {
            if matches!(event.unwrap(), StreamEvent::Delta(_)) {
                deltas += 1;
            }
        }
        assert_eq!(deltas, 2);
        assert_eq!(stream.last_sequence(), Some(2));
    }

    #[tokio::test]
    async fn failures_end_the_stream() {
        let failed = "data: {\"type\":\"response.failed\",\"sequence_number\":4,\"response\":{\"id\":\"r\",\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"boom\"}}}\n\n";
        let mut stream = chopped(failed, Api::Responses, 9);
        let e = stream.next().await.unwrap().unwrap_err();
        assert!(e.to_string().contains("boom"), "{e}");
        assert!(stream.next().await.is_none());
        let error = "event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"slow down\",\"param\":null,\"sequence_number\":1}\n\n";
        let e = chopped(error, Api::Responses, 4)
            .next()
            .await
            .unwrap()
            .unwrap_err();
        assert!(e.to_string().contains("slow down"), "{e}");
    }

    #[tokio::test]
    async fn chat_chunks_and_the_usage_chunk() {
        let chat = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Привет\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n\
data: [DONE]\n\n";
        for size in [1, 3, 11, 1000] {
            let (text, events) = collect(chopped(chat, Api::Chat, size)).await;
            assert_eq!(text, "Привет");
            assert_eq!(
                events,
                vec![StreamEvent::Completed {
                    usage: Some(Usage {
                        total_tokens: Some(5)
                    })
                }]
            );
        }
    }
}
