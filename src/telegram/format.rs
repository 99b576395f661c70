//! Turns the model's Markdown into Telegram's "HTML style" and cuts it into messages.
//!
//! Telegram accepts only a handful of tags and at most 4096 UTF-16 code units per message,
//! while the model writes free-form CommonMark of any length. [`markdown`] maps the Markdown
//! onto the supported tags and shows anything else (raw HTML included) as escaped text;
//! [`split`] cuts the result on block boundaries so that every message is balanced HTML on its
//! own; [`html`] holds the escaping and the UTF-16 arithmetic both rely on. Each part also
//! carries its visible text, for a resend without formatting when Telegram refuses the markup
//! anyway.

mod html;
mod markdown;
mod split;

pub use html::{escape_html, html_to_plain};

/// Telegram's limit on one message's text.
pub const TELEGRAM_LIMIT: usize = 4096;

/// The smallest limit honoured: an escaped `&` alone takes five code units, so below this no
/// split can keep every part within the limit.
const MIN_LIMIT: usize = 5;

/// One message ready to send: `html` for parse_mode=HTML, `plain` the same visible text without markup
/// (sent as-is, no parse_mode, when Telegram refuses the HTML).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The message text for parse_mode=HTML.
    pub html: String,
    /// The same visible text without markup.
    pub plain: String,
}

/// Markdown from the model → Telegram-HTML parts, each `html` at most `limit` UTF-16 code units
/// (and so at most `limit` chars) and each `plain` too.
///
/// Limits below 5 are treated as 5. Empty or whitespace-only input gives no parts.
pub fn render(markdown: &str, limit: usize) -> Vec<Part> {
    let limit = limit.max(MIN_LIMIT);
    // Tags re-opened in every part may take at most half of it, so text always makes progress.
    let atoms = markdown::Builder::new(limit / 2).build(markdown);
    split::split(&atoms, limit)
}

#[cfg(test)]
mod tests;
