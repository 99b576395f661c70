//! subgpt: a Telegram channel's subscribers get a personal AI assistant.
//!
//! The binary in `main.rs` only parses the command line and wires these modules together.

pub mod analytics;
pub mod chart;
pub mod store;
