//! Catchpoint: golden normalization of a seeded simulator data set (no real
//! Catchpoint answer is public; the simulator follows the vendor's OpenAPI
//! alert model field by field), and the whole pipeline against the
//! simulator, a real nats-server and SQLite.

mod common;

use common::poll::{assert_exactly_once, native_ids_in_stream, run_once, truth_ids};

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use alertd::checkpoint::Store;
use alertd::sim::{CATCHPOINT_DEMO_KEY, SimConfig, SimVendor, Simulator};
use alertd::vendors::catchpoint::{Catchpoint, Options};
use alertd::vendors::{NormalizeContext, Vendor};
use chrono::{TimeDelta, TimeZone, Utc};
use serde_json::Value;
use url::Url;

use common::{NatsServer, config};

#[tokio::test]
async fn the_seeded_alert_set_normalizes_to_its_reviewed_golden_events() {
    let config = alertd::registry::parse(
        "[[source]]\nvendor = \"catchpoint\"\nname = \"golden\"\ncredential = { env = \"UNUSED\" }\n",
        "golden.toml",
    )
    .expect("config");
    let base = Url::parse("https://io.catchpoint.com").expect("url");
    let vendor = Catchpoint::new(&config.sources[0], base, Options::default()).expect("vendor");
    let ctx = NormalizeContext::new("acme", Utc.with_ymd_and_hms(2026, 3, 28, 0, 0, 0).unwrap());
    let items = common::golden::simulated_items(SimVendor::Catchpoint, 4, 16).await;
    let events: Vec<Value> = items
        .iter()
        .map(|item| serde_json::to_value(vendor.normalize(item, &ctx).expect("normalizes").event).unwrap())
        .collect();
    let levels: HashSet<&str> = items.iter().filter_map(|i| i["level"]["name"].as_str()).collect();
    assert_eq!(levels.len(), 4, "the set covers every level: {levels:?}");
    assert!(items.iter().any(|i| !i["acknowledgedBy"].is_null()), "and an acknowledged alert");
    common::golden::check("catchpoint", "simulated", &items, &events);
}

async fn simulator(items: usize, anchor_age: TimeDelta) -> Simulator {
    let config = SimConfig {
        seed: 5,
        initial_items: items,
        api_key: CATCHPOINT_DEMO_KEY.to_owned(),
        ..SimConfig::default()
    };
    Simulator::start_at(SimVendor::Catchpoint, config, Utc::now() - anchor_age)
        .await
        .expect("simulator starts")
}

async fn ids_in_stream(nats: &NatsServer) -> HashMap<String, usize> {
    native_ids_in_stream(&nats.url(), "ALERTD", "alertd.catchpoint.test-catchpoint.alert").await
}

fn assert_every_alert_once(stream: &HashMap<String, usize>, sim: &Simulator) {
    assert_exactly_once(stream, &truth_ids(sim, "id"));
}

#[tokio::test]
async fn every_alert_arrives_exactly_once_across_polls_and_restarts() {
    let nats = NatsServer::start();
    // 127 alerts in pages of 7: 18 full pages and a last page of one alert,
    // which Catchpoint serves as a bare object.
    let sim = simulator(127, TimeDelta::zero()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        Some(&nats.url()),
        "catchpoint",
        &sim.base_url(),
        CATCHPOINT_DEMO_KEY,
        "page_size = 7",
    );

    let first = run_once(&cfg).await.expect("first poll");
    assert_eq!((first.pages, first.published), (19, 127));
    assert!(first.complete);
    assert_every_alert_once(&ids_in_stream(&nats).await, &sim);

    sim.add_items(9);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = run_once(&cfg).await.expect("second poll");
    assert_eq!(second.published, 9, "only the new alerts");
    let third = run_once(&cfg).await.expect("third poll");
    assert_eq!((third.published, third.duplicates), (0, 0));
    assert!(third.skipped_seen >= 9, "the overlap is deduplicated before publishing");
    assert_every_alert_once(&ids_in_stream(&nats).await, &sim);

    let query = sim.requests()[0].query.clone().unwrap();
    for param in ["startTimeUtc=", "endTimeUtc=", "pageNumber=1", "pageSize=7"] {
        assert!(query.contains(param), "{query}");
    }
}

#[tokio::test]
async fn a_window_without_alerts_is_a_404_read_as_an_empty_page() {
    let nats = NatsServer::start();
    // Every seeded alert is over an hour old: the overlap of later windows
    // holds none of them.
    let sim = simulator(12, TimeDelta::hours(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), Some(&nats.url()), "catchpoint", &sim.base_url(), CATCHPOINT_DEMO_KEY, "");
    let store = Store::open(&cfg.state.path).unwrap();
    assert_eq!(run_once(&cfg).await.expect("first poll").published, 12);
    let before = store.load("test-catchpoint").await.unwrap().watermark;

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let empty = run_once(&cfg).await.expect("an empty window is not an error");
    assert_eq!((empty.pages, empty.items, empty.published), (1, 0, 0));
    assert!(empty.complete);
    assert_eq!(sim.requests().last().unwrap().status, 404);
    let after = store.load("test-catchpoint").await.unwrap();
    assert!(after.watermark > before, "the watermark moves past the empty window");
    assert_eq!(after.walk, None);

    sim.add_items(3);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(run_once(&cfg).await.expect("alerts again").published, 3);
    assert_every_alert_once(&ids_in_stream(&nats).await, &sim);
}

#[tokio::test]
async fn a_refused_key_is_an_auth_error_with_catchpoints_message() {
    let sim = simulator(3, TimeDelta::zero()).await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = "eyJhbGciOiJub25lIn0.e30.wrong";
    let cfg = config(dir.path(), None, "catchpoint", &sim.base_url(), wrong, "");
    let err = run_once(&cfg).await.unwrap_err();
    assert_eq!(err.code(), "auth");
    assert!(err.to_string().contains("Authorization has been denied"), "{err}");
    assert!(!err.to_string().contains(wrong));
    let state = Store::open(&cfg.state.path).unwrap().load("test-catchpoint").await.unwrap();
    assert_eq!(state.watermark, None, "a refused key is not an empty window");
}
