//! `alertd demo`: the whole pipeline on a machine with nothing installed.
//!
//! Starts the vendor simulators in-process on loopback, builds a config that
//! points one source at each, and runs the real daemon against them with a
//! throw-away checkpoint store: events go to stdout as JSON lines, or to
//! JetStream with `--nats URL`.

use std::time::Duration;

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::config::{
    Config, CredentialSource, NatsConfig, Schedule, ServiceConfig, SourceConfig, StateConfig, StorageKind,
};
use crate::daemon::{self, DaemonError, Mode, PollResults};
use crate::publish::{Format, Sink, StdoutSink};
use crate::sim::{SimConfig, Simulator};

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Publish to this NATS server instead of stdout.
    pub nats: Option<String>,
    /// Keep polling (new alerts keep arriving) until interrupted.
    pub follow: bool,
    /// Items each simulator starts with.
    pub items: usize,
    /// Seed of the simulated data.
    pub seed: u64,
    /// What to publish or print for each event.
    pub formats: Vec<Format>,
}

/// Run the demo until done (or `shutdown`, with `follow`).
pub async fn run(options: DemoOptions, shutdown: CancellationToken) -> Result<PollResults, DaemonError> {
    let state_dir =
        tempfile::tempdir().map_err(|e| DaemonError::Source(format!("temporary state directory: {e}")))?;
    let mut sims = Vec::new();
    let mut sources = Vec::new();
    for entry in crate::sim::SIMULATORS {
        let (vendor, key) = (&entry.vendor, entry.key);
        let config = SimConfig {
            seed: options.seed,
            initial_items: options.items,
            arrival_every: options.follow.then_some(Duration::from_secs(2)),
            update_every: options.follow.then_some(Duration::from_secs(5)),
            ..SimConfig::for_vendor(*vendor)
        };
        let api_key = config.api_key.clone();
        let sim = Simulator::start(*vendor, config)
            .await
            .map_err(|e| DaemonError::Source(format!("starting the {key} simulator: {e}")))?;
        sources.push(demo_source(key, &sim.base_url(), api_key.clone())?);
        if *vendor == crate::sim::SimVendor::CanaryGuard {
            sources.push(declarative_source(&sim.base_url(), api_key)?);
        }
        sims.push(sim);
    }
    let config = Config {
        nats: options.nats.map(|url| NatsConfig {
            url: url.into(),
            stream: "ALERTD_DEMO".into(),
            subject_prefix: "alertd".into(),
            duplicate_window: Duration::from_secs(2 * 3600),
            ack_timeout: Duration::from_secs(10),
            credentials_file: None,
            token: None,
            user: None,
            password: None,
            tls_ca_file: None,
            storage: StorageKind::File,
            replicas: 1,
            formats: options.formats.clone(),
        }),
        state: StateConfig { path: state_dir.path().join("alertd.sqlite"), ..StateConfig::default() },
        service: ServiceConfig { listen: None },
        cluster: Default::default(),
        sources,
    };
    let mode = if options.follow { Mode::Forever } else { Mode::Once };
    let sink =
        config.nats.is_none().then(|| Sink::Stdout(StdoutSink::default().with_formats(&options.formats)));
    let results = daemon::run(&config, sink, mode, shutdown).await;
    for sim in sims {
        sim.shutdown().await;
    }
    results
}

/// The declarative definition of `config/http/canaryguard.toml`, polling
/// the CanaryGuard simulator beside the built-in vendor's source: the demo
/// shows a `vendor = "http"` source at work (`demo-http`).
const DECLARATIVE: &str = include_str!("../config/http/canaryguard.toml");

fn declarative_source(base_url: &str, api_key: String) -> Result<SourceConfig, DaemonError> {
    let mut text = String::new();
    let mut in_source = false;
    for line in DECLARATIVE.lines() {
        if line.starts_with('[') {
            in_source = line.trim() == "[[source]]";
        }
        match line.split('=').next().map(str::trim).filter(|_| in_source) {
            Some("name") => text.push_str("name = \"demo-http\"\n"),
            Some("base_url") => text.push_str(&format!("base_url = \"{base_url}\"\n")),
            Some("credential") => text.push_str(
                "credential = { env = \"UNUSED\" }\ninitial_lookback = \"72h\"\nlag = \"1s\"\njitter = \"0s\"\n",
            ),
            _ => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    let mut config = crate::registry::parse(&text, "config/http/canaryguard.toml")
        .map_err(|e| DaemonError::Source(e.to_string()))?;
    let mut source = config.sources.remove(0);
    source.credential = CredentialSource::Inline(SecretString::from(api_key));
    source.schedule = Schedule::Every(Duration::from_secs(5));
    Ok(source)
}

fn demo_source(vendor: &str, base_url: &str, api_key: String) -> Result<SourceConfig, DaemonError> {
    let text = format!(
        "[[source]]\nvendor = \"{vendor}\"\nname = \"demo-{vendor}\"\nbase_url = \"{base_url}\"\n\
         credential = {{ env = \"UNUSED\" }}\ninitial_lookback = \"72h\"\nlag = \"1s\"\njitter = \"0s\"\n"
    );
    let mut config = crate::registry::parse(&text, "demo").map_err(|e| DaemonError::Source(e.to_string()))?;
    let mut source = config.sources.remove(0);
    source.credential = CredentialSource::Inline(SecretString::from(api_key));
    source.schedule = Schedule::Every(Duration::from_secs(5));
    Ok(source)
}
