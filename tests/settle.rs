//! The usage of an answer cut off in `responses` mode is recorded once OpenAI says how its
//! response ended (`bot/settle.rs`): a cancel that failed, or a cancelled response that OpenAI
//! completed after all, is recorded with the whole response's usage, once, across a restart.

mod support;

use std::time::Duration;

use rusqlite::Connection;
use support::openai::tokens_for;
use support::*;

const ANSWER: &str = "A long and winding answer that takes its time.";

/// `(tokens_used, model)` of every usage row.
fn rows(app: &TestApp) -> Vec<(i64, Option<String>)> {
    let Ok(conn) = Connection::open(app.db_path()) else {
        return Vec::new();
    };
    let Ok(mut stmt) = conn.prepare("SELECT tokens_used, model FROM user_analytics ORDER BY id")
    else {
        return Vec::new();
    };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// `ANSWER_DEADLINE_SECS=2`: the answer is cut off after 1.8 s, and completes upstream after
/// 3.2 s (sixteen pieces, one every 200 ms), unless its cancel took. A failed cancel is
/// retried after about 500 ms (the default back-off), longer than the 200 ms left.
async fn late_answer(settle_after: &str) -> TestApp {
    let app = Spawn::default()
        .env("ANSWER_DEADLINE_SECS", "2")
        .env("STREAMING", "off")
        .env("OPENAI_SETTLE_AFTER_SECS", settle_after)
        .start()
        .await;
    app.openai.answer_with(|_| ANSWER.into());
    app.openai
        .with(|s| s.token_every = Duration::from_millis(200));
    app
}

/// Sends the slow question and waits until the user has the apology and the update is done.
async fn cut_off(app: &TestApp, user: i64) {
    app.send_text(1, user, "slow").await;
    let texts = app.wait_messages(user, 1).await;
    assert!(texts[0].contains("reference:"), "{texts:?}");
    eventually("the update is finished", Duration::from_secs(10), || {
        app.inbox_len() == 0
    })
    .await;
    // Cut off in the answer's own time, with its usage kept: not by the dispatcher's backstop.
    assert!(!app.logs().contains("ran past ANSWER_DEADLINE_SECS"));
}

async fn wait_rows(app: &TestApp, n: usize) -> Vec<(i64, Option<String>)> {
    eventually(&format!("{n} usage rows"), Duration::from_secs(20), || {
        rows(app).len() >= n
    })
    .await;
    rows(app)
}

#[tokio::test]
async fn a_failed_cancel_leaves_the_usage_to_openais_final_figures() {
    let app = late_answer("1").await;
    app.openai.with(|s| s.cancel_fails = Some(500));
    cut_off(&app, 401).await;
    // The whole log when it is not as expected: this once missed the line beside a CPU hog.
    let said = |needle: &str| app.logs().contains(needle);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !said("the answer was cut off") && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        said("the answer was cut off")
            && (said("OpenAI did not confirm the cancel in time")
                || said("could not cancel the response upstream")),
        "{}",
        app.logs()
    );
    // Not the estimate: the response goes on upstream, and is paid for to its end.
    assert!(rows(&app).is_empty(), "{:?}", rows(&app));
    let rows = wait_rows(&app, 1).await;
    assert_eq!(rows, whole_response());
    app.wait_log("settled the cut-off answer's usage").await;
    // It was asked again to stop while it was still running.
    assert!(app.openai.with(|s| s.cancel_calls) >= 2);
    app.wait_metrics(&[r#"subgpt_cut_off_usage_recorded_total{outcome="settled"} 1"#])
        .await;
    // Settled once: nothing is left to look at, and no second row comes.
    settled_once(&app).await;
}

#[tokio::test]
async fn a_cancelled_response_completed_after_all_is_recorded_whole_once_across_a_restart() {
    // First looked at 3 s after the cut, when the response has completed upstream after all.
    let app = late_answer("3").await;
    app.openai.with(|s| s.completes_despite_cancel = true);
    cut_off(&app, 402).await;
    assert_eq!(app.openai.with(|s| s.cancelled.len()), 1);
    assert_eq!(unsettled(&app), 1);
    assert!(rows(&app).is_empty());
    // The process dies before the first look; the next one makes it.
    app.kill().await;
    let again = app.restart(&[]).await;
    let rows = wait_rows(&again, 1).await;
    assert_eq!(
        rows,
        whole_response(),
        "the whole response, not the cancel's input-only figure"
    );
    // One row, and no look went unanswered.
    settled_once(&again).await;
    assert!(!again.logs().contains("not settled yet"));
}

#[tokio::test]
async fn a_response_openai_does_not_know_is_recorded_as_it_stands() {
    let app = late_answer("1").await;
    cut_off(&app, 403).await;
    // OpenAI forgets it before the look (the fake: every response id gone).
    app.openai.with(|s| s.forget_responses());
    let rows = wait_rows(&app, 1).await;
    assert_eq!(
        rows[0].0 as u64,
        tokens_for("slow", ""),
        "the cancel's figure, as it stood"
    );
    app.wait_log("cannot settle the cut-off answer's usage; recording it as it stands")
        .await;
    app.wait_metrics(&[r#"subgpt_cut_off_usage_recorded_total{outcome="unsettled"} 1"#])
        .await;
}

/// The one row of the slow answer, with the whole response's tokens and its model.
fn whole_response() -> Vec<(i64, Option<String>)> {
    vec![(
        tokens_for("slow", ANSWER) as i64,
        Some("gpt-5.4-mini".to_string()),
    )]
}

/// Nothing is left to settle, and one usage row was recorded.
async fn settled_once(app: &TestApp) {
    eventually("nothing left to settle", Duration::from_secs(10), || {
        unsettled(app) == 0
    })
    .await;
    assert_eq!(rows(app).len(), 1);
}

/// Rows waiting in the state database's `unsettled` table.
fn unsettled(app: &TestApp) -> i64 {
    Connection::open(app.dir.path().join("data/state.db"))
        .and_then(|c| c.query_row("SELECT count(*) FROM unsettled", [], |r| r.get(0)))
        .unwrap_or(-1)
}

#[tokio::test]
async fn a_stream_that_breaks_for_good_has_its_response_cancelled_and_settled() {
    let app = Spawn::default()
        .env("STREAMING", "on")
        .env("OPENAI_SETTLE_AFTER_SECS", "1")
        .env("OPENAI_RETRY_BASE_MS", "10")
        .start()
        .await;
    app.openai.answer_with(|_| ANSWER.into());
    // Sixteen pieces, one every 500 ms; the stream breaks after the second, and by then
    // OpenAI no longer finds the response to resume (nor to cancel): it still runs, and
    // completes 8 s in.
    app.openai.with(|s| {
        s.token_every = Duration::from_millis(500);
        s.drop_after_pieces = Some(2);
    });
    app.openai.hold();
    app.send_text(1, 404, "breaks").await;
    app.openai.wait_in_flight(1).await;
    app.openai.with(|s| s.forget_responses());
    app.openai.release();
    let texts = app.wait_messages(404, 2).await;
    assert!(texts[0].contains("cut off"), "{texts:?}");
    assert!(texts[1].contains("reference:"), "{texts:?}");
    // Asked to stop, instead of being left to run (and bill) to its end.
    assert_eq!(app.openai.with(|s| s.cancel_calls), 1);
    app.wait_log("could not cancel the response upstream").await;
    let rows = wait_rows(&app, 1).await;
    assert!(rows[0].0 > 0, "{rows:?}");
    app.wait_log("cannot settle the cut-off answer's usage")
        .await;
}
