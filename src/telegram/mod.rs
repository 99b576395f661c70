//! The Telegram side: a small hand-rolled Bot API client, update types, and the
//! Markdown → Telegram HTML formatter.

pub mod client;
pub mod format;
pub mod types;

pub use client::{Bot, ParseMode, TelegramError};
pub use types::*;
