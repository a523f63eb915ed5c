//! The daemon: open the store, connect the sink, build the pollers, poll.
//!
//! [`run`] takes its shutdown as an argument (as mini-redis's `server::run`
//! does), so tests run the real daemon in-process against a real
//! nats-server, a real SQLite file and the simulators, and stop it the way
//! SIGTERM does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::checkpoint::{Store, StoreError};
use crate::cluster::{self, LeaseError, LeaseTable, Slot};
use crate::config::{Config, NatsConfig, SourceConfig, StateBackend};
use crate::http::{RetryPolicy, client_name};
use crate::internal_events::{ConfigReloadFailed, ConfigReloaded, RestartRequired, SourceRemoved};
use crate::internal_events::{SinkUnavailable, SourceScheduled};
use crate::poller::{Poll, PollError, PollReport, PollerDeps};
use crate::publish::{NatsSink, PublishError, Sink, StdoutSink};
use crate::registry::build_all;
use crate::reload;
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
    run_reloadable(config, sink, mode, shutdown, None).await
}

/// [`run`], reloading the configuration each time `reloads` asks
/// ([`Reloads`]: SIGHUP in `alertd run`).
pub async fn run_reloadable(
    config: &Config,
    sink: Option<Sink>,
    mode: Mode,
    shutdown: CancellationToken,
    reloads: Option<Reloads>,
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
    if mode == Mode::Once {
        tracing::info!(message = "alertd started.", sources = pollers.len(), state = %deps.store.describe());
        return Ok(schedule::run_once(&pollers, &shutdown).await);
    }
    let (cluster, cluster_task) = if clustered {
        let table = open_lease_table(config, Some(&sink), &instance).await?;
        let (cluster, task) = cluster::start(table, Arc::clone(&telemetry), shutdown.clone());
        tracing::info!(message = "Sharing sources with the cluster.", instance = %instance, bucket = %config.cluster.bucket);
        (Some(cluster), Some(tokio::spawn(task)))
    } else {
        (None, None)
    };
    let mut fleet = Fleet {
        sources: schedule::Sources::default(),
        cluster,
        running: HashMap::new(),
        deps,
        telemetry: Arc::clone(&telemetry),
        clustered,
        shutdown: shutdown.clone(),
    };
    // Bound before any source starts: a taken port fails the start cleanly.
    let server = match config.service.listen {
        Some(addr) => {
            let listener = service::bind(addr).await?;
            let local = listener.local_addr()?;
            tracing::info!(message = "Serving /metrics and /healthz.", listen = %local);
            Some(tokio::spawn(service::serve(listener, Arc::clone(&telemetry), shutdown.clone())))
        }
        None => None,
    };
    for poller in pollers {
        if let Some(source) = config.sources.iter().find(|s| s.name() == poller.name()) {
            fleet.start(source, poller);
        }
    }
    tracing::info!(message = "alertd started.", sources = fleet.running.len(), state = %fleet.deps.store.describe());
    let watchdog = tokio::spawn(service::watchdog(Arc::clone(&telemetry), shutdown.clone()));
    service::notify_ready();
    if let Some(mut reloads) = reloads {
        let mut running = reload::Running::of(&reloads.raw);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                asked = reloads.signals.recv() => {
                    if asked.is_none() {
                        break;
                    }
                    service::notify_reloading();
                    let loaded = (reloads.load)();
                    fleet.reload(&reloads.file, loaded, &mut running).await;
                    service::notify_ready();
                }
            }
        }
    }
    shutdown.cancelled().await;
    fleet.sources.wait().await;
    if let Some(task) = cluster_task {
        // Releases the leases, now that every poll has stopped.
        let _ = task.await;
    }
    service::notify_stopping();
    let _ = watchdog.await;
    if let Some(server) = server {
        let _ = server.await;
    }
    tracing::info!(message = "alertd stopped.");
    Ok(Vec::new())
}

/// What re-reads the configuration: `signals` asks (SIGHUP), `load` reads
/// and checks `file` again, giving the configuration and its TOML table.
pub struct Reloads {
    /// The configuration file, for log lines.
    pub file: std::path::PathBuf,
    /// One message per reload asked.
    pub signals: tokio::sync::mpsc::Receiver<()>,
    /// Read and check the file (with the command line's overrides).
    pub load: Box<dyn Fn() -> Result<(Config, toml::Table), String> + Send + Sync>,
    /// The running configuration's TOML table, to tell what a reload changes.
    pub raw: toml::Table,
}

/// The daemon's sources, polling.
struct Fleet {
    sources: schedule::Sources,
    cluster: Option<cluster::Cluster>,
    /// Name → vendor of every polling source.
    running: HashMap<String, &'static str>,
    deps: PollerDeps,
    telemetry: Arc<Telemetry>,
    clustered: bool,
    shutdown: CancellationToken,
}

impl Fleet {
    /// Start polling `source` with `poller` (registered for health tracking,
    /// and with the cluster under `[cluster]`).
    fn start(&mut self, source: &SourceConfig, poller: Arc<dyn Poll>) {
        let now = chrono::Utc::now();
        let retry = self.deps.retry;
        // A poll is stuck when no request has been answered for longer
        // than every retry of one request could take.
        let attempts = u32::try_from(source.retries).unwrap_or(u32::MAX).saturating_add(1);
        let stall_after =
            (source.timeout + retry.max_delay).saturating_mul(attempts) + Duration::from_secs(60);
        SourceScheduled {
            source: poller.name(),
            vendor: poller.vendor(),
            interval: source.schedule.nominal_interval(now),
            stall_after,
            active: !self.clustered,
            expiry_warning: source.credential_expiry_warning,
        }
        .emit(&self.telemetry);
        let stop = self.shutdown.child_token();
        let slot = match self.cluster.as_mut() {
            Some(cluster) => cluster.add(poller.name()),
            None => Slot::always(&stop),
        };
        self.running.insert(poller.name().to_owned(), poller.vendor());
        let scheduled = Scheduled {
            poller,
            schedule: source.schedule.clone(),
            jitter: source.jitter,
            telemetry: Arc::clone(&self.telemetry),
            slot,
        };
        self.sources.start(scheduled, stop);
    }

    /// Stop the named sources after their pages in flight. `forget`: they
    /// are gone (release their leases, drop their metric series); else they
    /// restart at once with new settings (keeping lease and series).
    async fn stop(&mut self, names: &[String], forget: bool) {
        self.sources.stop(names).await;
        for name in names {
            if forget {
                if let Some(cluster) = self.cluster.as_mut() {
                    cluster.remove(name).await;
                }
                if let Some(vendor) = self.running.remove(name) {
                    SourceRemoved { source: name, vendor }.emit(&self.telemetry);
                }
            } else {
                self.running.remove(name);
            }
        }
    }

    /// Apply a reloaded configuration: nothing if it is invalid; else stop
    /// the removed sources, restart the changed ones, start the new ones,
    /// and leave the others alone. Sections that need a restart are kept.
    async fn reload(
        &mut self,
        file: &std::path::Path,
        loaded: Result<(Config, toml::Table), String>,
        running: &mut reload::Running,
    ) {
        let (config, raw) = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                ConfigReloadFailed { file, error: &error }.emit(&self.telemetry);
                return;
            }
        };
        let plan = running.plan(&raw);
        // Build every new poller before touching a running one: a source the
        // vendor refuses makes the whole reload invalid.
        let wanted: Vec<SourceConfig> = config
            .sources
            .iter()
            .filter(|s| plan.added.iter().chain(&plan.changed).any(|n| n == s.name()))
            .cloned()
            .collect();
        let pollers = match build_all(&wanted, &self.deps) {
            Ok(pollers) => pollers,
            Err(error) => {
                ConfigReloadFailed { file, error: &error }.emit(&self.telemetry);
                return;
            }
        };
        for section in &plan.refused {
            RestartRequired { section }.emit();
        }
        // A changed vendor is another source under the same name.
        let (gone, restart): (Vec<String>, Vec<String>) = {
            let mut gone = plan.removed.clone();
            let mut restart = Vec::new();
            for name in &plan.changed {
                let vendor_changed = wanted
                    .iter()
                    .find(|s| s.name() == name)
                    .is_some_and(|s| self.running.get(name).is_some_and(|v| *v != s.vendor()));
                if vendor_changed { gone.push(name.clone()) } else { restart.push(name.clone()) }
            }
            (gone, restart)
        };
        self.stop(&gone, true).await;
        self.stop(&restart, false).await;
        for poller in pollers {
            if let Some(source) = wanted.iter().find(|s| s.name() == poller.name()) {
                self.start(source, poller);
            }
        }
        running.apply(&raw);
        ConfigReloaded {
            file,
            added: &plan.added,
            removed: &plan.removed,
            changed: &plan.changed,
            unchanged: plan.unchanged,
        }
        .emit(&self.telemetry);
    }
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
