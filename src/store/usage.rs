//! TEMPORARY seam until the SQLite store lands.
use std::path::Path;
#[derive(Debug, thiserror::Error)]
#[error("store")]
pub struct StoreError;
#[derive(Clone)]
pub struct UsageStore;
pub struct UsageRow {
    pub user_id: i64,
    pub username: String,
    pub request_date: chrono::NaiveDate,
    pub tokens_used: i64,
}
impl UsageStore {
    pub fn open(_path: &Path) -> Result<Self, StoreError> {
        Ok(UsageStore)
    }
    pub fn record_in_background(&self, _row: UsageRow) {}
    pub async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    pub async fn close(&self, _t: std::time::Duration) -> Result<(), StoreError> {
        Ok(())
    }
}
