//! `alertd tail` against a real nats-server filled by a daemon run: filters,
//! replay from the start or a time, and new-messages-only by default. Stdout
//! is a pipe here, so tail prints JSON lines.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use alertd::sim::{CANARYGUARD_DEMO_KEY, SimConfig, SimVendor, Simulator};
use serde_json::Value;

use common::{NatsServer, alertd_bin, config, stream_messages};

/// A running `alertd tail`, its stdout lines and stderr lines as channels.
struct Tail {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: mpsc::Receiver<String>,
}

impl Tail {
    fn start(args: &[&str]) -> Tail {
        let mut child = Command::new(alertd_bin())
            .arg("tail")
            .args(args)
            .env("ALERTD_LOG_FORMAT", "text")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("alertd tail starts");
        let pipe = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let lines = pipe(Box::new(child.stdout.take().unwrap()));
        let log = pipe(Box::new(child.stderr.take().unwrap()));
        Tail { child, lines, log }
    }

    /// Blocks until tail says its consumer exists.
    fn wait_ready(&self) {
        loop {
            let line = self.log.recv_timeout(Duration::from_secs(15)).expect("tail logs that it is tailing");
            if line.contains("Tailing") {
                return;
            }
        }
    }

    /// `n` events, failing after 15 s without one.
    fn events(&self, n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| {
                let line = self
                    .lines
                    .recv_timeout(Duration::from_secs(15))
                    .unwrap_or_else(|_| panic!("event {i} of {n}"));
                serde_json::from_str(&line).expect("a JSON line")
            })
            .collect()
    }

    /// Nothing more within a short while.
    fn assert_quiet(&self) {
        if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(700)) {
            panic!("unexpected extra line: {line}");
        }
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ids(events: &[Value]) -> HashSet<String> {
    events.iter().map(|e| e["id"].as_str().expect("id").to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_replays_filters_and_follows() {
    let nats = NatsServer::start();
    let sim = Simulator::start(
        SimVendor::CanaryGuard,
        SimConfig { seed: 4, initial_items: 40, ..SimConfig::default() },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), Some(&nats.url()), "canaryguard", &sim.base_url(), CANARYGUARD_DEMO_KEY, "");
    common::poll::run_once(&cfg).await.expect("first poll");
    let stored: Vec<Value> =
        stream_messages(&nats.url(), "ALERTD").await.into_iter().map(|m| m.payload).collect();
    let severe: Vec<Value> = stored
        .iter()
        .filter(|e| matches!(e["severity"]["level"].as_str(), Some("critical")))
        .cloned()
        .collect();
    assert!(!severe.is_empty() && severe.len() < stored.len(), "the data set has both sides of the filter");
    let url = nats.url();

    // Replay from the start, filtered by vendor and severity.
    let tail = Tail::start(&[
        "--nats",
        &url,
        "--from-start",
        "--vendor",
        "canaryguard",
        "--severity-at-least",
        "critical",
    ]);
    let got = tail.events(severe.len());
    assert_eq!(ids(&got), ids(&severe));
    tail.assert_quiet();
    drop(tail);

    // A filter that matches nothing prints nothing.
    let tail = Tail::start(&["--nats", &url, "--from-start", "--vendor", "rapid7"]);
    tail.wait_ready();
    tail.assert_quiet();
    drop(tail);

    // --since a duration ago replays what was stored since then.
    let tail = Tail::start(&["--nats", &url, "--since", "1h", "--kind", "alert"]);
    assert_eq!(ids(&tail.events(stored.len())), ids(&stored));
    drop(tail);

    // By default only new events: none of the 40 replayed, the 6 new ones shown.
    let tail = Tail::start(&["--nats", &url]);
    tail.wait_ready();
    sim.add_items(6);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = common::poll::run_once(&cfg).await.expect("second poll");
    assert_eq!(report.published, 6);
    let new = tail.events(6);
    assert!(ids(&new).is_disjoint(&ids(&stored)), "only events published after tail started");
    tail.assert_quiet();
    sim.shutdown().await;
}
