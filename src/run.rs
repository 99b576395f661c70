//! Wiring for the long-running commands: `serve` (webhook) and `poll` (getUpdates), sharing
//! one start-up and one drain.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use crate::bot::dispatch::Dispatcher;
use crate::bot::lock::UserLocks;
use crate::bot::{self, App, BotService};
use crate::config::Config;
use crate::gate::{Gate, GateLayer};
use crate::listen::{HttpTimeouts, serve_http};
use crate::openai::Assistant;
use crate::server::{self, ServerState};
use crate::startup::{Failure, retry};
use crate::store::kv::Kv;
use crate::store::usage::{StoreOptions, Synchronous, UsageStore};
use crate::telegram::{Bot, TelegramError};

/// The longest start-up waits for Redis (it is optional; Telegram is not).
const REDIS_WAIT: Duration = Duration::from_secs(15);
/// One Redis ping at start-up.
const REDIS_PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a running bot holds.
pub struct Running {
    pub config: Config,
    pub telegram: Bot,
    pub kv: Kv,
    pub usage: UsageStore,
    pub dispatcher: Arc<Dispatcher>,
    pub tracker: TaskTracker,
}

/// Opens the stores, checks the token with getMe, registers the command menu, and builds
/// the gate + bot stack behind a dispatcher.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    // Installed first, so start-up calls are counted too.
    crate::telemetry::metrics();
    let options = StoreOptions {
        busy_timeout: config.sqlite_busy_timeout,
        synchronous: if config.sqlite_synchronous_full {
            Synchronous::Full
        } else {
            Synchronous::Normal
        },
        ..StoreOptions::default()
    };
    let usage = UsageStore::open_with(&config.analytics_db_path, options).with_context(|| {
        format!(
            "cannot open the usage database {}",
            config.analytics_db_path.display()
        )
    })?;
    let kv = match &config.redis_url {
        Some(url) => {
            let kv = Kv::redis(url).context("REDIS_URL")?;
            // Redis coming up after us is common at boot; without it the bot still works
            // (the gate asks Telegram directly), so after the wait it starts anyway.
            let budget = config.startup_retry.min(REDIS_WAIT);
            let ping = retry("Redis", budget, || async {
                match tokio::time::timeout(REDIS_PING_TIMEOUT, kv.ping()).await {
                    Ok(answer) => answer.map_err(|e| Failure::Transient(e.to_string())),
                    Err(_) => Err(Failure::Transient("no answer in 5 s".to_string())),
                }
            });
            if let Err(e) = ping.await {
                tracing::warn!(error = %e, "Redis is not answering; starting anyway (the gate asks Telegram directly)");
            }
            kv
        }
        None => Kv::memory(),
    };
    let telegram = Bot::new(&config.telegram_api_url, config.telegram_bot_token.clone());
    let me = retry("Telegram getMe", config.startup_retry, || async {
        telegram.get_me().await.map_err(|e| match e {
            TelegramError::Api { code: 401 | 404, .. } => Failure::Permanent(e),
            other => Failure::Transient(other),
        })
    })
    .await
    .map_err(|e| match e {
        TelegramError::Api { code: 401 | 404, .. } => {
            anyhow::anyhow!("Telegram rejected TELEGRAM_BOT_TOKEN (getMe: {e}); copy the token again from @BotFather")
        }
        other => anyhow::anyhow!("cannot reach Telegram at {}: {other}", config.telegram_api_url),
    })?;
    tracing::info!(
        bot = me.username.as_deref().unwrap_or(&me.first_name),
        id = me.id,
        "Telegram token valid"
    );
    if let Err(e) = telegram.set_my_commands(&bot::menu()).await {
        tracing::warn!(error = %e, "could not register the command menu");
    }

    let assistant = Assistant::new(&config, kv.clone());
    let app = Arc::new(App {
        config: config.clone(),
        telegram: telegram.clone(),
        assistant,
        usage: usage.clone(),
    });
    let gate = Arc::new(Gate::new(config.clone(), telegram.clone(), kv.clone()));
    let service = ServiceBuilder::new()
        .layer(GateLayer::new(gate))
        .service(BotService::new(app));
    let tracker = TaskTracker::new();
    let locks = UserLocks::new(kv.clone(), config.kv_namespace());
    let dispatcher = Dispatcher::new(BoxCloneSyncService::new(service), tracker.clone(), locks);
    Ok(Running {
        config,
        telegram,
        kv,
        usage,
        dispatcher,
        tracker,
    })
}

impl Running {
    /// Waits (bounded) for answers in flight, then writes pending usage rows.
    pub async fn drain(self) {
        self.tracker.close();
        let drain = self.config.shutdown_drain;
        if tokio::time::timeout(drain, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                users = self.dispatcher.active_users(),
                "drain time-out reached; some answers were not finished"
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
    let listener = tokio::net::TcpListener::bind(config.bind_addr)
        .await
        .with_context(|| format!("cannot listen on BIND_ADDR {}", config.bind_addr))?;
    let running = start(config).await?;
    let stopping = CancellationToken::new();
    let state = ServerState {
        secret: running
            .config
            .webhook_secret
            .clone()
            .context("WEBHOOK_SECRET")?,
        ns: running.config.kv_namespace(),
        kv: running.kv.clone(),
        usage: running.usage.clone(),
        dispatcher: Arc::clone(&running.dispatcher),
        stopping: stopping.clone(),
        metrics: crate::telemetry::metrics(),
    };
    let router = server::app(state, &running.config.webhook_path);
    let closed = CancellationToken::new();
    let timeouts = HttpTimeouts {
        header_read: running.config.http_header_timeout,
        request: running.config.http_request_timeout,
    };
    let mut server = tokio::spawn(serve_http(listener, router, timeouts, closed.clone()));
    tracing::info!(addr = %running.config.bind_addr, path = %running.config.webhook_path, "listening for webhook updates");
    upkeep_metrics(stopping.clone());

    tokio::select! {
        _ = shutdown_signal() => {}
        result = &mut server => {
            stopping.cancel();
            running.drain().await;
            bail!("the HTTP server stopped unexpectedly: {result:?}");
        }
    }
    stopping.cancel();
    tracing::info!("shutting down: new updates get 503, finishing answers in flight");
    // The server keeps answering (503) while the answers in flight finish.
    running.drain().await;
    closed.cancel();
    let _ = server.await;
    Ok(())
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
