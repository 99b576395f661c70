//! `load ingest`: updates the bot ignores (group messages, unique ids), posted by `wrk` with
//! `benches/webhook.lua` (`CHAT=group`), against `subgpt serve` and the bare handler
//! (`examples/bare_webhook.rs`) in alternating rounds of the same length, until the service has
//! taken the requested number; then the per-round and total figures, and the peak RSS of both.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::{Rig, SECRET, Started, free_port};

#[derive(clap::Args)]
pub struct Options {
    /// Stop once the service has been sent at least this many updates.
    #[arg(long, default_value_t = 1_000_000)]
    requests: u64,
    /// Length of one wrk run.
    #[arg(long, default_value_t = 10)]
    round_secs: u64,
    /// The most rounds (each runs both targets).
    #[arg(long, default_value_t = 40)]
    max_rounds: u64,
    /// wrk threads and connections.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// The bare handler binary.
    #[arg(long, default_value = "target/release/examples/bare_webhook")]
    bare: PathBuf,
    #[arg(long, default_value = "benches/webhook.lua")]
    script: PathBuf,
}

/// One wrk run, from the script's `WRK` line.
#[derive(Debug, Default, Clone, Copy)]
struct Run {
    requests: u64,
    duration_us: u64,
    errors: u64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

impl Run {
    fn rps(&self) -> f64 {
        self.requests as f64 / (self.duration_us.max(1) as f64 / 1e6)
    }

    fn parse(output: &str) -> Option<Run> {
        let line = output.lines().find(|l| l.starts_with("WRK "))?;
        let mut run = Run::default();
        for field in line.split_whitespace().skip(1) {
            let (key, value) = field.split_once('=')?;
            let value: u64 = value.parse().ok()?;
            match key {
                "requests" => run.requests = value,
                "duration_us" => run.duration_us = value,
                "errors" => run.errors = value,
                "p50_us" => run.p50_us = value,
                "p99_us" => run.p99_us = value,
                "max_us" => run.max_us = value,
                _ => {}
            }
        }
        Some(run)
    }

    fn line(&self) -> String {
        format!(
            "{:>9.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms, {} errors",
            self.rps(),
            self.p50_us as f64 / 1e3,
            self.p99_us as f64 / 1e3,
            self.max_us as f64 / 1e3,
            self.errors
        )
    }
}

/// Runs wrk once against `url`, ids starting after `base`; bounded by the round length + 30 s.
async fn wrk(options: &Options, url: &str, base: u64) -> anyhow::Result<Run> {
    let child = tokio::process::Command::new("wrk")
        .args([
            &format!("-t{}", options.threads),
            &format!("-c{}", options.connections),
            &format!("-d{}s", options.round_secs),
            "--latency",
            "-s",
        ])
        .arg(&options.script)
        .arg(url)
        .env("WEBHOOK_SECRET", SECRET)
        .env("CHAT", "group")
        .env("UPDATE_ID_BASE", base.to_string())
        .kill_on_drop(true)
        .output();
    let limit = Duration::from_secs(options.round_secs + 30);
    let output = tokio::time::timeout(limit, child)
        .await
        .context("wrk did not finish in time")?
        .context("cannot run wrk (is it installed?)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    Run::parse(&text).with_context(|| {
        format!(
            "no WRK line from wrk: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The service's counter `name` from `/metrics`.
async fn counter(rig: &Rig, name: &str) -> anyhow::Result<f64> {
    let url = rig.subgpt.url.replace("/webhook", "/metrics");
    let text = reqwest::get(&url).await?.text().await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum())
}

pub async fn run(rig: &Rig, options: &Options) -> anyhow::Result<()> {
    if !Path::new(&options.script).exists() {
        bail!(
            "{} not found (run from the repository root)",
            options.script.display()
        );
    }
    let port = free_port();
    let mut bare = Started::start(
        "bare_webhook",
        &options.bare,
        &[],
        &[("BIND_ADDR".into(), format!("127.0.0.1:{port}"))],
        rig.dir.path(),
        &format!("http://127.0.0.1:{port}/healthz"),
    )
    .await?;
    bare.url = format!("http://127.0.0.1:{port}/webhook");

    let (mut service, mut floor) = (Vec::new(), Vec::new());
    let mut sent = 0u64;
    for round in 0..options.max_rounds {
        if sent >= options.requests {
            break;
        }
        // Alternate which goes first, so neither always runs on a warmer (or busier) machine.
        let base = (round + 1) * 1_000_000_000;
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut pair = [Run::default(); 2];
        for which in order {
            let url = if which == 0 {
                &rig.subgpt.url
            } else {
                &bare.url
            };
            pair[which] = wrk(options, url, base).await?;
        }
        sent += pair[0].requests;
        println!(
            "round {:>2}: subgpt {} | bare {} | ratio {:.2}",
            round + 1,
            pair[0].line(),
            pair[1].line(),
            pair[0].rps() / pair[1].rps().max(1.0)
        );
        service.push(pair[0]);
        floor.push(pair[1]);
    }
    let total = |runs: &[Run]| {
        let requests: u64 = runs.iter().map(|r| r.requests).sum();
        let secs: f64 = runs.iter().map(|r| r.duration_us as f64 / 1e6).sum();
        let errors: u64 = runs.iter().map(|r| r.errors).sum();
        let worst_p99 = runs.iter().map(|r| r.p99_us).max().unwrap_or(0) as f64 / 1e3;
        let mut p99s: Vec<u64> = runs.iter().map(|r| r.p99_us).collect();
        p99s.sort_unstable();
        let median_p99 = p99s.get(p99s.len() / 2).copied().unwrap_or(0) as f64 / 1e3;
        (
            requests,
            requests as f64 / secs.max(1e-9),
            errors,
            median_p99,
            worst_p99,
        )
    };
    let (s_req, s_rps, s_err, s_p99, s_worst) = total(&service);
    let (b_req, b_rps, b_err, b_p99, b_worst) = total(&floor);
    println!(
        "subgpt: {s_req} updates, {s_rps:.0} req/s, {s_err} errors, p99 median {s_p99:.2} ms (worst round {s_worst:.2} ms)"
    );
    println!(
        "bare:   {b_req} updates, {b_rps:.0} req/s, {b_err} errors, p99 median {b_p99:.2} ms (worst round {b_worst:.2} ms)"
    );
    println!("ratio subgpt/bare: {:.2}", s_rps / b_rps.max(1.0));
    let ignored = counter(rig, "subgpt_updates_ignored_total").await?;
    println!("the service counted {ignored:.0} ignored updates");
    // CPU per request says what the wall clock cannot on a shared machine.
    if let (Some(s_cpu), Some(b_cpu)) = (rig.subgpt.cpu_time(), bare.cpu_time()) {
        println!(
            "CPU per request: subgpt {:.2} µs, bare {:.2} µs",
            s_cpu.as_secs_f64() * 1e6 / s_req.max(1) as f64,
            b_cpu.as_secs_f64() * 1e6 / b_req.max(1) as f64,
        );
    }
    if let Some(kib) = bare.peak_rss_kib() {
        println!(
            "peak RSS of bare_webhook (VmHWM): {:.1} MB",
            kib as f64 / 1024.0
        );
    }
    bare.stop().await;
    Ok(())
}
