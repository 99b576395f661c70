//! Helpers of the deploy tests (`tests/deploy_*.rs`): script-managed instances and a real nginx.

pub mod instance;
pub mod nginx;
#[path = "../support/ports.rs"]
pub mod ports;
