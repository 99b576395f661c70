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

#[cfg(test)]
mod tests;
