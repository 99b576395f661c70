//! Markdown → a flat list of atoms: the model's CommonMark mapped onto Telegram's tags, with
//! block separators and possible cut points marked for the splitter.

use pulldown_cmark::{CodeBlockKind, Event, LinkType, Options, Parser, Tag, TagEnd};

use super::html::{Element, escape_html};
use super::split::Atom;

/// Link schemes Telegram opens; anything else (relative, `javascript:`, `data:`) is dropped.
const LINK_SCHEMES: [&str; 4] = ["http", "https", "tg", "mailto"];

/// Longer fence info strings are not languages but prose; they would only eat the limit.
const MAX_LANGUAGE: usize = 32;

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
pub(super) struct Builder {
    atoms: Vec<Atom>,
    open: Vec<Element>,
    frames: Vec<Frame>,
    /// Separator owed before the next content; deferred so empty blocks leave no blank lines.
    pending: Option<Sep>,
    /// Right after a bullet, where a separator would only add a blank line. (Right after an
    /// opening tag `flush` drops the separator itself.)
    fresh: bool,
    visible: usize,
    budget: usize,
    lists: Vec<Option<u64>>,
    verbatim: Option<Verbatim>,
    cells: usize,
}

impl Builder {
    pub(super) fn new(budget: usize) -> Self {
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

    pub(super) fn build(mut self, markdown: &str) -> Vec<Atom> {
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
        if matches!(tag, TagEnd::CodeBlock | TagEnd::HtmlBlock) {
            // The block's text is written only now, so until then nothing followed the bullet.
            self.flush_verbatim();
            return;
        }
        // An item or quote that ended empty must still be separated from what follows.
        self.fresh = false;
        match tag {
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough => self.close_frame(),
            TagEnd::Link | TagEnd::Image => self.close_frame(),
            TagEnd::Heading(_) | TagEnd::BlockQuote(_) => {
                self.close_frame();
                self.raise(Sep::Blank);
            }
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

    /// Writes the separator owed, except at the start or right after an opening tag: the tag's
    /// own separator went before it, and one inside would start the quote with a blank line
    /// that is not there when the tag does not fit the budget.
    fn flush(&mut self) {
        let Some(sep) = self.pending.take() else {
            return;
        };
        if self.visible > 0 && !matches!(self.atoms.last(), Some(Atom::Open(_))) {
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

    /// Closes the innermost tag. A pair with nothing inside is taken back instead, with the
    /// separator its opening wrote: an empty quote or heading must leave nothing behind, the
    /// same as when its tag did not fit the budget.
    fn close(&mut self) {
        self.open.pop();
        if !matches!(self.atoms.last(), Some(Atom::Open(_))) {
            self.atoms.push(Atom::Close);
            return;
        }
        self.atoms.pop();
        let newlines = self
            .atoms
            .iter()
            .rev()
            .take_while(|atom| matches!(atom, Atom::Text('\n')))
            .count();
        let start = self.atoms.len() - newlines;
        if (1..=2).contains(&newlines)
            && matches!(
                start.checked_sub(1).map(|at| &self.atoms[at]),
                Some(Atom::Break)
            )
        {
            self.atoms.truncate(start - 1);
            let sep = if newlines == 2 { Sep::Blank } else { Sep::Line };
            self.pending = self.pending.max(Some(sep));
        }
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
