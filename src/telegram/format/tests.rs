//! Tests of the formatter, by concept in the submodules, and the checks they share.

use super::html::units;
use super::*;

mod checker;
mod html;
mod markdown;
mod properties;
mod split;

use checker::parse_html;

fn one(markdown: &str) -> String {
    let parts = render(markdown, TELEGRAM_LIMIT);
    assert_eq!(parts.len(), 1, "{parts:?}");
    check_parts(&parts, TELEGRAM_LIMIT);
    parts[0].html.clone()
}

fn check_parts(parts: &[Part], limit: usize) {
    for part in parts {
        assert!(units(&part.html) <= limit, "too long: {part:?}");
        assert!(units(&part.plain) <= limit, "too long: {part:?}");
        assert!(!part.plain.trim().is_empty(), "blank part: {part:?}");
        assert_eq!(parse_html(&part.html).as_ref(), Ok(&part.plain), "{part:?}");
        assert_eq!(html_to_plain(&part.html), part.plain);
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
