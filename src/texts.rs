//! What the bot (and its gate) say, in one place. HTML for Telegram's parse mode; every dynamic part escaped.

use crate::config::{Channel, ChannelPolicy, Config};
use crate::telegram::format::escape_html;

/// The channels as HTML links (`@name` → t.me link; numeric ids as configured text).
pub fn channel_links(config: &Config) -> String {
    let names: Vec<String> = config
        .channels
        .iter()
        .map(|c| match c {
            Channel::Username(name) => {
                format!(
                    "<a href=\"https://t.me/{name}\">@{}</a> (https://t.me/{name})",
                    escape_html(name)
                )
            }
            Channel::Id(id) => {
                format!("the private channel {id} (ask its owner for an invite link)")
            }
        })
        .collect();
    match (names.len(), config.channel_policy) {
        (1, _) => names[0].clone(),
        (_, ChannelPolicy::All) => format!("all of: {}", names.join(", ")),
        (_, ChannelPolicy::Any) => format!("any of: {}", names.join(", ")),
    }
}

/// `/start` and `/help`.
pub fn help(config: &Config, is_admin: bool) -> String {
    let mut text = format!(
        "<b>Hi! I'm an AI assistant for the subscribers of {links}.</b>\n\n\
         Write me anything and I'll answer; I remember our conversation until you start a new one.\n\n\
         <b>Commands</b>\n\
         /reset — start a new conversation\n\
         /history — the last exchanges of this conversation\n\
         /export — the whole conversation as a file\n\
         /usage — the tokens you have used\n\
         /subscribe — check your subscription again now\n\
         /help — this message\n",
        links = channel_links(config)
    );
    if is_admin {
        text.push_str("/stats — usage of all users (admins)\n");
    }
    text.push_str(
        "\n<b>Access</b>\nSubscribe to the channel, then just write. If you subscribed a moment ago, send /subscribe.\n\n\
         <b>Privacy</b>\nThis bot keeps no text of your messages or of the answers: a message waits in the bot's \
         own file (data/state.db) only until it is answered, so nothing is lost if the bot restarts, and is erased then. \
         The bot keeps only how many tokens you used per day. Your conversation is kept by the AI provider (OpenAI) \
         so it can continue it; /reset starts a new one.",
    );
    text
}

/// The refusal for a non-subscriber.
pub fn not_subscribed(config: &Config) -> String {
    format!(
        "This assistant is for the subscribers of {}.\n\nSubscribe, then send /subscribe (or just write again).",
        channel_links(config)
    )
}

/// `/subscribe` answered yes.
pub fn subscribed(config: &Config) -> String {
    format!(
        "✅ You're subscribed to {} — welcome! Just write me a message.\n\n\
         You can also use /reset, /history, /export and /usage.",
        channel_links(config)
    )
}

/// Telegram could not be asked and nothing is cached (fail closed).
pub const CANNOT_VERIFY: &str =
    "I can't verify your subscription right now, try again in a minute.";

/// The gate is misconfigured (the bot is not an admin of a channel).
pub const GATE_MISCONFIGURED: &str = "Sorry, I can't check subscriptions at the moment — the channel's owner has to fix a setting. Please try again later.";

/// An upstream failure, after the retries.
pub fn apology(reference: &str) -> String {
    format!(
        "Sorry, I couldn't get an answer just now. Please try again in a minute. (reference: {reference})"
    )
}

/// A user with `USER_QUEUE_LIMIT` messages waiting sent another one (said once).
pub const STILL_BUSY: &str = "I'm still answering your earlier messages. Please wait for those answers, then write again — I didn't take your latest message.";

/// A non-text message.
pub const TEXT_ONLY: &str = "I can read text messages only — please write your question as text.";

/// An unknown command.
pub const UNKNOWN_COMMAND: &str = "I don't know that command. Send /help to see what I can do.";

/// `/reset` done.
pub const RESET_DONE: &str = "Started a new conversation. What would you like to talk about?";

/// `/history` or `/export` with nothing to show.
pub const NOTHING_YET: &str = "This conversation is empty so far — write me something first.";

/// `/stats` for a non-admin.
pub const ADMINS_ONLY: &str = "/stats is for the bot's admins.";
