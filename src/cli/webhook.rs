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
    println!("Webhook set: {url}");
    println!("  updates: {}", ALLOWED_UPDATES.join(", "));
    println!("  secret token: set (from WEBHOOK_SECRET)");
    if drop_pending {
        println!("  pending updates dropped");
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
        println!(
            "No webhook is set. Register one with `subgpt webhook set`, or fetch updates with `subgpt poll`."
        );
        println!("Pending updates: {}", info.pending_update_count);
        return Ok(());
    }
    println!("URL:              {}", info.url);
    match &config.server.webhook_url {
        Some(expected) if *expected != info.url => {
            println!("                  (differs from WEBHOOK_URL {expected})")
        }
        _ => {}
    }
    println!("Pending updates:  {}", info.pending_update_count);
    match (info.last_error_date, &info.last_error_message) {
        (Some(date), Some(message)) => println!("Last error:       {} — {message}", utc(date)),
        (Some(date), None) => println!("Last error:       {}", utc(date)),
        _ => println!("Last error:       none"),
    }
    if let Some(date) = info.last_synchronization_error_date {
        println!("Last sync error:  {}", utc(date));
    }
    if let Some(ip) = &info.ip_address {
        println!("IP address:       {ip}");
    }
    if let Some(max) = info.max_connections {
        println!("Max connections:  {max}");
    }
    let allowed = info
        .allowed_updates
        .as_ref()
        .map(|a| a.join(", "))
        .unwrap_or_else(|| "default (all but chat_member)".into());
    println!("Allowed updates:  {allowed}");
    Ok(())
}

/// Removes the webhook.
pub async fn delete(config: &Config, drop_pending: bool) -> anyhow::Result<()> {
    bot(config)
        .delete_webhook(drop_pending)
        .await
        .context("deleteWebhook failed")?;
    println!(
        "Webhook removed{}.",
        if drop_pending {
            " and pending updates dropped"
        } else {
            ""
        }
    );
    Ok(())
}
