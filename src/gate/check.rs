//! The subscription check: per-channel decisions cached in the kv (positive for the
//! configured TTL, negative for at most 60 s), asked of Telegram when not cached.

use std::time::Duration;

use super::{Channel, ChannelPolicy};
use crate::config::{BotConfig, GateConfig};
use crate::store::kv::Kv;
use crate::telegram::{ApiErrorKind, Bot, ChatMemberUpdated, TelegramError};

/// The gate's answer for one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Subscribed (per the policy).
    Allowed,
    /// Not subscribed.
    Refused,
    /// Telegram could not be asked and nothing is cached: fail closed.
    Unknown,
    /// Telegram refuses to tell (the bot is not an admin of a channel).
    Misconfigured,
}

/// Where a decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Telegram,
    Admin,
}

impl Decision {
    fn label(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Refused => "refused",
            Decision::Unknown => "unknown",
            Decision::Misconfigured => "misconfigured",
        }
    }
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Source::Cache => "cache",
            Source::Telegram => "telegram",
            Source::Admin => "admin",
        }
    }
}

/// One channel's status for a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    In,
    Out,
    Unknown,
    Misconfigured,
}

/// The gate's state: configuration, Telegram, and the decision cache.
pub struct Gate {
    config: GateConfig,
    /// Admins pass untouched; refusals are in the bot's language.
    bot: BotConfig,
    telegram: Bot,
    kv: Kv,
    ns: String,
}

impl Gate {
    /// A gate for `config`'s channels, caching in `kv` under the keys prefix `ns`.
    pub fn new(config: GateConfig, bot: BotConfig, telegram: Bot, kv: Kv, ns: String) -> Self {
        Gate {
            config,
            bot,
            telegram,
            kv,
            ns,
        }
    }

    pub(super) fn config(&self) -> &GateConfig {
        &self.config
    }

    pub(super) fn bot(&self) -> &BotConfig {
        &self.bot
    }

    fn key(&self, user: i64, channel: &Channel) -> String {
        format!("{}:sub:{user}:{}", self.ns, channel.chat_id())
    }

    pub(super) fn count(&self, decision: Decision, source: Source) {
        metrics::counter!("subgpt_gate_decisions_total", "outcome" => decision.label(), "source" => source.label())
            .increment(1);
    }

    /// Is `user` subscribed? From the cache unless `fresh`. One user's checks run one at a
    /// time (the dispatcher serialises a user's messages), so a burst of messages from an
    /// uncached user asks Telegram once per channel.
    pub async fn check(&self, user: i64, fresh: bool) -> (Decision, Source) {
        let mut source = Source::Cache;
        let mut statuses = Vec::with_capacity(self.config.channels.len());
        for channel in &self.config.channels {
            let cached = if fresh {
                // Forgotten first, so Telegram's answer can be kept (see `learn`).
                let _ = self.kv.del(&self.key(user, channel)).await;
                None
            } else {
                self.cached(user, channel).await
            };
            let status = match cached {
                Some(status) => status,
                None => {
                    source = Source::Telegram;
                    self.ask(user, channel).await
                }
            };
            statuses.push(status);
            // With `any`, one channel is enough; with `all`, one refusal is enough.
            let decided = match self.config.policy {
                ChannelPolicy::Any => status == Status::In,
                ChannelPolicy::All => status == Status::Out,
            };
            if decided {
                break;
            }
        }
        (combine(self.config.policy, &statuses), source)
    }

    async fn cached(&self, user: i64, channel: &Channel) -> Option<Status> {
        match self.kv.get(&self.key(user, channel)).await {
            Ok(Some(v)) if v == "1" => Some(Status::In),
            Ok(Some(v)) if v == "0" => Some(Status::Out),
            Ok(_) => None,
            // Redis trouble: go to Telegram (the kv logs the outage once).
            Err(_) => None,
        }
    }

    /// What to cache for `subscribed`, and for how long.
    fn entry(&self, subscribed: bool) -> (&'static str, Duration) {
        if subscribed {
            ("1", self.config.cache_ttl)
        } else {
            ("0", self.config.negative_ttl)
        }
    }

    /// Caches a membership change Telegram announced: it is the newest word, so it replaces
    /// whatever is cached.
    async fn remember(&self, user: i64, channel: &Channel, subscribed: bool) {
        let (value, ttl) = self.entry(subscribed);
        let _ = self
            .kv
            .set(&self.key(user, channel), value, Some(ttl))
            .await;
    }

    /// Caches what `getChatMember` said, unless something was cached meanwhile: a membership
    /// change that arrived while the question was out is newer than the answer.
    async fn learn(&self, user: i64, channel: &Channel, subscribed: bool) {
        let (value, ttl) = self.entry(subscribed);
        let _ = self
            .kv
            .set_nx_ex(&self.key(user, channel), value, ttl)
            .await;
    }

    async fn ask(&self, user: i64, channel: &Channel) -> Status {
        let timeout = self.config.check_timeout;
        let chat_id = channel.chat_id();
        let call = self.telegram.get_chat_member(&chat_id, user, timeout);
        // The client's own time-out covers the request; this one also covers 429 waits.
        match tokio::time::timeout(timeout + Duration::from_secs(1), call).await {
            Ok(Ok(member)) => {
                let subscribed = member.is_subscribed();
                self.learn(user, channel, subscribed).await;
                if subscribed { Status::In } else { Status::Out }
            }
            Ok(Err(e)) => self.classify(user, channel, e).await,
            Err(_) => {
                tracing::warn!(channel = %channel, "getChatMember timed out");
                Status::Unknown
            }
        }
    }

    async fn classify(&self, user: i64, channel: &Channel, error: TelegramError) -> Status {
        if error.kind() == Some(ApiErrorKind::UserNotFound) {
            self.learn(user, channel, false).await;
            return Status::Out;
        }
        // Any other refusal of a well-formed call means the bot may not look at the channel.
        if matches!(error.code(), Some(400 | 403)) {
            tracing::error!(
                channel = %channel,
                error = %error,
                "cannot check subscriptions: make the bot an administrator of {channel} (Telegram refused getChatMember)"
            );
            return Status::Misconfigured;
        }
        tracing::warn!(channel = %channel, error = %error, "getChatMember failed");
        Status::Unknown
    }

    /// Applies a `chat_member` update of a gating channel to the cache at once.
    pub async fn observe(&self, change: &ChatMemberUpdated) {
        let Some(channel) = self.gating_channel(&change.chat) else {
            return;
        };
        let member = &change.new_chat_member;
        let subscribed = member.is_subscribed();
        tracing::info!(channel = %channel, subscribed, "membership changed");
        self.remember(member.user().id, channel, subscribed).await;
    }
}

impl Gate {
    /// The gating channel `chat` is, if it is one.
    fn gating_channel(&self, chat: &crate::telegram::Chat) -> Option<&Channel> {
        self.config.channels.iter().find(|c| match c {
            Channel::Id(id) => *id == chat.id,
            Channel::Username(name) => chat
                .username
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(name)),
        })
    }

    /// The bot's own status changed in a chat: say loudly when it stops being an
    /// administrator of a gating channel, since every check fails from then on.
    pub fn observe_bot(&self, change: &ChatMemberUpdated) {
        let Some(channel) = self.gating_channel(&change.chat) else {
            return;
        };
        if change.new_chat_member.is_admin() {
            tracing::info!(channel = %channel, "the bot is an administrator of the channel");
        } else {
            tracing::error!(
                channel = %channel,
                "the bot is no longer an administrator of {channel}: subscription checks will fail; \
                 make the bot an administrator of {channel} again"
            );
        }
    }
}

/// The decision for the statuses seen so far under `policy`.
fn combine(policy: ChannelPolicy, statuses: &[Status]) -> Decision {
    let has = |s| statuses.contains(&s);
    let decided = match policy {
        ChannelPolicy::All if has(Status::Out) => Some(Decision::Refused),
        ChannelPolicy::All if statuses.iter().all(|s| *s == Status::In) => Some(Decision::Allowed),
        ChannelPolicy::Any if has(Status::In) => Some(Decision::Allowed),
        ChannelPolicy::Any if statuses.iter().all(|s| *s == Status::Out) => Some(Decision::Refused),
        _ => None,
    };
    decided.unwrap_or(if has(Status::Misconfigured) {
        Decision::Misconfigured
    } else {
        Decision::Unknown
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_combine_channel_statuses() {
        use Status::*;
        assert_eq!(combine(ChannelPolicy::All, &[In, In]), Decision::Allowed);
        assert_eq!(combine(ChannelPolicy::All, &[In, Out]), Decision::Refused);
        assert_eq!(
            combine(ChannelPolicy::All, &[In, Unknown]),
            Decision::Unknown
        );
        assert_eq!(combine(ChannelPolicy::Any, &[Out, In]), Decision::Allowed);
        assert_eq!(combine(ChannelPolicy::Any, &[Out, Out]), Decision::Refused);
        assert_eq!(
            combine(ChannelPolicy::Any, &[Out, Misconfigured]),
            Decision::Misconfigured
        );
        assert_eq!(
            combine(ChannelPolicy::Any, &[Unknown, In]),
            Decision::Allowed
        );
    }
}
