//! The decision table and the waits, with tokio's clock paused so waits take no real time.

use std::cell::Cell;
use std::time::Duration;

use tokio::time::Instant;

use super::*;

const POLICY: Policy = Policy::new(Duration::from_millis(100), Duration::from_secs(2), 3);

#[test]
fn delay_doubles_with_jitter_in_its_upper_half_and_is_capped() {
    for attempt in 0..40 {
        let exp = Duration::from_millis(100)
            .saturating_mul(2u32.saturating_pow(attempt.min(31)))
            .min(Duration::from_secs(2));
        for _ in 0..50 {
            let d = POLICY.delay(attempt);
            assert!(
                d >= exp / 2 && d <= exp,
                "attempt {attempt}: {d:?} vs {exp:?}"
            );
        }
    }
    let spread: std::collections::HashSet<Duration> = (0..50).map(|_| POLICY.delay(3)).collect();
    assert!(spread.len() > 1, "jitter varies the wait");
}

#[test]
fn backoff_is_bounded_and_resets() {
    let mut backoff = POLICY.backoff();
    assert_eq!(backoff.by_ref().count(), 3);
    assert_eq!(backoff.next(), None);
    assert_eq!(backoff.attempts(), 3);
    backoff.reset();
    assert!(backoff.next().unwrap() <= Duration::from_millis(100));
}

#[test]
fn what_is_safe_to_repeat() {
    let retried = |d: Decision| matches!(d, Decision::Retry(_));
    // Nothing was sent, or the server reported failure: any request may go again.
    for idempotent in [false, true] {
        assert!(retried(POLICY.decide(0, Outcome::Connect, idempotent)));
        assert!(retried(POLICY.decide(
            0,
            Outcome::ServerError(None),
            idempotent
        )));
        assert!(retried(POLICY.decide(
            0,
            Outcome::RateLimited(None),
            idempotent
        )));
        assert_eq!(
            POLICY.decide(0, Outcome::Fatal, idempotent),
            Decision::Stop(Stop::Fatal)
        );
    }
    // Sent and unanswered: only an idempotent request goes again.
    assert_eq!(
        POLICY.decide(0, Outcome::Unknown, false),
        Decision::Stop(Stop::Unsafe)
    );
    assert!(retried(POLICY.decide(0, Outcome::Unknown, true)));
    // Bounded.
    assert_eq!(
        POLICY.decide(3, Outcome::Connect, true),
        Decision::Stop(Stop::Exhausted)
    );
}

#[test]
fn retry_after_is_honoured_up_to_the_cap() {
    let asked = Outcome::RateLimited(Some(Duration::from_millis(1500)));
    assert_eq!(
        POLICY.decide(0, asked, false),
        Decision::Retry(Duration::from_millis(1500))
    );
    let too_long = Outcome::ServerError(Some(Duration::from_secs(30)));
    assert_eq!(
        POLICY.decide(0, too_long, false),
        Decision::Stop(Stop::WaitTooLong(Duration::from_secs(30)))
    );
    let raised = POLICY.with_max_retry_after(Duration::from_secs(60));
    assert_eq!(
        raised.decide(0, too_long, false),
        Decision::Retry(Duration::from_secs(30))
    );
    // Zero means "whenever": the usual back-off, not a hot loop.
    match POLICY.decide(1, Outcome::RateLimited(Some(Duration::ZERO)), false) {
        Decision::Retry(d) => assert!(d >= Duration::from_millis(100)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn statuses_and_transport_errors_are_classified() {
    assert_eq!(Outcome::of_status(429, None), Outcome::RateLimited(None));
    assert_eq!(
        Outcome::of_status(502, Some(Duration::from_secs(1))),
        Outcome::ServerError(Some(Duration::from_secs(1)))
    );
    for status in [400, 401, 403, 404, 409] {
        assert_eq!(Outcome::of_status(status, None), Outcome::Fatal);
    }
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_outcome() {
    // A port that was free a moment ago: nothing listens, so the request never left.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert_eq!(Outcome::of_transport(&error), Outcome::Connect);
}

#[tokio::test(start_paused = true)]
async fn run_retries_with_the_waits_asked_for_and_stops_when_told() {
    let calls = Cell::new(0);
    let started = Instant::now();
    let result: Result<(), String> = POLICY
        .run(
            "test",
            false,
            || {
                calls.set(calls.get() + 1);
                async { Err("busy".to_string()) }
            },
            |_| Outcome::RateLimited(Some(Duration::from_secs(1))),
        )
        .await;
    assert!(result.is_err());
    assert_eq!(calls.get(), 4, "the first attempt and three retries");
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(3),
        "waited 1 s each time"
    );
}

#[tokio::test(start_paused = true)]
async fn run_succeeds_after_transient_failures() {
    let calls = Cell::new(0);
    let started = Instant::now();
    let result = POLICY
        .run(
            "test",
            false,
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move { if n < 3 { Err("502") } else { Ok(n) } }
            },
            |_| Outcome::ServerError(None),
        )
        .await;
    assert_eq!(result, Ok(3));
    let waited = started.elapsed();
    // Back-off of 50–100 ms, then 100–200 ms.
    assert!(
        waited >= Duration::from_millis(150) && waited <= Duration::from_millis(300),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn run_never_repeats_an_unsafe_request_and_gives_up_on_long_waits() {
    for (outcome, idempotent, expected) in [
        (Outcome::Unknown, false, 1),
        (Outcome::Unknown, true, 4),
        (
            Outcome::RateLimited(Some(Duration::from_secs(3600))),
            true,
            1,
        ),
        (Outcome::Fatal, true, 1),
    ] {
        let calls = Cell::new(0);
        let started = Instant::now();
        let _: Result<(), &str> = POLICY
            .run(
                "test",
                idempotent,
                || {
                    calls.set(calls.get() + 1);
                    async { Err("failed") }
                },
                |_| outcome,
            )
            .await;
        assert_eq!(
            calls.get(),
            expected,
            "{outcome:?}, idempotent {idempotent}"
        );
        if expected == 1 {
            assert_eq!(
                started.elapsed(),
                Duration::ZERO,
                "no wait before giving up"
            );
        }
    }
}
