//! Thinkst Canary end to end: the simulator over loopback HTTP, a real
//! nats-server with JetStream, a real SQLite file, the built binary for the
//! key-redaction check; and the golden events of the real payloads in
//! `../shared/fixtures/vendors/thinkst/`.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use alertd::checkpoint::Store;
use alertd::sim::{Fault, SimConfig, SimVendor, Simulator, THINKST_CANARY_DEMO_KEY};
use alertd::vendors::thinkst_canary::ThinkstCanary;
use serde_json::Value;

use common::poll::{assert_no_duplicates, revisions_in_stream, run_once};
use common::{NatsServer, alertd_bin, config, free_port, stream_messages};

const SUBJECT: &str = "alertd.thinkst_canary.test-thinkst_canary.incident";
const SOURCE: &str = "test-thinkst_canary";

#[test]
fn golden_events_for_every_real_payload() {
    common::golden::check_fixtures::<ThinkstCanary>("thinkst", "https://example.canary.tools");
}

async fn simulator(items: usize) -> Simulator {
    let config =
        SimConfig { seed: 5, initial_items: items, ..SimConfig::for_vendor(SimVendor::ThinkstCanary) };
    Simulator::start(SimVendor::ThinkstCanary, config).await.expect("simulator starts")
}

fn tc_config(
    dir: &std::path::Path,
    nats: Option<&str>,
    base_url: &str,
    extra: &str,
) -> alertd::config::Config {
    config(dir, nats, "thinkst_canary", base_url, THINKST_CANARY_DEMO_KEY, extra)
}

/// The current revision (`updated_id`) of every incident the console has.
fn truth(sim: &Simulator) -> HashMap<String, String> {
    sim.ground_truth()
        .iter()
        .map(|i| (i["id"].as_str().unwrap().to_owned(), i["updated_id"].to_string()))
        .collect()
}

/// No revision twice, every incident's current revision present, and no
/// incident the console does not have. Returns the number of events.
async fn assert_latest_revisions_once(nats: &NatsServer, sim: &Simulator) -> usize {
    let stream = revisions_in_stream(&nats.url(), "ALERTD", SUBJECT).await;
    assert_no_duplicates(&stream);
    let truth = truth(sim);
    for (id, revision) in &truth {
        assert!(
            stream.contains_key(&(id.clone(), revision.clone())),
            "{id} at updated_id {revision} is missing from the stream"
        );
    }
    let ids: HashSet<&String> = stream.keys().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), truth.len(), "the stream holds only the console's incidents");
    stream.len()
}

async fn watermark(cfg: &alertd::config::Config) -> Option<String> {
    Store::open(&cfg.state.path).unwrap().load(SOURCE).await.unwrap().watermark
}

#[tokio::test]
async fn every_incident_revision_arrives_exactly_once_across_polls_and_restarts() {
    let nats = NatsServer::start();
    let sim = simulator(30).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = tc_config(dir.path(), Some(&nats.url()), &sim.base_url(), "page_size = 7");

    let first = run_once(&cfg).await.expect("first poll");
    assert_eq!((first.pages, first.published), (5, 30), "30 incidents in pages of 7");
    assert_eq!(watermark(&cfg).await.as_deref(), Some("30"), "the highest updated_id");
    let requests = sim.requests();
    let query = requests[0].query.as_deref().unwrap();
    assert!(query.starts_with("incidents_since=0&limit=7&newer_than="), "{query}");
    assert!(
        requests[1..].iter().all(|r| r.query.as_deref().unwrap().starts_with("cursor=")
            && !r.query.as_deref().unwrap().contains('&')),
        "follow-up pages send the cursor alone"
    );

    // New incidents, and changes to old ones; each run_once is a restart.
    assert_eq!(sim.update_items(3).len(), 3);
    sim.add_items(4);
    let second = run_once(&cfg).await.expect("second poll");
    assert_eq!(second.published, 7, "4 new incidents and 3 new revisions");
    assert!(sim.requests()[5].query.as_deref().unwrap().starts_with("incidents_since=30&"));
    assert_eq!(watermark(&cfg).await.as_deref(), Some("37"));

    let third = run_once(&cfg).await.expect("third poll");
    assert_eq!((third.pages, third.published), (1, 0), "one empty page");
    assert_eq!(watermark(&cfg).await.as_deref(), Some("37"));
    assert_eq!(assert_latest_revisions_once(&nats, &sim).await, 37);
}

#[tokio::test]
async fn incidents_changing_during_a_walk_come_with_the_next_poll_once() {
    let nats = NatsServer::start();
    let sim = Arc::new(simulator(20).await);
    let dir = tempfile::tempdir().unwrap();
    let cfg = tc_config(dir.path(), Some(&nats.url()), &sim.base_url(), "page_size = 5");

    // Page 2 is slow; meanwhile incidents arrive and change.
    sim.inject(Fault::Slow(Duration::ZERO), 1);
    sim.inject(Fault::Slow(Duration::from_millis(1500)), 1);
    let changes = tokio::spawn({
        let sim = sim.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let changed = sim.update_items(4).len();
            sim.add_items(2);
            changed
        }
    });
    let first = run_once(&cfg).await.expect("first poll");
    assert_eq!(changes.await.unwrap(), 4);
    assert!(first.complete);
    // The walk is a snapshot of updated_id ≤ 20: an incident changed before
    // its page was served left it (and comes next time with its new id).
    let after_first: u64 = watermark(&cfg).await.unwrap().parse().unwrap();
    assert!(after_first <= 20, "nothing beyond the snapshot: {after_first}");

    let second = run_once(&cfg).await.expect("second poll");
    assert_eq!(second.published, 6, "2 new incidents and 4 new revisions");
    assert_eq!(watermark(&cfg).await.as_deref(), Some("26"));
    let events = assert_latest_revisions_once(&nats, &sim).await;
    assert_eq!(events as u64, first.published + second.published);
}

#[tokio::test]
async fn a_walk_cut_off_mid_way_resumes_at_its_cursor() {
    let nats = NatsServer::start();
    let sim = simulator(20).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = tc_config(dir.path(), Some(&nats.url()), &sim.base_url(), "page_size = 5");
    sim.inject(Fault::Slow(Duration::ZERO), 1);
    sim.inject(Fault::TruncatedJson, 1);
    let err = run_once(&cfg).await.unwrap_err();
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    assert!(err.to_string().contains("a cursor"), "says where: {err}");
    let state = Store::open(&cfg.state.path).unwrap().load(SOURCE).await.unwrap();
    assert_eq!(state.watermark, None, "the walk did not finish");
    assert!(state.walk.as_deref().is_some_and(|w| w.contains("\"at\":\"cursor\"")), "{state:?}");

    let report = run_once(&cfg).await.expect("the walk resumes");
    assert_eq!(report.pages, 3, "pages 2 to 4 only");
    let resumed = sim.requests()[2].query.clone().unwrap();
    assert!(resumed.starts_with("cursor="), "{resumed}");
    assert_eq!(watermark(&cfg).await.as_deref(), Some("20"));
    assert_eq!(assert_latest_revisions_once(&nats, &sim).await, 20);
}

#[tokio::test]
async fn an_error_envelope_with_http_200_is_a_vendor_error_and_leaves_the_cursor() {
    let sim = simulator(5).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = tc_config(dir.path(), None, &sim.base_url(), "");
    run_once(&cfg).await.expect("first poll");
    sim.add_items(2);
    sim.inject(Fault::ErrorIn200, 1);
    let err = run_once(&cfg).await.unwrap_err();
    assert_eq!(err.code(), "vendor_error");
    assert!(err.to_string().contains("vendor reported an error: Something went wrong"), "{err}");
    assert_eq!(watermark(&cfg).await.as_deref(), Some("5"));
    assert_eq!(run_once(&cfg).await.unwrap().published, 2, "the next poll catches up");
}

#[tokio::test]
async fn a_malformed_incident_is_a_dead_letter_and_the_checkpoint_still_moves() {
    let nats = NatsServer::start();
    let sim = simulator(10).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = tc_config(dir.path(), Some(&nats.url()), &sim.base_url(), "page_size = 10");
    sim.inject(Fault::MalformedItem, 1);
    let report = run_once(&cfg).await.expect("the page proceeds");
    assert_eq!(report.dead_letters, 1);
    assert_eq!(report.published, 10, "9 events and the dead letter");
    assert_eq!(watermark(&cfg).await.as_deref(), Some("10"));
    let dead: Vec<Value> = stream_messages(&nats.url(), "ALERTD")
        .await
        .into_iter()
        .filter(|m| m.subject == "alertd.deadletter.thinkst_canary")
        .map(|m| m.payload)
        .collect();
    assert_eq!(dead.len(), 1);
    assert!(dead[0]["error"].as_str().unwrap().contains("`id`"), "{}", dead[0]);
    assert_eq!(dead[0]["raw"]["updated_id"], "not a number");
    // The whole incident as served, not the part alertd reads of it.
    let served = sim.ground_truth().into_iter().any(|mut incident| {
        incident.as_object_mut().unwrap().remove("id");
        incident["updated_id"] = "not a number".into();
        incident == dead[0]["raw"]
    });
    assert!(served, "the dead letter carries the whole incident: {}", dead[0]["raw"]);
}

#[tokio::test]
async fn a_refused_header_key_is_an_auth_error() {
    let sim = simulator(3).await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = "00000000000000000000000000000000";
    let cfg = config(dir.path(), None, "thinkst_canary", &sim.base_url(), wrong, "");
    let err = run_once(&cfg).await.unwrap_err();
    assert_eq!(err.code(), "auth");
    let text = err.to_string();
    assert!(text.contains("HTTP 401") && text.contains("Unauthorized"), "{text}");
    assert!(!text.contains(wrong));
}

/// Runs the built binary once at trace level against `base_url` with query
/// auth and `key`; returns (success, stdout + stderr).
async fn run_binary(dir: &std::path::Path, base_url: &str, key: &str) -> (bool, String) {
    let file = dir.join("alertd.toml");
    std::fs::write(
        &file,
        format!(
            "[state]\npath = \"{}\"\n\n[[source]]\nvendor = \"thinkst_canary\"\nname = \"console\"\n\
             base_url = \"{base_url}\"\ncredential = {{ env = \"ALERTD_TEST_THINKST_KEY\" }}\n\
             page_size = 3\nretries = 1\ntimeout = \"2s\"\n\n[source.options]\nauth = \"query\"\n",
            dir.join("state.sqlite").display()
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(alertd_bin())
        .args(["--log", "trace", "--log-format", "text", "run", "--once", "--config"])
        .arg(&file)
        .env("ALERTD_TEST_THINKST_KEY", key)
        .output()
        .await
        .expect("the alertd binary runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test]
async fn a_query_auth_key_appears_in_no_log_line_or_error() {
    let sim = simulator(10).await;

    // The key is right; page 1 (whose next_link echoes auth_token) is
    // delivered, then the console fails twice (one retry).
    let dir = tempfile::tempdir().unwrap();
    sim.inject(Fault::Slow(Duration::ZERO), 1);
    sim.inject(Fault::Unavailable, 2);
    let (ok, text) = run_binary(dir.path(), &sim.base_url(), THINKST_CANARY_DEMO_KEY).await;
    assert!(!ok, "the poll fails");
    assert!(text.contains("FAILED") && text.contains("HTTP 503"), "{text}");
    assert!(text.contains("TRACE"), "trace logging was on");
    assert!(text.contains("Canarytoken") || text.contains("Login"), "events were printed");
    assert!(!text.contains(THINKST_CANARY_DEMO_KEY), "the key leaked:\n{text}");
    assert!(
        sim.requests().iter().all(|r| r.query.as_deref().unwrap().contains("auth_token=")),
        "the key did travel in the query"
    );

    // A wrong key, refused.
    let wrong = "0123456789abcdef0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = run_binary(dir.path(), &sim.base_url(), wrong).await;
    assert!(!ok && text.contains("Invalid auth_token"), "{text}");
    assert!(!text.contains(wrong), "the key leaked:\n{text}");

    // Nobody listening: the transport error must not print the URL's query.
    let dir = tempfile::tempdir().unwrap();
    let closed = format!("http://127.0.0.1:{}", free_port());
    let (ok, text) = run_binary(dir.path(), &closed, THINKST_CANARY_DEMO_KEY).await;
    assert!(!ok && text.contains("connection failed"), "{text}");
    assert!(!text.contains(THINKST_CANARY_DEMO_KEY), "the key leaked:\n{text}");
}
