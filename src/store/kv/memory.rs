//! The in-process side of the store: the whole store without Redis, and the stand-in while
//! Redis fails.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The in-process store: a map with expiry times, swept now and then.
#[derive(Default)]
pub struct MemoryKv {
    map: Mutex<HashMap<String, (String, Option<Instant>)>>,
    writes: std::sync::atomic::AtomicU64,
}

impl MemoryKv {
    fn live(entry: &(String, Option<Instant>), now: Instant) -> bool {
        entry.1.is_none_or(|at| at > now)
    }

    pub(super) fn get(&self, key: &str) -> Option<String> {
        let now = Instant::now();
        self.map
            .lock()
            .get(key)
            .filter(|e| Self::live(e, now))
            .map(|e| e.0.clone())
    }

    pub(super) fn set(&self, key: &str, value: &str, ttl: Option<Duration>) {
        let expires = ttl.map(|t| Instant::now() + t);
        self.sweep_now_and_then();
        self.map
            .lock()
            .insert(key.to_string(), (value.to_string(), expires));
    }

    pub(super) fn remove(&self, key: &str) {
        self.map.lock().remove(key);
    }

    pub(super) fn remove_if(&self, key: &str, value: &str) {
        let mut map = self.map.lock();
        if map.get(key).is_some_and(|e| e.0 == value) {
            map.remove(key);
        }
    }

    pub(super) fn expire_if(&self, key: &str, value: &str, ttl: Duration) {
        if let Some(entry) = self.map.lock().get_mut(key).filter(|e| e.0 == value) {
            entry.1 = Some(Instant::now() + ttl);
        }
    }

    pub(super) fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> bool {
        self.sweep_now_and_then();
        let now = Instant::now();
        let mut map = self.map.lock();
        if map.get(key).is_some_and(|e| Self::live(e, now)) {
            return false;
        }
        map.insert(key.to_string(), (value.to_string(), Some(now + ttl)));
        true
    }

    /// Drops expired entries every 1024 writes, so the map stays as big as what is live.
    fn sweep_now_and_then(&self) {
        if self.writes.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
            let now = Instant::now();
            self.map.lock().retain(|_, e| Self::live(e, now));
        }
    }
}
