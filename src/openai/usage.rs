//! The token counts an upstream reports for one answer, read from either API's `usage` object.
//!
//! Responses: `input_tokens`, `output_tokens`, `input_tokens_details.cached_tokens`,
//! `output_tokens_details.reasoning_tokens`. Chat Completions: `prompt_tokens`,
//! `completion_tokens`, `prompt_tokens_details.cached_tokens`,
//! `completion_tokens_details.reasoning_tokens`. Both: `total_tokens`. Every field may be
//! missing (an OpenAI-compatible server may report less), so every field is optional.

use serde::Deserialize;

/// One answer's token usage. Input includes the cached part; output includes reasoning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "Wire")]
pub struct TokenUsage {
    /// Input (prompt) tokens, cached ones included.
    pub input: Option<u64>,
    /// Output (completion) tokens, reasoning included.
    pub output: Option<u64>,
    /// Input tokens read from the prompt cache.
    pub cached_input: Option<u64>,
    /// Output tokens spent on reasoning.
    pub reasoning: Option<u64>,
    /// `total_tokens` as reported.
    pub total: Option<u64>,
}

impl TokenUsage {
    /// The tokens to count against the user: `total_tokens`, else input + output.
    pub fn total_tokens(&self) -> Option<u64> {
        self.total.or(match (self.input, self.output) {
            (Some(i), Some(o)) => Some(i.saturating_add(o)),
            _ => None,
        })
    }
}

/// Both APIs' field names; serde aliases map Chat Completions' onto the Responses ones.
#[derive(Deserialize)]
struct Wire {
    #[serde(default, alias = "prompt_tokens")]
    input_tokens: Option<u64>,
    #[serde(default, alias = "completion_tokens")]
    output_tokens: Option<u64>,
    #[serde(default, alias = "prompt_tokens_details")]
    input_tokens_details: Option<InputDetails>,
    #[serde(default, alias = "completion_tokens_details")]
    output_tokens_details: Option<OutputDetails>,
    #[serde(default)]
    total_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct InputDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct OutputDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl From<Wire> for TokenUsage {
    fn from(w: Wire) -> Self {
        TokenUsage {
            input: w.input_tokens,
            output: w.output_tokens,
            cached_input: w.input_tokens_details.and_then(|d| d.cached_tokens),
            reasoning: w.output_tokens_details.and_then(|d| d.reasoning_tokens),
            total: w.total_tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_responses_usage_object() {
        let usage: TokenUsage = serde_json::from_value(json!({
            "input_tokens": 1200, "input_tokens_details": {"cached_tokens": 1000},
            "output_tokens": 300, "output_tokens_details": {"reasoning_tokens": 200},
            "total_tokens": 1500
        }))
        .unwrap();
        assert_eq!(
            usage,
            TokenUsage {
                input: Some(1200),
                output: Some(300),
                cached_input: Some(1000),
                reasoning: Some(200),
                total: Some(1500)
            }
        );
    }

    #[test]
    fn reads_the_chat_completions_usage_object() {
        let usage: TokenUsage = serde_json::from_value(json!({
            "prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 6, "audio_tokens": 0}
        }))
        .unwrap();
        assert_eq!(usage.input, Some(19));
        assert_eq!(usage.cached_input, Some(4));
        assert_eq!(usage.output, Some(10));
        assert_eq!(usage.reasoning, Some(6));
        assert_eq!(usage.total_tokens(), Some(29));
    }

    #[test]
    fn a_sparse_usage_object_still_gives_a_total() {
        let usage: TokenUsage =
            serde_json::from_value(json!({"prompt_tokens": 5, "completion_tokens": 7})).unwrap();
        assert_eq!(usage.total_tokens(), Some(12));
        assert_eq!(usage.cached_input, None);
        let empty: TokenUsage = serde_json::from_value(json!({})).unwrap();
        assert_eq!(empty.total_tokens(), None);
    }
}
