//! Turns the model's Markdown into Telegram's "HTML style" and cuts it into messages.
//!
//! Telegram accepts only a handful of tags and at most 4096 UTF-16 code units per message,
//! while the model writes free-form CommonMark of any length. This module maps the Markdown
//! onto the supported tags, shows anything else (raw HTML included) as escaped text, and
//! splits the result on block boundaries so that every message is balanced HTML on its own.
//! Each part also carries its visible text, for a resend without formatting when Telegram
//! refuses the markup anyway.

use pulldown_cmark::{CodeBlockKind, Event, LinkType, Options, Parser, Tag, TagEnd};

/// Telegram's limit on one message's text.
pub const TELEGRAM_LIMIT: usize = 4096;

/// The smallest limit honoured: an escaped `&` alone takes five code units, so below this no
/// split can keep every part within the limit.
const MIN_LIMIT: usize = 5;

/// Link schemes Telegram opens; anything else (relative, `javascript:`, `data:`) is dropped.
const LINK_SCHEMES: [&str; 4] = ["http", "https", "tg", "mailto"];

/// Longer fence info strings are not languages but prose; they would only eat the limit.
const MAX_LANGUAGE: usize = 32;

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
    let atoms = Builder::new(limit / 2).build(markdown);
    split(&atoms, limit)
}

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

fn entity(c: char) -> Option<&'static str> {
    match c {
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '&' => Some("&amp;"),
        _ => None,
    }
}

fn units(text: &str) -> usize {
    text.encode_utf16().count()
}

fn text_units(c: char) -> usize {
    entity(c).map_or(c.len_utf16(), units)
}

/// A supported tag pair; kept whole so a part can re-open it with the same attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    open: String,
    close: &'static str,
}

impl Element {
    fn new(open: impl Into<String>, close: &'static str) -> Self {
        Self {
            open: open.into(),
            close,
        }
    }

    fn cost(&self) -> usize {
        units(&self.open) + units(self.close)
    }

    fn is_pre(&self) -> bool {
        self.close.ends_with("</pre>")
    }
}

/// The document flattened so that every position between two atoms is a possible cut.
#[derive(Debug)]
enum Atom {
    Open(Element),
    Close,
    Text(char),
    /// A boundary between blocks: the preferred place to cut.
    Break,
}

/// Ordered so that when two blocks ask for different separators, the larger one wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Sep {
    Line,
    Blank,
}

/// A Markdown container whose end must undo exactly what its start did.
struct Frame {
    opened: bool,
    /// Shown when the container ends up with no text (an image without alt text).
    fallback: Option<String>,
    /// How much text had been written when the container started.
    visible: usize,
}

/// A code or raw HTML block, held back until its end so its trailing newline can be dropped
/// and an empty block leaves nothing behind.
struct Verbatim {
    text: String,
    language: Option<String>,
    is_code: bool,
}

/// Turns parser events into atoms, deciding separators and which tags fit the budget.
struct Builder {
    atoms: Vec<Atom>,
    open: Vec<Element>,
    frames: Vec<Frame>,
    /// Separator owed before the next content; deferred so empty blocks leave no blank lines.
    pending: Option<Sep>,
    /// Right after a bullet or `<blockquote>`, where a separator would only add a blank line.
    fresh: bool,
    visible: usize,
    budget: usize,
    lists: Vec<Option<u64>>,
    verbatim: Option<Verbatim>,
    cells: usize,
}

impl Builder {
    fn new(budget: usize) -> Self {
        Self {
            atoms: Vec::new(),
            open: Vec::new(),
            frames: Vec::new(),
            pending: None,
            fresh: true,
            visible: 0,
            budget,
            lists: Vec::new(),
            verbatim: None,
            cells: 0,
        }
    }

    fn build(mut self, markdown: &str) -> Vec<Atom> {
        let options = Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES;
        for event in Parser::new_ext(markdown, options) {
            self.event(event);
        }
        self.flush_verbatim();
        while let Some(frame) = self.frames.pop() {
            if frame.opened {
                self.close();
            }
        }
        self.atoms
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) | Event::Html(text) | Event::InlineHtml(text) => self.text(&text),
            Event::InlineMath(text) | Event::DisplayMath(text) => self.text(&text),
            Event::Code(code) => self.inline_code(&code),
            Event::SoftBreak | Event::HardBreak => self.text("\n"),
            Event::Rule => self.rule(),
            Event::FootnoteReference(label) => self.text(&format!("[{label}]")),
            Event::TaskListMarker(done) => self.text(if done { "[x] " } else { "[ ] " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Heading { .. } => {
                self.raise(Sep::Blank);
                self.open_frame(Some(Element::new("<b>", "</b>")), None);
            }
            Tag::BlockQuote(_) => {
                self.raise(Sep::Blank);
                self.open_frame(Some(Element::new("<blockquote>", "</blockquote>")), None);
                self.fresh = true;
            }
            Tag::CodeBlock(kind) => self.start_verbatim(language(&kind), true),
            Tag::HtmlBlock => self.start_verbatim(None, false),
            Tag::List(first) => {
                self.raise(self.list_sep());
                self.lists.push(first);
            }
            Tag::Item => self.item(),
            Tag::TableHead | Tag::TableRow => {
                self.raise(Sep::Line);
                self.cells = 0;
            }
            Tag::TableCell => self.cell(),
            Tag::Emphasis => self.open_frame(Some(Element::new("<i>", "</i>")), None),
            Tag::Strong => self.open_frame(Some(Element::new("<b>", "</b>")), None),
            Tag::Strikethrough => self.open_frame(Some(Element::new("<s>", "</s>")), None),
            Tag::Link {
                link_type,
                dest_url,
                ..
            } => self.open_frame(link(link_type, &dest_url), None),
            Tag::Image {
                link_type,
                dest_url,
                ..
            } => {
                let element = link(link_type, &dest_url);
                let fallback = element.is_some().then(|| dest_url.to_string());
                self.open_frame(element, fallback);
            }
            _ => self.raise_for_block(&tag),
        }
    }

    fn raise_for_block(&mut self, tag: &Tag<'_>) {
        if !matches!(tag, Tag::Superscript | Tag::Subscript) {
            self.raise(Sep::Blank);
        }
    }

    fn end(&mut self, tag: TagEnd) {
        // An item or quote that ended empty must still be separated from what follows.
        self.fresh = false;
        match tag {
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough => self.close_frame(),
            TagEnd::Link | TagEnd::Image => self.close_frame(),
            TagEnd::Heading(_) | TagEnd::BlockQuote(_) => {
                self.close_frame();
                self.raise(Sep::Blank);
            }
            TagEnd::CodeBlock | TagEnd::HtmlBlock => self.flush_verbatim(),
            TagEnd::List(_) => {
                self.lists.pop();
                self.raise(self.list_sep());
            }
            TagEnd::Item | TagEnd::TableHead | TagEnd::TableRow => self.raise(Sep::Line),
            TagEnd::Superscript | TagEnd::Subscript | TagEnd::TableCell => {}
            _ => self.raise(Sep::Blank),
        }
    }

    /// Nested lists hang off their item's line; only a top-level list is its own paragraph.
    fn list_sep(&self) -> Sep {
        if self.lists.is_empty() {
            Sep::Blank
        } else {
            Sep::Line
        }
    }

    /// Owes at least `sep` before the next content.
    fn raise(&mut self, sep: Sep) {
        if !self.fresh {
            self.pending = self.pending.max(Some(sep));
        }
    }

    fn flush(&mut self) {
        let Some(sep) = self.pending.take() else {
            return;
        };
        if self.visible > 0 {
            self.atoms.push(Atom::Break);
            let newlines = if sep == Sep::Blank { 2 } else { 1 };
            self.atoms
                .extend(std::iter::repeat_with(|| Atom::Text('\n')).take(newlines));
        }
    }

    fn text(&mut self, text: &str) {
        match &mut self.verbatim {
            Some(verbatim) => verbatim.text.push_str(text),
            None => self.push_text(text),
        }
    }

    fn push_text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.flush();
        let before = self.atoms.len();
        self.atoms.extend(text.chars().map(Atom::Text));
        self.visible += self.atoms.len() - before;
        self.fresh = false;
    }

    /// Opens `element` unless the tags already open would leave too little room for text, or
    /// the same kind of tag is open (Telegram refuses nested links and blockquotes).
    fn open(&mut self, element: Element) -> bool {
        let used: usize = self.open.iter().map(Element::cost).sum();
        let nested = self.open.iter().any(|e| e.close == element.close);
        if nested || used + element.cost() > self.budget {
            return false;
        }
        self.flush();
        self.atoms.push(Atom::Open(element.clone()));
        self.open.push(element);
        true
    }

    fn close(&mut self) {
        self.open.pop();
        self.atoms.push(Atom::Close);
    }

    fn open_frame(&mut self, element: Option<Element>, fallback: Option<String>) {
        let opened = element.is_some_and(|element| self.open(element));
        self.frames.push(Frame {
            opened,
            fallback,
            visible: self.visible,
        });
    }

    fn close_frame(&mut self) {
        let Some(frame) = self.frames.pop() else {
            return;
        };
        if let Some(fallback) = frame.fallback.filter(|_| frame.visible == self.visible) {
            self.push_text(&fallback);
        }
        if frame.opened {
            self.close();
        }
    }

    fn inline_code(&mut self, code: &str) {
        let opened = self.open(Element::new("<code>", "</code>"));
        self.push_text(code);
        if opened {
            self.close();
        }
    }

    fn rule(&mut self) {
        self.raise(Sep::Blank);
        self.push_text("———");
        self.raise(Sep::Blank);
    }

    fn item(&mut self) {
        self.raise(Sep::Line);
        let indent = "  ".repeat(self.lists.len().saturating_sub(1));
        let marker = match self.lists.last_mut() {
            Some(Some(number)) => {
                let marker = format!("{number}. ");
                *number = number.saturating_add(1);
                marker
            }
            _ => "• ".to_owned(),
        };
        self.push_text(&format!("{indent}{marker}"));
        self.fresh = true;
    }

    fn cell(&mut self) {
        if self.cells > 0 {
            self.push_text(" | ");
        }
        self.cells += 1;
    }

    fn start_verbatim(&mut self, language: Option<String>, is_code: bool) {
        self.flush_verbatim();
        self.verbatim = Some(Verbatim {
            text: String::new(),
            language,
            is_code,
        });
    }

    fn flush_verbatim(&mut self) {
        let Some(verbatim) = self.verbatim.take() else {
            return;
        };
        let text = verbatim.text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            return;
        }
        self.raise(Sep::Blank);
        let opened = verbatim.is_code && self.open_pre(verbatim.language);
        self.push_text(text);
        if opened {
            self.close();
        }
        self.raise(Sep::Blank);
    }

    /// Falls back to a bare `<pre>` when the language attribute does not fit the budget.
    fn open_pre(&mut self, language: Option<String>) -> bool {
        let with_language = language.map(|language| {
            let open = format!("<pre><code class=\"language-{}\">", escape_html(&language));
            Element::new(open, "</code></pre>")
        });
        with_language.is_some_and(|element| self.open(element))
            || self.open(Element::new("<pre>", "</pre>"))
    }
}

fn language(kind: &CodeBlockKind<'_>) -> Option<String> {
    let CodeBlockKind::Fenced(info) = kind else {
        return None;
    };
    let language: String = info
        .chars()
        .skip_while(|c| c.is_whitespace())
        .take_while(|c| c.is_ascii_alphanumeric() || "+-#._".contains(*c))
        .take(MAX_LANGUAGE)
        .collect();
    (!language.is_empty()).then_some(language)
}

fn link(link_type: LinkType, url: &str) -> Option<Element> {
    let url = match link_type {
        LinkType::Email if !url.starts_with("mailto:") => format!("mailto:{url}"),
        _ => url.to_owned(),
    };
    let (scheme, _) = url.split_once(':')?;
    LINK_SCHEMES
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(scheme))
        .then(|| Element::new(format!("<a href=\"{}\">", escape_html(&url)), "</a>"))
}

/// Where a cut may fall, worst first; the splitter takes the best kind that fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Cut {
    /// Inside a grapheme (before a joiner, modifier or combining mark): only as a last resort.
    Inside,
    Char,
    Space,
    Line,
    Block,
}

fn split(atoms: &[Atom], limit: usize) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut open: Vec<&Element> = Vec::new();
    let mut start = skip_blank(atoms, 0, &open);
    while start < atoms.len() {
        let end = find_cut(atoms, start, &open, limit);
        let body = trim_blank_end(atoms, start, end);
        let part = write_part(&atoms[start..body], &mut open);
        if !part.plain.trim().is_empty() {
            parts.push(part);
        }
        start = skip_blank(atoms, end, &open);
    }
    parts
}

/// Running size of a part: what is written so far plus the tags that would close it here.
struct Meter<'a> {
    stack: Vec<&'a Element>,
    written: usize,
    closing: usize,
}

impl<'a> Meter<'a> {
    fn new(open: &[&'a Element]) -> Self {
        Self {
            stack: open.to_vec(),
            written: open.iter().map(|e| units(&e.open)).sum(),
            closing: open.iter().map(|e| units(e.close)).sum(),
        }
    }

    fn add(&mut self, atom: &'a Atom) {
        match atom {
            Atom::Open(element) => {
                self.written += units(&element.open);
                self.closing += units(element.close);
                self.stack.push(element);
            }
            Atom::Close => {
                if let Some(element) = self.stack.pop() {
                    self.written += units(element.close);
                    self.closing -= units(element.close);
                }
            }
            Atom::Text(c) => self.written += text_units(*c),
            Atom::Break => {}
        }
    }
}

/// The end of the next part: everything left if it fits, else the best-ranked cut that fits,
/// the latest of its rank.
fn find_cut(atoms: &[Atom], start: usize, open: &[&Element], limit: usize) -> usize {
    let mut meter = Meter::new(open);
    let mut best = [None; Cut::Block as usize + 1];
    for (pos, atom) in atoms.iter().enumerate().skip(start) {
        meter.add(atom);
        if meter.written > limit {
            break;
        }
        if meter.written + meter.closing > limit {
            continue;
        }
        if pos + 1 == atoms.len() {
            return atoms.len();
        }
        best[cut_kind(atoms, pos + 1) as usize] = Some(pos + 1);
    }
    // Unreachable while tags are held to half the limit; kept so a bug cannot loop forever.
    best.iter()
        .rev()
        .flatten()
        .next()
        .copied()
        .unwrap_or(start + 1)
}

fn cut_kind(atoms: &[Atom], pos: usize) -> Cut {
    match (&atoms[pos - 1], atoms.get(pos)) {
        (Atom::Break, _) => Cut::Block,
        (Atom::Text('\n'), _) => Cut::Line,
        (Atom::Text(c), _) if c.is_whitespace() => Cut::Space,
        (Atom::Text('\u{200D}'), _) => Cut::Inside,
        (_, Some(Atom::Text(next))) if extends_grapheme(*next) => Cut::Inside,
        _ => Cut::Char,
    }
}

fn extends_grapheme(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{200C}'..='\u{200D}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{1F3FB}'..='\u{1F3FF}'
        | '\u{E0020}'..='\u{E007F}')
}

fn is_blank(atom: &Atom) -> bool {
    matches!(atom, Atom::Break) || matches!(atom, Atom::Text(c) if c.is_whitespace())
}

fn trim_blank_end(atoms: &[Atom], start: usize, mut end: usize) -> usize {
    while end > start && is_blank(&atoms[end - 1]) {
        end -= 1;
    }
    end
}

/// Skips the separator at a cut; inside `<pre>` leading spaces are indentation and stay.
fn skip_blank(atoms: &[Atom], from: usize, open: &[&Element]) -> usize {
    let in_pre = open.iter().any(|e| e.is_pre());
    let skippable = |atom: &Atom| match atom {
        Atom::Text(c) if in_pre => *c == '\n',
        _ => is_blank(atom),
    };
    atoms[from..]
        .iter()
        .position(|atom| !skippable(atom))
        .map_or(atoms.len(), |offset| from + offset)
}

/// Writes one part, re-opening the tags left open by the previous one and closing its own.
fn write_part<'a>(atoms: &'a [Atom], open: &mut Vec<&'a Element>) -> Part {
    let mut writer = Writer::default();
    for element in open.iter() {
        writer.open(element);
    }
    for atom in atoms {
        match atom {
            Atom::Open(element) => {
                writer.open(element);
                open.push(element);
            }
            Atom::Close => {
                if open.pop().is_some() {
                    writer.close();
                }
            }
            Atom::Text(c) => writer.text(*c),
            Atom::Break => {}
        }
    }
    writer.finish()
}

#[derive(Default)]
struct Writer {
    html: String,
    plain: String,
    /// For each open tag: where it starts, where its content starts, and how it closes.
    open: Vec<(usize, usize, &'static str)>,
}

impl Writer {
    fn open(&mut self, element: &Element) {
        let start = self.html.len();
        self.html.push_str(&element.open);
        self.open.push((start, self.html.len(), element.close));
    }

    /// Drops a pair with nothing inside instead of closing it: a cut right after an opening tag
    /// would otherwise leave an empty entity, which only wastes room.
    fn close(&mut self) {
        if let Some((start, content, close)) = self.open.pop() {
            if self.html.len() == content {
                self.html.truncate(start);
            } else {
                self.html.push_str(close);
            }
        }
    }

    fn text(&mut self, c: char) {
        match entity(c) {
            Some(escaped) => self.html.push_str(escaped),
            None => self.html.push(c),
        }
        self.plain.push(c);
    }

    fn finish(mut self) -> Part {
        while !self.open.is_empty() {
            self.close();
        }
        Part {
            html: self.html,
            plain: self.plain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(markdown: &str) -> String {
        let parts = render(markdown, TELEGRAM_LIMIT);
        assert_eq!(parts.len(), 1, "{parts:?}");
        check_parts(&parts, TELEGRAM_LIMIT);
        parts[0].html.clone()
    }

    /// Strips tags and unescapes entities; panics on a bare `>` or an unknown entity.
    fn visible(html: &str) -> String {
        let mut out = String::new();
        let mut rest = html;
        while let Some(c) = rest.chars().next() {
            if c == '<' {
                let end = rest.find('>').expect("unterminated tag");
                rest = &rest[end + 1..];
            } else if c == '&' {
                let entities = [
                    ("&lt;", '<'),
                    ("&gt;", '>'),
                    ("&amp;", '&'),
                    ("&quot;", '"'),
                ];
                let (entity, text) = entities
                    .into_iter()
                    .find(|(entity, _)| rest.starts_with(entity))
                    .unwrap_or_else(|| panic!("bad entity in {html:?}"));
                out.push(text);
                rest = &rest[entity.len()..];
            } else {
                assert_ne!(c, '>', "bare > in {html:?}");
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        out
    }

    /// Tag contents in order: `b`, `/b`, `a href="…"`.
    fn tags(html: &str) -> Vec<&str> {
        html.split('<')
            .skip(1)
            .map(|tag| &tag[..tag.find('>').expect("unterminated tag")])
            .collect()
    }

    fn assert_balanced(html: &str) {
        let mut stack = Vec::new();
        for tag in tags(html) {
            match tag.strip_prefix('/') {
                Some(name) => assert_eq!(stack.pop(), Some(name), "in {html:?}"),
                None => stack.push(tag.split(' ').next().unwrap_or(tag)),
            }
        }
        assert!(stack.is_empty(), "unclosed {stack:?} in {html:?}");
    }

    fn assert_supported(html: &str) {
        const NAMES: [&str; 9] = ["b", "i", "u", "s", "span", "a", "code", "pre", "blockquote"];
        let mut previous = "";
        for tag in tags(html) {
            let supported = match tag {
                "b" | "i" | "u" | "s" | "code" | "pre" | "blockquote" => true,
                "span class=\"tg-spoiler\"" => true,
                _ if tag.starts_with("a href=\"") => tag.ends_with('"'),
                _ if tag.starts_with("code class=\"language-") => previous == "pre",
                _ => tag
                    .strip_prefix('/')
                    .is_some_and(|name| NAMES.contains(&name)),
            };
            assert!(supported, "unsupported tag <{tag}> in {html:?}");
            previous = tag;
        }
    }

    fn check_parts(parts: &[Part], limit: usize) {
        for part in parts {
            assert!(units(&part.html) <= limit, "too long: {part:?}");
            assert!(units(&part.plain) <= limit, "too long: {part:?}");
            assert!(!part.plain.trim().is_empty(), "blank part: {part:?}");
            assert_balanced(&part.html);
            assert_supported(&part.html);
            assert_eq!(visible(&part.html), part.plain);
        }
    }

    fn joined_plain(parts: &[Part]) -> String {
        parts.iter().map(|part| part.plain.as_str()).collect()
    }

    fn squeeze(text: &str) -> String {
        text.chars().filter(|c| !c.is_whitespace()).collect()
    }

    /// xorshift64: deterministic, so a failing input can be reproduced from its seed.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    const WORDS: [&str; 24] = [
        "hello",
        "world",
        "a<b",
        "x&y",
        "**bold**",
        "*it*",
        "~~gone~~",
        "`c&d`",
        "😀",
        "👍🏽",
        "👨‍👩‍👧",
        "漢字テキスト",
        "[link](https://e.com/?a=1&b=2)",
        "![pic](https://e.com/p.png)",
        "[bad](javascript:x)",
        "<span>",
        "&amp;",
        ">",
        "\\*",
        "**unclosed",
        "_x_",
        "a\nb",
        "end.",
        "<me@x.com>",
    ];

    fn words(rng: &mut Rng, count: usize) -> String {
        let mut out: Vec<String> = Vec::new();
        for _ in 0..count {
            match rng.below(25) {
                0 => out.push("w".repeat(50 + rng.below(400))),
                1 => out.push("🙂".repeat(20 + rng.below(200))),
                _ => out.push(rng.pick(&WORDS).to_owned()),
            }
        }
        out.join(" ")
    }

    fn block(rng: &mut Rng) -> String {
        match rng.below(9) {
            0 => format!("## {}", words(rng, 4)),
            1 => (0..1 + rng.below(6))
                .map(|i| {
                    let indent = "  ".repeat(rng.below(2));
                    let marker = if rng.below(2) == 0 { "-" } else { "1." };
                    let count = 1 + rng.below(8);
                    format!("{indent}{marker} {} {i}\n", words(rng, count))
                })
                .collect(),
            2 => {
                let lines: String = (0..rng.below(40))
                    .map(|i| format!("    let v{i} = a < b && {};\n", "c".repeat(rng.below(90))))
                    .collect();
                format!("```rust\n{lines}```")
            }
            3 => format!("> {}\n>\n> {}", words(rng, 10), words(rng, 20)),
            4 => "---".to_owned(),
            5 => "<div>raw & html</div>".to_owned(),
            6 => "| a | b&c |\n|---|---|\n| 1 | 2 |".to_owned(),
            _ => {
                let count = 1 + rng.below(150);
                words(rng, count)
            }
        }
    }

    fn document(rng: &mut Rng) -> String {
        let most = if rng.below(4) == 0 { 40 } else { 8 };
        let blocks = 1 + rng.below(most);
        let blocks: Vec<String> = (0..blocks).map(|_| block(rng)).collect();
        blocks.join("\n\n")
    }

    #[test]
    fn inline_formatting_maps_to_tags() {
        assert_eq!(
            one("**b** *i* ~~s~~ `c < d`"),
            "<b>b</b> <i>i</i> <s>s</s> <code>c &lt; d</code>"
        );
        assert_eq!(one("***both***"), "<i><b>both</b></i>");
    }

    #[test]
    fn code_block_with_language() {
        assert_eq!(
            one("```rust\nfn main() {}\n```"),
            "<pre><code class=\"language-rust\">fn main() {}</code></pre>"
        );
    }

    #[test]
    fn code_block_without_language() {
        assert_eq!(one("```\nx < y\n  z\n```"), "<pre>x &lt; y\n  z</pre>");
        assert_eq!(
            one("text\n\n    indented & code\n"),
            "text\n\n<pre>indented &amp; code</pre>"
        );
    }

    #[test]
    fn links_keep_only_safe_schemes() {
        assert_eq!(
            one("[site](https://e.com/?a=1&b=\"2\")"),
            "<a href=\"https://e.com/?a=1&amp;b=&quot;2&quot;\">site</a>"
        );
        assert_eq!(
            one("[me](tg://user?id=1)"),
            "<a href=\"tg://user?id=1\">me</a>"
        );
        assert_eq!(
            one("[x](javascript:alert(1)) and [y](/relative)"),
            "x and y"
        );
        assert_eq!(
            one("<me@x.com>"),
            "<a href=\"mailto:me@x.com\">me@x.com</a>"
        );
    }

    #[test]
    fn images_become_links_with_alt_text() {
        assert_eq!(
            one("![a cat](https://e.com/cat.png)"),
            "<a href=\"https://e.com/cat.png\">a cat</a>"
        );
        assert_eq!(
            one("![](https://e.com/cat.png)"),
            "<a href=\"https://e.com/cat.png\">https://e.com/cat.png</a>"
        );
        assert_eq!(one("![a cat](data:image/png;base64,AAAA)"), "a cat");
    }

    #[test]
    fn headings_are_bold_lines() {
        assert_eq!(
            one("# Title\ntext\n## Sub *it*"),
            "<b>Title</b>\n\ntext\n\n<b>Sub <i>it</i></b>"
        );
    }

    #[test]
    fn block_quotes_are_not_nested() {
        assert_eq!(
            one("> quoted\n>\n> > inner\n\nafter"),
            "<blockquote>quoted\n\ninner</blockquote>\n\nafter"
        );
    }

    #[test]
    fn unordered_lists_use_bullets_and_indent() {
        assert_eq!(
            one("Intro:\n\n- a\n  - b\n    - c\n- d\n\nEnd"),
            "Intro:\n\n• a\n  • b\n    • c\n• d\n\nEnd"
        );
        assert_eq!(one("- a\n\n- b"), "• a\n\n• b");
    }

    #[test]
    fn ordered_lists_keep_start_number() {
        assert_eq!(one("3. x\n4. **y**\n   1. z"), "3. x\n4. <b>y</b>\n  1. z");
    }

    #[test]
    fn rules_breaks_and_paragraphs() {
        assert_eq!(one("a\nb  \nc\n\n---\n\nd"), "a\nb\nc\n\n———\n\nd");
    }

    #[test]
    fn raw_html_is_shown_escaped() {
        assert_eq!(
            one("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(one("x <b>y</b>"), "x &lt;b&gt;y&lt;/b&gt;");
    }

    #[test]
    fn comparison_operators_are_escaped() {
        assert_eq!(one("a < b && c > d"), "a &lt; b &amp;&amp; c &gt; d");
    }

    #[test]
    fn tables_become_plain_lines() {
        assert_eq!(
            one("| a | **b** |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |"),
            "a | <b>b</b>\n1 | 2\n3 | 4"
        );
    }

    #[test]
    fn escape_html_escapes_markup_and_quotes() {
        assert_eq!(
            escape_html("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn plain_is_the_visible_text() {
        let parts = render("**a** & [b](https://e.com) `<c>`", TELEGRAM_LIMIT);
        assert_eq!(parts[0].plain, "a & b <c>");
    }

    #[test]
    fn blank_input_gives_no_parts() {
        for input in ["", "   \n\n\t ", "```\n   \n```", "<!-- -->\n"] {
            let parts = render(input, TELEGRAM_LIMIT);
            assert!(
                parts.iter().all(|p| !p.plain.trim().is_empty()),
                "{parts:?}"
            );
        }
        assert!(render("", TELEGRAM_LIMIT).is_empty());
        assert!(render("   \n\n\t ", TELEGRAM_LIMIT).is_empty());
        assert!(render("```\n   \n```", TELEGRAM_LIMIT).is_empty());
    }

    #[test]
    fn long_reply_splits_between_paragraphs() {
        let mut rng = Rng(7);
        let mut paragraphs = Vec::new();
        while paragraphs.iter().map(String::len).sum::<usize>() < 10_000 {
            let words = vec!["lorem & ipsum"; 5 + rng.below(110)].join(" ");
            paragraphs.push(format!("P{} {words}", paragraphs.len()));
        }
        let parts = render(&paragraphs.join("\n\n"), TELEGRAM_LIMIT);
        check_parts(&parts, TELEGRAM_LIMIT);
        assert!(parts.len() >= 3, "{}", parts.len());
        for paragraph in &paragraphs {
            let holders = parts
                .iter()
                .filter(|p| p.plain.contains(paragraph.as_str()));
            assert_eq!(holders.count(), 1, "paragraph cut: {paragraph}");
        }
    }

    #[test]
    fn code_block_is_reopened_after_a_cut() {
        let code: String = (0..400)
            .map(|i| format!("    let value_{i} = a < b && c;\n"))
            .collect();
        let markdown = format!("Intro\n\n```rust\n{code}```\n\nOutro");
        let parts = render(&markdown, TELEGRAM_LIMIT);
        check_parts(&parts, TELEGRAM_LIMIT);
        assert!(parts.len() >= 4, "{}", parts.len());
        let open = "<pre><code class=\"language-rust\">";
        for part in &parts[2..] {
            assert!(part.html.starts_with(open), "{}", &part.html[..60]);
            assert!(part.plain.starts_with("    let value_"), "indent lost");
        }
        for line in parts.iter().flat_map(|p| p.plain.lines()) {
            assert!(
                line.ends_with(';') || ["Intro", "Outro", ""].contains(&line),
                "{line}"
            );
        }
        assert_eq!(
            squeeze(&joined_plain(&parts)),
            squeeze(&format!("Intro{code}Outro"))
        );
    }

    #[test]
    fn formatting_is_reopened_after_a_cut() {
        let text = vec!["word"; 300].join(" ");
        for (markdown, open, close) in [
            (format!("**{text}**"), "<b>", "</b>"),
            (format!("> {text}"), "<blockquote>", "</blockquote>"),
        ] {
            let parts = render(&markdown, 200);
            check_parts(&parts, 200);
            assert!(parts.len() > 5);
            for part in &parts {
                assert!(
                    part.html.starts_with(open) && part.html.ends_with(close),
                    "{part:?}"
                );
                assert!(part.plain.starts_with("word") && part.plain.ends_with("word"));
            }
        }
    }

    #[test]
    fn long_word_is_cut_between_chars() {
        let word = "ab&<é".repeat(2_000);
        for limit in [64, TELEGRAM_LIMIT] {
            let parts = render(&word, limit);
            check_parts(&parts, limit);
            assert!(parts.len() >= 3);
            assert_eq!(joined_plain(&parts), word);
        }
    }

    #[test]
    fn emoji_are_never_broken() {
        let smileys = "😀".repeat(5_000);
        let parts = render(&smileys, TELEGRAM_LIMIT);
        check_parts(&parts, TELEGRAM_LIMIT);
        assert_eq!(parts.len(), 3);
        assert_eq!(joined_plain(&parts), smileys);

        let families = "👨‍👩‍👧👍🏽".repeat(500);
        let parts = render(&families, 64);
        check_parts(&parts, 64);
        assert_eq!(joined_plain(&parts), families);
        for part in &parts {
            assert!(
                part.plain.starts_with('👨') && part.plain.ends_with('🏽'),
                "{part:?}"
            );
        }
    }

    #[test]
    fn tiny_limits_never_panic() {
        let mut rng = Rng(99);
        for limit in 0..80 {
            let input = document(&mut rng);
            let parts = render(&input, limit);
            check_parts(&parts, limit.max(MIN_LIMIT));
        }
    }

    #[test]
    fn splitting_keeps_the_visible_text() {
        let mut rng = Rng(0x5eed);
        for case in 0..300 {
            let input = document(&mut rng);
            let whole = render(&input, usize::MAX);
            assert!(whole.len() <= 1, "case {case}");
            check_parts(&whole, usize::MAX);
            let expected = squeeze(&joined_plain(&whole));
            for limit in [64, 200, TELEGRAM_LIMIT] {
                let parts = render(&input, limit);
                check_parts(&parts, limit);
                let got: String = parts.iter().map(|p| visible(&p.html)).collect();
                assert_eq!(
                    squeeze(&got),
                    expected,
                    "case {case}, limit {limit}: {input:?}"
                );
            }
        }
    }

    #[test]
    fn only_supported_tags_are_emitted() {
        let sample = "# H\n\n**b** *i* ~~s~~ `c` [l](https://e.com) ![p](https://e.com/p)\n\n\
            > q **b**\n\n- x\n  1. y\n\n```py\nz\n```\n\n<u>raw</u> <tg-spoiler>s</tg-spoiler>\n\n\
            | t | u |\n|---|---|\n| v | w |";
        let html = one(sample);
        assert_supported(&html);
        for tag in [
            "<b>",
            "<i>",
            "<s>",
            "<code>",
            "<a href",
            "<blockquote>",
            "<pre><code class",
        ] {
            assert!(html.contains(tag), "{tag} missing from {html}");
        }
        assert!(html.contains("&lt;u&gt;raw&lt;/u&gt;"));
        let mut rng = Rng(3);
        for _ in 0..100 {
            for part in render(&document(&mut rng), 300) {
                assert_supported(&part.html);
            }
        }
    }
}
