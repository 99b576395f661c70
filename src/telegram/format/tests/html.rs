//! Escaping, and the way back from HTML to plain text.

use super::*;

#[test]
fn comparison_operators_are_escaped() {
    assert_eq!(one("a < b && c > d"), "a &lt; b &amp;&amp; c &gt; d");
}

#[test]
fn escape_html_escapes_markup_and_quotes() {
    assert_eq!(
        escape_html("<a href=\"x\">&</a>"),
        "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
    );
}

#[test]
fn html_to_plain_strips_tags_and_unescapes() {
    assert_eq!(
        html_to_plain("<b>a &lt;b&gt; &amp;amp;</b> <a href=\"x\">link</a>"),
        "a <b> &amp; link"
    );
}
