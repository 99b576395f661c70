//! One user at a time across instances: with Redis, each update runs under a short per-user
//! lock, so two instances behind one webhook never answer the same user concurrently. In
//! process, the dispatcher's per-user queue already guarantees it and no lock is taken.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::store::kv::Kv;

/// How long a lock lives unless renewed; renewed while the update is being handled.
const LOCK_TTL: Duration = Duration::from_secs(30);
/// The longest wait for another instance to finish with the user before going on anyway.
const MAX_WAIT: Duration = Duration::from_secs(300);

/// Per-user locks in the kv.
#[derive(Clone)]
pub struct UserLocks {
    kv: Kv,
    ns: String,
}

impl UserLocks {
    /// Locks under `{ns}:lock:{user}` in `kv`.
    pub fn new(kv: Kv, ns: String) -> Self {
        UserLocks { kv, ns }
    }

    /// Runs `work` while holding `user`'s lock (Redis only).
    pub async fn hold<F: Future>(&self, user: i64, work: F) -> F::Output {
        if !self.kv.is_redis() {
            return work.await;
        }
        let key = format!("{}:lock:{user}", self.ns);
        let token = format!("{:016x}", fastrand::u64(..));
        self.acquire(&key, &token).await;
        let renew = {
            let (kv, key, token) = (self.kv.clone(), key.clone(), token.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LOCK_TTL / 3).await;
                    kv.expire_if(&key, &token, LOCK_TTL).await;
                }
            })
        };
        let output = work.await;
        renew.abort();
        self.kv.del_if(&key, &token).await;
        output
    }

    async fn acquire(&self, key: &str, token: &str) {
        let started = Instant::now();
        let mut wait = Duration::from_millis(10);
        // A Redis failure falls back to the process's own map inside the kv, so this ends.
        while !self
            .kv
            .set_nx_ex(key, token, LOCK_TTL)
            .await
            .unwrap_or(true)
        {
            if started.elapsed() > MAX_WAIT {
                tracing::warn!(
                    "another instance held this user's lock too long; going on without it"
                );
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(200));
        }
    }
}
