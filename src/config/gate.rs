//! The subscription gate part: which channels, how they combine, how long answers are cached.

use std::time::Duration;

use super::vars::Vars;
use super::{ConfigError, problem};
use crate::gate::{Channel, ChannelPolicy};

/// The gating channels and the decision cache.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// `CHANNEL_ID`: one or more, without duplicates.
    pub channels: Vec<Channel>,
    /// `CHANNEL_POLICY`.
    pub policy: ChannelPolicy,
    /// How long a "subscribed" decision is cached.
    pub cache_ttl: Duration,
    /// How long a "not subscribed" decision is cached (1–60 s, at most `cache_ttl`).
    pub negative_ttl: Duration,
    /// `TELEGRAM_CHECK_TIMEOUT_MS`: time-out of one getChatMember call.
    pub check_timeout: Duration,
}

impl GateConfig {
    pub(super) fn from_vars(v: &Vars) -> Result<Self, ConfigError> {
        let channels = parse_channels(v.or("CHANNEL_ID", "@logloss_notes"))?;
        let policy = match v.or("CHANNEL_POLICY", "all") {
            "all" => ChannelPolicy::All,
            "any" => ChannelPolicy::Any,
            other => {
                return Err(problem(
                    "CHANNEL_POLICY",
                    format!("`{other}` is not `all` or `any`"),
                ));
            }
        };
        let ttl: u64 = v.number("SUBSCRIPTION_CACHE_TTL_SECS", 600)?;
        if ttl == 0 {
            return Err(problem("SUBSCRIPTION_CACHE_TTL_SECS", "must be at least 1"));
        }
        let negative: u64 = v.number("SUBSCRIPTION_NEGATIVE_TTL_SECS", 60)?;
        Ok(Self {
            channels,
            policy,
            cache_ttl: Duration::from_secs(ttl),
            negative_ttl: Duration::from_secs(negative.clamp(1, 60).min(ttl)),
            check_timeout: Duration::from_millis(
                v.number("TELEGRAM_CHECK_TIMEOUT_MS", 10_000)?.max(1),
            ),
        })
    }
}

fn parse_channels(list: &str) -> Result<Vec<Channel>, ConfigError> {
    let mut channels = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let channel = if let Some(name) = item.strip_prefix('@') {
            let valid =
                name.len() >= 4 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(problem(
                    "CHANNEL_ID",
                    format!("`{item}` is not a channel username like @my_channel"),
                ));
            }
            Channel::Username(name.to_string())
        } else {
            let id = item.parse().map_err(|_| {
                problem(
                    "CHANNEL_ID",
                    format!("`{item}` is neither @username nor a numeric chat id"),
                )
            })?;
            Channel::Id(id)
        };
        if !channels.contains(&channel) {
            channels.push(channel);
        }
    }
    if channels.is_empty() {
        return Err(problem("CHANNEL_ID", "names no channel"));
    }
    Ok(channels)
}
