//! The store parts: Redis (kv), the usage database and the state database.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::vars::Vars;
use super::{ConfigError, problem};

/// The optional Redis behind the kv.
#[derive(Debug, Clone, Default)]
pub struct KvConfig {
    /// `REDIS_URL`; without it the kv lives in memory.
    pub url: Option<String>,
}

impl KvConfig {
    pub(super) fn from_vars(v: &Vars) -> Result<Self, ConfigError> {
        let url = match v.get("REDIS_URL") {
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
        Ok(Self { url })
    }
}

/// Where the usage database is when `ANALYTICS_DB_PATH` does not say.
pub const DEFAULT_USAGE_DB_PATH: &str = "./data/user_analytics.db";

/// The usage database (`user_analytics`), shared by the service and the viewer.
#[derive(Debug, Clone)]
pub struct UsageConfig {
    /// `ANALYTICS_DB_PATH`.
    pub db_path: PathBuf,
    /// `ANALYTICS_TIMEZONE`: where a day starts and ends.
    pub timezone: chrono_tz::Tz,
    /// How long an SQLite statement waits for a lock before the write is retried later.
    pub busy_timeout: Duration,
    /// `PRAGMA synchronous`: `full` fsyncs every commit; `normal` (WAL) survives a crash of
    /// the process but may lose the last commits on power loss.
    pub synchronous_full: bool,
    /// `MODEL_PRICES_FILE`: a TOML price table that replaces the built-in one.
    pub prices_file: Option<PathBuf>,
}

impl UsageConfig {
    /// The usage part alone, for the viewer, which needs neither token nor key.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::read(&Vars(vars))
    }

    pub(super) fn read(v: &Vars) -> Result<Self, ConfigError> {
        let tz_name = v.or("ANALYTICS_TIMEZONE", "UTC");
        let timezone = tz_name.parse().map_err(|_| {
            problem(
                "ANALYTICS_TIMEZONE",
                format!("`{tz_name}` is not an IANA time zone such as Europe/Berlin"),
            )
        })?;
        Ok(Self {
            db_path: PathBuf::from(v.or("ANALYTICS_DB_PATH", DEFAULT_USAGE_DB_PATH)),
            timezone,
            busy_timeout: busy_timeout(v)?,
            synchronous_full: match v.or("SQLITE_SYNCHRONOUS", "normal") {
                "normal" => false,
                "full" => true,
                other => {
                    return Err(problem(
                        "SQLITE_SYNCHRONOUS",
                        format!("`{other}` is not `normal` or `full`"),
                    ));
                }
            },
            prices_file: v.get("MODEL_PRICES_FILE").map(PathBuf::from),
        })
    }
}

/// The service's own durable state: the inbox and the user → conversation map.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// `STATE_DB_PATH`.
    pub db_path: PathBuf,
    /// How long an SQLite statement waits for a lock.
    pub busy_timeout: Duration,
}

impl StateConfig {
    /// The state part alone, for `backup`.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::read(&Vars(vars))
    }

    pub(super) fn read(v: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            db_path: PathBuf::from(v.or("STATE_DB_PATH", "./data/state.db")),
            busy_timeout: busy_timeout(v)?,
        })
    }
}

fn busy_timeout(v: &Vars) -> Result<Duration, ConfigError> {
    Ok(Duration::from_millis(
        v.number("SQLITE_BUSY_TIMEOUT_MS", 5_000)?,
    ))
}
