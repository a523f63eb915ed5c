//! `docs/examples/siem_subscriber.py` (nats-py, durable pull consumer, ack
//! after its own write) against a real nats-server filled by daemon runs:
//! every event written once; a restart resumes without losing or
//! re-writing; a crash between write and ack is redelivered and not
//! written twice. Skipped when nats-py is not installed (`scripts/test`
//! installs it).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use alertd::sim::{CANARYGUARD_DEMO_KEY, SimConfig, SimVendor, Simulator};

use common::{NatsServer, config};

fn nats_py_available() -> bool {
    Command::new("python3").args(["-c", "import nats"]).output().is_ok_and(|o| o.status.success())
}

fn subscriber(url: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/siem_subscriber.py");
    Command::new("python3")
        .arg(script)
        .args([
            "--nats",
            url,
            "--durable",
            "siem-test",
            "--ack-wait",
            "2",
            "--idle-exit",
            "4",
            "--batch",
            "7",
        ])
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("python3 runs")
}

/// How often each event id is in the output file.
fn written(out: &Path) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for line in std::fs::read_to_string(out).unwrap_or_default().lines() {
        let e: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        *counts.entry(e["id"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    counts
}

fn stream_ids(messages: &[common::Stored]) -> Vec<String> {
    messages.iter().map(|m| m.payload["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_subscriber_writes_every_event_once_across_restarts_and_crashes() {
    if !nats_py_available() {
        eprintln!(
            "SKIP: python3 cannot import nats (pip install nats-py); the SIEM subscriber example is not tested"
        );
        return;
    }
    let nats = NatsServer::start();
    let sim = Simulator::start(
        SimVendor::CanaryGuard,
        SimConfig { seed: 2, initial_items: 30, ..SimConfig::default() },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), Some(&nats.url()), "canaryguard", &sim.base_url(), CANARYGUARD_DEMO_KEY, "");
    let out = dir.path().join("siem.jsonl");
    common::poll::run_once(&cfg).await.expect("first poll");

    // A crash after writing 14 events, before acking them.
    let crashed = subscriber(&nats.url(), &out, &["--exit-before-ack-after", "14"]);
    assert_eq!(crashed.status.code(), Some(3), "{}", String::from_utf8_lossy(&crashed.stderr));
    assert_eq!(written(&out).len(), 14);

    // The restart gets the unacked batch again (after ack_wait) and the rest.
    let first = subscriber(&nats.url(), &out, &[]);
    let log = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success() && log.contains("written 16 new events (7 redelivered)"), "{log}");
    let counts = written(&out);
    let ids = stream_ids(&common::stream_messages(&nats.url(), "ALERTD").await);
    assert_eq!(ids.len(), 30);
    assert!(ids.iter().all(|id| counts.get(id) == Some(&1)), "every event written exactly once: {counts:?}");

    // New events, then a plain restart: only the new ones are written.
    sim.add_items(9);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    common::poll::run_once(&cfg).await.expect("second poll");
    let second = subscriber(&nats.url(), &out, &[]);
    let log = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success() && log.contains("written 9 new events (0 redelivered)"), "{log}");
    let counts = written(&out);
    let ids = stream_ids(&common::stream_messages(&nats.url(), "ALERTD").await);
    assert_eq!(ids.len(), 39);
    assert_eq!(counts.len(), 39);
    assert!(ids.iter().all(|id| counts.get(id) == Some(&1)), "{counts:?}");
    sim.shutdown().await;
}
