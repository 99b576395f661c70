//! Streams cut at every chunk size, from one byte up: lines and UTF-8 split anywhere.

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
                    usage: Some(TokenUsage {
                        input: Some(5),
                        output: Some(4),
                        total: Some(9),
                        ..TokenUsage::default()
                    }),
                    model: None,
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
                usage: Some(TokenUsage {
                    input: Some(3),
                    output: Some(2),
                    total: Some(5),
                    ..TokenUsage::default()
                }),
                model: None,
            }]
        );
    }
}
