//! The Telegram side: a small hand-rolled Bot API client, update types, and the
//! Markdown → Telegram HTML formatter.

pub mod client;
pub mod format;
mod params;
pub mod types;

pub use client::{Bot, ParseMode, TelegramError};
pub use types::*;
