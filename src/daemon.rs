//! The daemon: open the store, connect the sink, build the pollers, poll.
//!
//! [`run`] takes its shutdown as an argument (as mini-redis's `server::run`
//! does), so tests run the real daemon in-process against a real
//! nats-server, a real SQLite file and the simulators, and stop it the way
//! SIGTERM does.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::checkpoint::{Store, StoreError};
use crate::config::{Config, NatsConfig};
use crate::http::RetryPolicy;
use crate::internal_events::SinkUnavailable;
use crate::poller::{Poll, PollError, PollReport, PollerDeps, build_all};
use crate::publish::{NatsSink, PublishError, Sink, StdoutSink};
use crate::schedule::{self, Scheduled};

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The checkpoint store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// NATS could not be set up.
    #[error(transparent)]
    Sink(#[from] PublishError),
    /// A source could not be built.
    #[error("{0}")]
    Source(String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(String),
    /// Shutdown came before the daemon was ready.
    #[error("shut down before NATS was reachable")]
    Cancelled,
}

/// How to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Poll on schedule until shutdown.
    #[default]
    Forever,
    /// Poll every source once and return.
    Once,
}

/// Each source's result, for `run --once`.
pub type PollResults = Vec<(String, Result<PollReport, PollError>)>;

/// Run `config` until `shutdown` (or, with [`Mode::Once`], one poll per source).
/// `sink` overrides the configured destination (the demo and tests use it).
pub async fn run(
    config: &Config,
    sink: Option<Sink>,
    mode: Mode,
    shutdown: CancellationToken,
) -> Result<PollResults, DaemonError> {
    let store = Store::open(&config.state.path)?;
    let sink = match sink {
        Some(sink) => sink,
        None => connect_sink(config, &shutdown).await?,
    };
    let deps = PollerDeps { store, sink, client: http_client()?, retry: RetryPolicy::default() };
    let pollers = build_all(&config.sources, &deps).map_err(DaemonError::Source)?;
    tracing::info!(message = "alertd started.", sources = pollers.len(), state = %config.state.path.display());
    match mode {
        Mode::Once => Ok(schedule::run_once(&pollers, &shutdown).await),
        Mode::Forever => {
            let scheduled = schedule_all(config, pollers);
            schedule::run(scheduled, shutdown).await;
            tracing::info!(message = "alertd stopped.");
            Ok(Vec::new())
        }
    }
}

fn schedule_all(config: &Config, pollers: Vec<Arc<dyn Poll>>) -> Vec<Scheduled> {
    pollers
        .into_iter()
        .filter_map(|poller| {
            let source = config.sources.iter().find(|s| s.name() == poller.name())?;
            Some(Scheduled { poller, schedule: source.schedule.clone(), jitter: source.jitter })
        })
        .collect()
}

/// The configured sink: JetStream if `[nats]` is set, else stdout.
/// Waits (with backoff, until `shutdown`) for NATS to be reachable.
pub async fn connect_sink(config: &Config, shutdown: &CancellationToken) -> Result<Sink, DaemonError> {
    let Some(nats) = &config.nats else {
        return Ok(Sink::Stdout(StdoutSink::default()));
    };
    let sink = NatsSink::connect(nats, &client_name()).await?;
    let mut wait = Duration::from_millis(500);
    loop {
        match ensure_stream(&sink, nats).await {
            Ok(()) => return Ok(Sink::Nats(Box::new(sink))),
            Err(error) => {
                SinkUnavailable { error: &error, retry_in: wait }.emit();
                tokio::select! {
                    () = shutdown.cancelled() => return Err(DaemonError::Cancelled),
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

async fn ensure_stream(sink: &NatsSink, nats: &NatsConfig) -> Result<(), PublishError> {
    if let Some(warning) = sink.ensure_stream(nats).await? {
        tracing::warn!(message = "JetStream stream settings weaken delivery guarantees.", %warning);
    }
    Ok(())
}

/// The HTTP client every poller shares.
pub fn http_client() -> Result<reqwest::Client, DaemonError> {
    reqwest::Client::builder()
        .user_agent(client_name())
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| DaemonError::Http(e.to_string()))
}

/// `alertd/<version>`, as the User-Agent and the NATS client name.
pub fn client_name() -> String {
    format!("alertd/{}", env!("CARGO_PKG_VERSION"))
}
