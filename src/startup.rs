//! Start-up retries. A Telegram or Redis outage at boot (DNS, a restart of Redis, Telegram's
//! own hiccups) is waited out with a bounded, logged back-off instead of exiting at once,
//! which would burn through systemd's restarts. Errors that waiting cannot fix (a rejected
//! token) end the wait at once.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The first pause between attempts; it doubles each time.
const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest pause between attempts.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// How one attempt failed.
#[derive(Debug)]
pub enum Failure<E> {
    /// May go away by itself: try again.
    Transient(E),
    /// Will not go away by waiting: stop now.
    Permanent(E),
}

/// Runs `attempt` until it succeeds, fails permanently, or the next pause would end after
/// `budget` (0 = one attempt only). Each failure is logged with the pause before the next try.
pub async fn retry<T, E, F, Fut>(what: &str, budget: Duration, mut attempt: F) -> Result<T, E>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure<E>>>,
{
    let deadline = Instant::now() + budget;
    let mut delay = FIRST_DELAY;
    for tries in 1u32.. {
        let error = match attempt().await {
            Ok(value) => {
                if tries > 1 {
                    tracing::info!(what, attempts = tries, "start-up: {what} succeeded");
                }
                return Ok(value);
            }
            Err(Failure::Permanent(e)) => return Err(e),
            Err(Failure::Transient(e)) => e,
        };
        if Instant::now() + delay > deadline {
            tracing::error!(what, attempts = tries, error = %error, "start-up: {what} kept failing; giving up");
            return Err(error);
        }
        tracing::warn!(
            what,
            attempt = tries,
            error = %error,
            retry_in_secs = delay.as_secs(),
            "start-up: {what} failed; retrying"
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_DELAY);
    }
    unreachable!("the loop only ends by returning")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    async fn failing(n: u32, permanent: bool, calls: &AtomicU32) -> Result<u32, Failure<String>> {
        let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
        match call {
            c if c > n => Ok(c),
            _ if permanent => Err(Failure::Permanent(format!("no {call}"))),
            _ => Err(Failure::Transient(format!("not yet {call}"))),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_out_transient_failures_with_growing_pauses() {
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let got = retry("test", Duration::from_secs(60), || {
            failing(2, false, &calls)
        })
        .await;
        assert_eq!(got, Ok(3));
        // 1 s + 2 s of back-off.
        assert_eq!(started.elapsed().as_secs(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_at_once_on_a_permanent_failure_and_at_the_budget() {
        let calls = AtomicU32::new(0);
        let got = retry("test", Duration::from_secs(60), || failing(5, true, &calls)).await;
        assert_eq!(got, Err("no 1".to_string()));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let got = retry("test", Duration::from_secs(40), || {
            failing(100, false, &calls)
        })
        .await;
        assert!(got.is_err());
        // Pauses 1+2+4+8+16 = 31 s; the next (30 s) would end past the budget.
        assert_eq!(calls.load(Ordering::SeqCst), 6);
        assert_eq!(started.elapsed().as_secs(), 31);

        let calls = AtomicU32::new(0);
        let got = retry("test", Duration::ZERO, || failing(1, false, &calls)).await;
        assert!(got.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "budget 0: one attempt");
    }
}
