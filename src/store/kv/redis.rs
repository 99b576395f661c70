//! The Redis side of the store: a pool with short timeouts, each command bounded by
//! [`COMMAND_TIMEOUT`], and an outage logged once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_redis::redis::AsyncCommands;

use super::{COMMAND_TIMEOUT, KvError};

/// A Redis-backed store, remembering whether it is in an outage so that is logged once.
#[derive(Clone)]
pub(super) struct RedisKv {
    pool: deadpool_redis::Pool,
    down: Arc<AtomicBool>,
}

impl RedisKv {
    /// A pool for `url`. Does not connect yet.
    pub(super) fn new(url: &str) -> Result<Self, KvError> {
        let mut cfg = deadpool_redis::Config::from_url(url);
        let mut pool = deadpool_redis::PoolConfig::new(32);
        pool.timeouts.wait = Some(Duration::from_secs(2));
        pool.timeouts.create = Some(Duration::from_secs(2));
        pool.timeouts.recycle = Some(Duration::from_secs(2));
        cfg.pool = Some(pool);
        let pool = cfg.create_pool(Some(deadpool_redis::Runtime::Tokio1))?;
        Ok(RedisKv {
            pool,
            down: Arc::new(AtomicBool::new(false)),
        })
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        self.run(|mut c| {
            let key = key.to_string();
            async move { Ok(c.get(key).await?) }
        })
        .await
    }

    pub(super) async fn set(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        self.run(|mut c| {
            let (key, value) = (key.to_string(), value.to_string());
            async move {
                match ttl {
                    Some(ttl) => c.pset_ex::<_, _, ()>(key, value, millis(ttl)).await?,
                    None => c.set::<_, _, ()>(key, value).await?,
                }
                Ok(())
            }
        })
        .await
    }

    /// Runs one command on a pooled connection; logs the first failure of an outage and
    /// the recovery, not every failed call.
    pub(super) async fn run<T, F, Fut>(&self, f: F) -> Result<T, KvError>
    where
        F: FnOnce(deadpool_redis::Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T, KvError>>,
    {
        // Boxed: deadpool's checkout future is ~6.9 KB, and inline it made every future that
        // touches the kv (the gate, conversations, locks, so each answer's) that much larger,
        // with or without Redis configured.
        let result = match Box::pin(self.pool.get()).await {
            Ok(conn) => tokio::time::timeout(COMMAND_TIMEOUT, f(conn))
                .await
                .unwrap_or(Err(KvError::Timeout)),
            Err(e) => Err(e.into()),
        };
        match &result {
            Ok(_) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis is reachable again");
                }
            }
            Err(e) => {
                metrics::counter!("subgpt_redis_errors_total").increment(1);
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::error!(error = %e, "Redis is failing; going on in process until it is back");
                }
            }
        }
        result
    }
}

/// A time to live as Redis takes it: whole milliseconds, at least one.
pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
