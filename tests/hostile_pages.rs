//! Pages no vendor should send, and what alertd does with them: a page far
//! larger than asked for, an item larger than NATS takes, a flood of broken
//! items, an item broken for good, a 404 in the middle of a Catchpoint walk,
//! and many sources publishing more than the NATS client holds in flight.
//! Real nats-server, real SQLite, the simulators over loopback HTTP. Each
//! poll runs under a generous timeout that only tells a hang from a result.

mod common;

use std::time::Duration;

use alertd::checkpoint::Store;
use alertd::config::Config;
use alertd::daemon::{self, Mode};
use alertd::poller::{DEAD_LETTERS_PER_POLL, PollError, PollReport};
use alertd::publish::{Message, Sink};
use alertd::sim::{CATCHPOINT_DEMO_KEY, Fault, SimConfig, SimVendor, Simulator};
use tokio_util::sync::CancellationToken;

use common::{NatsServer, stream_messages};

/// A hang fails the test instead of blocking it; nothing is timed.
const HANG: Duration = Duration::from_secs(300);

async fn poll(config: &Config) -> Result<PollReport, PollError> {
    tokio::time::timeout(HANG, common::poll::run_once(config)).await.expect("the poll hung")
}

fn events(stored: &[common::Stored]) -> Vec<&common::Stored> {
    stored.iter().filter(|m| !m.subject.starts_with("alertd.deadletter.")).collect()
}

fn dead_letters(stored: &[common::Stored]) -> Vec<&common::Stored> {
    stored.iter().filter(|m| m.subject.starts_with("alertd.deadletter.")).collect()
}

#[tokio::test]
async fn a_page_far_larger_than_asked_for_is_refused_and_the_cursor_stays() {
    let nats = NatsServer::start();
    let sim = common::canaryguard(30).await;
    sim.inject(Fault::PageOf(6_000), 1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::canaryguard_config(dir.path(), Some(&nats.url()), &sim, "page_size = 100");

    let err = poll(&cfg).await.expect_err("a 6,000-item page for a page size of 100 is refused");
    let text = err.to_string();
    assert!(text.contains("6000 items") && text.contains("100 asked for"), "{text}");
    assert_eq!(err.code(), "too_many_items");
    let state = Store::open(&cfg.state.path).unwrap().load("test-canaryguard").await.unwrap();
    assert_eq!((state.watermark, state.walk), (None, None), "the cursor did not move");

    let report = poll(&cfg).await.expect("the next poll gets a normal page");
    assert_eq!(report.published, 30);
    assert_eq!(events(&stream_messages(&nats.url(), "ALERTD").await).len(), 30);
}

/// The NATS client holds 5,000 unacknowledged publishes; a batch sent whole
/// before awaiting acks used to wait forever past that. Twelve batches of
/// 6,000 at once are more than the client's limit even in windows of one
/// batch's share, so this also needs the shared limit.
#[tokio::test]
async fn batches_beyond_the_clients_ack_limit_never_hang() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let sim = common::canaryguard(0).await;
    let cfg = common::canaryguard_config(dir.path(), Some(&nats.url()), &sim, "");
    let sink = daemon::connect_sink(&cfg, &CancellationToken::new()).await.expect("NATS");
    let batches = (0..12).map(|b| {
        let sink: Sink = sink.clone();
        let batch: Vec<Message> = (0..6_000)
            .map(|i| Message {
                subject: format!("alertd.test.batch{b}.item"),
                id: format!("{b}-{i}"),
                payload: format!("{{\"batch\":{b},\"item\":{i}}}").into(),
            })
            .collect();
        async move { sink.publish(batch).await }
    });
    let reports =
        tokio::time::timeout(HANG, futures::future::join_all(batches)).await.expect("publishing hung");
    for report in reports {
        assert_eq!(report.expect("every batch is acknowledged").stored, 6_000);
    }
    assert_eq!(stream_messages(&nats.url(), "ALERTD").await.len(), 72_000);
}

#[tokio::test]
async fn eighty_sources_backfilling_at_once_deliver_every_event_once() {
    let nats = NatsServer::start();
    let sim = common::canaryguard(250).await;
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!(
        "[nats]\nurl = \"{}\"\nstream = \"ALERTD\"\nack_timeout = \"10s\"\n[state]\npath = \"{}\"\n[service]\nlisten = \"off\"\n",
        nats.url(),
        dir.path().join("state.sqlite").display()
    );
    for n in 0..80 {
        text.push_str(&format!(
            "[[source]]\nvendor = \"canaryguard\"\nname = \"tenant-{n}\"\nbase_url = \"{}\"\ncredential = {{ env = \"UNUSED\" }}\n\
             schedule = \"every 1h\"\njitter = \"0s\"\nlag = \"0s\"\ninitial_lookback = \"72h\"\nrate_limits = []\npage_size = 100\n",
            sim.base_url()
        ));
    }
    let mut cfg = alertd::registry::parse(&text, "eighty.toml").expect("config");
    for source in &mut cfg.sources {
        source.credential = alertd::config::CredentialSource::Inline(secrecy::SecretString::from(
            alertd::sim::CANARYGUARD_DEMO_KEY.to_owned(),
        ));
    }
    let results = tokio::time::timeout(HANG, daemon::run(&cfg, None, Mode::Once, CancellationToken::new()))
        .await
        .expect("the backfill hung")
        .expect("daemon starts");
    assert_eq!(results.len(), 80);
    for (name, result) in &results {
        assert_eq!(result.as_ref().unwrap_or_else(|e| panic!("{name}: {e}")).published, 250, "{name}");
    }
    let stored = stream_messages(&nats.url(), "ALERTD").await;
    let ids: std::collections::HashSet<_> = stored.iter().filter_map(|m| m.msg_id.clone()).collect();
    assert_eq!(stored.len(), 20_000);
    assert_eq!(ids.len(), 20_000, "every event once");
}

#[tokio::test]
async fn an_item_larger_than_max_payload_is_dead_lettered_truncated_and_the_walk_goes_on() {
    let nats = NatsServer::start();
    let sim = common::canaryguard(30).await;
    sim.inject(Fault::BigItem(2_200_000), 1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::canaryguard_config(dir.path(), Some(&nats.url()), &sim, "page_size = 10");

    let report = poll(&cfg).await.expect("the poll goes past the huge item");
    assert_eq!((report.published, report.dead_letters), (30, 1), "29 events and one dead letter");
    let stored = stream_messages(&nats.url(), "ALERTD").await;
    assert_eq!(events(&stored).len(), 29);
    let dead = dead_letters(&stored);
    assert_eq!(dead.len(), 1);
    let truncated = &dead[0].payload["truncated"];
    assert!(truncated["size"].as_u64().unwrap() > 2_200_000, "{truncated}");
    assert_eq!(truncated["excerpt"].as_str().unwrap().len(), 4096);
    assert!(dead[0].payload["error"].as_str().unwrap().contains("max_payload"));
    let big_id = truncated["id"].as_str().unwrap();
    assert!(events(&stored).iter().all(|m| m.msg_id.as_deref() != Some(big_id)));

    let again = poll(&cfg).await.expect("a second poll");
    assert_eq!((again.published, again.dead_letters), (0, 0), "{again:?}");
}

#[tokio::test]
async fn an_item_broken_for_good_is_dead_lettered_once_not_at_every_poll() {
    let nats = NatsServer::start();
    let sim = common::canaryguard(12).await;
    sim.inject(Fault::MalformedItem, 100);
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::canaryguard_config(dir.path(), Some(&nats.url()), &sim, "page_size = 100");
    let first = poll(&cfg).await.expect("first poll");
    assert_eq!((first.published, first.dead_letters), (12, 1), "11 events and the broken item");
    for _ in 0..2 {
        let next = poll(&cfg).await.expect("a later poll over the same window");
        assert_eq!((next.published, next.dead_letters), (0, 0), "{next:?}");
    }
    assert_eq!(dead_letters(&stream_messages(&nats.url(), "ALERTD").await).len(), 1);
}

#[tokio::test]
async fn a_flood_of_broken_items_is_capped_per_poll_and_nothing_good_is_lost() {
    let nats = NatsServer::start();
    let sim = common::canaryguard(20).await;
    sim.inject(Fault::BrokenItems(350), 1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::canaryguard_config(dir.path(), Some(&nats.url()), &sim, "page_size = 100");
    let report = poll(&cfg).await.expect("the poll goes on past broken items");
    assert_eq!(report.dead_letters, DEAD_LETTERS_PER_POLL as u64 + 1, "{report:?}");
    let stored = stream_messages(&nats.url(), "ALERTD").await;
    assert_eq!(events(&stored).len(), 20, "every good item delivered");
    let dead = dead_letters(&stored);
    assert_eq!(dead.len(), DEAD_LETTERS_PER_POLL + 1);
    let overflow: Vec<_> = dead.iter().filter(|m| m.payload.get("overflow").is_some()).collect();
    assert_eq!(overflow.len(), 1);
    assert_eq!(overflow[0].payload["overflow"]["count"], 350 - DEAD_LETTERS_PER_POLL);
}

#[tokio::test]
async fn a_catchpoint_404_in_the_middle_of_a_walk_keeps_the_watermark() {
    let nats = NatsServer::start();
    let sim = Simulator::start(
        SimVendor::Catchpoint,
        SimConfig { initial_items: 250, ..SimConfig::for_vendor(SimVendor::Catchpoint) },
    )
    .await
    .unwrap();
    // Page 1 as usual, then a proxy's 404 where page 2 should be.
    sim.inject(Fault::Slow(Duration::ZERO), 1);
    sim.inject(Fault::NotFound, 1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(
        dir.path(),
        Some(&nats.url()),
        "catchpoint",
        &sim.base_url(),
        CATCHPOINT_DEMO_KEY,
        "page_size = 100",
    );
    let err = poll(&cfg).await.expect_err("a 404 after hasMore is an error");
    assert!(err.to_string().contains("HTTP 404"), "{err}");
    let state = Store::open(&cfg.state.path).unwrap().load("test-catchpoint").await.unwrap();
    assert_eq!(state.watermark, None, "the window is not complete");
    assert!(state.walk.is_some(), "the walk resumes at page 2");

    let report = poll(&cfg).await.expect("the next poll resumes");
    assert!(report.complete);
    let stored = stream_messages(&nats.url(), "ALERTD").await;
    let ids: std::collections::HashSet<_> = events(&stored).iter().filter_map(|m| m.msg_id.clone()).collect();
    assert_eq!((events(&stored).len(), ids.len()), (250, 250), "every alert once, none skipped");
}
