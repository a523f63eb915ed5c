//! The peer a user would write instead of alertd: `benches/peer/poller.py`
//! (requests + nats-py, acks awaited per page, SQLite cursor), run as its
//! own process against a CanaryGuard simulator and the same nats-server.

use std::process::{Command, Stdio};
use std::time::Instant;

use alertd::sim::{SimConfig, SimVendor, Simulator};
use async_nats::jetstream::context::Context;

use crate::{common, die_with_parent, support};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peer/poller.py");
const STREAM: &str = "PEER";

/// The peer's figures.
pub struct PeerRun {
    pub events: usize,
    pub secs: f64,
    pub cpu_per_100k: f64,
    pub rss_mib: f64,
    pub message_bytes: usize,
}

impl PeerRun {
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.secs
    }
}

/// Backfills `items` CanaryGuard alerts with the Python poller; `None` (and
/// a message saying why) when its interpreter cannot import its packages.
pub async fn run(js: &Context, nats: &common::NatsServer, items: usize) -> Option<PeerRun> {
    let python = std::env::var("ALERTD_BENCH_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let importable = Command::new(&python)
        .args(["-c", "import requests, nats"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !importable {
        println!(
            "e2e: Python peer SKIPPED: `{python}` cannot import requests and nats (nats-py); \
             scripts/bench-e2e installs them into target/peer-venv with pip (requests, nats-py==2.16.0) when it can"
        );
        return None;
    }
    let sim = Simulator::start(
        SimVendor::CanaryGuard,
        SimConfig { initial_items: items, ..SimConfig::for_vendor(SimVendor::CanaryGuard) },
    )
    .await
    .expect("simulator starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(&python);
    command
        .arg(SCRIPT)
        .args([
            "--base-url",
            &sim.base_url(),
            "--nats",
            &nats.url(),
            "--stream",
            STREAM,
            "--page-size",
            "100",
        ])
        .arg("--state")
        .arg(dir.path().join("poller.sqlite"))
        .env("CANARYGUARD_API_KEY", SimVendor::CanaryGuard.default_api_key())
        .stdout(Stdio::null());
    die_with_parent(&mut command);
    let started = Instant::now();
    let child = command.spawn().expect("spawn the Python peer");
    let (code, usage) = tokio::task::spawn_blocking(move || support::wait_with_usage(child))
        .await
        .expect("the waiting thread does not panic");
    let secs = started.elapsed().as_secs_f64();
    sim.shutdown().await;
    assert_eq!(code, 0, "the Python peer failed");
    let mut stream = js.get_stream(STREAM).await.expect("the peer created its stream");
    let state = stream.info().await.expect("stream info").state.clone();
    let stored = state.messages as usize;
    js.delete_stream(STREAM).await.expect("delete the peer's stream");
    assert_eq!(stored, items, "the peer stored every item once");
    Some(PeerRun {
        events: stored,
        secs,
        cpu_per_100k: usage.cpu_secs * 100_000.0 / stored.max(1) as f64,
        rss_mib: usage.max_rss_mib,
        message_bytes: (state.bytes as usize / stored.max(1)).max(1),
    })
}
