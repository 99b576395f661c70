//! Writes a deterministic usage database for benchmarks: by default 1,000,000 rows from 5,000
//! users over 365 days, with Zipf-like activity, through `UsageStore` (so the triggers fill the
//! roll-ups); the first 100 days without cost, as the Python bot wrote them, the rest priced.
//!
//! Usage: `cargo run --release --example gen_usage_db -- OUT.db [ROWS] [LAST_DAY]`
//! (LAST_DAY defaults to today, UTC, so `--days N` windows of the viewer hit data).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{Datelike, Days, NaiveDate, Utc};
use subgpt::store::usage::{UsageRow, UsageStore};

const USERS: usize = 5_000;
const DAYS: u64 = 365;
const SEED: u64 = 0x5eed_0f5a_b6b6;
/// Days at the start written as the Python bot would have: no token breakdown, no model, no cost.
const PYTHON_DAYS: u64 = 100;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .ok_or("usage: gen_usage_db OUT.db [ROWS] [LAST_DAY]")?,
    );
    let rows: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let last_day: NaiveDate = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or_else(|| Utc::now().date_naive());
    if out.exists() {
        return Err(format!("{} exists; refusing to add to it", out.display()).into());
    }
    let first_day = last_day - Days::new(DAYS - 1);
    let mut rng = fastrand::Rng::with_seed(SEED);

    // Zipf-like popularity: the user of rank k is picked with weight 1 / k^1.1.
    let mut cumulative = Vec::with_capacity(USERS);
    let mut total = 0.0;
    for k in 1..=USERS {
        total += 1.0 / (k as f64).powf(1.1);
        cumulative.push(total);
    }
    let mut ids: Vec<i64> = (0..USERS as i64).map(|i| 100_000_000 + i * 7_919).collect();
    rng.shuffle(&mut ids);

    // Rows per day: growing over the year, quieter at weekends; exactly `rows` in total.
    let weights: Vec<f64> = (0..DAYS)
        .map(|d| {
            let date = first_day + Days::new(d);
            let weekend = if date.weekday().number_from_monday() >= 6 {
                0.7
            } else {
                1.0
            };
            (0.5 + d as f64 / DAYS as f64) * weekend
        })
        .collect();
    let weight_sum: f64 = weights.iter().sum();
    let mut per_day: Vec<u64> = weights
        .iter()
        .map(|w| (w / weight_sum * rows as f64) as u64)
        .collect();
    let short = rows - per_day.iter().sum::<u64>();
    for d in 0..short as usize {
        per_day[d % DAYS as usize] += 1;
    }

    let started = Instant::now();
    let store = UsageStore::open(&out)?;
    let mut tokens_total: i64 = 0;
    for (d, count) in per_day.iter().enumerate() {
        let date = first_day + Days::new(d as u64);
        for _ in 0..*count {
            let x = rng.f64() * total;
            let rank = cumulative.partition_point(|c| *c < x).min(USERS - 1);
            let user_id = ids[rank];
            let username = if rank % 997 == 3 {
                format!("Doe, \"J\" {rank}")
            } else {
                format!("user{rank}")
            };
            let tokens =
                150 + i64::from(rng.u32(0..1_800)) + if rng.u8(0..20) == 0 { 6_000 } else { 0 };
            tokens_total += tokens;
            let mut row = UsageRow::new(user_id, username, date, tokens);
            // The first PYTHON_DAYS days are the Python bot's rows (no breakdown, no cost); later
            // rows carry the breakdown and are priced by the store as gpt-5.4-mini.
            if d as u64 >= PYTHON_DAYS {
                let output = tokens / 4;
                row.input_tokens = Some(tokens - output);
                row.cached_input_tokens = Some((tokens - output) / 2);
                row.output_tokens = Some(output);
                row.reasoning_tokens = Some(output / 2);
                row.model = Some("gpt-5.4-mini-2026-03-17".to_owned());
            }
            store.record_in_background(row);
        }
    }
    store.close(Duration::from_secs(3_600)).await?;
    println!(
        "wrote {rows} rows, {tokens_total} tokens, {first_day}..={last_day} to {} in {:.1} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
