//! One user at a time across instances: with Redis, each update runs under a short per-user
//! lock, so two instances behind one webhook never answer the same user concurrently. In
//! process, the dispatcher's per-user queue already guarantees it and no lock is taken.
//!
//! The lock is held by a guard: however the work ends (done, cancelled at its deadline, or
//! panicking), dropping the guard stops the renewal and releases the lock.
//!
//! A lock's value names the instance (stable across restarts) and the run of the process. A
//! lock left by this instance's previous run (killed before it could release it) is taken
//! over at once instead of waiting for it to expire: within one instance the dispatcher
//! already serves a user's updates one at a time.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::retry::Policy;
use crate::store::kv::Kv;

/// How long a lock lives unless renewed; renewed while the update is being handled.
const LOCK_TTL: Duration = Duration::from_secs(30);
/// The longest wait for another instance to finish with the user before going on anyway.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// Waits between tries for a held lock: 10 ms doubling to 200 ms; `MAX_WAIT` bounds the loop.
const RETRY: Policy = Policy::new(
    Duration::from_millis(10),
    Duration::from_millis(200),
    u32::MAX,
);

/// Per-user locks in the kv.
#[derive(Clone)]
pub struct UserLocks {
    kv: Kv,
    ns: String,
    /// `{instance}/`: the prefix of every lock value this instance writes, whichever run.
    instance: String,
    /// `{instance}/{run}/`: the prefix of this run's lock values.
    run: String,
}

/// A held lock: renewed in the background until dropped, then released.
struct Held {
    kv: Kv,
    key: String,
    token: String,
    renew: tokio::task::JoinHandle<()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.renew.abort();
        let (kv, key, token) = (self.kv.clone(), self.key.clone(), self.token.clone());
        // Drop cannot wait; the release is one compare-and-delete, bounded by the kv's time-outs.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { kv.del_if(&key, &token).await });
        }
    }
}

impl UserLocks {
    /// Locks under `{ns}:lock:{user}` in `kv`, for the instance `instance` (an id that stays
    /// the same when the process restarts, and differs between instances).
    pub fn new(kv: Kv, ns: String, instance: &str) -> Self {
        let run = format!("{instance}/{:016x}/", fastrand::u64(..));
        UserLocks {
            kv,
            ns,
            instance: format!("{instance}/"),
            run,
        }
    }

    /// Runs `work` while holding `user`'s lock (Redis only).
    pub async fn hold<F: Future>(&self, user: i64, work: F) -> F::Output {
        if !self.kv.is_redis() {
            return work.await;
        }
        let _held = self.acquire(user).await;
        work.await
    }

    async fn acquire(&self, user: i64) -> Held {
        let key = format!("{}:lock:{user}", self.ns);
        let token = format!("{}{:016x}", self.run, fastrand::u64(..));
        let started = Instant::now();
        let mut tries = 0;
        // A Redis failure falls back to the process's own map inside the kv, so this ends.
        while !self
            .kv
            .set_nx_ex(&key, &token, LOCK_TTL)
            .await
            .unwrap_or(true)
        {
            if let Ok(Some(holder)) = self.kv.get_strict(&key).await
                && holder.starts_with(&self.instance)
                && !holder.starts_with(&self.run)
            {
                tracing::info!(
                    "took over this user's lock, left by this instance before a restart"
                );
                self.kv.del_if(&key, &holder).await;
                continue;
            }
            if started.elapsed() > MAX_WAIT {
                tracing::warn!(
                    "another instance held this user's lock too long; going on without it"
                );
                break;
            }
            tokio::time::sleep(RETRY.delay(tries)).await;
            tries += 1;
        }
        let renew = {
            let (kv, key, token) = (self.kv.clone(), key.clone(), token.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LOCK_TTL / 3).await;
                    kv.expire_if(&key, &token, LOCK_TTL).await;
                }
            })
        };
        Held {
            kv: self.kv.clone(),
            key,
            token,
            renew,
        }
    }
}
