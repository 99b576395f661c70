//! One retry policy for every loop that talks to something outside the process: exponential
//! back-off with jitter and a cap, a bounded number of attempts, `Retry-After` honoured up to a
//! cap, and a rule for what is safe to send again.
//!
//! The rule: a request that never reached the server, or that the server answered with 429 or a
//! 5xx, may be repeated; a request whose fate is unknown (sent, then a time-out or a dropped
//! connection) is repeated only when it is idempotent, because the server may still be doing
//! it (and, for OpenAI, billing it). Anything else is final.
//!
//! The arithmetic is a few lines, so it lives here rather than in a crate: the part that
//! matters is the decision table, which no back-off crate knows about.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// What became of one attempt, as far as sending it again is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The request never reached the server (refused, DNS, connect time-out): nothing was done.
    Connect,
    /// 429: the server declined to do it now, saying how long to wait when it did.
    RateLimited(Option<Duration>),
    /// A 5xx status: the server reports that it failed.
    ServerError(Option<Duration>),
    /// Sent, but no complete answer came back (time-out, connection lost): the server may have
    /// done it, or may still be doing it.
    Unknown,
    /// Anything else (a 4xx, a malformed answer): sending it again will not help.
    Fatal,
}

impl Outcome {
    /// The outcome of an HTTP status that is not a success; `retry_after` as the server gave it.
    pub fn of_status(status: u16, retry_after: Option<Duration>) -> Outcome {
        match status {
            429 => Outcome::RateLimited(retry_after),
            500..=599 => Outcome::ServerError(retry_after),
            _ => Outcome::Fatal,
        }
    }

    /// The outcome of a transport error: only a failure to connect proves nothing was sent.
    pub fn of_transport(error: &reqwest::Error) -> Outcome {
        if error.is_connect() {
            Outcome::Connect
        } else if error.is_builder() || error.is_redirect() {
            Outcome::Fatal
        } else {
            Outcome::Unknown
        }
    }
}

/// Why a retry loop stopped without success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The outcome is final: sending again would get the same answer.
    Fatal,
    /// The request's fate is unknown and it is not idempotent: sending it again could do it twice.
    Unsafe,
    /// The attempts ran out.
    Exhausted,
    /// The server asked for a longer wait than the policy allows.
    WaitTooLong(Duration),
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then send again.
    Retry(Duration),
    /// Give up.
    Stop(Stop),
}

/// A retry policy. `Copy`, so each client keeps its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The wait before the first retry (before jitter); doubled each time.
    pub base: Duration,
    /// The longest back-off wait.
    pub max_delay: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The longest `Retry-After` honoured; a longer one ends the loop.
    pub max_retry_after: Duration,
}

impl Policy {
    /// Back-off from `base` doubling up to `max_delay`, at most `max_retries` retries;
    /// `Retry-After` honoured up to `max_delay`.
    pub const fn new(base: Duration, max_delay: Duration, max_retries: u32) -> Policy {
        Policy {
            base,
            max_delay,
            max_retries,
            max_retry_after: max_delay,
        }
    }

    /// The same policy with another cap on `Retry-After`.
    pub const fn with_max_retry_after(self, max_retry_after: Duration) -> Policy {
        Policy {
            max_retry_after,
            ..self
        }
    }

    /// The back-off before retry number `attempt + 1`: `base × 2^attempt`, capped, with
    /// "equal jitter" (a random point in its upper half) so that clients that failed together
    /// do not come back together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(31)))
            .min(self.max_delay);
        let half = exp / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// The waits of a bounded back-off, for loops that are not a request (a poll, a lock).
    pub fn backoff(&self) -> Backoff {
        Backoff {
            policy: *self,
            attempt: 0,
        }
    }

    /// What to do after `outcome`, with `attempt` retries already made.
    pub fn decide(&self, attempt: u32, outcome: Outcome, idempotent: bool) -> Decision {
        let asked = match outcome {
            Outcome::Fatal => return Decision::Stop(Stop::Fatal),
            Outcome::Unknown if !idempotent => return Decision::Stop(Stop::Unsafe),
            Outcome::RateLimited(asked) | Outcome::ServerError(asked) => asked,
            Outcome::Connect | Outcome::Unknown => None,
        };
        if attempt >= self.max_retries {
            return Decision::Stop(Stop::Exhausted);
        }
        match asked {
            Some(wait) if wait > self.max_retry_after => Decision::Stop(Stop::WaitTooLong(wait)),
            // "Retry-After: 0" is no reason to hammer the server: back off as usual.
            Some(wait) if !wait.is_zero() => Decision::Retry(wait),
            _ => Decision::Retry(self.delay(attempt)),
        }
    }

    /// Runs `attempt` until it succeeds or the policy says stop, classifying each error with
    /// `classify`. `upstream` names the other side in the log lines. A stop other than a final
    /// answer is logged once, with the reason.
    pub async fn run<T, E, F, Fut>(
        &self,
        upstream: &'static str,
        idempotent: bool,
        mut attempt: F,
        classify: impl Fn(&E) -> Outcome,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Display,
    {
        let mut retries = 0;
        loop {
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            match self.decide(retries, classify(&error), idempotent) {
                Decision::Retry(wait) => {
                    retries += 1;
                    tracing::warn!(
                        upstream,
                        %error,
                        retry = retries,
                        wait_ms = wait.as_millis() as u64,
                        "request failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
                Decision::Stop(Stop::Fatal) => return Err(error),
                Decision::Stop(Stop::Unsafe) => {
                    tracing::warn!(
                        upstream,
                        %error,
                        "no answer after the request was sent; not sending it again (the upstream may still be working on it)"
                    );
                    return Err(error);
                }
                Decision::Stop(Stop::Exhausted) => {
                    tracing::warn!(upstream, %error, retries, "giving up after the last retry");
                    return Err(error);
                }
                Decision::Stop(Stop::WaitTooLong(asked)) => {
                    tracing::warn!(
                        upstream,
                        %error,
                        asked_s = asked.as_secs_f64(),
                        cap_s = self.max_retry_after.as_secs_f64(),
                        "the upstream asked to wait longer than the cap; giving up"
                    );
                    return Err(error);
                }
            }
        }
    }
}

/// The waits of a back-off, in order; ends after `max_retries` of them.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: Policy,
    attempt: u32,
}

impl Backoff {
    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Waits made so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.attempt >= self.policy.max_retries {
            return None;
        }
        let wait = self.policy.delay(self.attempt);
        self.attempt += 1;
        Some(wait)
    }
}

#[cfg(test)]
mod tests;
