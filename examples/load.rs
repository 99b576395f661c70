//! The load tool: starts the release `subgpt serve` against the test fakes (Telegram and
//! OpenAI, over real loopback HTTP, with a configurable OpenAI latency), a temp dir for its
//! databases and optionally a `redis-server`, then loads it and prints what it measured.
//! It builds nothing: `cargo build --release --examples` first.
//!
//!     target/release/examples/load answers --updates 10000 --users 1000 --latency-ms 500
//!     target/release/examples/load ingest --requests 1000000
//!
//! `answers` sends private messages and waits (bounded) for every answer; `ingest` runs `wrk`
//! with `benches/webhook.lua` with `CHAT=group` (group messages the bot ignores) against `subgpt serve` and
//! `examples/bare_webhook.rs` in alternating rounds. Everything stays on loopback; the
//! processes started here are ended by PID.

#[path = "support/load_answers/mod.rs"]
mod load_answers;
#[path = "support/load_ingest.rs"]
mod load_ingest;
#[path = "../tests/support/net.rs"]
mod net;
#[allow(dead_code)]
#[path = "../tests/support/openai/mod.rs"]
mod openai;
#[allow(dead_code)]
#[path = "support/percentiles.rs"]
mod percentiles;
#[allow(dead_code)]
#[path = "../tests/support/ports.rs"]
mod ports;
#[allow(dead_code)]
#[path = "support/procfs.rs"]
mod procfs;
#[allow(dead_code)]
#[path = "../tests/support/redis.rs"]
mod redis;
#[allow(dead_code)]
#[path = "../tests/support/sse.rs"]
mod sse;
#[allow(dead_code)]
#[path = "../tests/support/telegram/mod.rs"]
mod telegram;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
pub use ports::free_port;

/// The same allocator as the service: the fakes and the load run in this process, and with
/// glibc's malloc they took a fifth more CPU, which the service then lacked on a small machine.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The webhook secret the started service expects.
pub const SECRET: &str = "load_Secret-123";

#[derive(Parser)]
#[command(about = "Loads the release subgpt binary against fakes and reports what it measured")]
struct Cli {
    /// The service binary (built with `cargo build --release`).
    #[arg(long, default_value = "target/release/subgpt")]
    binary: PathBuf,
    /// Start a `redis-server` (loopback, no persistence) and give the service `REDIS_URL`.
    #[arg(long)]
    redis: bool,
    /// `OPENAI_API_MODE` of the service: `responses` or `chat`.
    #[arg(long, default_value = "responses")]
    api_mode: String,
    /// How long the fake OpenAI takes per answer (for background responses: until done).
    #[arg(long, default_value_t = 500)]
    latency_ms: u64,
    /// Streams: the wait between two pieces of the answer after the first (which comes after
    /// `--latency-ms`).
    #[arg(long, default_value_t = 0)]
    token_every_ms: u64,
    /// `RUST_LOG` of the service (its log goes to a file in the temp dir).
    #[arg(long, default_value = "info")]
    rust_log: String,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Private messages from many users; every answer is awaited and checked.
    Answers(load_answers::Options),
    /// Ignored updates with wrk, the service beside a bare handler, round by round.
    Ingest(load_ingest::Options),
}

/// A process started here, ended by its PID when dropped.
pub struct Started {
    pub name: &'static str,
    pub child: Child,
    pub url: String,
}

impl Started {
    /// Starts `binary` with exactly `env` (plus `PATH`) in `dir`, its output in
    /// `dir/{name}.log`, and waits (20 s at most) until `ready` answers 2xx.
    pub async fn start(
        name: &'static str,
        binary: &Path,
        args: &[&str],
        env: &[(String, String)],
        dir: &Path,
        ready: &str,
    ) -> anyhow::Result<Started> {
        let log = File::create(dir.join(format!("{name}.log")))?;
        // The child runs in `dir`: a relative path must not be looked up there.
        let binary = std::fs::canonicalize(binary)
            .with_context(|| format!("{} not found (build it first)", binary.display()))?;
        let child = Command::new(&binary)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {} (build it first)", binary.display()))?;
        let mut started = Started {
            name,
            child,
            url: String::new(),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let probe = http.get(ready).timeout(Duration::from_secs(1)).send().await;
            if probe.is_ok_and(|r| r.status().is_success()) {
                return Ok(started);
            }
            if let Some(status) = started.child.try_wait()? {
                bail!("{name} exited early ({status}); see {name}.log");
            }
            if Instant::now() > deadline {
                bail!("{name} did not answer {ready} within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Peak resident set size so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        procfs::peak_rss_kib(self.child.id())
    }

    /// CPU time (user + system) it used so far.
    pub fn cpu_time(&self) -> Option<Duration> {
        procfs::cpu_time(Path::new(&format!("/proc/{}/stat", self.child.id())))
    }

    /// SIGTERM, then up to 30 s for it to exit (the service drains), then SIGKILL.
    pub async fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("{} did not stop within 30 s; killing it", self.name);
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The fakes, the temp dir and the running service.
pub struct Rig {
    pub telegram: telegram::FakeTelegram,
    pub openai: openai::FakeOpenAi,
    pub subgpt: Started,
    pub redis: Option<redis::RedisServer>,
    pub dir: tempfile::TempDir,
}

impl Rig {
    async fn start(cli: &Cli) -> anyhow::Result<Rig> {
        let telegram = telegram::FakeTelegram::start().await;
        let openai = openai::FakeOpenAi::start().await;
        let latency = Duration::from_millis(cli.latency_ms);
        openai.with(|s| {
            s.delay = latency;
            s.token_every = Duration::from_millis(cli.token_every_ms);
            // Whole frames per chunk: the tests split them finely; a load run measures the
            // service, not a storm of 7-byte writes.
            s.chunk_bytes = 16 * 1024;
        });
        let redis = cli.redis.then(redis::RedisServer::start);
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let mut env: Vec<(String, String)> = [
            ("TELEGRAM_BOT_TOKEN", telegram::TOKEN.to_string()),
            ("TELEGRAM_API_URL", telegram.url.clone()),
            ("WEBHOOK_SECRET", SECRET.into()),
            ("OPENAI_API_KEY", openai::API_KEY.into()),
            ("OPENAI_BASE_URL", openai.url.clone()),
            ("OPENAI_API_MODE", cli.api_mode.clone()),
            ("BIND_ADDR", format!("127.0.0.1:{port}")),
            ("CHANNEL_ID", "@load_channel".into()),
            (
                "ANALYTICS_DB_PATH",
                dir.path().join("usage.db").display().to_string(),
            ),
            (
                "STATE_DB_PATH",
                dir.path().join("state.db").display().to_string(),
            ),
            ("RUST_LOG", cli.rust_log.clone()),
            ("LOG_FORMAT", "json".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Some(redis) = &redis {
            env.push(("REDIS_URL".into(), redis.url()));
        }
        let base = format!("http://127.0.0.1:{port}");
        let mut subgpt = Started::start(
            "subgpt",
            &cli.binary,
            &["serve"],
            &env,
            dir.path(),
            &format!("{base}/healthz"),
        )
        .await?;
        subgpt.url = format!("{base}/webhook");
        Ok(Rig {
            telegram,
            openai,
            subgpt,
            redis,
            dir,
        })
    }

    /// Ends the service (and Redis), returning its peak RSS in KiB measured just before.
    async fn stop(self) -> Option<u64> {
        let rss = self.subgpt.peak_rss_kib();
        if let Some(cpu) = self.subgpt.cpu_time() {
            println!("CPU time of subgpt: {:.2} s", cpu.as_secs_f64());
        }
        self.subgpt.stop().await;
        drop(self.redis);
        rss
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !matches!(cli.api_mode.as_str(), "responses" | "chat") {
        bail!("--api-mode is responses or chat");
    }
    let rig = Rig::start(&cli).await?;
    println!(
        "subgpt pid {} on {}, OpenAI mode {}, fake latency {} ms, redis {}, files in {}",
        rig.subgpt.child.id(),
        rig.subgpt.url,
        cli.api_mode,
        cli.latency_ms,
        if cli.redis { "on" } else { "off" },
        rig.dir.path().display(),
    );
    let result = match &cli.mode {
        Mode::Answers(options) => {
            load_answers::run(&rig, options, Duration::from_millis(cli.latency_ms)).await
        }
        Mode::Ingest(options) => load_ingest::run(&rig, options).await,
    };
    let log = rig.dir.path().join("subgpt.log");
    let log_copy = std::env::temp_dir().join("subgpt-load.log");
    let _ = std::fs::copy(&log, &log_copy);
    match rig.stop().await {
        Some(kib) => println!("peak RSS of subgpt (VmHWM): {:.1} MB", kib as f64 / 1024.0),
        None => println!("peak RSS of subgpt: unknown (no /proc)"),
    }
    println!("service log copied to {}", log_copy.display());
    result
}
