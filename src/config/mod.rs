//! Configuration: read once from the environment (and `./.env`), validated, then shared.
//!
//! Every problem names the variable it comes from, so `main` can print one line and exit 2
//! before any network call.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod source;

pub use source::environment;

use crate::gate::{Channel, ChannelPolicy};
use crate::secret::Secret;

/// A configuration problem: which variable, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {var}: {problem}")]
pub struct ConfigError {
    /// The variable's name.
    pub var: &'static str,
    /// What is wrong, in a few words.
    pub problem: String,
}

fn problem(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

/// Which OpenAI API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiMode {
    /// Responses + Conversations: OpenAI keeps the conversation.
    Responses,
    /// Chat Completions: the bot keeps the history.
    Chat,
}

/// Which language the bot's own texts use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotLanguage {
    /// Russian for a user whose `language_code` starts with `ru`, English otherwise.
    Auto,
    /// Always English.
    En,
    /// Always Russian.
    Ru,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// What the command being run needs; decides which variables are required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `serve`: bot token, OpenAI key, webhook secret.
    Serve,
    /// `poll` and `check`: bot token and OpenAI key.
    Bot,
    /// `webhook info|delete`: the bot token only.
    Webhook,
    /// `webhook set`: the bot token, `WEBHOOK_URL` and `WEBHOOK_SECRET`.
    WebhookSet,
}

/// The whole configuration (SPEC §3), plus a few tuning knobs with safe defaults.
#[derive(Debug, Clone)]
pub struct Config {
    pub telegram_bot_token: Secret,
    pub telegram_api_url: String,
    pub webhook_secret: Option<Secret>,
    pub webhook_url: Option<String>,
    pub webhook_path: String,
    pub bind_addr: SocketAddr,
    pub openai_api_key: Secret,
    pub openai_base_url: String,
    pub openai_api_mode: ApiMode,
    pub openai_model: String,
    pub assistant_instructions: String,
    pub channels: Vec<Channel>,
    pub channel_policy: ChannelPolicy,
    pub subscription_cache_ttl: Duration,
    pub negative_cache_ttl: Duration,
    pub redis_url: Option<String>,
    pub analytics_db_path: PathBuf,
    pub analytics_timezone: chrono_tz::Tz,
    pub admin_user_ids: HashSet<i64>,
    pub daily_token_limit: u64,
    pub log_format: LogFormat,
    /// How long SIGTERM waits for answers in flight.
    pub shutdown_drain: Duration,
    /// `serve`: a client must send a request's headers within this time (slow-loris guard).
    pub http_header_timeout: Duration,
    /// `serve`: the most one request may take, body included; then 408.
    pub http_request_timeout: Duration,
    /// How long start-up keeps retrying Telegram (getMe) and Redis before it gives up.
    pub startup_retry: Duration,
    /// Time-out of one OpenAI request.
    pub openai_timeout: Duration,
    /// Retries after the first OpenAI attempt.
    pub openai_max_retries: u32,
    /// First back-off step; doubles each retry.
    pub openai_retry_base: Duration,
    /// Chat mode: how long an idle history is kept.
    pub chat_history_ttl: Duration,
    /// Chat mode: the history sent along is trimmed to about this many tokens.
    pub chat_history_token_budget: usize,
    /// Time-out of one getChatMember call.
    pub telegram_check_timeout: Duration,
    /// How long an SQLite statement waits for a lock before the write is retried later.
    pub sqlite_busy_timeout: Duration,
    /// `PRAGMA synchronous` of the usage store: `full` fsyncs every commit; `normal` (WAL)
    /// survives a crash of the process but may lose the last commits on power loss.
    pub sqlite_synchronous_full: bool,
    /// The service's own durable state: the inbox and the user → conversation map.
    pub state_db_path: PathBuf,
    /// Updates one user may have waiting.
    pub user_queue_limit: usize,
    /// The most one update may take from acceptance to its last message.
    pub answer_deadline: Duration,
    /// Answers appear as drafts while they are written.
    pub streaming: bool,
    /// Answers go out as rich messages (Markdown), falling back to HTML parts.
    pub telegram_rich_messages: bool,
    /// The language of the bot's own texts.
    pub bot_language: BotLanguage,
    /// A streamed answer with no event for this long is cancelled.
    pub stream_idle: Duration,
    /// A TOML price table that replaces the built-in one.
    pub model_prices_file: Option<PathBuf>,
}

/// The default model when `OPENAI_MODEL` is unset.
pub const DEFAULT_MODEL: &str = "gpt-5.4-mini";
/// The default instructions when none are configured.
pub const DEFAULT_INSTRUCTIONS: &str = "You are a helpful, concise assistant. Answer in the language the user writes in. Use Markdown sparingly.";

struct Vars<'a>(&'a HashMap<String, String>);

impl Vars<'_> {
    /// A set, non-blank value.
    fn get(&self, var: &'static str) -> Option<&str> {
        self.0.get(var).map(|v| v.trim()).filter(|v| !v.is_empty())
    }
    fn required(&self, var: &'static str) -> Result<&str, ConfigError> {
        self.get(var)
            .ok_or_else(|| problem(var, "is required but not set"))
    }
    fn or<'b>(&'b self, var: &'static str, default: &'b str) -> &'b str {
        self.get(var).unwrap_or(default)
    }
    fn number<T: std::str::FromStr>(
        &self,
        var: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| problem(var, format!("`{v}` is not a non-negative whole number"))),
        }
    }
    fn switch(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some("on") => Ok(true),
            Some("off") => Ok(false),
            Some(other) => Err(problem(var, format!("`{other}` is not `on` or `off`"))),
        }
    }
    fn url(&self, var: &'static str, default: &str) -> Result<String, ConfigError> {
        let value = self.or(var, default).trim_end_matches('/').to_string();
        if value.starts_with("http://") || value.starts_with("https://") {
            Ok(value)
        } else {
            Err(problem(var, format!("`{value}` is not an http(s) URL")))
        }
    }
}

impl Config {
    /// Builds and validates the configuration from `vars` for `purpose`.
    pub fn from_vars(
        vars: &HashMap<String, String>,
        purpose: Purpose,
    ) -> Result<Config, ConfigError> {
        let v = Vars(vars);
        let telegram_bot_token = Secret::new(v.required("TELEGRAM_BOT_TOKEN")?);
        bot_id_of(&telegram_bot_token)?;

        let webhook_secret = match v.get("WEBHOOK_SECRET") {
            Some(s) => Some(Secret::new(validate_webhook_secret(s)?)),
            None if matches!(purpose, Purpose::Serve | Purpose::WebhookSet) => {
                return Err(problem("WEBHOOK_SECRET", "is required but not set"));
            }
            None => None,
        };
        let webhook_url = match v.get("WEBHOOK_URL") {
            Some(u) if u.starts_with("https://") => Some(u.to_string()),
            Some(u) => {
                return Err(problem(
                    "WEBHOOK_URL",
                    format!("`{u}` must be an https:// URL"),
                ));
            }
            None if purpose == Purpose::WebhookSet => {
                return Err(problem("WEBHOOK_URL", "is required but not set"));
            }
            None => None,
        };
        let webhook_path = v.or("WEBHOOK_PATH", "/webhook").to_string();
        if !webhook_path.starts_with('/') || webhook_path.len() < 2 {
            return Err(problem(
                "WEBHOOK_PATH",
                "must start with `/`, e.g. /webhook",
            ));
        }
        let bind_addr = v
            .or("BIND_ADDR", "127.0.0.1:8080")
            .parse()
            .map_err(|_| problem("BIND_ADDR", "must be host:port, e.g. 127.0.0.1:8080"))?;

        let openai_api_key = match v.get("OPENAI_API_KEY") {
            Some(k) => Secret::new(k),
            None if matches!(purpose, Purpose::Serve | Purpose::Bot) => {
                return Err(problem("OPENAI_API_KEY", "is required but not set"));
            }
            None => Secret::default(),
        };
        let openai_api_mode = match v.or("OPENAI_API_MODE", "responses") {
            "responses" => ApiMode::Responses,
            "chat" => ApiMode::Chat,
            other => {
                return Err(problem(
                    "OPENAI_API_MODE",
                    format!("`{other}` is not `responses` or `chat`"),
                ));
            }
        };
        let assistant_instructions = match (
            v.get("ASSISTANT_INSTRUCTIONS"),
            v.get("ASSISTANT_INSTRUCTIONS_FILE"),
        ) {
            (Some(_), Some(_)) => {
                return Err(problem(
                    "ASSISTANT_INSTRUCTIONS_FILE",
                    "set either it or ASSISTANT_INSTRUCTIONS, not both",
                ));
            }
            (Some(text), None) => text.to_string(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| {
                    problem(
                        "ASSISTANT_INSTRUCTIONS_FILE",
                        format!("cannot read `{path}`: {e}"),
                    )
                })?
                .trim()
                .to_string(),
            (None, None) => DEFAULT_INSTRUCTIONS.to_string(),
        };

        let channels = parse_channels(v.or("CHANNEL_ID", "@logloss_notes"))?;
        let channel_policy = match v.or("CHANNEL_POLICY", "all") {
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
        let redis_url = match v.get("REDIS_URL") {
            Some(u)
                if u.starts_with("redis://")
                    || u.starts_with("rediss://")
                    || u.starts_with("unix://") =>
            {
                Some(u.to_string())
            }
            Some(_) => {
                return Err(problem(
                    "REDIS_URL",
                    "must start with redis://, rediss:// or unix://",
                ));
            }
            None => None,
        };
        let tz_name = v.or("ANALYTICS_TIMEZONE", "UTC");
        let analytics_timezone = tz_name.parse().map_err(|_| {
            problem(
                "ANALYTICS_TIMEZONE",
                format!("`{tz_name}` is not an IANA time zone such as Europe/Berlin"),
            )
        })?;
        let admin_user_ids = match v.get("ADMIN_USER_IDS") {
            None => HashSet::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse().map_err(|_| {
                        problem("ADMIN_USER_IDS", format!("`{s}` is not a numeric user id"))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let log_format = match v.or("LOG_FORMAT", "pretty") {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(problem(
                    "LOG_FORMAT",
                    format!("`{other}` is not `pretty` or `json`"),
                ));
            }
        };

        Ok(Config {
            telegram_bot_token,
            telegram_api_url: v.url("TELEGRAM_API_URL", "https://api.telegram.org")?,
            webhook_secret,
            webhook_url,
            webhook_path,
            bind_addr,
            openai_api_key,
            openai_base_url: v.url("OPENAI_BASE_URL", "https://api.openai.com/v1")?,
            openai_api_mode,
            openai_model: v.or("OPENAI_MODEL", DEFAULT_MODEL).to_string(),
            assistant_instructions,
            channels,
            channel_policy,
            subscription_cache_ttl: Duration::from_secs(ttl),
            negative_cache_ttl: Duration::from_secs(negative.clamp(1, 60).min(ttl)),
            redis_url,
            analytics_db_path: PathBuf::from(v.or("ANALYTICS_DB_PATH", "./data/user_analytics.db")),
            analytics_timezone,
            admin_user_ids,
            daily_token_limit: v.number("DAILY_TOKEN_LIMIT", 0)?,
            log_format,
            shutdown_drain: Duration::from_secs(v.number("SHUTDOWN_DRAIN_SECS", 30)?),
            http_header_timeout: Duration::from_secs(
                v.number("HTTP_HEADER_TIMEOUT_SECS", 10)?.max(1),
            ),
            http_request_timeout: Duration::from_secs(
                v.number("HTTP_REQUEST_TIMEOUT_SECS", 30)?.max(1),
            ),
            startup_retry: Duration::from_secs(v.number("STARTUP_RETRY_SECS", 120)?),
            openai_timeout: Duration::from_secs(v.number("OPENAI_TIMEOUT_SECS", 120)?.max(1)),
            openai_max_retries: v.number("OPENAI_MAX_RETRIES", 3)?,
            openai_retry_base: Duration::from_millis(v.number("OPENAI_RETRY_BASE_MS", 500)?),
            chat_history_ttl: Duration::from_secs(
                v.number("CHAT_HISTORY_TTL_SECS", 7 * 24 * 3600)?.max(60),
            ),
            chat_history_token_budget: v.number("CHAT_HISTORY_TOKEN_BUDGET", 8000)?.max(500),
            telegram_check_timeout: Duration::from_millis(
                v.number("TELEGRAM_CHECK_TIMEOUT_MS", 10_000)?.max(1),
            ),
            sqlite_busy_timeout: Duration::from_millis(v.number("SQLITE_BUSY_TIMEOUT_MS", 5_000)?),
            sqlite_synchronous_full: match v.or("SQLITE_SYNCHRONOUS", "normal") {
                "normal" => false,
                "full" => true,
                other => {
                    return Err(problem(
                        "SQLITE_SYNCHRONOUS",
                        format!("`{other}` is not `normal` or `full`"),
                    ));
                }
            },
            state_db_path: PathBuf::from(v.or("STATE_DB_PATH", "./data/state.db")),
            user_queue_limit: match v.number("USER_QUEUE_LIMIT", 20)? {
                0 => return Err(problem("USER_QUEUE_LIMIT", "must be at least 1")),
                n => n,
            },
            answer_deadline: match v.number("ANSWER_DEADLINE_SECS", 300)? {
                0 => return Err(problem("ANSWER_DEADLINE_SECS", "must be at least 1")),
                n => Duration::from_secs(n),
            },
            streaming: v.switch("STREAMING", true)?,
            telegram_rich_messages: v.switch("TELEGRAM_RICH_MESSAGES", false)?,
            bot_language: match v.or("BOT_LANGUAGE", "auto") {
                "auto" => BotLanguage::Auto,
                "en" => BotLanguage::En,
                "ru" => BotLanguage::Ru,
                other => {
                    return Err(problem(
                        "BOT_LANGUAGE",
                        format!("`{other}` is not `auto`, `en` or `ru`"),
                    ));
                }
            },
            model_prices_file: v.get("MODEL_PRICES_FILE").map(PathBuf::from),
            stream_idle: match v.number("OPENAI_STREAM_IDLE_SECS", 30)? {
                0 => return Err(problem("OPENAI_STREAM_IDLE_SECS", "must be at least 1")),
                n => Duration::from_secs(n),
            },
        })
    }

    /// The bot's numeric id: the token's prefix before `:`.
    pub fn bot_id(&self) -> i64 {
        bot_id_of(&self.telegram_bot_token).unwrap_or_default()
    }

    /// The prefix of this bot's keys in the kv, `subgpt:{bot_id}`, so bots can share a Redis.
    pub fn kv_namespace(&self) -> String {
        format!("subgpt:{}", self.bot_id())
    }

    /// Whether `user_id` is one of `ADMIN_USER_IDS`.
    pub fn is_admin(&self, user_id: i64) -> bool {
        self.admin_user_ids.contains(&user_id)
    }
}

fn bot_id_of(token: &Secret) -> Result<i64, ConfigError> {
    let malformed = || {
        problem(
            "TELEGRAM_BOT_TOKEN",
            "malformed: expected `<digits>:<secret>` as given by @BotFather",
        )
    };
    let (id, rest) = token.expose().split_once(':').ok_or_else(malformed)?;
    if rest.is_empty() || rest.chars().any(char::is_whitespace) {
        return Err(malformed());
    }
    id.parse().map_err(|_| malformed())
}

fn validate_webhook_secret(secret: &str) -> Result<&str, ConfigError> {
    let ok_len = (1..=256).contains(&secret.len());
    let ok_chars = secret
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok_len && ok_chars {
        Ok(secret)
    } else {
        Err(problem(
            "WEBHOOK_SECRET",
            "must be 1–256 characters of A-Z a-z 0-9 _ -",
        ))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("TELEGRAM_BOT_TOKEN", "123:abc"),
            ("OPENAI_API_KEY", "sk-x"),
            ("WEBHOOK_SECRET", "s3cret"),
        ]
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = Config::from_vars(&vars(&base()), Purpose::Serve).unwrap();
        assert_eq!(c.webhook_path, "/webhook");
        assert_eq!(c.bind_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.openai_api_mode, ApiMode::Responses);
        assert_eq!(c.channels, vec![Channel::Username("logloss_notes".into())]);
        assert_eq!(c.subscription_cache_ttl, Duration::from_secs(600));
        assert_eq!(c.negative_cache_ttl, Duration::from_secs(60));
        assert_eq!(c.bot_id(), 123);
        assert_eq!(c.daily_token_limit, 0);
        assert_eq!(c.openai_model, "gpt-5.4-mini");
        assert_eq!(c.state_db_path, PathBuf::from("./data/state.db"));
        assert_eq!(c.user_queue_limit, 20);
        assert_eq!(c.answer_deadline, Duration::from_secs(300));
        assert!(c.streaming);
        assert!(!c.telegram_rich_messages);
        assert_eq!(c.bot_language, BotLanguage::Auto);
        assert_eq!(c.model_prices_file, None);
    }

    #[test]
    fn missing_and_malformed_values_name_the_variable() {
        let err = Config::from_vars(&vars(&[("OPENAI_API_KEY", "k")]), Purpose::Serve).unwrap_err();
        assert_eq!(err.var, "TELEGRAM_BOT_TOKEN");
        let mut v = base();
        v.retain(|(k, _)| *k != "WEBHOOK_SECRET");
        assert_eq!(
            Config::from_vars(&vars(&v), Purpose::Serve)
                .unwrap_err()
                .var,
            "WEBHOOK_SECRET"
        );
        assert!(Config::from_vars(&vars(&v), Purpose::Bot).is_ok());
        for (var, value) in [
            ("WEBHOOK_SECRET", "has space"),
            ("CHANNEL_ID", "logloss"),
            ("CHANNEL_POLICY", "most"),
            ("ANALYTICS_TIMEZONE", "Mars/Olympus"),
            ("ADMIN_USER_IDS", "12,abc"),
            ("DAILY_TOKEN_LIMIT", "-5"),
            ("BIND_ADDR", "localhost"),
            ("OPENAI_API_MODE", "assistants"),
            ("TELEGRAM_BOT_TOKEN", "nocolon"),
            ("USER_QUEUE_LIMIT", "0"),
            ("ANSWER_DEADLINE_SECS", "soon"),
            ("STREAMING", "yes"),
            ("TELEGRAM_RICH_MESSAGES", "1"),
            ("BOT_LANGUAGE", "de"),
        ] {
            let mut v = base();
            v.push((var, value));
            let v = vars(&v);
            assert_eq!(
                Config::from_vars(&v, Purpose::Serve).unwrap_err().var,
                var,
                "{var}={value}"
            );
        }
    }

    #[test]
    fn several_channels_and_secrets_redacted() {
        let mut v = base();
        v.push(("CHANNEL_ID", "@first_one, -1001234567890"));
        v.push(("CHANNEL_POLICY", "any"));
        let c = Config::from_vars(&vars(&v), Purpose::Serve).unwrap();
        assert_eq!(
            c.channels,
            vec![
                Channel::Username("first_one".into()),
                Channel::Id(-1001234567890)
            ]
        );
        assert_eq!(c.channel_policy, ChannelPolicy::Any);
        let debug = format!("{c:?}");
        assert!(!debug.contains("123:abc") && !debug.contains("sk-x") && !debug.contains("s3cret"));
    }
}
