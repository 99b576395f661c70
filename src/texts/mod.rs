//! What the bot (and its gate) say, in every language, in one place: the texts themselves are in
//! `locales/<language>.toml`, keyed; this module fills them in. HTML for Telegram's parse mode;
//! every dynamic part escaped.

mod catalog;

pub use catalog::{Lang, grouped, plural, t};

use crate::config::GateConfig;
use crate::gate::{Channel, ChannelPolicy};
use crate::telegram::format::escape_html;

/// The channels as HTML links (`@name` → t.me link; numeric ids as configured text).
pub fn channel_links(lang: Lang, gate: &GateConfig) -> String {
    let names: Vec<String> = gate
        .channels
        .iter()
        .map(|c| match c {
            Channel::Username(name) => {
                format!(
                    "<a href=\"https://t.me/{name}\">@{}</a> (https://t.me/{name})",
                    escape_html(name)
                )
            }
            Channel::Id(id) => t(lang, "channel.private", &[("id", id)]),
        })
        .collect();
    let list = names.join(", ");
    match (names.len(), gate.policy) {
        (1, _) => list,
        (_, ChannelPolicy::All) => t(lang, "channel.all_of", &[("list", &list)]),
        (_, ChannelPolicy::Any) => t(lang, "channel.any_of", &[("list", &list)]),
    }
}

/// `/start` and `/help`.
pub fn help(lang: Lang, gate: &GateConfig, is_admin: bool) -> String {
    let admin = if is_admin {
        t(lang, "help_admin", &[])
    } else {
        String::new()
    };
    t(
        lang,
        "help",
        &[("links", &channel_links(lang, gate)), ("admin", &admin)],
    )
}

/// The refusal for a non-subscriber.
pub fn not_subscribed(lang: Lang, gate: &GateConfig) -> String {
    t(
        lang,
        "not_subscribed",
        &[("links", &channel_links(lang, gate))],
    )
}

/// `/subscribe` answered yes.
pub fn subscribed(lang: Lang, gate: &GateConfig) -> String {
    t(lang, "subscribed", &[("links", &channel_links(lang, gate))])
}

/// An upstream failure, after the retries.
pub fn apology(lang: Lang, reference: &str) -> String {
    t(lang, "apology", &[("reference", &reference)])
}
