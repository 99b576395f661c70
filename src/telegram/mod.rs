//! The Telegram side: a small hand-rolled Bot API client, update types, and the
//! Markdown → Telegram HTML formatter.

pub mod client;
pub mod error;
pub mod format;
mod params;
mod turns;
pub mod types;

pub use client::{Bot, ParseMode};
pub use error::{ApiErrorKind, TelegramError};
pub use turns::MAX_IN_FLIGHT;
pub use types::*;
