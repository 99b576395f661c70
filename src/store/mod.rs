//! Where state lives: the key-value store (Redis or in process), the SQLite usage store (on a
//! blocking pool), and the service's own durable state (inbox, conversation map).

pub mod kv;
pub mod schema;
pub mod state;
mod transaction;
pub mod usage;
