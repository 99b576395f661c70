//! The Redis side of the store: one multiplexed connection that reconnects by itself, each
//! command bounded by [`COMMAND_TIMEOUT`], and an outage logged once.
//!
//! One connection, not a pool: commands from every task are pipelined on it, which is how
//! Redis (one thread) serves many small commands best. deadpool-redis pooled such connections
//! and sent `UNWATCH` + `PING` at every checkout: in a load run of 10,000 answers that was an
//! extra round trip before 54,371 of the 74,400 commands (`INFO commandstats`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ::redis::AsyncCommands;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{COMMAND_TIMEOUT, KvError};

/// How long one attempt to (re)connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnect attempts inside the client after a connection is lost: none. While the client
/// retries, every command waits for it, so a Redis that is down would slow each update by
/// the back-off instead of failing fast to the process's copy. [`RedisKv::run`] tries a
/// command once more instead, only when the connection was refused (nothing was sent).
const RECONNECT_RETRIES: usize = 0;

/// A Redis-backed store, remembering whether it is in an outage so that is logged once.
#[derive(Clone)]
pub(super) struct RedisKv {
    connection: ConnectionManager,
    down: Arc<AtomicBool>,
}

impl RedisKv {
    /// A connection to `url`, opened at the first command (not here).
    pub(super) fn new(url: &str) -> Result<Self, KvError> {
        let client = ::redis::Client::open(url).map_err(KvError::Config)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            // The client's own default (500 ms) would cut a command short of the one bound
            // every command has here, COMMAND_TIMEOUT, and report it as another error.
            .set_response_timeout(None)
            .set_number_of_retries(RECONNECT_RETRIES);
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(KvError::Config)?;
        Ok(RedisKv {
            connection,
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

    /// Runs one command on the shared connection; logs the first failure of an outage and
    /// the recovery, not every failed call.
    ///
    /// A refused connection means the command was never sent, so it is tried once more: the
    /// failure has started a fresh connection, and the second try waits for it. Without this,
    /// the first command after Redis is back would still fail, since it reads the refusal the
    /// last attempt left behind. Anything else (a time-out, a dropped connection after the
    /// command went out) is not repeated: `SET NX` twice could read its own first write.
    pub(super) async fn run<T, F, Fut>(&self, f: F) -> Result<T, KvError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = Result<T, KvError>>,
    {
        let attempts = async {
            match f(self.connection.clone()).await {
                Err(KvError::Redis(e)) if e.is_connection_refusal() => {
                    f(self.connection.clone()).await
                }
                result => result,
            }
        };
        let result = tokio::time::timeout(COMMAND_TIMEOUT, attempts)
            .await
            .unwrap_or(Err(KvError::Timeout));
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
