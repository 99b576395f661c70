//! Usage in the chat: recording each answer's tokens, the daily limit, `/usage` and `/stats`.

use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use super::App;
use crate::openai::{Reply, TokenUsage};
use crate::prices::usd_text;
use crate::store::usage::{UsageRow, dense_daily_tokens};
use crate::telegram::User;
use crate::telegram::format::escape_html;
pub use crate::texts::grouped;
use crate::texts::{Lang, plural, t};

/// Days shown by `/stats`.
const STATS_DAYS: i64 = 30;
/// Users listed by `/stats`.
const TOP_USERS: usize = 10;

/// Today in `tz`.
pub fn today(tz: Tz) -> NaiveDate {
    Utc::now().with_timezone(&tz).date_naive()
}

/// When today ends in `tz`, and how long until then, e.g. "00:00 UTC (in 3 h 12 min)".
pub fn day_resets(lang: Lang, tz: Tz) -> String {
    let now = Utc::now().with_timezone(&tz);
    let tomorrow = now.date_naive().succ_opt().unwrap_or(now.date_naive());
    let midnight = tomorrow
        .and_hms_opt(0, 0, 0)
        .and_then(|t| tz.from_local_datetime(&t).earliest());
    let left = midnight
        .map(|m| m.signed_duration_since(now))
        .unwrap_or_default();
    let minutes = left.num_minutes().max(1);
    t(
        lang,
        "limit.resets",
        &[
            ("zone", &tz.name()),
            ("hours", &(minutes / 60)),
            ("minutes", &(minutes % 60)),
        ],
    )
}

/// `12 345 tokens ($0.42)`, or just the tokens when no row of them has a known cost.
pub fn tokens_and_cost(lang: Lang, tokens: i64, cost_micro_usd: Option<i64>) -> String {
    let tokens = plural(lang, "plural.tokens", tokens);
    match usd_text(cost_micro_usd) {
        Some(cost) => t(
            lang,
            "usage.with_cost",
            &[("tokens", &tokens), ("cost", &cost)],
        ),
        None => tokens,
    }
}

/// Converts a reported count for the store (it keeps signed integers).
fn stored(n: Option<u64>) -> Option<i64> {
    n.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// Puts what the upstream reported into `row`: the breakdown and the model, and the total
/// when there is one (else the row keeps its own). The cost is left to the usage writer, which
/// prices the row by its model and tokens.
pub(super) fn with_usage(row: &mut UsageRow, usage: &TokenUsage, model: Option<&str>) {
    if let Some(total) = stored(usage.total_tokens()) {
        row.tokens_used = total;
    }
    row.input_tokens = stored(usage.input);
    row.output_tokens = stored(usage.output);
    row.cached_input_tokens = stored(usage.cached_input);
    row.reasoning_tokens = stored(usage.reasoning);
    row.model = model.map(str::to_string);
    row.cost_micro_usd = None;
}

impl App {
    /// Hands the answer's usage to the usage writer (which prices it); never waits, never
    /// fails the answer.
    pub(super) fn record_usage(&self, user: &User, question: &str, reply: &Reply) {
        self.usage
            .record_in_background(self.usage_row(user, question, reply));
    }

    /// The usage row of an answer: the tokens the upstream reported, else an estimate.
    pub(super) fn usage_row(&self, user: &User, question: &str, reply: &Reply) -> UsageRow {
        let usage = reply.usage.unwrap_or_default();
        let tokens = usage.total_tokens().unwrap_or_else(|| {
            let estimate = estimate_tokens(question) + estimate_tokens(&reply.text);
            tracing::warn!(
                estimate,
                "the upstream reported no token usage; recording an estimate"
            );
            metrics::counter!("subgpt_usage_missing_total").increment(1);
            estimate
        });
        let mut row = UsageRow {
            user_id: user.id,
            username: user.display_name(),
            request_date: today(self.config.usage.timezone),
            tokens_used: i64::try_from(tokens).unwrap_or(i64::MAX),
            ..UsageRow::default()
        };
        with_usage(&mut row, &usage, reply.model.as_deref());
        row
    }

    /// The refusal when `user` has used up today's allowance; `None` when they may go on.
    pub(super) async fn over_limit(&self, user: &User) -> Option<String> {
        let limit = self.config.bot.daily_token_limit;
        if limit == 0 || self.config.is_admin(user.id) {
            return None;
        }
        let tz = self.config.usage.timezone;
        match self.usage.user_daily_usage(user.id, today(tz)).await {
            Ok(used) if used >= i64::try_from(limit).unwrap_or(i64::MAX) => {
                let lang = self.lang(user);
                Some(t(
                    lang,
                    "limit.reached",
                    &[
                        ("tokens", &plural(lang, "plural.tokens", limit as i64)),
                        ("resets", &day_resets(lang, tz)),
                    ],
                ))
            }
            Ok(_) => None,
            Err(e) => {
                // Better to answer than to lock everyone out over a read failure.
                tracing::warn!(error = %e, "cannot read today's usage; not enforcing the daily limit");
                None
            }
        }
    }

    /// `/usage`: today, this month, all time, and what is left today.
    pub(super) async fn usage_report(&self, chat: i64, user: &User) {
        let lang = self.lang(user);
        let tz = self.config.usage.timezone;
        let day = today(tz);
        let month_start = day.with_day(1).unwrap_or(day);
        let (today_spend, month, total) = tokio::join!(
            self.usage.user_spend(user.id, Some(day), Some(day)),
            self.usage.user_spend(user.id, Some(month_start), Some(day)),
            self.usage.user_spend(user.id, None, None),
        );
        let (Ok(today_spend), Ok(month), Ok(total)) = (today_spend, month, total) else {
            self.apologise(chat, user, &"the usage database could not be read")
                .await;
            return;
        };
        let today_used = today_spend.tokens;
        let mut text = t(
            lang,
            "usage.report",
            &[
                (
                    "today",
                    &tokens_and_cost(lang, today_spend.tokens, today_spend.cost_micro_usd),
                ),
                (
                    "month",
                    &tokens_and_cost(lang, month.tokens, month.cost_micro_usd),
                ),
                (
                    "total",
                    &tokens_and_cost(lang, total.tokens, total.cost_micro_usd),
                ),
            ],
        );
        let limit = self.config.bot.daily_token_limit;
        if self.config.is_admin(user.id) && limit > 0 {
            text.push_str(&t(lang, "usage.admin", &[]));
        } else if limit > 0 {
            let left = (limit as i64 - today_used).max(0);
            text.push_str(&t(
                lang,
                "usage.limit",
                &[
                    ("limit", &plural(lang, "plural.tokens", limit as i64)),
                    ("left", &grouped(left)),
                    ("resets", &day_resets(lang, tz)),
                ],
            ));
        }
        text.push_str(&t(lang, "usage.zone", &[("zone", &tz.name())]));
        self.say(chat, &text).await;
    }

    /// `/stats` (admins): today, the last 30 days, the top users, and a chart.
    pub(super) async fn stats(&self, chat: i64, user: &User) {
        let lang = self.lang(user);
        if !self.config.is_admin(user.id) {
            self.say(chat, &t(lang, "admins_only", &[])).await;
            return;
        }
        let tz = self.config.usage.timezone;
        let to = today(tz);
        let from = to - chrono::Duration::days(STATS_DAYS - 1);
        // Every active user, most tokens first: the top of it is listed, its length counted.
        let (days, users) = tokio::join!(
            self.usage.daily_totals(from, to),
            self.usage.top_users(from, to, 1 << 40)
        );
        let (Ok(days), Ok(users)) = (days, users) else {
            self.apologise(chat, user, &"the usage database could not be read")
                .await;
            return;
        };
        let today_row = days.iter().find(|d| d.date == to);
        let requests: i64 = days.iter().map(|d| d.requests).sum();
        let tokens: i64 = days.iter().map(|d| d.tokens).sum();
        let cost = days
            .iter()
            .filter_map(|d| d.cost_micro_usd)
            .fold(None, |acc: Option<i64>, c| Some(acc.unwrap_or(0) + c));
        let period = plural(lang, "plural.days", STATS_DAYS);
        let count = |key: &str, n: i64| plural(lang, key, n);
        let mut text = t(
            lang,
            "stats.report",
            &[
                ("zone", &tz.name()),
                (
                    "requests",
                    &count("plural.requests", today_row.map_or(0, |d| d.requests)),
                ),
                (
                    "users",
                    &count("plural.users", today_row.map_or(0, |d| d.users)),
                ),
                (
                    "tokens",
                    &tokens_and_cost(
                        lang,
                        today_row.map_or(0, |d| d.tokens),
                        today_row.and_then(|d| d.cost_micro_usd),
                    ),
                ),
                ("days", &period),
                ("period_requests", &count("plural.requests", requests)),
                ("period_tokens", &tokens_and_cost(lang, tokens, cost)),
                (
                    "active_users",
                    &count("plural.active_users", users.len() as i64),
                ),
            ],
        );
        let top = &users[..users.len().min(TOP_USERS)];
        if !top.is_empty() {
            text.push_str(&t(lang, "stats.top", &[("days", &period)]));
            for (i, u) in top.iter().enumerate() {
                let name = u
                    .username
                    .clone()
                    .unwrap_or_else(|| format!("id{}", u.user_id));
                text.push_str(&t(
                    lang,
                    "stats.top_row",
                    &[
                        ("rank", &(i + 1)),
                        ("name", &escape_html(&name)),
                        ("id", &u.user_id),
                        ("tokens", &tokens_and_cost(lang, u.tokens, u.cost_micro_usd)),
                        ("requests", &count("plural.requests", u.requests)),
                    ],
                ));
            }
        }
        self.say(chat, &text).await;
        let series = dense_daily_tokens(&days, from, to);
        let title = match usd_text(cost) {
            Some(cost) => t(
                lang,
                "chart.title_with_cost",
                &[("days", &period), ("zone", &tz.name()), ("cost", &cost)],
            ),
            None => t(
                lang,
                "chart.title",
                &[("days", &period), ("zone", &tz.name())],
            ),
        };
        let axes = [t(lang, "chart.x_axis", &[]), t(lang, "chart.y_axis", &[])];
        match crate::chart::daily_tokens_png(&series, &title, [&axes[0], &axes[1]]) {
            Ok(png) => {
                let name = format!("tokens-{to}.png");
                if let Err(e) = self.telegram.send_photo(chat, &name, png, &title).await {
                    tracing::error!(error = %e, "could not send the chart");
                }
            }
            Err(e) => tracing::error!(error = %e, "could not draw the chart"),
        }
    }
}

/// A rough token count for when the upstream reports none: about four characters a token
/// (OpenAI's rule of thumb for English; other scripts take more tokens, so this errs low).
fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reset_time_names_the_zone() {
        let text = day_resets(Lang::default_language(), chrono_tz::Europe::Berlin);
        assert!(text.starts_with("00:00 Europe/Berlin (in "), "{text}");
    }
}
