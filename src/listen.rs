//! The HTTP listener of `serve`: the axum router on hyper's HTTP/1 server, with the
//! header-read time-out that `axum::serve` leaves unset (hyper enforces it only when a timer
//! is given). A client that trickles its headers (slow-loris) is cut off after
//! `HTTP_HEADER_TIMEOUT_SECS`; the whole-request limit is the router's `TimeoutLayer`.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutLayer;

/// How long open connections may take to finish once the listener stops.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The time-outs of `serve`'s HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct HttpTimeouts {
    /// Request headers must be in within this time, else the connection is closed.
    pub header_read: Duration,
    /// A whole request (body included) must be answered within this time, else 408.
    pub request: Duration,
}

/// Serves `router` on `listener` until `stop` is cancelled, then lets open connections finish
/// their request (at most [`CLOSE_GRACE`]).
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    timeouts: HttpTimeouts,
    stop: CancellationToken,
) {
    // Around the router as a whole: `Router::layer` would wrap every route in one more boxed
    // service, cloned on every request.
    let service = ServiceBuilder::new()
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeouts.request,
        ))
        .service(router);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read);
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(service.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // Header time-outs and clients going away end up here; not worth a warning.
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(CLOSE_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("some connections were still open when the listener closed");
    }
}
