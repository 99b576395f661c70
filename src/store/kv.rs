//! A small key-value store: Redis when `REDIS_URL` is set (shared by several instances),
//! otherwise in process. Holds update dedup marks, gate decisions, conversation ids and,
//! in chat mode, histories. Keys are namespaced per bot: `subgpt:{bot_id}:…`.
//!
//! This file is the one interface and when the process's copy stands in; `redis` and
//! `memory` are the two sides behind it.

mod memory;
mod redis;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use ::redis::AsyncCommands;

use self::redis::{RedisKv, millis};
pub use memory::MemoryKv;

/// What went wrong with the store (only Redis can fail).
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("redis configuration: {0}")]
    Config(::redis::RedisError),
    #[error("redis did not answer within {} ms", COMMAND_TIMEOUT.as_millis())]
    Timeout,
}

impl KvError {
    /// The server's TLS certificate was not trusted (rustls names the certificate in its
    /// message; the client's error has no kind of its own for it).
    pub fn is_untrusted_certificate(&self) -> bool {
        matches!(self, KvError::Redis(e) if e.to_string().contains("certificate"))
    }
}

/// The longest one Redis command may take; a Redis that hangs is a failing Redis.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Redis or in-process, behind one interface. Cheap to clone.
///
/// With Redis, the in-process map stands in while Redis fails: reads and writes that Redis
/// cannot serve go there, so the bot keeps answering through an outage (one instance's view),
/// and the outage is logged once.
#[derive(Clone)]
pub struct Kv {
    redis: Option<RedisKv>,
    memory: Arc<MemoryKv>,
}

impl Kv {
    /// An in-process store.
    pub fn memory() -> Self {
        Kv {
            redis: None,
            memory: Arc::new(MemoryKv::default()),
        }
    }

    /// A Redis store for `url`. Does not connect yet.
    pub fn redis(url: &str) -> Result<Self, KvError> {
        Ok(Kv {
            redis: Some(RedisKv::new(url)?),
            memory: Arc::new(MemoryKv::default()),
        })
    }

    /// Whether this is Redis (for readiness).
    pub fn is_redis(&self) -> bool {
        self.redis.is_some()
    }

    /// Sets `key` only if absent, with a time to live. True when it was set.
    pub async fn set_nx_ex(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, KvError> {
        let Some(r) = &self.redis else {
            return Ok(self.memory.set_nx(key, value, ttl));
        };
        let opts = ::redis::SetOptions::default()
            .conditional_set(::redis::ExistenceCheck::NX)
            .with_expiration(::redis::SetExpiry::PX(millis(ttl)));
        let result = r
            .run(|mut c| {
                let (key, value, opts) = (key.to_string(), value.to_string(), opts.clone());
                async move {
                    let set: Option<String> = c.set_options(key, value, opts).await?;
                    Ok(set.is_some())
                }
            })
            .await;
        Ok(result.unwrap_or_else(|_| self.memory.set_nx(key, value, ttl)))
    }

    /// The value of `key`, if set and not expired. A failing Redis reads as the process's
    /// own copy, or absent; use [`Kv::get_strict`] where absent would be mistaken.
    pub async fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        let Some(r) = &self.redis else {
            return Ok(self.memory.get(key));
        };
        // What was written during an outage lives only here.
        Ok(r.get(key)
            .await
            .ok()
            .flatten()
            .or_else(|| self.memory.get(key)))
    }

    /// The value of `key` as Redis has it (or the process, without Redis). Unlike [`Kv::get`],
    /// a failing Redis is an error, not "absent": for state whose loss would be mistaken for
    /// "never had one" (a conversation id).
    pub async fn get_strict(&self, key: &str) -> Result<Option<String>, KvError> {
        match &self.redis {
            Some(r) => r.get(key).await,
            None => Ok(self.memory.get(key)),
        }
    }

    /// Sets `key` in Redis (or the process, without Redis); a failing Redis is an error.
    pub async fn set_strict(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        match &self.redis {
            Some(r) => r.set(key, value, ttl).await,
            None => {
                self.memory.set(key, value, ttl);
                Ok(())
            }
        }
    }

    /// Sets `key` to `value`, expiring after `ttl` (or never). While Redis fails, the value
    /// is kept in the process.
    pub async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), KvError> {
        let Some(r) = &self.redis else {
            self.memory.set(key, value, ttl);
            return Ok(());
        };
        match r.set(key, value, ttl).await {
            Ok(()) => self.memory.remove(key),
            Err(_) => self.memory.set(key, value, ttl),
        }
        Ok(())
    }

    /// Removes `key`.
    pub async fn del(&self, key: &str) -> Result<(), KvError> {
        self.memory.remove(key);
        let Some(r) = &self.redis else { return Ok(()) };
        let result = r
            .run(|mut c| {
                let key = key.to_string();
                async move { Ok(c.del::<_, ()>(key).await?) }
            })
            .await;
        // During an outage the key stays in Redis; there is nothing better to do than go on.
        let _ = result;
        Ok(())
    }

    /// Removes `key` only while it still holds `value` (releasing a lock this holder owns).
    pub async fn del_if(&self, key: &str, value: &str) {
        self.memory.remove_if(key, value);
        let Some(r) = &self.redis else { return };
        const SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
        let _ = r
            .run(|mut c| {
                let mut eval = ::redis::cmd("EVAL");
                eval.arg(SCRIPT).arg(1).arg(key).arg(value);
                async move {
                    let _: i64 = eval.query_async(&mut c).await?;
                    Ok(())
                }
            })
            .await;
    }

    /// Extends the time to live of `key` only while it still holds `value`.
    pub async fn expire_if(&self, key: &str, value: &str, ttl: Duration) {
        self.memory.expire_if(key, value, ttl);
        let Some(r) = &self.redis else { return };
        const SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
        let _ = r
            .run(|mut c| {
                let mut eval = ::redis::cmd("EVAL");
                eval.arg(SCRIPT).arg(1).arg(key).arg(value).arg(millis(ttl));
                async move {
                    let _: i64 = eval.query_async(&mut c).await?;
                    Ok(())
                }
            })
            .await;
    }

    /// `CONFIG GET parameter` on Redis: its value (None without Redis, or when the server
    /// does not say).
    pub async fn redis_config(&self, parameter: &str) -> Result<Option<String>, KvError> {
        let Some(r) = &self.redis else {
            return Ok(None);
        };
        r.run(|mut c| {
            let mut cmd = ::redis::cmd("CONFIG");
            cmd.arg("GET").arg(parameter);
            async move {
                let pairs: Vec<String> = cmd.query_async(&mut c).await?;
                Ok(pairs.into_iter().nth(1))
            }
        })
        .await
    }

    /// Answers when the store is reachable.
    pub async fn ping(&self) -> Result<(), KvError> {
        let Some(r) = &self.redis else { return Ok(()) };
        r.run(|mut c| async move {
            let _: String = ::redis::cmd("PING").query_async(&mut c).await?;
            Ok(())
        })
        .await
    }
}
