//! The `subgpt` command line: parses arguments, loads the configuration, and hands over to
//! the library. Exit codes: 0 ok, 2 bad usage or configuration, 1 runtime failure.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use subgpt::config::{Config, Purpose, environment};

/// jemalloc rather than glibc's malloc: with a thousand answers in flight glibc's malloc and
/// free (chunk consolidation, unlinking) took about a sixth of the service's CPU in `perf`;
/// with jemalloc the service used ~14% less CPU per answer in `examples/load answers`
/// (1.04–1.09 ms against 1.23–1.27 ms, alternating runs), at the same peak RSS.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once at its start. One arena for every thread, instead of one per
/// thread (up to four per core): an answer's memory is allocated on one runtime worker and often
/// freed on another, and with one arena each freed page serves the next answer on any thread.
/// `examples/load --api-mode chat answers --updates 10000 --users 1000` peaked at 75.5–75.6 MB
/// with it against 78.8–80.6 MB without (alternating runs), at the same CPU per answer on two
/// cores. `_RJEM_MALLOC_CONF` in the environment still overrides it (e.g. `narenas:16` on a
/// host with many cores, if the arena's lock ever shows in a profile).
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_OPTIONS: &[u8; 10] = b"narenas:1\0";

/// A Telegram channel's subscribers get a personal AI assistant; usage is counted, words are not kept.
#[derive(Parser)]
#[command(name = "subgpt", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Webhook server (the main job).
    Serve,
    /// The same bot, fed by getUpdates long polling (no public URL needed).
    Poll,
    /// Register, inspect or remove the webhook.
    Webhook {
        #[command(subcommand)]
        action: WebhookAction,
    },
    /// Check configuration, SQLite, Redis, Telegram, channels, OpenAI and the webhook.
    Check,
    /// The analytics viewer (read-only).
    Analytics(subgpt::analytics::Args),
    /// Online, consistent copies of the usage and state databases.
    Backup(subgpt::cli::backup::Args),
}

#[derive(Subcommand)]
enum WebhookAction {
    /// setWebhook with WEBHOOK_URL, WEBHOOK_SECRET and the update kinds the bot needs.
    Set {
        /// Drop the updates Telegram has queued.
        #[arg(long)]
        drop_pending: bool,
    },
    /// Print getWebhookInfo: URL, pending updates, last error.
    Info,
    /// Remove the webhook.
    Delete {
        /// Drop the updates Telegram has queued.
        #[arg(long)]
        drop_pending: bool,
    },
}

fn load(purpose: Purpose) -> Result<Config, ExitCode> {
    environment()
        .and_then(|vars| Config::from_vars(&vars, purpose))
        .map_err(|e| {
            eprintln!("subgpt: {e}");
            ExitCode::from(2)
        })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("subgpt: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Loads the configuration for `purpose`, sets up logging, and runs `job` on a runtime.
fn with_config<F, Fut>(purpose: Purpose, job: F) -> ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let config = match load(purpose) {
        Ok(c) => c,
        Err(code) => return code,
    };
    logging(&config, "info");
    finish(runtime().block_on(job(config)))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve => with_config(Purpose::Serve, subgpt::run::serve),
        Command::Poll => with_config(Purpose::Bot, subgpt::poll::poll),
        Command::Webhook { action } => match action {
            WebhookAction::Set { drop_pending } => {
                with_config(Purpose::WebhookSet, |c| async move {
                    subgpt::cli::webhook::set(&c, drop_pending).await
                })
            }
            WebhookAction::Info => with_config(Purpose::Webhook, |c| async move {
                subgpt::cli::webhook::info(&c).await
            }),
            WebhookAction::Delete { drop_pending } => {
                with_config(Purpose::Webhook, |c| async move {
                    subgpt::cli::webhook::delete(&c, drop_pending).await
                })
            }
        },
        Command::Check => check(),
        Command::Analytics(args) => subgpt::analytics::run(args),
        Command::Backup(args) => subgpt::cli::backup::run(args),
    }
}

/// `check` prints a FAIL line for bad configuration too, then exits 2.
fn check() -> ExitCode {
    let config = match environment().and_then(|vars| Config::from_vars(&vars, Purpose::Bot)) {
        Ok(c) => c,
        Err(e) => {
            subgpt::say!(
                "FAIL  configuration: {}: {} — fix: set it in .env or the environment",
                e.var,
                e.problem
            );
            return ExitCode::from(2);
        }
    };
    // The report is the output; logs only for what goes wrong.
    logging(&config, "warn");
    if runtime().block_on(subgpt::cli::check::run(&config)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Logs as `config` says (`LOG_FORMAT`, `RUST_LOG`, else `default_level`), its secrets scrubbed.
fn logging(config: &Config, default_level: &str) {
    subgpt::telemetry::init_logging(
        config.log_format,
        config.rust_log.as_deref(),
        default_level,
        secrets(config),
    );
}

/// The values scrubbed from every log line.
fn secrets(config: &Config) -> Vec<String> {
    let mut secrets = vec![
        config.telegram.bot_token.expose().to_string(),
        config.openai.api_key.expose().to_string(),
    ];
    if let Some(s) = &config.server.webhook_secret {
        secrets.push(s.expose().to_string());
    }
    // A Redis password, if the URL carries one: redis://user:password@host
    let password = config
        .kv
        .url
        .as_deref()
        .and_then(|u| u.split_once("://"))
        .and_then(|(_, rest)| rest.split_once('@'));
    if let Some((userinfo, _)) = password {
        secrets.push(userinfo.rsplit(':').next().unwrap_or(userinfo).to_string());
    }
    secrets
}
