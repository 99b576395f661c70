//! The floor for webhook ingest: a bare axum handler that reads the body and answers 200, on
//! the same route and address as `subgpt serve` (`WEBHOOK_PATH`, `BIND_ADDR`, same defaults
//! and body limit, and `/healthz`), so `wrk` can run against both side by side (see `examples/load.rs`).
//!
//!     BIND_ADDR=127.0.0.1:18090 cargo run --release --example bare_webhook

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::StatusCode;
use axum::routing::{get, post};

/// The service's own body limit (`subgpt::server::MAX_BODY`).
const MAX_BODY: usize = subgpt::server::MAX_BODY;

async fn webhook(body: Body) -> StatusCode {
    match to_bytes(body, MAX_BODY).await {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::PAYLOAD_TOO_LARGE,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let path = std::env::var("WEBHOOK_PATH").unwrap_or_else(|_| "/webhook".into());
    let router = Router::new()
        .route(&path, post(webhook))
        .route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("bare webhook on http://{}{path}", listener.local_addr()?);
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
