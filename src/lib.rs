//! subgpt: a Telegram channel's subscribers get a personal AI assistant.
//!
//! One update's way: `server` (webhook) or `poll` (getUpdates) → `intake` (dedup, the durable
//! inbox, a bounded FIFO per user) → `gate` (subscription layer) → `bot` (commands,
//! conversation) → `openai`, `telegram`, `store`.
//! The binary in `main.rs` only parses the command line and wires these together.

pub mod analytics;
pub mod bot;
pub mod chart;
pub mod cli;
pub mod config;
pub mod conversation;
pub mod gate;
pub mod intake;
pub mod listen;
pub mod openai;
pub mod poll;
pub mod prices;
pub mod reply;
pub mod retry;
pub mod run;
pub mod secret;
pub mod server;
pub mod store;
pub mod telegram;
pub mod telemetry;
pub mod texts;
