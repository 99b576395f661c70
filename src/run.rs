//! Wiring for the long-running commands: `serve` (webhook) and `poll` (getUpdates), sharing
//! one start-up and one drain.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use crate::bot::{self, App, BotService, Settler};
use crate::config::Config;
use crate::conversation::{Conversations, UserState};
use crate::gate::{Gate, GateLayer};
use crate::intake::lock::UserLocks;
use crate::intake::{Dispatcher, Intake, Limits};
use crate::listen::{HttpTimeouts, serve_http};
use crate::reply::Replier;
use crate::retry::{Outcome, Policy};
use crate::server::{self, ServerState, StopFlag};
use crate::store::kv::Kv;
use crate::store::state::StateStore;
use crate::store::usage::{StoreOptions, Synchronous, UsageStore};
use crate::telegram::{Bot, TelegramError};

/// Start-up's back-off: 1 s doubling up to 30 s.
const STARTUP_FIRST_WAIT: Duration = Duration::from_secs(1);
const STARTUP_MAX_WAIT: Duration = Duration::from_secs(30);
/// The longest start-up waits for Redis (it is optional; Telegram is not).
const REDIS_WAIT: Duration = Duration::from_secs(15);
/// One Redis ping at start-up.
const REDIS_PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Start-up's retry policy: as many back-off waits as fit in `budget` (at their longest,
/// before jitter), so a Telegram or Redis outage at boot is waited out, boundedly.
fn startup_policy(budget: Duration) -> Policy {
    let policy = Policy::new(STARTUP_FIRST_WAIT, STARTUP_MAX_WAIT, 0);
    let mut total = Duration::ZERO;
    let mut retries = 0;
    loop {
        let longest = STARTUP_FIRST_WAIT
            .saturating_mul(2u32.saturating_pow(retries.min(31)))
            .min(STARTUP_MAX_WAIT);
        total += longest;
        if total > budget {
            return Policy {
                max_retries: retries,
                ..policy
            };
        }
        retries += 1;
    }
}

/// How a failed getMe at start-up is treated: a rejected token is final, the rest is waited out.
fn get_me_outcome(error: &TelegramError) -> Outcome {
    match error {
        TelegramError::Api {
            code: 401 | 404, ..
        } => Outcome::Fatal,
        TelegramError::Api { code, .. } => Outcome::of_status(*code, None),
        TelegramError::RetryAfter { seconds, .. } => {
            Outcome::RateLimited(Some(Duration::from_secs(*seconds)))
        }
        TelegramError::Http { source, .. } => Outcome::of_transport(source),
        // A proxy's error page during an outage (or a skipped call, which getMe never is:
        // it waits for its turn); getMe is safe to ask again.
        TelegramError::Decode { .. } | TelegramError::Busy { .. } => Outcome::Unknown,
    }
}

/// Everything a running bot holds.
pub struct Running {
    pub config: Config,
    pub telegram: Bot,
    pub kv: Kv,
    pub usage: UsageStore,
    pub state: StateStore,
    pub intake: Arc<Intake>,
    pub tracker: TaskTracker,
    /// Cancelled when the drain starts: no queued update is started after it.
    pub stopping: CancellationToken,
}

/// Opens the stores, checks the token with getMe, registers the command menu, builds the
/// gate + bot stack behind the intake, and queues the updates left from the last run.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    // Installed first, so start-up calls are counted too.
    crate::telemetry::metrics();
    let synchronous = if config.usage.synchronous_full {
        Synchronous::Full
    } else {
        Synchronous::Normal
    };
    let options = StoreOptions {
        busy_timeout: config.usage.busy_timeout,
        synchronous,
        prices: config.prices.clone(),
        ..StoreOptions::default()
    };
    let state = StateStore::open(
        &config.state.db_path,
        config.state.busy_timeout,
        synchronous,
    )
    .with_context(|| {
        format!(
            "cannot open the state database {}",
            config.state.db_path.display()
        )
    })?;
    let usage = UsageStore::open_with(&config.usage.db_path, options).with_context(|| {
        format!(
            "cannot open the usage database {}",
            config.usage.db_path.display()
        )
    })?;
    let kv = match &config.kv.url {
        Some(url) => {
            let kv = Kv::redis(url).context("REDIS_URL")?;
            // Redis coming up after us is common at boot; without it the bot still works
            // (the gate asks Telegram directly), so after the wait it starts anyway.
            let policy = startup_policy(config.bot.startup_retry.min(REDIS_WAIT));
            let ping = policy.run(
                "redis",
                true,
                || async {
                    match tokio::time::timeout(REDIS_PING_TIMEOUT, kv.ping()).await {
                        Ok(answer) => answer.map_err(|e| e.to_string()),
                        Err(_) => Err("no answer in 5 s".to_string()),
                    }
                },
                |_| Outcome::Connect,
            );
            if let Err(e) = ping.await {
                tracing::warn!(error = %e, "Redis is not answering; starting anyway (the gate asks Telegram directly)");
            }
            kv
        }
        None => Kv::memory(),
    };
    let telegram = Bot::new(&config.telegram.api_url, config.telegram.bot_token.clone());
    let me = startup_policy(config.bot.startup_retry)
        .run("telegram", true, || telegram.get_me(), get_me_outcome)
    .await
    .map_err(|e| match e {
        TelegramError::Api { code: 401 | 404, .. } => {
            anyhow::anyhow!("Telegram rejected TELEGRAM_BOT_TOKEN (getMe: {e}); copy the token again from @BotFather")
        }
        other => anyhow::anyhow!("cannot reach Telegram at {}: {other}", config.telegram.api_url),
    })?;
    tracing::info!(
        bot = me.username.as_deref().unwrap_or(&me.first_name),
        id = me.id,
        "Telegram token valid"
    );
    bot::register_menus(&telegram, &config, &state).await;

    let openai = crate::openai::OpenAi::new(&config.openai);
    let conversations = Conversations::new(
        &config.conversation,
        openai.clone(),
        UserState::new(kv.clone(), state.clone()),
        config.kv_namespace(),
    );
    let settler = Settler::new(
        openai,
        state.clone(),
        usage.clone(),
        config.conversation.settle_after,
    );
    let reply = Replier::new(telegram.clone(), &config.telegram);
    let app = Arc::new(App {
        config: config.clone(),
        telegram: telegram.clone(),
        reply: reply.clone(),
        conversations,
        usage: usage.clone(),
        settler: settler.clone(),
    });
    let gate = Arc::new(Gate::new(
        config.gate.clone(),
        config.bot.clone(),
        telegram.clone(),
        kv.clone(),
        config.kv_namespace(),
    ));
    let service = ServiceBuilder::new()
        .layer(GateLayer::new(gate, reply.clone()))
        .service(BotService::new(app));
    let tracker = TaskTracker::new();
    let stopping = CancellationToken::new();
    // Answers cut off before a restart are settled too; the drain waits for a look under way.
    tracker.spawn(settler.run(stopping.clone()));
    let locks = UserLocks::new(kv.clone(), config.kv_namespace(), &instance_id(&config));
    let limits = Limits {
        queue: config.bot.user_queue_limit,
        deadline: config.bot.answer_deadline,
    };
    let dispatcher = Dispatcher::new(
        BoxCloneSyncService::new(service),
        tracker.clone(),
        locks,
        state.clone(),
        reply.clone(),
        limits,
        config.bot.language,
        stopping.clone(),
    );
    let intake = Arc::new(Intake::new(
        state.clone(),
        kv.clone(),
        config.kv_namespace(),
        dispatcher,
    ));
    intake
        .replay()
        .await
        .context("cannot read the inbox of the state database")?;
    Ok(Running {
        config,
        telegram,
        kv,
        usage,
        state,
        intake,
        tracker,
        stopping,
    })
}

impl Running {
    /// Waits (bounded) for answers in flight, then writes pending usage rows.
    pub async fn drain(self) {
        self.stopping.cancel();
        self.tracker.close();
        let drain = self.config.bot.shutdown_drain;
        if tokio::time::timeout(drain, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                users = self.intake.dispatcher().active_users(),
                "drain time-out reached; what was not finished stays in the inbox for the next start"
            );
        }
        if let Err(e) = self.usage.close(Duration::from_secs(10)).await {
            tracing::error!(error = %e, "could not write every pending usage row");
        }
        tracing::info!("stopped");
    }
}

/// `subgpt serve`: the webhook server until SIGTERM/SIGINT.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.server.bind_addr)
        .await
        .with_context(|| format!("cannot listen on BIND_ADDR {}", config.server.bind_addr))?;
    let running = start(config).await?;
    let stopping = StopFlag::default();
    let state = ServerState {
        secret: running
            .config
            .server
            .webhook_secret
            .clone()
            .context("WEBHOOK_SECRET")?,
        intake: Arc::clone(&running.intake),
        kv: running.kv.clone(),
        state: running.state.clone(),
        usage: running.usage.clone(),
        stopping: stopping.clone(),
        metrics: crate::telemetry::metrics(),
    };
    let router = server::app(state, &running.config.server.webhook_path);
    let closed = CancellationToken::new();
    let timeouts = HttpTimeouts {
        header_read: running.config.server.header_timeout,
        request: running.config.server.request_timeout,
    };
    let mut server = tokio::spawn(serve_http(listener, router, timeouts, closed.clone()));
    tracing::info!(addr = %running.config.server.bind_addr, path = %running.config.server.webhook_path, "listening for webhook updates");
    upkeep_metrics(stopping.token());

    tokio::select! {
        _ = shutdown_signal() => {}
        result = &mut server => {
            stopping.raise();
            running.drain().await;
            bail!("the HTTP server stopped unexpectedly: {result:?}");
        }
    }
    stopping.raise();
    tracing::info!("shutting down: new updates get 503, finishing answers in flight");
    // The server keeps answering (503) while the answers in flight finish.
    running.drain().await;
    closed.cancel();
    let _ = server.await;
    Ok(())
}

/// This instance's id for the user locks: the same when the process restarts (the host and the
/// state database's path), different between instances (each has its own state database).
fn instance_id(config: &Config) -> String {
    use std::hash::{Hash, Hasher};
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let path = std::fs::canonicalize(&config.state.db_path)
        .unwrap_or_else(|_| config.state.db_path.clone());
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (host.trim(), path).hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// Renders histograms now and then so `/metrics` stays cheap.
fn upkeep_metrics(stop: CancellationToken) {
    let handle = crate::telemetry::metrics();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tick.tick() => handle.run_upkeep(),
                _ = stop.cancelled() => return,
            }
        }
    });
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_startup_waits_fit_in_the_budget() {
        // 1 + 2 + 4 + 8 + 16 = 31 s; the next wait (30 s) would pass 40 s.
        assert_eq!(startup_policy(Duration::from_secs(40)).max_retries, 5);
        assert_eq!(startup_policy(Duration::from_secs(120)).max_retries, 7);
        assert_eq!(startup_policy(Duration::ZERO).max_retries, 0);
    }
}
