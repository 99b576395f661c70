//! The read side of the handle: each query of [`UsageReader`] on the roll-ups, run on the
//! blocking pool so the async callers never hold a connection.

use chrono::NaiveDate;

use super::queries::{Source, UsageReader};
use super::types::{DayTotals, Spend, UsageSummary, UserDayUsage, UserTotals, UserUsageStats};
use super::{StoreError, UsageStore, blocking, rollups};

impl UsageStore {
    async fn read<F, T>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&UsageReader<'_>) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        blocking(&self.inner.pool, move |conn| {
            f(&UsageReader::new(conn, Source::Rollups))
        })
        .await
    }

    /// Tokens `user_id` used on `date` (committed rows only).
    pub async fn user_daily_usage(&self, user_id: i64, date: NaiveDate) -> Result<i64, StoreError> {
        self.read(move |r| r.user_day_tokens(user_id, date)).await
    }

    /// Tokens `user_id` used ever.
    pub async fn user_total_usage(&self, user_id: i64) -> Result<i64, StoreError> {
        self.read(move |r| r.user_total_tokens(user_id)).await
    }

    /// Tokens `user_id` used from `from` to `to`, both included (e.g. "this month").
    pub async fn user_usage_between(
        &self,
        user_id: i64,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<i64, StoreError> {
        self.read(move |r| r.user_tokens_between(user_id, from, to))
            .await
    }

    /// Tokens and cost of `user_id` from `from` to `to` (`None` = no bound), e.g. for `/usage`.
    pub async fn user_spend(
        &self,
        user_id: i64,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Spend, StoreError> {
        self.read(move |r| r.user_spend(user_id, from, to)).await
    }

    /// Whether the roll-ups equal the raw rows (totals compared; see [`rollups::check`]).
    pub async fn check_rollups(
        &self,
        depth: rollups::Depth,
    ) -> Result<rollups::RollupCheck, StoreError> {
        blocking(&self.inner.pool, move |conn| rollups::check(conn, depth)).await
    }

    /// Every user's requests and tokens on `date`, most tokens first.
    pub async fn all_users_usage_by_date(
        &self,
        date: NaiveDate,
    ) -> Result<Vec<UserDayUsage>, StoreError> {
        self.read(move |r| r.users_on(date)).await
    }

    /// `user_id`'s totals and per-day breakdown.
    pub async fn user_usage_stats(&self, user_id: i64) -> Result<UserUsageStats, StoreError> {
        self.read(move |r| r.user_stats(user_id)).await
    }

    /// Requests, distinct users and tokens for each day in `from..=to` that has usage, oldest first
    /// (see [`dense_daily_tokens`](super::dense_daily_tokens) to fill the gaps for a chart).
    pub async fn daily_totals(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DayTotals>, StoreError> {
        self.read(move |r| r.daily_totals(Some(from), Some(to)))
            .await
    }

    /// The `limit` users with most tokens in `from..=to`.
    pub async fn top_users(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        limit: usize,
    ) -> Result<Vec<UserTotals>, StoreError> {
        self.read(move |r| r.user_totals(Some(from), Some(to), Some(limit)))
            .await
    }

    /// Rows, users, tokens and date range of the whole database.
    pub async fn summary(&self) -> Result<UsageSummary, StoreError> {
        self.read(|r| r.summary()).await
    }

    /// For /readyz: a trivial query on a pooled connection.
    pub async fn ping(&self) -> Result<(), StoreError> {
        blocking(&self.inner.pool, |conn| {
            Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?)
        })
        .await
    }
}
