//! `subgpt webhook set|info|delete`: register, inspect and remove the webhook.

use anyhow::Context;

use super::utc;
use crate::config::Config;
use crate::telegram::{ALLOWED_UPDATES, Bot};

fn bot(config: &Config) -> Bot {
    Bot::new(&config.telegram.api_url, config.telegram.bot_token.clone())
}

/// Registers `WEBHOOK_URL` with the secret and the update kinds the bot needs.
pub async fn set(config: &Config, drop_pending: bool) -> anyhow::Result<()> {
    let url = config
        .server
        .webhook_url
        .as_deref()
        .context("WEBHOOK_URL is not set")?;
    let secret = config
        .server
        .webhook_secret
        .as_ref()
        .context("WEBHOOK_SECRET is not set")?;
    if !url.ends_with(&config.server.webhook_path) {
        eprintln!(
            "warning: WEBHOOK_URL {url} does not end with WEBHOOK_PATH {}; make sure nginx maps it to that path",
            config.server.webhook_path
        );
    }
    bot(config)
        .set_webhook(url, secret, ALLOWED_UPDATES, drop_pending)
        .await
        .context("setWebhook failed")?;
    crate::say!("Webhook set: {url}");
    crate::say!("  updates: {}", ALLOWED_UPDATES.join(", "));
    crate::say!("  secret token: set (from WEBHOOK_SECRET)");
    if drop_pending {
        crate::say!("  pending updates dropped");
    }
    Ok(())
}

/// Prints what Telegram knows of the webhook.
pub async fn info(config: &Config) -> anyhow::Result<()> {
    let info = bot(config)
        .get_webhook_info()
        .await
        .context("getWebhookInfo failed")?;
    if info.url.is_empty() {
        crate::say!(
            "No webhook is set. Register one with `subgpt webhook set`, or fetch updates with `subgpt poll`."
        );
        crate::say!("Pending updates: {}", info.pending_update_count);
        return Ok(());
    }
    crate::say!("URL:              {}", info.url);
    match &config.server.webhook_url {
        Some(expected) if *expected != info.url => {
            crate::say!("                  (differs from WEBHOOK_URL {expected})")
        }
        _ => {}
    }
    crate::say!("Pending updates:  {}", info.pending_update_count);
    match (info.last_error_date, &info.last_error_message) {
        (Some(date), Some(message)) => crate::say!("Last error:       {} — {message}", utc(date)),
        (Some(date), None) => crate::say!("Last error:       {}", utc(date)),
        _ => crate::say!("Last error:       none"),
    }
    if let Some(date) = info.last_synchronization_error_date {
        crate::say!("Last sync error:  {}", utc(date));
    }
    if let Some(ip) = &info.ip_address {
        crate::say!("IP address:       {ip}");
    }
    if let Some(max) = info.max_connections {
        crate::say!("Max connections:  {max}");
    }
    let allowed = info
        .allowed_updates
        .as_ref()
        .map(|a| a.join(", "))
        .unwrap_or_else(|| "default (all but chat_member)".into());
    crate::say!("Allowed updates:  {allowed}");
    Ok(())
}

/// Removes the webhook.
pub async fn delete(config: &Config, drop_pending: bool) -> anyhow::Result<()> {
    bot(config)
        .delete_webhook(drop_pending)
        .await
        .context("deleteWebhook failed")?;
    crate::say!(
        "Webhook removed{}.",
        if drop_pending {
            " and pending updates dropped"
        } else {
            ""
        }
    );
    Ok(())
}
