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
use crate::cluster::{self, LeaseError, LeaseTable, Slot};
use crate::config::{Config, NatsConfig, StateBackend};
use crate::http::{RetryPolicy, client_name};
use crate::internal_events::{SinkUnavailable, SourceScheduled};
use crate::poller::{Poll, PollError, PollReport, PollerDeps};
use crate::publish::{NatsSink, PublishError, Sink, StdoutSink};
use crate::registry::build_all;
use crate::schedule::{self, Scheduled};
use crate::service;
use crate::telemetry::Telemetry;

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
    /// The metrics listener could not bind.
    #[error(transparent)]
    Listen(#[from] std::io::Error),
    /// Shutdown came before the daemon was ready.
    #[error("shut down before NATS was reachable")]
    Cancelled,
    /// The lease bucket could not be set up.
    #[error(transparent)]
    Cluster(#[from] LeaseError),
    /// `run --once` ignores leases, so it refuses to run beside a cluster.
    #[error(
        "`run --once` polls every source without taking its lease; with [cluster] enabled, run `alertd run` (or disable [cluster] for a one-off poll)"
    )]
    OnceInCluster,
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
    let clustered = config.cluster.is_enabled();
    if clustered && mode == Mode::Once {
        return Err(DaemonError::OnceInCluster);
    }
    let instance = config.cluster.instance_name();
    // A local file is checked before waiting for NATS: fail fast.
    let local = match config.state.backend.get_ref() {
        StateBackend::Sqlite => Some(Store::open(&config.state.path)?),
        StateBackend::NatsKv => None,
    };
    let sink = match sink {
        Some(sink) => sink,
        None => connect_sink(config, &shutdown).await?,
    };
    let store = match local {
        Some(store) => store,
        None => open_kv_store(config, Some(&sink), &instance).await?,
    };
    let telemetry = Arc::new(Telemetry::default());
    let retry = RetryPolicy::default();
    let deps = PollerDeps {
        store,
        sink: sink.clone(),
        client: http_client(clustered.then_some(instance.as_str()))?,
        retry,
        telemetry: Arc::clone(&telemetry),
        instance: clustered.then(|| Arc::from(instance.as_str())),
    };
    let pollers = build_all(&config.sources, &deps).map_err(DaemonError::Source)?;
    let mut scheduled = schedule_all(config, pollers, &telemetry, retry, &shutdown);
    let cluster_task = if clustered {
        let table = open_lease_table(config, Some(&sink), &instance).await?;
        let names: Vec<String> = scheduled.iter().map(|s| s.poller.name().to_owned()).collect();
        let (slots, task) = cluster::start(table, names, Arc::clone(&telemetry), shutdown.clone());
        for (s, slot) in scheduled.iter_mut().zip(slots) {
            s.slot = slot;
        }
        tracing::info!(message = "Sharing sources with the cluster.", instance = %instance, bucket = %config.cluster.bucket);
        Some(tokio::spawn(task))
    } else {
        None
    };
    tracing::info!(message = "alertd started.", sources = scheduled.len(), state = %deps.store.describe());
    match mode {
        Mode::Once => {
            let pollers: Vec<_> = scheduled.into_iter().map(|s| s.poller).collect();
            Ok(schedule::run_once(&pollers, &shutdown).await)
        }
        Mode::Forever => {
            let server = match config.service.listen {
                Some(addr) => {
                    let listener = service::bind(addr).await?;
                    let local = listener.local_addr()?;
                    tracing::info!(message = "Serving /metrics and /healthz.", listen = %local);
                    Some(tokio::spawn(service::serve(listener, Arc::clone(&telemetry), shutdown.clone())))
                }
                None => None,
            };
            let watchdog = tokio::spawn(service::watchdog(Arc::clone(&telemetry), shutdown.clone()));
            service::notify_ready();
            schedule::run(scheduled, shutdown.clone()).await;
            if let Some(task) = cluster_task {
                // Releases the leases, now that every poll has stopped.
                let _ = task.await;
            }
            service::notify_stopping();
            shutdown.cancel();
            let _ = watchdog.await;
            if let Some(server) = server {
                let _ = server.await;
            }
            tracing::info!(message = "alertd stopped.");
            Ok(Vec::new())
        }
    }
}

/// Each poller with its timing, registered for health tracking.
fn schedule_all(
    config: &Config,
    pollers: Vec<Arc<dyn Poll>>,
    telemetry: &Arc<Telemetry>,
    retry: RetryPolicy,
    shutdown: &CancellationToken,
) -> Vec<Scheduled> {
    let now = chrono::Utc::now();
    pollers
        .into_iter()
        .filter_map(|poller| {
            let source = config.sources.iter().find(|s| s.name() == poller.name())?;
            // A poll is stuck when no request has been answered for longer
            // than every retry of one request could take.
            let attempts = u32::try_from(source.retries).unwrap_or(u32::MAX).saturating_add(1);
            let stall_after =
                (source.timeout + retry.max_delay).saturating_mul(attempts) + Duration::from_secs(60);
            let interval = source.schedule.nominal_interval(now);
            SourceScheduled {
                source: poller.name(),
                vendor: poller.vendor(),
                interval,
                stall_after,
                active: !config.cluster.is_enabled(),
                expiry_warning: source.credential_expiry_warning,
            }
            .emit(telemetry);
            Some(Scheduled {
                poller,
                schedule: source.schedule.clone(),
                jitter: source.jitter,
                telemetry: Arc::clone(telemetry),
                slot: Slot::always(shutdown),
            })
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

/// The configured cursor store, for commands outside the daemon
/// (`alertd cursors`): the SQLite file, or the KV bucket on `[nats]`.
pub async fn open_store(config: &Config) -> Result<Store, DaemonError> {
    match config.state.backend.get_ref() {
        StateBackend::Sqlite => Ok(Store::open(&config.state.path)?),
        StateBackend::NatsKv => open_kv_store(config, None, &config.cluster.instance_name()).await,
    }
}

/// The lease bucket of `[cluster]`, for `alertd cluster status` and `check`.
pub async fn open_leases(config: &Config) -> Result<LeaseTable, DaemonError> {
    open_lease_table(config, None, &config.cluster.instance_name()).await
}

/// The cursor store in a JetStream KV bucket.
async fn open_kv_store(config: &Config, sink: Option<&Sink>, instance: &str) -> Result<Store, DaemonError> {
    let (js, nats) = jetstream_for(config, sink, instance).await?;
    Ok(Store::open_kv(&js, &config.state.bucket, nats.replicas, instance).await?)
}

async fn open_lease_table(
    config: &Config,
    sink: Option<&Sink>,
    instance: &str,
) -> Result<LeaseTable, DaemonError> {
    let (js, nats) = jetstream_for(config, sink, instance).await?;
    let cluster = &config.cluster;
    Ok(LeaseTable::open(&js, &cluster.bucket, cluster.lease_ttl, nats.replicas, instance).await?)
}

/// A JetStream context for the KV buckets: the sink's connection when the
/// sink is NATS, else a connection of its own to `[nats]`.
async fn jetstream_for<'c>(
    config: &'c Config,
    sink: Option<&Sink>,
    instance: &str,
) -> Result<(async_nats::jetstream::Context, &'c NatsConfig), DaemonError> {
    let nats = config
        .nats
        .as_ref()
        .ok_or(DaemonError::Source("the KV buckets live on the NATS servers: add a [nats] section".into()))?;
    let js = match sink {
        Some(Sink::Nats(sink)) => sink.jetstream(),
        _ => NatsSink::connect(nats, &format!("{} ({instance})", client_name())).await?.jetstream(),
    };
    Ok((js, nats))
}

/// The HTTP client every poller (and `alertd check`) shares; its
/// User-Agent names `instance` when given (`[cluster]`). It follows
/// redirects only within the request's origin ([`crate::http::redirect`]),
/// so no vendor's key reaches another host, and sends no `Referer`, which
/// would repeat a URL whose query may hold a key.
pub fn http_client(instance: Option<&str>) -> Result<reqwest::Client, DaemonError> {
    let user_agent = match instance {
        Some(name) => format!("{} (instance {name})", client_name()),
        None => client_name(),
    };
    reqwest::Client::builder()
        .user_agent(user_agent)
        .connect_timeout(Duration::from_secs(10))
        .redirect(crate::http::redirect::policy())
        .referer(false)
        .build()
        .map_err(|e| DaemonError::Http(e.to_string()))
}
