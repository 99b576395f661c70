//! Where state lives: the key-value store (Redis or in process) and the SQLite usage store
//! (on a blocking pool).

pub mod kv;
pub mod schema;
pub mod usage;
