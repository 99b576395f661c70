//! Where per-user conversation state is kept: the state database always (this instance's
//! durable copy), and Redis too when configured (shared by the instances).
//!
//! A value Redis does not have (restarted without persistence, flushed) is taken from the file
//! and written back. While Redis fails, this instance's copy is used; with no copy that is an
//! error, never "no conversation" (which would start a new one). A value read from Redis is
//! kept in the file too, so a user another instance started with goes on here through an
//! outage. A removed value is left in Redis as an empty tombstone, so another instance does
//! not bring back its own older copy (and drops it when it reads the tombstone).

use std::time::Duration;

use crate::store::kv::{Kv, KvError};
use crate::store::state::{StateError, StateStore};

/// The state behind a conversation could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("conversation store: {0}")]
    Kv(#[from] KvError),
    #[error("conversation store: {0}")]
    State(#[from] StateError),
}

/// Per-user values in the state database, shared through Redis when there is one.
#[derive(Clone)]
pub struct UserState {
    kv: Kv,
    state: StateStore,
}

impl UserState {
    /// Values in `state`, shared through `kv` when it is Redis.
    pub fn new(kv: Kv, state: StateStore) -> Self {
        UserState { kv, state }
    }

    /// The value of `key`, if any. A value another instance shared is kept here too (expiring
    /// after `ttl`, or never), so this instance can go on with it while Redis fails.
    pub async fn get(
        &self,
        key: &str,
        ttl: Option<Duration>,
    ) -> Result<Option<String>, StoreError> {
        if !self.kv.is_redis() {
            return Ok(self.state.get(key).await?);
        }
        let shared = match self.kv.get_strict(key).await {
            Ok(shared) => shared,
            Err(e) => {
                return match self.state.get(key).await? {
                    Some(copy) => {
                        tracing::warn!(error = %e, "Redis failed; using this instance's copy of the conversation state");
                        Ok(Some(copy))
                    }
                    None => Err(e.into()),
                };
            }
        };
        match shared {
            Some(tombstone) if tombstone.is_empty() => {
                self.state.keep(key, None, None);
                Ok(None)
            }
            Some(value) => {
                self.state.keep(key, Some(&value), ttl);
                Ok(Some(value))
            }
            None => {
                let copy = self.state.get(key).await?;
                if let Some(value) = &copy {
                    tracing::info!(
                        "Redis had lost a conversation key; restored it from the state database"
                    );
                    if let Err(e) = self.kv.set_strict(key, value, ttl).await {
                        tracing::warn!(error = %e, "could not write the key back to Redis");
                    }
                }
                Ok(copy)
            }
        }
    }

    /// Sets `key` to `value`, expiring after `ttl` (or never): durable here, then shared.
    pub async fn set(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.state.put(key, Some(value), ttl).await?;
        self.share(key, value, ttl).await;
        Ok(())
    }

    /// Removes `key`.
    pub async fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.state.put(key, None, None).await?;
        self.share(key, "", None).await;
        Ok(())
    }

    /// Tells the other instances, through Redis. This instance's copy is already durable, so a
    /// failing Redis is logged, not an error (an answer already paid for is not thrown away).
    async fn share(&self, key: &str, value: &str, ttl: Option<Duration>) {
        if self.kv.is_redis()
            && let Err(e) = self.kv.set_strict(key, value, ttl).await
        {
            tracing::warn!(error = %e, "could not share conversation state through Redis");
        }
    }
}
