//! Helpers of `tests/deploy_scripts.rs`: script-managed instances and a real nginx.

pub mod instance;
pub mod nginx;
