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
use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::telemetry::Telemetry;

/// Serve `/metrics` and `/healthz` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
) {
    let app =
        Router::new().route("/metrics", get(metrics)).route("/healthz", get(healthz)).with_state(telemetry);
    if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await {
        tracing::error!(message = "Metrics listener failed.", %error);
    }
}

/// Bind the listener (errors name the address).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("metrics listener {addr}: {e}")))
}

async fn metrics(State(t): State<Arc<Telemetry>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], t.render())
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
