//! The `subgpt` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A Telegram channel's subscribers get a personal AI assistant; usage is counted, words are not kept.
#[derive(Parser, Debug)]
#[command(name = "subgpt", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The analytics viewer (read-only).
    Analytics(subgpt::analytics::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Analytics(args) => subgpt::analytics::run(args),
    }
}
