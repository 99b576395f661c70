//! A strict reader of Telegram's HTML subset, the oracle the formatter's tests check against.
//!
//! The subset is the one the Bot API documents under "HTML style"
//! (<https://core.telegram.org/bots/api#html-style>, read 2026-12-03): the tags `b`/`strong`,
//! `i`/`em`, `u`/`ins`, `s`/`strike`/`del`, `span class="tg-spoiler"`/`tg-spoiler`,
//! `a href`, `tg-emoji emoji-id`, `code`, `pre` (with one `code class="language-…"` right
//! inside), `blockquote` (optionally `expandable`); the entities `&lt;`, `&gt;`, `&amp;`,
//! `&quot;` and numeric ones; `<`, `>` and `&` nowhere else. Telegram refuses a message that
//! breaks these. Bad nesting it repairs instead, by dropping entities (TDLib's `fix_entities`),
//! so of the documented nesting rules the checker enforces the ones whose repair would lose
//! formatting: nothing inside `code` or `pre` (but the language `code`), no `blockquote` in a
//! `blockquote`, no link in a link. `code` inside `b` or `a` is let through.

/// Parses `html`, returning its visible text or the first thing Telegram would refuse.
pub(super) fn parse_html(html: &str) -> Result<String, String> {
    let mut text = String::new();
    let mut stack: Vec<&str> = Vec::new();
    // Right after `<pre>`, where the language `<code>` may go.
    let mut after_pre = false;
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let end = rest.find('>').ok_or("unterminated tag")?;
                let tag = &rest[1..end];
                rest = &rest[end + 1..];
                match tag.strip_prefix('/') {
                    Some(name) => match stack.pop() {
                        Some(open) if open == name => {}
                        open => return Err(format!("</{name}> closes {open:?}")),
                    },
                    None => stack.push(open_tag(tag, &stack, after_pre)?),
                }
                after_pre = tag == "pre";
            }
            '&' => {
                let end = rest.find(';').ok_or("unterminated entity")?;
                text.push(entity(&rest[1..end])?);
                rest = &rest[end + 1..];
                after_pre = false;
            }
            '>' => return Err("bare >".into()),
            c => {
                text.push(c);
                rest = &rest[c.len_utf8()..];
                after_pre = false;
            }
        }
    }
    match stack.last() {
        Some(open) => Err(format!("<{open}> never closed")),
        None => Ok(text),
    }
}

/// Checks an opening tag (without `<>`) against the subset and its context; gives its name.
fn open_tag<'a>(tag: &'a str, stack: &[&str], after_pre: bool) -> Result<&'a str, String> {
    let (name, attributes) = tag.split_once(' ').unwrap_or((tag, ""));
    let attributes_ok = match name {
        "b" | "strong" | "i" | "em" | "u" | "ins" | "s" | "strike" | "del" | "tg-spoiler"
        | "pre" => attributes.is_empty(),
        "code" => {
            attributes.is_empty()
                || (after_pre && attribute(attributes, "class")?.starts_with("language-"))
        }
        "span" => attribute(attributes, "class")? == "tg-spoiler",
        "a" => !attribute(attributes, "href")?.is_empty(),
        "tg-emoji" => !attribute(attributes, "emoji-id")?.is_empty(),
        "blockquote" => attributes.is_empty() || attributes == "expandable",
        _ => return Err(format!("unsupported tag <{tag}>")),
    };
    if !attributes_ok {
        return Err(format!("unsupported attributes in <{tag}>"));
    }
    let inside = |names: &[&str]| stack.iter().any(|open| names.contains(open));
    let language_code = name == "code" && after_pre;
    if inside(&["code"]) || (inside(&["pre"]) && !language_code) {
        return Err(format!("<{tag}> inside code"));
    }
    if (name == "blockquote" && inside(&["blockquote"])) || (name == "a" && inside(&["a"])) {
        return Err(format!("nested <{name}>"));
    }
    Ok(name)
}

/// The value of the only attribute, `key="value"`, unescaped.
fn attribute(attributes: &str, key: &str) -> Result<String, String> {
    let value = attributes
        .strip_prefix(key)
        .and_then(|rest| rest.strip_prefix("=\""))
        .and_then(|rest| rest.strip_suffix('"'))
        .filter(|value| !value.contains('"'))
        .ok_or_else(|| format!("expected {key}=\"…\", got {attributes:?}"))?;
    parse_html(value)
}

fn entity(name: &str) -> Result<char, String> {
    let numeric = match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => name.strip_prefix('#').and_then(|dec| dec.parse().ok()),
    };
    match (name, numeric) {
        ("lt", _) => Ok('<'),
        ("gt", _) => Ok('>'),
        ("amp", _) => Ok('&'),
        ("quot", _) => Ok('"'),
        (_, Some(code)) => char::from_u32(code).ok_or_else(|| format!("bad entity &{name};")),
        _ => Err(format!("unknown entity &{name};")),
    }
}

#[test]
fn the_checker_refuses_what_telegram_refuses() {
    assert_eq!(
        parse_html("<b>a &lt;<i>b</i></b><pre><code class=\"language-rs\">x</code></pre>"),
        Ok("a <bx".to_owned())
    );
    assert_eq!(
        parse_html("<a href=\"https://e.com/?a=1&amp;b\">l</a>&#65;&#x42;"),
        Ok("lAB".to_owned())
    );
    for bad in [
        "<b>x",
        "<b><i>x</b></i>",
        "x</b>",
        "<div>x</div>",
        "<br/>",
        "a > b",
        "a & b",
        "&nbsp;",
        "<a>x</a>",
        "<a href=\"x\"><a href=\"y\">z</a></a>",
        "<blockquote><blockquote>x</blockquote></blockquote>",
        "<code><b>x</b></code>",
        "<pre>x<code class=\"language-rs\">y</code></pre>",
        "<code class=\"language-rs\">y</code>",
        "<span>x</span>",
        "<b",
    ] {
        assert!(parse_html(bad).is_err(), "{bad:?} passed");
    }
}
