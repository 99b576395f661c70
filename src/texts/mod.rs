//! What the bot (and its gate) say, in every language, in one place: the texts themselves are in
//! `locales/<language>.toml`, keyed; this module fills them in. HTML for Telegram's parse mode;
//! every dynamic part escaped.

mod catalog;

pub use catalog::{Lang, grouped, plural, t};

use crate::config::{ApiMode, Config, GateConfig};
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
pub fn help(lang: Lang, config: &Config, is_admin: bool) -> String {
    let admin = if is_admin {
        t(lang, "help_admin", &[])
    } else {
        String::new()
    };
    t(
        lang,
        "help",
        &[
            ("links", &channel_links(lang, &config.gate)),
            ("admin", &admin),
            ("privacy", &privacy(lang, config)),
        ],
    )
}

/// What is kept, and where: a message in `STATE_DB_PATH` until it is answered; the conversation
/// at OpenAI in `responses` mode, or by the bot in `chat` mode for `CHAT_HISTORY_TTL_SECS` after
/// the user's last message.
fn privacy(lang: Lang, config: &Config) -> String {
    let path = config.state.db_path.display().to_string();
    let file = escape_html(path.strip_prefix("./").unwrap_or(&path));
    match config.conversation.api_mode {
        ApiMode::Responses => t(lang, "privacy_responses", &[("file", &file)]),
        ApiMode::Chat => {
            let secs = config.conversation.history_ttl.as_secs();
            let period = match secs.div_ceil(3600) {
                hours if hours < 24 => plural(lang, "plural.hours", hours as i64),
                _ => plural(lang, "plural.days", secs.div_ceil(86_400) as i64),
            };
            t(
                lang,
                "privacy_chat",
                &[("file", &file), ("period", &period)],
            )
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Purpose;

    fn lang(tag: &str) -> Lang {
        Lang::by_tag(tag).unwrap()
    }

    fn config(vars: &[(&str, &str)]) -> Config {
        let base = [("TELEGRAM_BOT_TOKEN", "1:x"), ("OPENAI_API_KEY", "k")];
        let vars = base
            .iter()
            .chain(vars)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_vars(&vars, Purpose::Bot).unwrap()
    }

    #[test]
    fn the_privacy_note_follows_the_mode_the_history_ttl_and_the_state_file() {
        let responses = privacy(lang("en"), &config(&[]));
        assert!(responses.contains("(data/state.db)") && responses.contains("keeps no text"));
        let chat = |ttl: &str| {
            let c = config(&[
                ("OPENAI_API_MODE", "chat"),
                ("CHAT_HISTORY_TTL_SECS", ttl),
                ("STATE_DB_PATH", "/var/lib/subgpt/<s>.db"),
            ]);
            (privacy(lang("en"), &c), privacy(lang("ru"), &c))
        };
        let (en, ru) = chat("604800");
        assert!(
            en.contains("for 7 days after") && ru.contains("7 дней"),
            "{en}\n{ru}"
        );
        assert!(
            en.contains("(/var/lib/subgpt/&lt;s&gt;.db)"),
            "escaped: {en}"
        );
        let (en, ru) = chat("90000");
        assert!(
            en.contains("for 2 days after") && ru.contains("2 дня"),
            "{en}\n{ru}"
        );
        let (en, ru) = chat("60");
        assert!(
            en.contains("for 1 hour after") && ru.contains("1 час "),
            "{en}\n{ru}"
        );
    }
}
