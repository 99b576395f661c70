//! Fuzzes the Markdown → Telegram HTML formatter with any text and any limit.
//!
//! Input: the first byte picks the limit (`byte × 17`, so 0 → the minimum, 255 → 4335), the
//! rest is the Markdown (skipped unless UTF-8).

#![no_main]

use libfuzzer_sys::fuzz_target;
use subgpt::telegram::format::{self, html_to_plain};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(markdown) = std::str::from_utf8(rest) else {
        return;
    };
    let limit = usize::from(selector) * 17;
    for part in format::render(markdown, limit) {
        let units = |text: &str| text.encode_utf16().count();
        assert!(
            units(&part.html) <= limit.max(5),
            "html over the limit: {part:?}"
        );
        assert!(
            units(&part.plain) <= limit.max(5),
            "plain over the limit: {part:?}"
        );
        assert!(!part.plain.trim().is_empty(), "blank part: {part:?}");
        assert_eq!(
            html_to_plain(&part.html),
            part.plain,
            "plain is not the visible text"
        );
    }
});
