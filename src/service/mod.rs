//! Running as a service: the HTTP listener for `/metrics` and `/healthz`,
//! and systemd's notification protocol (READY, STOPPING, WATCHDOG).
//!
//! READY=1 is sent once the checkpoint store is open and NATS is reachable,
//! so `systemctl start` returns when alertd can deliver. WATCHDOG=1 is sent
//! at half the unit's `WatchdogSec` while no source's poll is stalled (no
//! HTTP answer and no page for longer than its stall bound): a hung task is
//! what a restart cures. A vendor that is down is not a reason to restart,
//! so it shows in `/healthz` and the metrics instead.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use sd_notify::NotifyState;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::telemetry::Telemetry;

/// What one client may cost the listener. It answers two small GETs, for
/// a Prometheus scraper and a health probe; anything that holds a
/// connection open without asking is closed, and the number of connections
/// is capped, so a client (or a port scanner, or a slowloris) cannot make
/// the daemon run out of file descriptors or memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once. Further ones wait in the kernel's accept
    /// queue until one closes (they are not refused: a scraper arriving
    /// while the cap is reached is answered late, not failed).
    pub max_connections: usize,
    /// A request's headers must arrive within this. It is also the idle
    /// (keep-alive) timeout: hyper starts the same timer while waiting for
    /// the next request on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// No connection lives longer than this, whatever it does; it is then
    /// asked to close and, after [`Limits::close_grace`], dropped.
    pub max_connection_age: Duration,
    /// How long a connection may take to finish its response once asked
    /// to close (at `max_connection_age` or shutdown).
    pub close_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            header_read_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(60),
            close_grace: Duration::from_secs(5),
        }
    }
}

/// Serve `/metrics` and `/healthz` on `listener` until `shutdown`, with the
/// default [`Limits`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
) {
    serve_with(listener, telemetry, Limits::default(), shutdown).await;
}

/// Serve `/metrics` and `/healthz` on `listener` until `shutdown`.
///
/// `axum::serve` has no header timeout and no connection cap, so each
/// connection is served here with hyper's HTTP/1 builder: a semaphore
/// permit is taken before `accept`, the header read timeout needs a timer
/// (without one hyper silently disables it), and a deadline bounds every
/// connection's life.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    telemetry: Arc<Telemetry>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    if let Ok(addr) = listener.local_addr()
        && !addr.ip().is_loopback()
    {
        tracing::warn!(
            message = "The metrics listener is not on loopback: whoever can reach it reads /metrics (every source and vendor name) and /healthz (each source's last error).",
            listen = %addr,
        );
    }
    let app =
        Router::new().route("/metrics", get(metrics)).route("/healthz", get(healthz)).with_state(telemetry);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    loop {
        // The permit first: while the cap is reached, nothing is accepted
        // and new connections wait in the kernel's queue, costing no fd here.
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
        };
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    // EMFILE and friends: wait instead of spinning on a
                    // listener that stays readable.
                    tracing::warn!(message = "Metrics listener: accept failed.", %error);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone());
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            serve_connection(stream, service, limits, shutdown).await;
            drop(permit);
        });
    }
    connections.close();
    // Each connection closes within `close_grace` of the shutdown.
    connections.wait().await;
}

/// One connection, bounded by `limits`, until it ends, ages out or `shutdown`.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    service: TowerToHyperService<Router>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper's minimum: a request's head is small; a bigger one is refused.
        .max_buf_size(8192);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = tokio::time::sleep(limits.max_connection_age) => {
            connection.as_mut().graceful_shutdown();
            tokio::time::timeout(limits.close_grace, connection.as_mut()).await.unwrap_or(Ok(()))
        }
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::time::timeout(limits.close_grace, connection.as_mut()).await.unwrap_or(Ok(()))
        }
    };
    if let Err(error) = result {
        // Timeouts, resets and garbage from clients: theirs, not ours.
        tracing::debug!(message = "Metrics connection ended with an error.", %error);
    }
}

/// Bind the listener (errors name the address).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("metrics listener {addr}: {e}")))
}

/// OpenMetrics when the scraper asks for it (Prometheus does), else the
/// Prometheus text format.
async fn metrics(State(t): State<Arc<Telemetry>>, headers: axum::http::HeaderMap) -> impl IntoResponse {
    let open = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if open {
        (
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            t.render_openmetrics(),
        )
    } else {
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], t.render())
    }
}

async fn healthz(State(t): State<Arc<Telemetry>>) -> impl IntoResponse {
    let bad = t.health.unhealthy(chrono::Utc::now());
    let sources: serde_json::Map<String, serde_json::Value> = t
        .health
        .snapshot()
        .into_iter()
        .map(|(name, h)| {
            let problem = bad.iter().find(|(n, _)| n == &name).map(|(_, why)| why.clone());
            let value = serde_json::json!({
                "vendor": h.vendor,
                "healthy": problem.is_none(),
                "last_success": h.last_success,
                "last_error": h.last_error,
                "problem": problem,
            });
            (name, value)
        })
        .collect();
    let status = if bad.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body =
        serde_json::json!({ "status": if bad.is_empty() { "ok" } else { "unhealthy" }, "sources": sources });
    (status, axum::Json(body))
}

/// Tell systemd alertd is ready (no-op outside systemd).
pub fn notify_ready() {
    notify(&[NotifyState::Ready, NotifyState::Status("polling")]);
}

/// Tell systemd alertd is reloading its configuration (no-op outside
/// systemd): `RELOADING=1` with the `MONOTONIC_USEC` `Type=notify-reload`
/// requires; [`notify_ready`] ends the reload.
pub fn notify_reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now, NotifyState::Status("reloading the configuration")]),
        Err(error) => {
            tracing::warn!(message = "systemd notification failed: no monotonic clock.", %error);
            notify(&[NotifyState::Reloading]);
        }
    }
}

/// Tell systemd alertd is stopping (no-op outside systemd).
pub fn notify_stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("finishing the pages in flight")]);
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(message = "systemd notification failed.", %error);
    }
}

/// Feed systemd's watchdog while no source is stalled, until `shutdown`.
/// Does nothing unless systemd enabled the watchdog for this process.
pub async fn watchdog(telemetry: Arc<Telemetry>, shutdown: CancellationToken) {
    let Some(timeout) = sd_notify::watchdog_enabled() else { return };
    let every = (timeout / 2).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let stalled = telemetry.health.stalled(chrono::Utc::now());
        if stalled.is_empty() {
            notify(&[NotifyState::Watchdog]);
        } else {
            tracing::error!(
                message = "Sources are stalled; no longer feeding the systemd watchdog.",
                sources = %stalled.join(","),
            );
        }
    }
}
