//! The splitter: limits, cut points, and tags re-opened across parts.

use super::*;

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
            let got: String = parts.iter().map(|p| parse_html(&p.html).unwrap()).collect();
            assert_eq!(
                squeeze(&got),
                expected,
                "case {case}, limit {limit}: {input:?}"
            );
        }
    }
}

#[test]
fn the_visible_text_does_not_depend_on_the_limit() {
    // Found by the property tests: with room for `<blockquote>` the empty quote added two
    // newlines that a smaller limit (budget 10), with no room for the tag, did not.
    let markdown = "x (#<\n>\n:";
    let whole = render(markdown, TELEGRAM_LIMIT);
    assert_eq!(joined_plain(&whole), "x (#<\n\n:");
    assert_eq!(joined_plain(&render(markdown, 20)), "x (#<\n\n:");
}
