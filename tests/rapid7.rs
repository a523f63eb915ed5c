//! Rapid7 InsightIDR: golden normalization of every shared fixture, and the
//! whole pipeline against the simulator, a real nats-server and SQLite.

mod common;

use common::poll::run_once;

use std::collections::HashMap;
use std::time::Duration;

use alertd::checkpoint::Store;
use alertd::sim::{Fault, RAPID7_DEMO_KEY, SimConfig, SimVendor, Simulator};
use alertd::vendors::rapid7::{Endpoint, Options, Rapid7};
use alertd::vendors::{NormalizeContext, Vendor};
use chrono::{TimeZone, Utc};
use serde_json::Value;
use url::Url;

use common::{NatsServer, config, stream_messages};

fn vendor(endpoint: Endpoint) -> Rapid7 {
    let config = alertd::registry::parse(
        "[[source]]\nvendor = \"rapid7\"\nname = \"golden\"\ncredential = { env = \"UNUSED\" }\n\
         [source.options]\nregion = \"us\"\n",
        "golden.toml",
    )
    .expect("config");
    let base = Url::parse("https://us.api.insight.rapid7.com").expect("url");
    Rapid7::new(&config.sources[0], base, Options { endpoint, region: None }).expect("vendor")
}

/// Which endpoint's envelope a fixture page has, and whose items it holds.
fn roles(file: &str) -> (Endpoint, Endpoint) {
    match file {
        // `POST /idr/at/alerts/ops/search`.
        "alerts_search_page_insightconnect.json" => (Endpoint::Alerts, Endpoint::Alerts),
        // `GET /idr/v2/investigations`.
        "investigations_v2_page_xsoar.json" => (Endpoint::Investigations, Endpoint::Investigations),
        // `GET /idr/v2/investigations/{id}/alerts`: the investigations
        // envelope (`data` + `metadata`) around alerts.
        "investigation_alerts_v2_page_xsoar.json" => (Endpoint::Investigations, Endpoint::Alerts),
        other => panic!("new Rapid7 fixture {other}: decide how it is parsed and normalized"),
    }
}

#[test]
fn every_fixture_item_normalizes_to_its_reviewed_golden_event() {
    let Some(dir) = common::golden::fixture_dir("rapid7") else {
        return;
    };
    let ctx = NormalizeContext::new("acme", Utc.with_ymd_and_hms(2026, 3, 28, 0, 0, 0).unwrap());
    let files = common::golden::fixture_files(&dir);
    assert_eq!(files.len(), 3, "{files:?}");
    for path in files {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let (envelope, items_of) = roles(&name);
        let body = std::fs::read(&path).unwrap();
        let page = vendor(envelope).parse_page(&body).expect("the fixture is a page");
        assert!(!page.items.is_empty(), "{name}");
        let normalizer = vendor(items_of);
        let events: Vec<Value> = page
            .items
            .iter()
            .map(|item| {
                let n = normalizer.normalize(item, &ctx).expect("fixture items normalize");
                serde_json::to_value(&n.event).unwrap()
            })
            .collect();
        common::golden::check("rapid7", name.trim_end_matches(".json"), &page.items, &events);
    }
}

async fn simulator(items: usize) -> Simulator {
    let config = SimConfig {
        seed: 11,
        initial_items: items,
        api_key: RAPID7_DEMO_KEY.to_owned(),
        ..SimConfig::default()
    };
    Simulator::start(SimVendor::Rapid7, config).await.expect("simulator starts")
}

/// Events in the stream by (native id, revision), with their count.
async fn events_in_stream(nats: &NatsServer) -> HashMap<(String, String), usize> {
    let mut counts = HashMap::new();
    for m in stream_messages(&nats.url(), "ALERTD").await {
        assert_eq!(m.msg_id.as_deref(), m.payload["id"].as_str(), "Nats-Msg-Id is the event id");
        let key = (
            m.payload["native_id"].as_str().expect("native_id").to_owned(),
            m.payload["revision"].as_str().expect("revision").to_owned(),
        );
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// Each alert of the simulator, at its current version, exactly once.
fn assert_every_alert_once(stream: &HashMap<(String, String), usize>, sim: &Simulator) {
    assert!(stream.values().all(|n| *n == 1), "duplicates: {stream:?}");
    for alert in sim.ground_truth() {
        let key = (alert["rrn"].as_str().unwrap().to_owned(), alert["version"].to_string());
        assert!(stream.contains_key(&key), "{key:?} missing");
    }
}

#[tokio::test]
async fn every_alert_arrives_exactly_once_across_polls_and_restarts() {
    let nats = NatsServer::start();
    let sim = simulator(120).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        config(dir.path(), Some(&nats.url()), "rapid7", &sim.base_url(), RAPID7_DEMO_KEY, "page_size = 25");

    let first = run_once(&cfg).await.expect("first poll");
    assert_eq!((first.pages, first.published), (5, 120), "indexes 0..4 of 25");
    assert!(first.complete);
    assert_every_alert_once(&events_in_stream(&nats).await, &sim);

    sim.add_items(7);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = run_once(&cfg).await.expect("second poll");
    assert_eq!(second.published, 7, "only the new alerts");
    let third = run_once(&cfg).await.expect("third poll");
    assert_eq!((third.published, third.duplicates), (0, 0));
    assert!(third.skipped_seen >= 7, "the overlap is deduplicated before publishing");
    let stream = events_in_stream(&nats).await;
    assert_eq!(stream.len(), 127);
    assert_every_alert_once(&stream, &sim);

    let requests = sim.requests();
    assert!(requests.iter().all(|r| r.method == "POST" && r.path == "/idr/at/alerts/ops/search"));
    let subjects: Vec<String> =
        stream_messages(&nats.url(), "ALERTD").await.into_iter().map(|m| m.subject).collect();
    assert!(subjects.iter().all(|s| s == "alertd.rapid7.test-rapid7.alert"), "{subjects:?}");
}

#[tokio::test]
async fn a_higher_alert_version_is_one_new_event() {
    let nats = NatsServer::start();
    let sim = simulator(30).await;
    let dir = tempfile::tempdir().unwrap();
    // Updates are found while an alert is inside the overlap; the seeded
    // alerts go back 48 hours.
    let cfg = config(
        dir.path(),
        Some(&nats.url()),
        "rapid7",
        &sim.base_url(),
        RAPID7_DEMO_KEY,
        "overlap = \"72h\"",
    );
    run_once(&cfg).await.expect("first poll");
    let before = sim.ground_truth();

    assert_eq!(sim.update_items(1).len(), 1);
    let report = run_once(&cfg).await.expect("poll after the update");
    assert_eq!(report.published, 1, "one new revision");
    assert_eq!(report.skipped_seen, 29, "the unchanged alerts are known");
    let again = run_once(&cfg).await.expect("poll with nothing new");
    assert_eq!((again.published, again.duplicates), (0, 0));

    let stream = events_in_stream(&nats).await;
    assert_eq!(stream.len(), 31);
    let updated = before.last().unwrap();
    let rrn = updated["rrn"].as_str().unwrap();
    let version = updated["version"].as_u64().unwrap();
    let mut revisions: Vec<&String> = stream.keys().filter(|(id, _)| id == rrn).map(|(_, r)| r).collect();
    revisions.sort();
    let expected = [version.to_string(), (version + 1).to_string()];
    assert_eq!(revisions, expected.iter().collect::<Vec<_>>());
    assert_every_alert_once(&stream, &sim);
}

#[tokio::test]
async fn investigations_are_polled_as_their_own_kind_and_a_triage_change_is_new() {
    let nats = NatsServer::start();
    let sim = simulator(40).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        Some(&nats.url()),
        "rapid7",
        &sim.base_url(),
        RAPID7_DEMO_KEY,
        "page_size = 15\noverlap = \"72h\"\n[source.options]\nendpoint = \"investigations\"",
    );
    let first = run_once(&cfg).await.expect("first poll");
    assert_eq!((first.pages, first.published), (3, 40));
    sim.update_items(2);
    let second = run_once(&cfg).await.expect("second poll");
    assert_eq!(second.published, 2, "two investigations changed status");

    let messages = stream_messages(&nats.url(), "ALERTD").await;
    assert!(messages.iter().all(|m| m.subject == "alertd.rapid7.test-rapid7.investigation"));
    assert!(messages.iter().all(|m| m.payload["source"]["kind"] == "investigation"));
    let investigating = messages.iter().filter(|m| m.payload["status"]["vendor"] == "INVESTIGATING").count();
    assert_eq!(investigating, 2);
    let requests = sim.requests();
    assert!(requests.iter().all(|r| r.method == "GET" && r.path == "/idr/v2/investigations"));
    assert!(requests[0].query.as_deref().unwrap().contains("sort=created_time%2CASC"));
}

#[tokio::test]
async fn a_walk_cut_off_mid_way_resumes_at_its_index_after_a_restart() {
    let nats = NatsServer::start();
    let sim = simulator(50).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        config(dir.path(), Some(&nats.url()), "rapid7", &sim.base_url(), RAPID7_DEMO_KEY, "page_size = 20");
    sim.inject(Fault::Slow(Duration::ZERO), 1);
    sim.inject(Fault::TruncatedJson, 1);
    let err = run_once(&cfg).await.unwrap_err();
    assert!(err.to_string().contains("page 1"), "index 1 failed: {err}");
    let state = Store::open(&cfg.state.path).unwrap().load("test-rapid7").await.unwrap();
    assert_eq!(state.watermark, None);
    assert!(state.walk.as_deref().is_some_and(|w| w.contains("\"value\":1")), "{state:?}");

    let report = run_once(&cfg).await.expect("the walk resumes");
    assert_eq!((report.pages, report.published), (2, 30), "indexes 1 and 2 only");
    assert_every_alert_once(&events_in_stream(&nats).await, &sim);
}

#[tokio::test]
async fn a_refused_key_is_an_auth_error_without_the_key() {
    let sim = simulator(3).await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = "ffffffff-ffff-4fff-afff-ffffffffffff";
    let cfg = config(dir.path(), None, "rapid7", &sim.base_url(), wrong, "");
    let err = run_once(&cfg).await.unwrap_err();
    assert_eq!(err.code(), "auth");
    assert!(err.to_string().contains("Unauthorized"), "{err}");
    assert!(!err.to_string().contains(wrong));
}
