//! The whole pipeline against real parts: the CanaryGuard simulator over
//! loopback HTTP, a real nats-server with JetStream, a real SQLite file.

mod common;

use common::poll::{assert_exactly_once, native_ids_in_stream, run_once};

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use alertd::checkpoint::Store;
use alertd::sim::{CANARYGUARD_DEMO_KEY, Fault, Simulator};

use common::{NatsServer, config, stream_messages};

const SUBJECT: &str = "alertd.canaryguard.test-canaryguard.alert";

/// The alert ids in the stream, each with how often it is there.
async fn ids_in_stream(nats: &NatsServer) -> HashMap<String, usize> {
    native_ids_in_stream(&nats.url(), "ALERTD", SUBJECT).await
}

fn truth_ids(sim: &Simulator) -> HashSet<String> {
    common::poll::truth_ids(sim, "id")
}

#[tokio::test]
async fn every_alert_arrives_exactly_once_across_polls_and_restarts() {
    let nats = NatsServer::start();
    let sim = common::canaryguard(250).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::canaryguard_config(dir.path(), Some(&nats.url()), &sim, "page_size = 7");

    let first = run_once(&cfg).await.expect("first poll");
    assert_eq!(first.pages, 36, "250 alerts in pages of 7");
    assert_eq!(first.published, 250);
    assert!(first.complete);
    assert_exactly_once(&ids_in_stream(&nats).await, &truth_ids(&sim));

    // New alerts arrive; each run_once is a fresh daemon on the same state (a restart).
    sim.add_items(12);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = run_once(&cfg).await.expect("second poll");
    assert_eq!(second.published, 12, "only the new alerts are published");
    assert_exactly_once(&ids_in_stream(&nats).await, &truth_ids(&sim));

    let third = run_once(&cfg).await.expect("third poll");
    assert_eq!(third.published, 0);
    assert_eq!(third.duplicates, 0, "the overlap window is deduplicated before publishing");
    assert!(third.skipped_seen >= 12, "alerts in the overlap are recognised as delivered");
    assert_exactly_once(&ids_in_stream(&nats).await, &truth_ids(&sim));

    let events = stream_messages(&nats.url(), "ALERTD").await;
    assert!(events.iter().all(|m| m.subject == "alertd.canaryguard.test-canaryguard.alert"));
}

#[tokio::test]
async fn a_cursor_is_not_advanced_while_nats_is_down_and_nothing_is_lost() {
    let mut nats = NatsServer::start();
    let sim = common::canaryguard(40).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::canaryguard_config(dir.path(), Some(&nats.url()), &sim, "page_size = 10");
    run_once(&cfg).await.expect("first poll");
    let store = Store::open(&cfg.state.path).unwrap();

    // A long-running daemon; NATS goes away, alerts keep coming.
    let daemon = common::poll::RunningDaemon::start(&cfg);
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.stop();
    // Polls with nothing new may still complete (there is nothing to ack);
    // let any such poll finish before taking the reference state.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = store.load("test-canaryguard").await.unwrap();
    assert!(before.watermark.is_some());
    sim.add_items(15);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let during = store.load("test-canaryguard").await.unwrap();
    assert_eq!(during.watermark, before.watermark, "no watermark move without PubAcks");
    assert_eq!(during.walk, None, "no page committed without PubAcks");

    nats.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stream = ids_in_stream(&nats).await;
        if stream.len() == 55 || Instant::now() > deadline {
            assert_exactly_once(&stream, &truth_ids(&sim));
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    daemon.stop().await;
    let after = store.load("test-canaryguard").await.unwrap();
    assert!(after.watermark > before.watermark, "the watermark moves once NATS is back");
}

/// Pages are pipelined: a page is sent and the next fetched while its
/// acks are outstanding. NATS is frozen mid-backfill (SIGSTOP: the socket
/// takes the publishes, no PubAck comes back), so the walk runs ahead of
/// its acks until the pages in flight are at their bound and the acks time
/// out. The stored cursor must not lead what NATS acknowledged: every id
/// the store has as delivered is in the stream, and the cursor's next page
/// is exactly the one after the pages those ids came from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_never_leads_the_acknowledged_pages_while_pages_are_in_flight() {
    let nats = NatsServer::start();
    let sim = common::canaryguard(3_000).await;
    let dir = tempfile::tempdir().unwrap();
    // An overlap over the simulator's whole history, so that the store
    // keeps every id it commits (by default a backfill stores only the ids
    // its window's last `overlap` holds).
    let cfg =
        common::canaryguard_config(dir.path(), Some(&nats.url()), &sim, "page_size = 10\noverlap = \"72h\"");
    let poll = tokio::spawn({
        let cfg = cfg.clone();
        async move { run_once(&cfg).await }
    });
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = match js.get_stream("ALERTD").await {
            Ok(mut stream) => stream.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        };
        if stored >= 300 {
            break;
        }
        assert!(Instant::now() < deadline && !poll.is_finished(), "the backfill did not get going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    nats.pause();
    let err = tokio::time::timeout(Duration::from_secs(60), poll)
        .await
        .expect("the poll ends once its acks time out")
        .unwrap()
        .expect_err("no acks, no complete walk");
    assert_eq!(err.code(), "publish", "{err}");
    let fetched = sim.requests().iter().filter(|r| r.path == "/api/v1/alerts").count() as u64;
    let state = Store::open(&cfg.state.path).unwrap().load("test-canaryguard").await.unwrap();
    nats.resume();

    assert_eq!(state.watermark, None, "the walk did not finish");
    let walk: serde_json::Value =
        serde_json::from_str(state.walk.as_deref().expect("pages were committed")).unwrap();
    let next = walk["next"]["value"].as_u64().expect("a page number");
    assert!(
        fetched > next,
        "the walk fetched page {fetched} while its cursor was at page {next}: pages were in flight"
    );
    let ids: Vec<String> = sim
        .ground_truth()
        .iter()
        .map(|a| {
            alertd::event::event_id("canaryguard", "test-canaryguard", a["id"].as_str().unwrap(), "1")
                .to_string()
        })
        .collect();
    let store = Store::open(&cfg.state.path).unwrap();
    let delivered = store.seen("test-canaryguard", ids).await.unwrap();
    assert_eq!(delivered.len() as u64, (next - 1) * 10, "the cursor moved with exactly its pages' ids");
    let in_stream: HashSet<String> =
        stream_messages(&nats.url(), "ALERTD").await.into_iter().filter_map(|m| m.msg_id).collect();
    let ahead: Vec<_> = delivered.iter().filter(|id| !in_stream.contains(*id)).collect();
    assert!(ahead.is_empty(), "the store has {} ids as delivered that NATS never stored", ahead.len());

    let report = run_once(&cfg).await.expect("the walk resumes once NATS answers");
    assert!(report.complete);
    assert_exactly_once(&ids_in_stream(&nats).await, &truth_ids(&sim));
}

#[tokio::test]
async fn an_html_error_page_is_a_clear_error_and_leaves_the_cursor() {
    let sim = common::canaryguard(30).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::canaryguard_config(dir.path(), None, &sim, "page_size = 10");
    sim.inject(Fault::HtmlError, 1);
    let err = run_once(&cfg).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("HTML page") && text.contains("HTTP 500"), "{text}");
    assert!(text.contains("test-canaryguard"), "names the source: {text}");
    let state = Store::open(&cfg.state.path).unwrap().load("test-canaryguard").await.unwrap();
    assert_eq!(state.watermark, None);
    assert_eq!(state.walk, None);
}

#[tokio::test]
async fn a_truncated_page_mid_walk_keeps_the_pages_before_it_and_resumes_after() {
    let nats = NatsServer::start();
    let sim = common::canaryguard(30).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::canaryguard_config(dir.path(), Some(&nats.url()), &sim, "page_size = 10");
    // The first page is fine, the second is cut off.
    sim.inject(Fault::Slow(Duration::ZERO), 1);
    sim.inject(Fault::TruncatedJson, 1);
    let err = run_once(&cfg).await.unwrap_err();
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    assert!(err.to_string().contains("page 2"), "says where: {err}");
    let state = Store::open(&cfg.state.path).unwrap().load("test-canaryguard").await.unwrap();
    assert_eq!(state.watermark, None, "the walk did not finish");
    assert!(state.walk.as_deref().is_some_and(|w| w.contains("\"value\":2")), "resumes at page 2: {state:?}");
    assert_eq!(ids_in_stream(&nats).await.len(), 10, "page 1 was delivered");

    let report = run_once(&cfg).await.expect("the walk resumes");
    assert_eq!(report.pages, 2, "pages 2 and 3 only");
    assert_exactly_once(&ids_in_stream(&nats).await, &truth_ids(&sim));
}

#[tokio::test]
async fn a_refused_key_is_an_auth_error_naming_the_source() {
    let sim = common::canaryguard(5).await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = "cg_live_ffffffffffffffffffffffffffffffffffffffff";
    let cfg = config(dir.path(), None, "canaryguard", &sim.base_url(), wrong, "");
    let err = run_once(&cfg).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("HTTP 401") && text.contains("API key was refused"), "{text}");
    assert!(!text.contains(wrong), "the key never appears in errors");
    assert_eq!(err.code(), "auth");
}

#[tokio::test]
async fn a_malformed_item_goes_to_the_dead_letter_subject_and_the_page_proceeds() {
    let nats = NatsServer::start();
    let sim = common::canaryguard(10).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::canaryguard_config(dir.path(), Some(&nats.url()), &sim, "page_size = 10");
    sim.inject(Fault::MalformedItem, 1);
    let report = run_once(&cfg).await.expect("poll completes");
    assert_eq!(report.dead_letters, 1);
    assert_eq!(report.published, 10, "9 events and 1 dead letter");
    let messages = stream_messages(&nats.url(), "ALERTD").await;
    let dead: Vec<_> = messages.iter().filter(|m| m.subject == "alertd.deadletter.canaryguard").collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload["source"], "test-canaryguard");
    assert!(dead[0].payload["error"].as_str().unwrap().contains("id"), "{}", dead[0].payload);
    assert!(dead[0].payload["raw"].is_object());
}

#[tokio::test]
async fn an_existing_stream_is_reused_and_a_restarted_daemon_publishes_nothing_twice() {
    let nats = NatsServer::start();
    let sim = common::canaryguard(20).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::canaryguard_config(dir.path(), Some(&nats.url()), &sim, "");
    run_once(&cfg).await.expect("first");
    // Lose the checkpoint store entirely: every alert is fetched again, and
    // JetStream's deduplication by event id keeps the stream exact.
    std::fs::remove_file(&cfg.state.path).unwrap();
    let again = run_once(&cfg).await.expect("second");
    assert_eq!(again.published, 0);
    assert_eq!(again.duplicates, 20, "every re-sent event is acked as a duplicate");
    assert_exactly_once(&ids_in_stream(&nats).await, &truth_ids(&sim));
}

/// async-nats and reqwest must agree on one TLS crypto provider, or the
/// first `tls://` connection panics; plain loopback tests never get there.
#[tokio::test]
async fn events_are_published_over_tls_with_a_private_ca() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = common::test_certificates(certs.path());
    let nats = NatsServer::start_tls(&cert, &key);
    let sim = common::canaryguard(8).await;
    let dir = tempfile::tempdir().unwrap();
    let tls_url = nats.url().replace("nats://", "tls://");
    let mut cfg =
        config(dir.path(), Some(&tls_url), "canaryguard", &sim.base_url(), CANARYGUARD_DEMO_KEY, "");
    if let Some(n) = cfg.nats.as_mut() {
        n.tls_ca_file = Some(ca.clone());
    }
    let report = run_once(&cfg).await.expect("poll over TLS");
    assert_eq!(report.published, 8);

    let client = async_nats::ConnectOptions::new()
        .add_root_certificates(ca)
        .connect(tls_url.as_str())
        .await
        .expect("test client connects over TLS");
    let js = async_nats::jetstream::new(client);
    let info = js.get_stream("ALERTD").await.unwrap().info().await.unwrap().clone();
    assert_eq!(info.state.messages, 8);
}

#[tokio::test]
async fn an_existing_stream_with_a_short_duplicate_window_is_used_with_a_warning() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "ALERTD".into(),
        subjects: vec!["alertd.>".into()],
        duplicate_window: Duration::from_secs(60),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), Some(&nats.url()), "canaryguard", "http://127.0.0.1:9", "k", "");
    let nats_cfg = cfg.nats.as_ref().unwrap();
    let sink = alertd::publish::NatsSink::connect(nats_cfg, "test").await.unwrap();
    let warning = sink.ensure_stream(nats_cfg).await.unwrap().expect("a warning");
    assert!(warning.contains("1m") && warning.contains("2h"), "{warning}");
    let info = js.get_stream("ALERTD").await.unwrap().info().await.unwrap().clone();
    assert_eq!(info.config.duplicate_window, Duration::from_secs(60), "an existing stream is not changed");
}
