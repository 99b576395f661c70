//! The splitter: cuts the atoms into parts of at most `limit` UTF-16 units, preferring block
//! boundaries, and re-opens in each part the tags the previous one left open.

use super::Part;
use super::html::{Element, entity, text_units, units};

/// The document flattened so that every position between two atoms is a possible cut.
#[derive(Debug)]
pub(super) enum Atom {
    Open(Element),
    Close,
    Text(char),
    /// A boundary between blocks: the preferred place to cut.
    Break,
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

/// Cuts `atoms` into parts of at most `limit` units; blank parts are dropped.
pub(super) fn split(atoms: &[Atom], limit: usize) -> Vec<Part> {
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
