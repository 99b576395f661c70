//! Configuration: read once from the environment (and `./.env`), validated, then shared.
//!
//! Every problem names the variable it comes from, so `main` can print one line and exit 2
//! before any network call.

use std::collections::HashMap;
use std::sync::Arc;

use crate::prices::Prices;

mod bot;
mod conversation;
mod gate;
mod openai;
mod server;
mod source;
mod stores;
mod telegram;
mod vars;

pub use bot::{BotConfig, BotLanguage};
pub use conversation::{ApiMode, ConversationConfig};
pub use gate::GateConfig;
pub use openai::OpenAiConfig;
pub use server::ServerConfig;
pub use source::environment;
pub use stores::{DEFAULT_USAGE_DB_PATH, KvConfig, StateConfig, UsageConfig};
pub use telegram::TelegramConfig;
use vars::Vars;

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

/// The whole configuration (SPEC §3), one part per upstream, store or concern, plus a few
/// tuning knobs with safe defaults. Each component is built from its own part.
#[derive(Debug, Clone)]
pub struct Config {
    /// Telegram Bot API.
    pub telegram: TelegramConfig,
    /// The webhook server (`serve`, `webhook set`).
    pub server: ServerConfig,
    /// OpenAI.
    pub openai: OpenAiConfig,
    /// How conversations are kept.
    pub conversation: ConversationConfig,
    /// The subscription gate.
    pub gate: GateConfig,
    /// Redis, when configured.
    pub kv: KvConfig,
    /// The usage database.
    pub usage: UsageConfig,
    /// The state database.
    pub state: StateConfig,
    /// The bot's behaviour towards users.
    pub bot: BotConfig,
    /// The price table in force: `MODEL_PRICES_FILE`, read and checked here (`serve`, `poll`,
    /// `check`), or the built-in one.
    pub prices: Arc<Prices>,
    /// How logs are written.
    pub log_format: LogFormat,
    /// `RUST_LOG`: which log lines are written (from the process or `.env`).
    pub rust_log: Option<String>,
}

/// The default model when `OPENAI_MODEL` is unset.
pub const DEFAULT_MODEL: &str = "gpt-5.4-mini";
/// The default instructions when none are configured.
pub const DEFAULT_INSTRUCTIONS: &str = "You are a helpful, concise assistant. Answer in the language the user writes in. Use Markdown sparingly.";

impl Config {
    /// Builds and validates the configuration from `vars` for `purpose`.
    pub fn from_vars(
        vars: &HashMap<String, String>,
        purpose: Purpose,
    ) -> Result<Config, ConfigError> {
        let v = Vars(vars);
        // `webhook` reads only Telegram's part and the server's (SPEC §3: it needs the bot
        // token alone); the other parts keep their defaults, so a mistake in a variable it
        // never uses (say, ANALYTICS_TIMEZONE) does not stop it.
        let none = HashMap::new();
        let rest = match purpose {
            Purpose::Webhook | Purpose::WebhookSet => Vars(&none),
            Purpose::Serve | Purpose::Bot => Vars(vars),
        };
        let usage = UsageConfig::read(&rest)?;
        // `webhook` has no price file in `rest`: the built-in table.
        let prices = Prices::load(usage.prices_file.as_deref())
            .map_err(|e| problem("MODEL_PRICES_FILE", e.to_string()))?;
        Ok(Config {
            telegram: TelegramConfig::from_vars(&v)?,
            server: ServerConfig::from_vars(&v, purpose)?,
            openai: OpenAiConfig::from_vars(&rest, purpose)?,
            conversation: ConversationConfig::from_vars(&rest)?,
            gate: GateConfig::from_vars(&rest)?,
            kv: KvConfig::from_vars(&rest)?,
            usage,
            state: StateConfig::read(&rest)?,
            bot: BotConfig::from_vars(&rest)?,
            prices: Arc::new(prices),
            rust_log: v.get("RUST_LOG").map(str::to_string),
            log_format: match v.or("LOG_FORMAT", "pretty") {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                other => {
                    return Err(problem(
                        "LOG_FORMAT",
                        format!("`{other}` is not `pretty` or `json`"),
                    ));
                }
            },
        })
    }

    /// The bot's numeric id: the token's prefix before `:`.
    pub fn bot_id(&self) -> i64 {
        self.telegram.bot_id()
    }

    /// The prefix of this bot's keys in the kv, `subgpt:{bot_id}`, so bots can share a Redis.
    pub fn kv_namespace(&self) -> String {
        format!("subgpt:{}", self.bot_id())
    }

    /// Whether `user_id` is one of `ADMIN_USER_IDS`.
    pub fn is_admin(&self, user_id: i64) -> bool {
        self.bot.is_admin(user_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    use crate::gate::{Channel, ChannelPolicy};

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
        assert_eq!(c.server.webhook_path, "/webhook");
        assert_eq!(c.server.bind_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.conversation.api_mode, ApiMode::Responses);
        assert_eq!(
            c.gate.channels,
            vec![Channel::Username("logloss_notes".into())]
        );
        assert_eq!(c.gate.cache_ttl, Duration::from_secs(600));
        assert_eq!(c.gate.negative_ttl, Duration::from_secs(60));
        assert_eq!(c.bot_id(), 123);
        assert_eq!(c.bot.daily_token_limit, 0);
        assert_eq!(c.openai.model, "gpt-5.4-mini");
        assert_eq!(c.state.db_path, PathBuf::from("./data/state.db"));
        assert_eq!(c.bot.user_queue_limit, 20);
        assert_eq!(c.bot.answer_deadline, Duration::from_secs(300));
        assert!(c.telegram.streaming);
        assert!(!c.telegram.rich_messages);
        assert_eq!(c.bot.language, BotLanguage::Auto);
        assert_eq!(c.usage.prices_file, None);
        assert_eq!(c.conversation.settle_after, Duration::from_secs(60));
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
            ("OPENAI_SETTLE_AFTER_SECS", "0"),
        ] {
            let mut v = base();
            v.push((var, value));
            let v = vars(&v);
            assert_eq!(
                Config::from_vars(&v, Purpose::Serve).unwrap_err().var,
                var,
                "{var}={value}"
            );
            // `webhook` reads Telegram's and the server's variables only.
            let webhooks = [
                "WEBHOOK_SECRET",
                "BIND_ADDR",
                "TELEGRAM_BOT_TOKEN",
                "STREAMING",
                "TELEGRAM_RICH_MESSAGES",
            ];
            assert_eq!(
                Config::from_vars(&v, Purpose::Webhook).is_ok(),
                !webhooks.contains(&var),
                "webhook: {var}={value}"
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
            c.gate.channels,
            vec![
                Channel::Username("first_one".into()),
                Channel::Id(-1001234567890)
            ]
        );
        assert_eq!(c.gate.policy, ChannelPolicy::Any);
        let debug = format!("{c:?}");
        assert!(!debug.contains("123:abc") && !debug.contains("sk-x") && !debug.contains("s3cret"));
    }
}
