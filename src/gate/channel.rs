//! The gating channels as configured, and how several of them combine.

use std::fmt;

/// With several gating channels: must the user be in all of them, or in any?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelPolicy {
    /// Subscribed to every channel.
    All,
    /// Subscribed to at least one.
    Any,
}

/// A gating channel as configured: `@username` or a numeric chat id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A public channel, `@name` (stored without the `@`).
    Username(String),
    /// A channel by numeric id (e.g. a private channel, `-100…`).
    Id(i64),
}

impl Channel {
    /// The value for Bot API `chat_id`.
    pub fn chat_id(&self) -> String {
        match self {
            Channel::Username(name) => format!("@{name}"),
            Channel::Id(id) => id.to_string(),
        }
    }
    /// `https://t.me/<name>` for public channels.
    pub fn link(&self) -> Option<String> {
        match self {
            Channel::Username(name) => Some(format!("https://t.me/{name}")),
            Channel::Id(_) => None,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.chat_id())
    }
}
