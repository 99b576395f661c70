//! Turns for Bot API requests: at most so many in flight at once per process. Requests that
//! matter (messages, membership checks) wait for one, first come, first served; best-effort
//! ones (drafts, "typing…") are skipped when none is free, so they never hold up an answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Semaphore, SemaphorePermit};

/// Bot API requests in flight at once, per process. Each holds an HTTP/1.1 connection (about
/// 26 KB of buffers), so an unbounded burst (a thousand answers finishing together on a busy
/// host) would hold hundreds of them. At a 100 ms round trip this still allows 640 requests a
/// second, far above the "30 messages per second or so" the Bot FAQ gives as a bot's limit
/// for messages to many users
/// (core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this, read
/// 2026-12-07).
pub const MAX_IN_FLIGHT: usize = 64;

/// The turns, shared by the clones of one client.
#[derive(Clone)]
pub(super) struct Turns {
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
}

impl Turns {
    /// At most `n` (at least one) in flight.
    pub(super) fn new(n: usize) -> Self {
        Turns {
            permits: Arc::new(Semaphore::new(n.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A turn, held until the returned permit is dropped. Never waited for long: every request
    /// that holds one ends within its own time-out.
    pub(super) async fn take(&self) -> SemaphorePermit<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _counted = Counted(&self.waiting);
        self.permits
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    /// A turn if one is free now.
    pub(super) fn try_take(&self) -> Option<SemaphorePermit<'_>> {
        self.permits.try_acquire().ok()
    }

    /// Requests waiting for a turn right now.
    pub(super) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

/// Uncounts a waiting request however its wait ends (a turn, or the request dropped).
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_is_counted_until_it_ends_however_it_ends() {
        let turns = Turns::new(1);
        let first = turns.take().await;
        let mut second = Box::pin(turns.take());
        assert!(futures::poll!(second.as_mut()).is_pending());
        assert_eq!(turns.waiting(), 1);
        // Given up while waiting (the request was dropped).
        drop(second);
        assert_eq!(turns.waiting(), 0);
        assert!(turns.try_take().is_none(), "the only turn is taken");
        let mut third = Box::pin(turns.take());
        assert!(futures::poll!(third.as_mut()).is_pending());
        drop(first);
        let _turn = third.await;
        assert_eq!(turns.waiting(), 0);
    }
}
