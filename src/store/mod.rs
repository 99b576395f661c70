//! Persistent state: the usage store (SQLite, on a blocking pool).

pub mod usage;
