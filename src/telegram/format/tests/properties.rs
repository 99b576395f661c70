//! Property tests of the formatter and splitter over generated Markdown-ish input.
//!
//! For every input and limit, every part
//! - is at most `limit` UTF-16 code units (4096 for [`TELEGRAM_LIMIT`]), as HTML and as plain;
//! - is valid Telegram HTML: supported tags only, balanced, allowed nesting (see `checker`);
//! - has as `plain` exactly the visible text of its `html`.
//!
//! And no text is lost or added by splitting. The input's *visible text* is defined as the
//! `plain` of the input rendered as one unlimited part (`render(input, usize::MAX)`): the
//! Markdown's text after the conversion (markers become tags, lists get bullets, tables `|`).
//! The parts' `plain`s, in order, must spell out exactly that text, except for whitespace
//! (spaces, newlines) dropped where one part ends and the next begins: the visible text is
//! `gap₀ part₁ gap₁ part₂ … partₙ gapₙ` with every gap whitespace only.

use proptest::prelude::*;

use super::*;

/// Text pieces with the characters that are special to Markdown, HTML or UTF-16.
fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9]{1,12}",
        1 => prop_oneof![
            Just("<"), Just(">"), Just("&"), Just("&amp;"), Just("a<b"), Just("x && y > z"),
            Just("<b>raw</b>"), Just("\\*"), Just("**"), Just("_"), Just("|"), Just("`"),
        ]
        .prop_map(str::to_owned),
        // Astral characters (surrogate pairs), joiners, modifiers and combining marks.
        1 => "[😀🙂👍🏽🧪𐍈漢字é\u{200D}\u{0301}\u{FE0F}]{1,8}",
        1 => Just("👨‍👩‍👧".to_owned()),
        1 => "`[^`\n]{1,20}`",
        1 => ("[a-z ]{1,10}", link_target()).prop_map(|(text, url)| format!("[{text}]({url})")),
        1 => link_target().prop_map(|url| format!("![alt]({url})")),
        // Words longer than a small limit, so the splitter has to cut inside them.
        1 => ("[a-z&<😀]{1,3}", 20usize..400).prop_map(|(word, n)| word.repeat(n)),
    ]
}

fn link_target() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("https://e.com/?a=1&b=\"2\""),
        Just("tg://user?id=1"),
        Just("javascript:alert(1)"),
        Just("/relative"),
    ]
}

/// Inline Markdown: leaves, nested in bold, italic, strikethrough and links.
fn inline() -> impl Strategy<Value = String> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        let words = prop::collection::vec(inner, 1..4).prop_map(|words| words.join(" "));
        (words, 0..4usize).prop_map(|(words, kind)| match kind {
            0 => format!("**{words}**"),
            1 => format!("*{words}*"),
            2 => format!("~~{words}~~"),
            _ => format!("[{words}](https://e.com)"),
        })
    })
}

fn line(most: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(inline(), 1..most).prop_map(|words| words.join(" "))
}

fn code_block() -> impl Strategy<Value = String> {
    let language = prop_oneof![Just(""), Just("rust"), Just("c++"), Just("a b c")];
    let code_line = "( {0,8})[a-z<>&😀;(){}]{0,120}";
    (language, prop::collection::vec(code_line, 0..60))
        .prop_map(|(language, lines)| format!("```{language}\n{}\n```", lines.join("\n")))
}

fn list() -> impl Strategy<Value = String> {
    let item = (0..3usize, any::<bool>(), line(8));
    prop::collection::vec(item, 1..8).prop_map(|items| {
        items
            .into_iter()
            .map(|(depth, numbered, text)| {
                let marker = if numbered { "1." } else { "-" };
                format!("{}{marker} {text}\n", "   ".repeat(depth))
            })
            .collect()
    })
}

fn table() -> impl Strategy<Value = String> {
    (1..5usize).prop_flat_map(|columns| {
        let row = prop::collection::vec("[a-z&<>😀 ]{1,10}|\\*\\*[a-z]{1,5}\\*\\*", columns);
        prop::collection::vec(row, 1..6).prop_map(move |rows| {
            let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
            let rule = line(&vec!["---".to_owned(); columns]);
            let mut rows = rows.iter().map(|cells| line(cells));
            let head = rows.next().unwrap_or_default();
            format!("{head}{rule}{}", rows.collect::<String>())
        })
    })
}

fn block() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => line(40),
        1 => ("#{1,3}", line(6)).prop_map(|(level, text)| format!("{level} {text}")),
        2 => code_block(),
        1 => list(),
        1 => line(20).prop_map(|text| format!("> {text}\n>\n> > {text}")),
        1 => table(),
        1 => Just("---".to_owned()),
        1 => Just("<div>raw & <b>html</b></div>".to_owned()),
        // A paragraph several messages long.
        1 => (1usize..1500).prop_map(|n| "word&<😀 ".repeat(n)),
    ]
}

fn document() -> impl Strategy<Value = String> {
    prop::collection::vec(block(), 1..10).prop_map(|blocks| blocks.join("\n\n"))
}

/// Anything made of Markdown's special characters, for syntax no template thought of.
fn soup() -> impl Strategy<Value = String> {
    "[-\n\t *_`\\\\\\[\\]()<>&#!|~=:/.a-c😀🏽\u{200D}\u{0301}]{0,600}"
}

/// Lines opening with block markers (quotes, lists, code, headings, tables) over a short soup:
/// the nesting of blocks, where separators and empty blocks go wrong, far more often than
/// [`soup`] reaches it. Found a code block opening a quote within a second of hunting.
fn block_soup() -> impl Strategy<Value = String> {
    let marker = prop::sample::select(vec![
        "",
        "  ",
        "\t",
        "    ",
        ">",
        "> ",
        "> > ",
        "> - ",
        "> ```",
        "- ",
        "- > ",
        "  - ",
        "* ",
        "1. ",
        "# ",
        "```",
        "---",
        "===",
        "| a | b |",
        "|---|---|",
        "<div>",
    ]);
    let rest = "[-\t *_`\\\\\\[\\]()<>&#!|~a-c1😀\u{0301}]{0,12}";
    prop::collection::vec((marker, rest), 0..14).prop_map(|lines| {
        lines
            .iter()
            .map(|(marker, rest)| format!("{marker}{rest}\n"))
            .collect()
    })
}

fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..=64, 64usize..=600, Just(TELEGRAM_LIMIT)]
}

/// The visible text of `markdown`, as the module documentation defines it.
fn visible_text(markdown: &str) -> String {
    let whole = render(markdown, usize::MAX);
    assert!(
        whole.len() <= 1,
        "an unlimited render gave {} parts",
        whole.len()
    );
    whole.into_iter().map(|part| part.plain).collect()
}

/// `visible` is the parts' `plain`s in order, with only whitespace around and between them.
fn assert_spells_out(visible: &str, parts: &[Part]) -> Result<(), TestCaseError> {
    let mut rest = visible;
    for (index, part) in parts.iter().enumerate() {
        let gap = rest
            .char_indices()
            .map(|(at, _)| at)
            .chain([rest.len()])
            .take_while(|&at| rest[..at].chars().all(char::is_whitespace))
            .find(|&at| rest[at..].starts_with(&part.plain));
        let Some(gap) = gap else {
            let shown: String = rest.chars().take(80).collect();
            return Err(TestCaseError::fail(format!(
                "part {index} {:?} does not follow on at {shown:?}",
                part.plain
            )));
        };
        rest = &rest[gap + part.plain.len()..];
    }
    prop_assert!(rest.trim().is_empty(), "text lost at the end: {rest:?}");
    Ok(())
}

fn check(markdown: &str, limit: usize) -> Result<(), TestCaseError> {
    let parts = render(markdown, limit);
    check_parts(&parts, limit.max(MIN_LIMIT));
    assert_spells_out(&visible_text(markdown), &parts)
}

/// 128 cases per property from a fixed seed, so that the suite gives the same answer on every
/// run (CI included); a hunt sets `PROPTEST_CASES` and/or `PROPTEST_RNG_SEED` (`random` or a
/// number) and gets what it asks for.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 128;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = proptest::test_runner::RngSeed::Fixed(FIXED_SEED);
    }
    config
}

/// The seed of the everyday run.
const FIXED_SEED: u64 = 20_261_203;

proptest! {
    #![proptest_config(config())]

    #[test]
    fn documents_split_into_valid_parts_that_keep_the_text(
        markdown in document(),
        limit in limit(),
    ) {
        check(&markdown, limit)?;
    }

    #[test]
    fn block_marker_soup_splits_into_valid_parts_that_keep_the_text(
        markdown in block_soup(),
        limit in limit(),
    ) {
        check(&markdown, limit)?;
    }

    #[test]
    fn any_markdown_soup_splits_into_valid_parts_that_keep_the_text(
        markdown in soup(),
        limit in limit(),
    ) {
        check(&markdown, limit)?;
    }
}

#[test]
fn spelling_out_allows_whitespace_only_between_parts() {
    let part = |plain: &str| Part {
        html: String::new(),
        plain: plain.to_owned(),
    };
    assert!(assert_spells_out("ab \n  cd", &[part("ab"), part("  cd")]).is_ok());
    assert!(assert_spells_out("abcd", &[part("ab"), part("cd")]).is_ok());
    assert!(assert_spells_out("abXcd", &[part("ab"), part("cd")]).is_err());
    assert!(assert_spells_out("abcd", &[part("ab")]).is_err());
    assert!(assert_spells_out("ab", &[part("ab"), part("b")]).is_err());
}

/// Found by [`block_soup`]: an empty quote opening a quote (dropped, as quotes do not nest)
/// cleared the outer quote's "nothing written yet", so `<blockquote>` began with a blank line
/// that was not there when the outer tag did not fit the limit either.
#[test]
fn empty_quote_opening_a_quote_keeps_the_text_at_any_limit() {
    for limit in [0, 64, TELEGRAM_LIMIT] {
        check("(\n> > \t\n>1\n", limit).unwrap();
    }
}

/// Found by a random-seed hunt: a code block of whitespace and a combining mark opening a quote.
/// Unsplit, `<blockquote>` got a blank line of its own inside (the block's text is written at
/// its end, after the quote's "nothing written yet" had been cleared); at limit 12 the quote tag
/// does not fit, the two separators merge, and the visible text had two newlines fewer.
#[test]
fn code_block_opening_a_quote_keeps_the_text_at_any_limit() {
    let markdown = "a(_-__[<&&(|##|~#a<#_ -|_| \u{301}\n>\t\t\u{301}\t";
    for limit in [12, 64, TELEGRAM_LIMIT] {
        check(markdown, limit).unwrap();
    }
}
