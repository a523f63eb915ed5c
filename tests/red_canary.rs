//! Red Canary end to end: the simulator over loopback HTTP, a real
//! nats-server with JetStream, a real SQLite file; and the golden events of
//! the real payloads in `../shared/fixtures/vendors/redcanary/`.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alertd::checkpoint::Store;
use alertd::paginate::PaginateError;
use alertd::poller::PollError;
use alertd::sim::{Fault, RED_CANARY_DEMO_KEY, SimConfig, SimVendor, Simulator};
use alertd::vendors::red_canary::RedCanary;

use common::poll::{assert_no_duplicates, revisions_in_stream, run_once};
use common::{NatsServer, config};

const SUBJECT: &str = "alertd.red_canary.test-red_canary.detection";
const SOURCE: &str = "test-red_canary";

#[test]
fn golden_events_for_every_real_payload() {
    common::golden::check_fixtures::<RedCanary>("redcanary", "https://demo.my.redcanary.co");
}

async fn simulator(items: usize) -> Simulator {
    let config = SimConfig { seed: 11, initial_items: items, ..SimConfig::for_vendor(SimVendor::RedCanary) };
    Simulator::start(SimVendor::RedCanary, config).await.expect("simulator starts")
}

fn rc_config(
    dir: &std::path::Path,
    nats: Option<&str>,
    base_url: &str,
    extra: &str,
) -> alertd::config::Config {
    config(dir, nats, "red_canary", base_url, RED_CANARY_DEMO_KEY, extra)
}

fn truth_ids(sim: &Simulator) -> HashSet<String> {
    sim.ground_truth().iter().map(|d| d["id"].to_string()).collect()
}

/// Every detection of the simulator is in the stream, each revision once,
/// and nothing else is.
async fn assert_exactly_once(nats: &NatsServer, sim: &Simulator) -> usize {
    let stream = revisions_in_stream(&nats.url(), "ALERTD", SUBJECT).await;
    assert_no_duplicates(&stream);
    let in_stream: HashSet<String> = stream.keys().map(|(id, _)| id.clone()).collect();
    assert_eq!(in_stream, truth_ids(sim), "the stream holds exactly the vendor's detections");
    stream.len()
}

#[tokio::test]
async fn every_detection_arrives_exactly_once_across_polls_and_restarts() {
    let nats = NatsServer::start();
    let sim = simulator(40).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = rc_config(dir.path(), Some(&nats.url()), &sim.base_url(), "page_size = 7");

    let first = run_once(&cfg).await.expect("first poll");
    assert_eq!(first.published, 40);
    assert_eq!(first.pages, 7, "6 pages of data, then the empty page past the end");
    assert!(first.complete);
    assert_eq!(assert_exactly_once(&nats, &sim).await, 40);
    let first_request = sim.requests()[0].query.clone().unwrap();
    assert!(first_request.contains("per_page=7") && first_request.contains("since="));

    // Each run_once is a fresh daemon on the same state: a restart.
    sim.add_items(5);
    let second = run_once(&cfg).await.expect("second poll");
    assert_eq!(second.published, 5, "only the new detections");
    assert_eq!(assert_exactly_once(&nats, &sim).await, 45);

    let third = run_once(&cfg).await.expect("third poll");
    assert_eq!(third.published, 0);
    assert_eq!(third.duplicates, 0, "the overlap is deduplicated before publishing");
    assert!(third.skipped_seen >= 5, "re-read detections are recognised");
    assert_eq!(assert_exactly_once(&nats, &sim).await, 45);

    let state = Store::open(&cfg.state.path).unwrap().load(SOURCE).await.unwrap();
    assert!(state.watermark.is_some() && state.walk.is_none());
}

#[tokio::test]
async fn detections_confirmed_during_a_walk_are_delivered_once() {
    let nats = NatsServer::start();
    let sim = Arc::new(simulator(30).await);
    let dir = tempfile::tempdir().unwrap();
    let cfg = rc_config(dir.path(), Some(&nats.url()), &sim.base_url(), "page_size = 5");

    // Pages 1 and 2 come at once; page 3 is slow, and meanwhile three
    // detections are confirmed. Newest first, they push every later page
    // down by three.
    sim.inject(Fault::Slow(Duration::ZERO), 2);
    sim.inject(Fault::Slow(Duration::from_millis(1500)), 1);
    let arrivals = tokio::spawn({
        let sim = sim.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            sim.add_items(3);
        }
    });
    let first = run_once(&cfg).await.expect("first poll");
    arrivals.await.unwrap();
    assert_eq!(first.published, 30, "every detection that existed");
    assert_eq!(first.skipped_seen, 3, "the three pushed onto page 3 again");
    assert_eq!(first.pages, 8, "one page more, as the set grew");

    let second = run_once(&cfg).await.expect("second poll");
    assert_eq!(second.published, 3, "the three confirmed during the walk");
    assert_eq!(assert_exactly_once(&nats, &sim).await, 33);
}

#[tokio::test]
async fn acknowledged_and_remediated_detections_are_new_revisions_once_each() {
    let nats = NatsServer::start();
    let sim = simulator(30).await;
    let dir = tempfile::tempdir().unwrap();
    // A window reaching back before every detection, so each poll re-reads
    // all of them (updates are only seen on re-read).
    let cfg = rc_config(dir.path(), Some(&nats.url()), &sim.base_url(), "page_size = 10\noverlap = \"100h\"");
    assert_eq!(run_once(&cfg).await.unwrap().published, 30);
    let acked = sim.update_items(4);
    let second = run_once(&cfg).await.unwrap();
    assert_eq!(second.published, 4, "one new revision per changed detection");
    assert_eq!(second.skipped_seen, 26);
    sim.update_items(4);
    assert_eq!(run_once(&cfg).await.unwrap().published, 4);
    assert_eq!(run_once(&cfg).await.unwrap().published, 0);

    let stream = revisions_in_stream(&nats.url(), "ALERTD", SUBJECT).await;
    assert_no_duplicates(&stream);
    assert_eq!(stream.len(), 38);
    for detection in &acked {
        let wanted = detection["id"].to_string();
        let revisions = stream.keys().filter(|(id, _)| *id == wanted).count();
        assert!(revisions >= 2, "{} has its update in the stream", detection["id"]);
    }
    let events = common::stream_messages(&nats.url(), "ALERTD").await;
    let states: HashSet<&str> = events.iter().filter_map(|m| m.payload["status"]["state"].as_str()).collect();
    assert!(states.contains("new") && states.contains("acknowledged"), "{states:?}");
}

#[tokio::test]
async fn a_walk_ends_on_hollow_or_repeated_pages_past_the_end() {
    let nats = NatsServer::start();
    let sim = simulator(12).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = rc_config(dir.path(), Some(&nats.url()), &sim.base_url(), "page_size = 5\noverlap = \"100h\"");
    // Pages 1–3 hold the data; the page past the end is hollow.
    sim.inject(Fault::Slow(Duration::ZERO), 3);
    sim.inject(Fault::HollowItems, 1);
    let first = run_once(&cfg).await.expect("a hollow page ends the walk");
    assert!(first.complete);
    assert_eq!((first.pages, first.published, first.dead_letters), (4, 12, 0));

    // Now the page past the end repeats page 3.
    sim.inject(Fault::Slow(Duration::ZERO), 3);
    sim.inject(Fault::RepeatPreviousPage, 1);
    let second = run_once(&cfg).await.expect("a repeated page ends the walk");
    assert!(second.complete);
    assert_eq!(second.pages, 4);
    assert_eq!(second.skipped_seen, 12, "the repeats are not counted again");
    assert_eq!(sim.requests().len(), 8, "no request after the recognised page");
    assert_eq!(assert_exactly_once(&nats, &sim).await, 12);
    let state = Store::open(&cfg.state.path).unwrap().load(SOURCE).await.unwrap();
    assert!(state.walk.is_none(), "the walk was committed as complete");
}

/// A loopback server standing in for another host: counts connections.
async fn foreign_host() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (origin, connections)
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_refused_and_the_key_never_sent_there() {
    let sim = simulator(20).await;
    let (foreign, connections) = foreign_host().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = rc_config(dir.path(), None, &sim.base_url(), "page_size = 5");
    sim.inject(Fault::NextLinkTo(foreign.clone()), 1);

    let err = run_once(&cfg).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, PollError::Paginate { error: PaginateError::ForeignLink(origin), .. } if *origin == foreign),
        "{err:?}"
    );
    assert!(text.contains("refused to follow a next link to another origin"), "{text}");
    assert!(text.contains(&foreign) && text.contains(SOURCE), "{text}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0, "nothing reached the other host");
    assert_eq!(sim.requests().len(), 1);
    let state = Store::open(&cfg.state.path).unwrap().load(SOURCE).await.unwrap();
    assert_eq!((state.watermark, state.walk), (None, None), "the cursor is untouched");
}

#[tokio::test]
async fn a_refused_key_is_an_auth_error_and_leaves_the_cursor() {
    let sim = simulator(5).await;
    let dir = tempfile::tempdir().unwrap();
    let good = rc_config(dir.path(), None, &sim.base_url(), "");
    run_once(&good).await.expect("first poll");
    let store = Store::open(&good.state.path).unwrap();
    let before = store.load(SOURCE).await.unwrap();

    let wrong = "ffffffffffffffffffffffffffffffffffffffff";
    let bad = config(dir.path(), None, "red_canary", &sim.base_url(), wrong, "");
    let err = run_once(&bad).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("HTTP 403") && text.contains("API key was refused"), "{text}");
    assert!(!text.contains(wrong), "the key never appears in errors");
    assert_eq!(err.code(), "auth");
    assert_eq!(store.load(SOURCE).await.unwrap(), before);
}

#[tokio::test]
async fn a_wrong_subdomain_html_404_says_to_check_base_url() {
    let sim = simulator(5).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = rc_config(dir.path(), None, &format!("{}/no-such-tenant", sim.base_url()), "");
    cfg.sources[0].retries = 3;
    let err = run_once(&cfg).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("HTTP 404: no vendor API at this address"), "{text}");
    assert!(text.contains("doesn't exist (404)"), "names the page: {text}");
    assert!(text.contains("check base_url"), "{text}");
    assert_eq!(err.code(), "html_page");
    assert_eq!(sim.requests().len(), 1, "a wrong address is not retried");
}
