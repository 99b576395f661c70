//! The `subgpt` command line: parses arguments, loads the configuration, and hands over to
//! the library. Exit codes: 0 ok, 2 bad usage or configuration, 1 runtime failure.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use subgpt::config::{Config, Purpose, environment};

#[derive(Parser)]
#[command(name = "subgpt", version, about = "A Telegram channel's subscribers get a personal AI assistant")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Webhook server (the main job).
    Serve,
}

fn load(purpose: Purpose) -> Result<Config, ExitCode> {
    Config::from_vars(&environment(), purpose).map_err(|e| {
        eprintln!("subgpt: {e}");
        ExitCode::from(2)
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve => {
            let config = match load(Purpose::Serve) {
                Ok(c) => c,
                Err(code) => return code,
            };
            subgpt::telemetry::init_logging(config.log_format, secrets(&config));
            finish(runtime().block_on(subgpt::run::serve(config)))
        }
    }
}

/// The values scrubbed from every log line.
fn secrets(config: &Config) -> Vec<String> {
    let mut secrets = vec![config.telegram_bot_token.expose().to_string(), config.openai_api_key.expose().to_string()];
    if let Some(s) = &config.webhook_secret {
        secrets.push(s.expose().to_string());
    }
    secrets
}
