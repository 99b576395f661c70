//! Measures sustained `record_usage` throughput: 16 concurrent callers, each awaiting its own
//! row's commit, 200,000 rows by default, into a fresh file; prints rows/s and latency.
//!
//! Usage: `cargo run --release --example bench_usage -- [ROWS] [CALLERS] [normal|full] (default normal, as the service)`

#[path = "support/bench_args.rs"]
mod bench_args;

use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate};
use subgpt::store::usage::{StoreOptions, UsageRow, UsageStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (rows, callers, synchronous) = bench_args::parse(200_000, 16)?;
    let dir = tempfile::tempdir_in(".")?;
    let path = dir.path().join("bench.db");
    let store = UsageStore::open_with(
        &path,
        StoreOptions {
            synchronous,
            ..StoreOptions::default()
        },
    )?;
    let start_day = NaiveDate::from_ymd_opt(2025, 1, 1).ok_or("date")?;

    let started = Instant::now();
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let store = store.clone();
        let per_caller = rows / callers + usize::from(caller < rows % callers);
        tasks.push(tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            for i in 0..per_caller {
                let tokens = 100 + (i % 900) as i64;
                // A full row as the service writes it: breakdown, model, cost priced on the way in.
                let row = UsageRow {
                    input_tokens: Some(tokens * 3 / 4),
                    cached_input_tokens: Some(tokens / 4),
                    output_tokens: Some(tokens - tokens * 3 / 4),
                    reasoning_tokens: Some(tokens / 8),
                    model: Some("gpt-5.4-mini".to_owned()),
                    ..UsageRow::new(
                        ((caller * 7_919 + i * 31) % 5_000) as i64,
                        format!("user{caller}"),
                        start_day + Days::new((i / 2_000) as u64),
                        tokens,
                    )
                };
                let t = Instant::now();
                store.record_usage(row).await.expect("record_usage");
                worst = worst.max(t.elapsed());
            }
            worst
        }));
    }
    let mut worst = Duration::ZERO;
    for t in tasks {
        worst = worst.max(t.await?);
    }
    let elapsed = started.elapsed();
    let batches = store.batches_written();
    store.close(Duration::from_secs(60)).await?;

    let t = Instant::now();
    let reader = UsageStore::open(&path)?;
    let lookups = 10_000;
    for i in 0..lookups {
        reader.user_daily_usage(i % 5_000, start_day).await?;
    }
    let lookup = t.elapsed() / lookups as u32;
    reader.close(Duration::from_secs(5)).await?;

    println!(
        "record_usage: {rows} rows, {callers} callers, synchronous={synchronous:?}: {:.3} s, {:.0} rows/s, \
         mean latency {:.2} ms, worst {:.2} ms, {:.1} rows per commit; user_daily_usage: {:.1} µs per call",
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e3 * callers as f64 / rows as f64,
        worst.as_secs_f64() * 1e3,
        rows as f64 / batches.max(1) as f64,
        lookup.as_secs_f64() * 1e6,
    );
    Ok(())
}
