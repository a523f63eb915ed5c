//! Revisits (issue 19) end to end: the simulators change items after they
//! left the overlap (an analyst triaging older alerts), a daemon polls and
//! revisits on its schedule, and the stream is compared with the vendor's
//! current state: every new revision once, nothing unchanged again.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use alertd::sim::{RED_CANARY_DEMO_KEY, SimConfig, SimVendor, Simulator};
use chrono::Utc;

use common::poll::{RunningDaemon, assert_no_duplicates, revisions_in_stream};
use common::{NatsServer, config};

/// How long a test waits for the stream to show what it expects: far more
/// than one `every` of these tests, for a loaded machine.
const PATIENCE: Duration = Duration::from_secs(90);

async fn simulator(vendor: SimVendor, items: usize) -> Simulator {
    let config = SimConfig {
        seed: 19,
        initial_items: items,
        history: Duration::from_secs(6 * 3600),
        ..SimConfig::for_vendor(vendor)
    };
    Simulator::start(vendor, config).await.expect("simulator starts")
}

/// Revisions per native id in the stream.
fn by_item(stream: &HashMap<(String, String), usize>) -> HashMap<String, HashSet<String>> {
    let mut items: HashMap<String, HashSet<String>> = HashMap::new();
    for (id, revision) in stream.keys() {
        items.entry(id.clone()).or_default().insert(revision.clone());
    }
    items
}

/// Wait until `done` holds for the stream's revisions per item.
async fn wait_for(
    nats: &NatsServer,
    subject: &str,
    what: &str,
    done: impl Fn(&HashMap<String, HashSet<String>>) -> bool,
) {
    let started = Instant::now();
    let client = async_nats::connect(nats.url()).await.expect("connect to NATS");
    let js = async_nats::jetstream::new(client);
    while js.get_stream("ALERTD").await.is_err() {
        assert!(started.elapsed() < PATIENCE, "the daemon made no stream");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    loop {
        let stream = revisions_in_stream(&nats.url(), "ALERTD", subject).await;
        if done(&by_item(&stream)) {
            return;
        }
        assert!(started.elapsed() < PATIENCE, "{what}: not in the stream after {PATIENCE:?}: {stream:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn native_id(item: &serde_json::Value, field: &str) -> String {
    match &item[field] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_canary_acknowledgement_and_remediation_after_the_overlap_arrive_once_each() {
    const SUBJECT: &str = "alertd.red_canary.test-red_canary.detection";
    let nats = NatsServer::start();
    let sim = simulator(SimVendor::RedCanary, 30).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        Some(&nats.url()),
        "red_canary",
        &sim.base_url(),
        RED_CANARY_DEMO_KEY,
        "page_size = 7\nrevisit = { window = \"7d\", every = \"3s\" }",
    );
    let daemon = RunningDaemon::start(&cfg);
    wait_for(&nats, SUBJECT, "the backlog", |items| items.len() == 30).await;

    // Older than the overlap (10 minutes): only a revisit can see these.
    let before = Utc::now() - chrono::Duration::hours(1);
    let acked: Vec<String> = sim.update_items_before(3, before).iter().map(|d| native_id(d, "id")).collect();
    assert_eq!(acked.len(), 3);
    wait_for(&nats, SUBJECT, "the acknowledgements", |items| {
        acked.iter().all(|id| items.get(id).is_some_and(|r| r.len() == 2))
    })
    .await;
    let remediated: Vec<String> =
        sim.update_items_before(3, before).iter().map(|d| native_id(d, "id")).collect();
    assert_eq!(remediated, acked, "the same detections are remediated next");
    wait_for(&nats, SUBJECT, "the remediations", |items| {
        acked.iter().all(|id| items.get(id).is_some_and(|r| r.len() == 3))
    })
    .await;
    // Two more revisits at least: nothing unchanged is published again.
    tokio::time::sleep(Duration::from_secs(8)).await;
    daemon.stop().await;

    let stream = revisions_in_stream(&nats.url(), "ALERTD", SUBJECT).await;
    assert_no_duplicates(&stream);
    let items = by_item(&stream);
    assert_eq!(items.len(), 30, "every detection, nothing else");
    for (id, revisions) in &items {
        let expected = if acked.contains(id) { 3 } else { 1 };
        assert_eq!(revisions.len(), expected, "detection {id}: {revisions:?}");
    }
    assert_eq!(stream.len(), 30 + 2 * 3, "each revision once");
    sim.shutdown().await;
}
