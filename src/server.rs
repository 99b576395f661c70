//! The HTTP side of `serve`: the webhook, health, readiness and metrics routes.
//!
//! The webhook only checks and parses: after the secret, the size limit and parsing, it hands
//! the update to the intake and answers 200 once the intake has committed it (or ignored it),
//! before any upstream is asked. A failed commit is a 500, so Telegram sends it again.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::future::{BoxFuture, Either};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use tower::layer::layer_fn;
use tower::{Service, ServiceBuilder};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use crate::intake::Intake;
use crate::secret::Secret;
use crate::store::kv::Kv;
use crate::store::state::StateStore;
use crate::store::usage::UsageStore;
use crate::telegram::{Update, UpdateHead};

/// Largest accepted webhook body.
pub const MAX_BODY: usize = 1024 * 1024;
const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// What the routes share. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<ServerState>);

/// The parts of the service the routes need.
pub struct ServerState {
    pub secret: Secret,
    pub intake: Arc<Intake>,
    pub kv: Kv,
    pub state: StateStore,
    pub usage: UsageStore,
    /// Raised when shutdown starts: the webhook answers 503 from then on.
    pub stopping: StopFlag,
    pub metrics: PrometheusHandle,
}

/// The router for `serve`. Bodies over [`MAX_BODY`] get 413: a declared one from
/// [`RefuseDeclaredOversize`], one without Content-Length from `RequestBodyLimitLayer` when
/// it crosses the limit. Each request gets a span with its method and path only: no headers
/// (the secret is one), no bodies.
///
/// The layers go on in one `layer` call: each call wraps every route in another boxed
/// service, cloned (allocated) on every request.
pub fn app(state: ServerState, webhook_path: &str) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            // Debug level: at the default `info` a span per request would cost the ingest of
            // updates a measurable share (Telegram can send thousands a second).
            tracing::debug_span!("http", method = %request.method(), path = %request.uri().path())
        })
        // 503 while shutting down and /readyz's 503 are expected answers, not errors.
        .on_failure(DefaultOnFailure::new().level(Level::DEBUG));
    Router::new()
        .route(webhook_path, post(webhook))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AppState(Arc::new(state)))
        .layer(
            ServiceBuilder::new()
                .layer(trace)
                .layer(layer_fn(|inner| RefuseDeclaredOversize { inner }))
                .map_response(IntoResponse::into_response)
                .layer(RequestBodyLimitLayer::new(MAX_BODY)),
        )
}

/// Refuses a declared oversize before RequestBodyLimitLayer does, because that layer answers
/// without reading the body, and closing a socket with unread data resets the connection
/// before the client can read the 413. Here the body is read and dropped (bounded) first.
/// A plain service rather than `middleware::from_fn`, which boxes a future and the rest of
/// the stack on every request.
#[derive(Clone)]
struct RefuseDeclaredOversize<S> {
    inner: S,
}

impl<S> Service<Request> for RefuseDeclaredOversize<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<BoxFuture<'static, Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if declared.is_some_and(|len| len > MAX_BODY) {
            return Either::Left(Box::pin(async move {
                discard(request.into_body()).await;
                Ok(reject(StatusCode::PAYLOAD_TOO_LARGE, "too large"))
            }));
        }
        Either::Right(self.inner.call(request))
    }
}

/// Reads and drops (a bounded amount of) a refused body, so the client gets to read the
/// 413 instead of a connection reset.
async fn discard(body: Body) {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut seen = 0usize;
    let drain = async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len();
            if seen > 16 * MAX_BODY {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
}

/// Raised once shutdown starts: the webhook reads an atomic, because
/// `CancellationToken::is_cancelled` takes a mutex that every request would contend for;
/// whatever awaits the stop gets the token, cancelled in the same call.
#[derive(Clone, Default)]
pub struct StopFlag {
    raised: Arc<AtomicBool>,
    token: CancellationToken,
}

impl StopFlag {
    pub fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        self.token.cancel();
    }

    pub fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    /// The same stop, to await.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }
}

fn reject(status: StatusCode, reason: &'static str) -> Response {
    metrics::counter!("subgpt_updates_rejected_total", "reason" => reason).increment(1);
    (status, reason).into_response()
}

fn secret_matches(headers: &HeaderMap, secret: &Secret) -> bool {
    let Some(given) = headers.get(SECRET_HEADER) else {
        return false;
    };
    given.as_bytes().ct_eq(secret.expose().as_bytes()).into()
}

async fn webhook(State(AppState(state)): State<AppState>, request: Request) -> Response {
    if state.stopping.is_raised() {
        return reject(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    // The secret is checked before a byte of the body is read.
    if !secret_matches(request.headers(), &state.secret) {
        return reject(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // A body without Content-Length that crosses the limit fails here (RequestBodyLimitLayer).
    let body = match to_bytes(request.into_body(), MAX_BODY).await {
        Ok(body) => body,
        Err(_) => return reject(StatusCode::PAYLOAD_TOO_LARGE, "too large"),
    };
    // Updates the bot does not handle (groups, channels, other kinds) are told apart by their
    // head, without building them.
    if serde_json::from_slice::<UpdateHead>(&body).is_ok_and(|head| !head.handled()) {
        state.intake.ignored();
        return StatusCode::OK.into_response();
    }
    accept(&state, body).await
}

/// Parses `body` and hands the update to the intake: 200 once it is committed, 400 for a body
/// that is not an update, 500 when the inbox cannot take it (Telegram sends it again).
async fn accept(state: &ServerState, body: Bytes) -> Response {
    let update: Update = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(_) => return reject(StatusCode::BAD_REQUEST, "not an update"),
    };
    match state.intake.accept(update).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(_) => reject(StatusCode::INTERNAL_SERVER_ERROR, "inbox unavailable"),
    }
}

async fn readyz(State(AppState(state)): State<AppState>) -> Response {
    let mut failed = serde_json::Map::new();
    if let Err(e) = tokio::time::timeout(Duration::from_secs(2), state.usage.ping())
        .await
        .map_err(|_| "timed out".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        failed.insert("sqlite".into(), json!(e));
    }
    if let Err(e) = tokio::time::timeout(Duration::from_secs(2), state.state.ping())
        .await
        .map_err(|_| "timed out".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        failed.insert("state".into(), json!(e));
    }
    if state.kv.is_redis() {
        let result = tokio::time::timeout(Duration::from_secs(2), state.kv.ping()).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failed.insert("redis".into(), json!(e.to_string()));
            }
            Err(_) => {
                failed.insert("redis".into(), json!("timed out"));
            }
        }
    }
    if failed.is_empty() {
        (StatusCode::OK, Json(json!({"status": "ready"}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "failed": failed})),
        )
            .into_response()
    }
}

async fn metrics_text(State(AppState(state)): State<AppState>) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(Body::from(state.metrics.render()))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
