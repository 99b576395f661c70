//! Tests of the formatter and splitter, including generated inputs.

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

#[test]
fn html_to_plain_strips_tags_and_unescapes() {
    assert_eq!(
        html_to_plain("<b>a &lt;b&gt; &amp;amp;</b> <a href=\"x\">link</a>"),
        "a <b> &amp; link"
    );
}
