//! `subgpt poll`: the same bot fed by getUpdates long polling, for hosts without a public
//! HTTPS endpoint. Each batch is committed to the intake's inbox before the offset moves on
//! (and is saved), so a restart neither loses nor repeats updates.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::retry::Policy;
use crate::run::{self, Running};
use crate::telegram::{ALLOWED_UPDATES, ApiErrorKind, Update};

/// Seconds one getUpdates call waits for updates.
const LONG_POLL_SECS: u64 = 30;
/// Waits after a failed getUpdates or inbox commit: 1 s doubling to 30 s; polling goes on for
/// as long as the process runs, so the attempts are not capped.
const RETRY: Policy = Policy::new(Duration::from_secs(1), Duration::from_secs(30), u32::MAX);

/// The file holding the next offset, beside the usage database.
fn offset_file(config: &Config) -> PathBuf {
    let dir = config
        .usage
        .db_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    dir.join(format!("poll-offset-{}", config.bot_id()))
}

fn read_offset(path: &Path) -> i64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn write_offset(path: &Path, offset: i64) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{offset}\n"))?;
    std::fs::rename(tmp, path)
}

/// Polls until SIGTERM/SIGINT, then drains like `serve`.
pub async fn poll(config: Config) -> anyhow::Result<()> {
    let running = run::start(config).await?;
    let info = running
        .telegram
        .get_webhook_info()
        .await
        .context("getWebhookInfo failed")?;
    if !info.url.is_empty() {
        bail!(
            "a webhook is set ({}), and Telegram sends no updates to getUpdates while it is. \
             Remove it with `subgpt webhook delete`, or run `subgpt serve` behind it instead",
            info.url
        );
    }
    let path = offset_file(&running.config);
    let stop = CancellationToken::new();
    let signal = {
        let stop = stop.clone();
        tokio::spawn(async move {
            run::shutdown_signal().await;
            stop.cancel();
        })
    };
    tracing::info!(offset_file = %path.display(), "polling Telegram for updates");
    let result = tokio::select! {
        result = poll_loop(&running, &path) => result,
        _ = stop.cancelled() => Ok(()),
    };
    signal.abort();
    tracing::info!("shutting down: finishing answers in flight");
    running.drain().await;
    result
}

async fn poll_loop(running: &Running, path: &Path) -> anyhow::Result<()> {
    let mut offset = read_offset(path);
    let mut failures = 0u32;
    loop {
        let batch = match running
            .telegram
            .get_updates_raw(offset, LONG_POLL_SECS, ALLOWED_UPDATES)
            .await
        {
            Ok(batch) => {
                failures = 0;
                batch
            }
            Err(e) if e.kind() == Some(ApiErrorKind::WebhookActive) => {
                bail!("a webhook is set ({e}); remove it with `subgpt webhook delete` to poll");
            }
            Err(e) if e.kind() == Some(ApiErrorKind::PollingConflict) => {
                bail!(
                    "another process is polling this bot ({e}). \
                     Only one may poll a bot at a time: stop the other instance"
                );
            }
            Err(e) if matches!(e.code(), Some(401 | 404)) => {
                bail!("Telegram rejected TELEGRAM_BOT_TOKEN")
            }
            Err(e) => {
                let wait = RETRY.delay(failures);
                failures += 1;
                tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "getUpdates failed; trying again");
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        let mut next = offset;
        let mut updates = Vec::with_capacity(batch.len());
        for raw in batch {
            let id = raw.get("update_id").and_then(serde_json::Value::as_i64);
            match serde_json::from_value::<Update>(raw) {
                Ok(update) => updates.push(update),
                Err(e) => {
                    tracing::warn!(update_id = id, error = %e, "skipping an update that does not parse")
                }
            }
            if let Some(id) = id {
                next = next.max(id + 1);
            }
        }
        // All of the batch is committed (concurrently, so it shares commits) before the
        // offset moves; otherwise the same batch is asked for again, and the inbox drops what
        // it already has.
        let accepted =
            futures::future::join_all(updates.into_iter().map(|u| running.intake.accept(u))).await;
        if let Some(Err(e)) = accepted.into_iter().find(Result::is_err) {
            let wait = RETRY.delay(failures);
            failures += 1;
            tracing::error!(error = %e, wait_ms = wait.as_millis() as u64, "could not commit updates to the inbox; asking for them again");
            tokio::time::sleep(wait).await;
            continue;
        }
        offset = next;
        if let Err(e) = write_offset(path, offset) {
            tracing::error!(error = %e, path = %path.display(), "cannot save the polling offset");
        }
    }
}
