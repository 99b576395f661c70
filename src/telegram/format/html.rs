//! Telegram HTML at the character level: escaping, UTF-16 lengths, tag pairs, and the way
//! back to plain text.

/// Escape `<`, `>`, `&` for Telegram HTML (also `"` inside attribute values).
///
/// `"` is always escaped, which is also valid in text since Telegram knows `&quot;`.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match (c, entity(c)) {
            ('"', _) => out.push_str("&quot;"),
            (_, Some(escaped)) => out.push_str(escaped),
            (_, None) => out.push(c),
        }
    }
    out
}

/// The entity text content needs instead of `c`, if any (`"` is fine outside attributes).
pub(super) fn entity(c: char) -> Option<&'static str> {
    match c {
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '&' => Some("&amp;"),
        _ => None,
    }
}

/// Length as Telegram counts it: UTF-16 code units.
pub(super) fn units(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Length of `c` once written as HTML text (escaped if need be).
pub(super) fn text_units(c: char) -> usize {
    entity(c).map_or(c.len_utf16(), units)
}

/// A supported tag pair; kept whole so a part can re-open it with the same attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Element {
    pub(super) open: String,
    pub(super) close: &'static str,
}

impl Element {
    pub(super) fn new(open: impl Into<String>, close: &'static str) -> Self {
        Self {
            open: open.into(),
            close,
        }
    }

    /// What opening and closing the pair adds to a part.
    pub(super) fn cost(&self) -> usize {
        units(&self.open) + units(self.close)
    }

    pub(super) fn is_pre(&self) -> bool {
        self.close.ends_with("</pre>")
    }
}

/// The visible text of a short HTML message of ours (tags removed, entities unescaped), for
/// a resend without formatting.
pub fn html_to_plain(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}
