//! `subgpt check`: the operator's doctor. One line per check, `ok` or `FAIL` with the fix;
//! exit 0 only when every check passes.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::OpenFlags;
use rusqlite_migration::Migrations;

use super::{redact_url, utc};
use crate::config::Config;
use crate::openai::OpenAi;
use crate::store::kv::Kv;
use crate::store::schema::{SchemaError, ensure_not_newer};
use crate::store::usage::migrate;
use crate::telegram::{Bot, TelegramError};

/// How long one check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);
/// A webhook error younger than this counts as recent.
const RECENT_ERROR_SECS: i64 = 3600;

/// The outcome of one check: what it says, or the failure and its fix.
type Outcome = Result<String, (String, String)>;

/// A passing check's text that starts with this is shown as a warning: worth fixing, but the
/// service works.
const WARNING: &str = "warning: ";

fn fail(what: impl Into<String>, fix: impl Into<String>) -> Outcome {
    Err((what.into(), fix.into()))
}

async fn bounded(check: impl Future<Output = Outcome>) -> Outcome {
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| {
            fail(
                "no answer in 15 s",
                "check the network path to this service",
            )
        })
}

/// Runs every check, prints one line each, and says whether all passed.
pub async fn run(config: &Config) -> bool {
    let mut all_ok = true;
    let mut report = |name: &str, outcome: Outcome| match outcome {
        Ok(what) => match what.strip_prefix(WARNING) {
            Some(warning) => crate::say!("WARN  {name}: {warning}"),
            None => crate::say!("ok    {name}: {what}"),
        },
        Err((what, fix)) => {
            all_ok = false;
            crate::say!("FAIL  {name}: {what} — fix: {fix}");
        }
    };
    report(
        "configuration",
        Ok(format!(
            "valid ({} channel(s), {:?} mode)",
            config.gate.channels.len(),
            config.conversation.api_mode
        )),
    );
    report("prices", prices(config));
    let usage = config.usage.db_path.clone();
    report(
        "sqlite",
        bounded(sqlite(usage, migrate::MIGRATIONS, "usage database")).await,
    );
    let state = config.state.db_path.clone();
    report(
        "state",
        bounded(sqlite(
            state,
            crate::store::state::MIGRATIONS,
            "state database",
        ))
        .await,
    );
    report("redis", bounded(redis(config)).await);
    let telegram = Bot::new(&config.telegram.api_url, config.telegram.bot_token.clone());
    let token = bounded(token(&telegram)).await;
    let token_ok = token.is_ok();
    report("telegram", token);
    for channel in &config.gate.channels {
        let name = format!("channel {channel}");
        if token_ok {
            report(
                &name,
                bounded(channel_admin(&telegram, config, &channel.chat_id())).await,
            );
        } else {
            report(&name, fail("not checked", "fix the bot token first"));
        }
    }
    report("openai", bounded(openai(config)).await);
    report("webhook", bounded(webhook(&telegram, config)).await);
    all_ok
}

/// The price table (already read and checked with the configuration), and whether the model
/// in use has a price: without one, answers are recorded with no cost.
fn prices(config: &Config) -> Outcome {
    let prices = &config.prices;
    let model = &config.openai.model;
    let dated = prices
        .date
        .as_deref()
        .map(|d| format!(", dated {d}"))
        .unwrap_or_default();
    let table = format!("{} model(s) from {}{dated}", prices.len(), prices.origin);
    Ok(match prices.get(model) {
        Some(_) => format!("{table}; {model} has a price"),
        None => format!(
            "{WARNING}{model} has no price in {table}; its answers are recorded without a cost (add it to MODEL_PRICES_FILE)"
        ),
    })
}

async fn sqlite(path: PathBuf, migrations: Migrations<'static>, what: &'static str) -> Outcome {
    tokio::task::spawn_blocking(move || sqlite_as_it_is(&path, &migrations, what))
        .await
        .unwrap_or_else(|e| fail(format!("probe failed: {e}"), "run the check again"))
}

/// Looks at a database (`what`: the usage or the state database) without changing it: `check`
/// may run with a new binary before an update, and only `serve`/`poll` migrate (SPEC §2).
fn sqlite_as_it_is(path: &Path, migrations: &Migrations<'static>, what: &str) -> Outcome {
    let shown = path.display().to_string();
    if !path.exists() {
        // `serve` creates the missing directories too: probe the nearest one that exists.
        let dir = path
            .ancestors()
            .skip(1)
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                }
            })
            .find(|d| d.exists())
            .unwrap_or(Path::new("."));
        return match probe_directory(dir) {
            Ok(()) => Ok(format!(
                "{shown} does not exist yet; `serve` creates it in a writable directory"
            )),
            Err(e) => fail(
                format!("{shown} cannot be created in {}: {e}", dir.display()),
                "create the directory, writable by the service user",
            ),
        };
    }
    let conn = match rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(conn) => conn,
        Err(e) => {
            return fail(
                format!("cannot open {shown}: {e}"),
                "make the file writable by the service user",
            );
        }
    };
    let state = match ensure_not_newer(&conn, path, migrations) {
        Ok(state) => state,
        Err(e @ SchemaError::Newer { .. }) => {
            return fail(
                e.to_string(),
                "run the newer binary, or restore the backup (deploy/README.md, backups)",
            );
        }
        Err(e) => {
            return fail(
                e.to_string(),
                format!("check that the file is subgpt's {what}"),
            );
        }
    };
    let probe = conn
        .busy_timeout(Duration::from_secs(5))
        .and_then(|()| conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;"));
    if let Err(e) = probe {
        return fail(
            format!("{shown} is not writable: {e}"),
            "check the file's owner and permissions and free disk space",
        );
    }
    let pending = if state.is_behind() {
        format!(" (`serve` migrates it to {})", state.supported)
    } else {
        String::new()
    };
    Ok(format!(
        "{shown} writable, schema version {}{pending}",
        state.found
    ))
}

/// Whether a file can be created in `dir`: creates and removes a probe file.
fn probe_directory(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".subgpt-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

async fn redis(config: &Config) -> Outcome {
    let Some(url) = &config.kv.url else {
        return Ok("not configured (in-process store; run one instance only)".into());
    };
    let shown = redact_url(url);
    let kv = match Kv::redis(url) {
        Ok(kv) => kv,
        Err(e) => return fail(format!("{shown}: {e}"), "correct REDIS_URL"),
    };
    if let Err(e) = kv.ping().await {
        let fix = if e.is_untrusted_certificate() {
            "make this host trust the server's certificate (its CA in the system's store, or \
             SSL_CERT_FILE) or correct REDIS_URL"
        } else {
            "start Redis (systemctl start redis-server) or correct REDIS_URL"
        };
        return fail(format!("{shown} unreachable: {e}"), fix);
    }
    let appendonly = kv.redis_config("appendonly").await;
    let save = kv.redis_config("save").await;
    match (appendonly, save) {
        (Ok(Some(aof)), Ok(Some(save))) if aof != "yes" && save.trim().is_empty() => Ok(format!(
            "{WARNING}{shown} reachable, but it keeps nothing on disk (appendonly no, save \"\"): \
             a restart loses the shared gate cache and dedup marks (conversations are kept in \
             STATE_DB_PATH) — fix: set `appendonly yes` or a `save` schedule in redis.conf"
        )),
        (Ok(Some(_)), Ok(Some(_))) => Ok(format!("{shown} reachable, persistent")),
        _ => Ok(format!(
            "{WARNING}{shown} reachable; could not read its persistence settings (CONFIG GET refused)"
        )),
    }
}

async fn token(telegram: &Bot) -> Outcome {
    match telegram.get_me().await {
        Ok(me) => Ok(format!(
            "token valid, bot @{}",
            me.username.unwrap_or(me.first_name)
        )),
        Err(TelegramError::Api {
            code: 401 | 404, ..
        }) => fail(
            "Telegram rejected the bot token",
            "copy TELEGRAM_BOT_TOKEN again from @BotFather",
        ),
        Err(e) => fail(format!("{e}"), "check TELEGRAM_API_URL and outbound HTTPS"),
    }
}

async fn channel_admin(telegram: &Bot, config: &Config, chat_id: &str) -> Outcome {
    let fix = format!("make the bot an administrator of {chat_id}");
    match telegram
        .get_chat_member(chat_id, config.bot_id(), Duration::from_secs(10))
        .await
    {
        Ok(member) if member.is_admin() => Ok("the bot is an administrator".into()),
        Ok(_) => fail("the bot is not an administrator", fix),
        Err(TelegramError::Api { description, .. }) => {
            fail(format!("Telegram says: {description}"), fix)
        }
        Err(e) => fail(format!("{e}"), "check the network and run again"),
    }
}

async fn openai(config: &Config) -> Outcome {
    match OpenAi::new(&config.openai).check_model().await {
        Ok(()) => Ok(format!(
            "key valid, model {} available",
            config.openai.model
        )),
        Err(e) => match e.status().map(|s| s.as_u16()) {
            Some(401) => fail("the API key was rejected", "set a valid OPENAI_API_KEY"),
            Some(403 | 404) => fail(
                format!("model {} is not available to this key", config.openai.model),
                "set OPENAI_MODEL to a model your account can use",
            ),
            _ => fail(format!("{e}"), "check OPENAI_BASE_URL and outbound HTTPS"),
        },
    }
}

async fn webhook(telegram: &Bot, config: &Config) -> Outcome {
    let info = match telegram.get_webhook_info().await {
        Ok(info) => info,
        Err(e) => return fail(format!("{e}"), "check the network and run again"),
    };
    match (&config.server.webhook_url, info.url.as_str()) {
        (None, "") => return Ok("not set (fine for `subgpt poll`)".into()),
        (Some(_), "") => return fail("not registered", "run `subgpt webhook set`"),
        (Some(expected), actual) if expected != actual => {
            return fail(
                format!("points at {actual}, not WEBHOOK_URL {expected}"),
                "run `subgpt webhook set`",
            );
        }
        _ => {}
    }
    let now = chrono::Utc::now().timestamp();
    if let Some(date) = info.last_error_date.filter(|d| now - d < RECENT_ERROR_SECS) {
        let message = info.last_error_message.unwrap_or_default();
        return fail(
            format!(
                "Telegram's last delivery failed at {}: {message}",
                utc(date)
            ),
            "see deploy/README.md, troubleshooting (nginx, TLS, WEBHOOK_SECRET)",
        );
    }
    let chat_member = info
        .allowed_updates
        .as_ref()
        .is_some_and(|a| a.iter().any(|u| u == "chat_member"));
    if !chat_member {
        return fail(
            "chat_member updates are not requested",
            "run `subgpt webhook set` again",
        );
    }
    Ok(format!(
        "{} ({} pending, no recent errors)",
        info.url, info.pending_update_count
    ))
}
