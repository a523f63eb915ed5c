//! Revisits (issue 19) end to end: the simulators change items after they
//! left the overlap (an analyst triaging older alerts), a daemon polls and
//! revisits on its schedule, and the stream is compared with the vendor's
//! current state: every new revision once, nothing unchanged again.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use alertd::config::StateBackend;
use alertd::sim::{
    CATCHPOINT_DEMO_KEY, RAPID7_DEMO_KEY, RED_CANARY_DEMO_KEY, SimConfig, SimVendor, Simulator,
};
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

/// A vendor's case: its simulator, source settings, subject, the native
/// id of a changed item, and how many rounds of changes it takes.
struct Case {
    vendor: SimVendor,
    key: &'static str,
    extra: &'static str,
    subject: &'static str,
    native_id: fn(&serde_json::Value) -> String,
    rounds: usize,
}

/// Items change after they left the overlap, `rounds` times; each new
/// revision reaches the stream once, and nothing unchanged is published
/// again.
async fn updates_after_the_overlap_arrive_once_each(case: Case) {
    updates_after_the_overlap_arrive_once_each_on(case, StateBackend::Sqlite).await;
}

/// The same on the given `[state] backend`.
async fn updates_after_the_overlap_arrive_once_each_on(case: Case, backend: StateBackend) {
    const ITEMS: usize = 30;
    const CHANGED: usize = 3;
    let nats = NatsServer::start();
    let sim = simulator(case.vendor, ITEMS).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("page_size = 7\nrevisit = {{ window = \"7d\", every = \"3s\" }}\n{}", case.extra);
    let mut cfg = config(dir.path(), Some(&nats.url()), case.vendor.key(), &sim.base_url(), case.key, &extra);
    cfg.state.backend = toml::Spanned::new(0..0, backend);
    let port = common::free_port();
    cfg.service.listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    let daemon = RunningDaemon::start(&cfg);
    wait_for(&nats, case.subject, "the backlog", |items| items.len() == ITEMS).await;

    // Older than the overlap (10 minutes): only a revisit can see these.
    let before = Utc::now() - chrono::Duration::hours(1);
    let mut changed: Vec<String> = Vec::new();
    for round in 1..=case.rounds {
        let now: Vec<String> = sim.update_items_before(CHANGED, before).iter().map(case.native_id).collect();
        assert_eq!(now.len(), CHANGED, "round {round}");
        if round == 1 {
            changed = now;
        } else {
            assert_eq!(now, changed, "the same items change again");
        }
        wait_for(&nats, case.subject, &format!("change round {round}"), |items| {
            changed.iter().all(|id| items.get(id).is_some_and(|r| r.len() == 1 + round))
        })
        .await;
    }
    // Two more revisits at least: nothing unchanged is published again.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let metrics = scrape(port).await;
    daemon.stop().await;
    // Not even under the same event id (which JetStream's duplicate window
    // would hide from the stream): the revisits found each change once.
    let updates: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("alertd_revisit_updates_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(updates, (case.rounds * CHANGED) as f64, "updates found by the revisits");

    let stream = revisions_in_stream(&nats.url(), "ALERTD", case.subject).await;
    assert_no_duplicates(&stream);
    let items = by_item(&stream);
    assert_eq!(items.len(), ITEMS, "every item, nothing else");
    for (id, revisions) in &items {
        let expected = if changed.contains(id) { 1 + case.rounds } else { 1 };
        assert_eq!(revisions.len(), expected, "item {id}: {revisions:?}");
    }
    assert_eq!(stream.len(), ITEMS + case.rounds * CHANGED, "each revision once");

    // The bookkeeping is where the configuration put it.
    let source = format!("test-{}", case.vendor.key());
    let sqlite = dir.path().join("state.sqlite");
    if backend == StateBackend::NatsKv {
        assert!(!sqlite.exists(), "the nats-kv backend made no SQLite file");
        let client = async_nats::connect(nats.url()).await.expect("connect to NATS");
        let js = async_nats::jetstream::new(client);
        let store =
            alertd::checkpoint::Store::open_kv(&js, &cfg.state.bucket, 1, "test").await.expect("bucket");
        assert_eq!(
            store.revision_count(&source).await.unwrap(),
            ITEMS as u64,
            "every item remembered in the bucket"
        );
    } else {
        let store = alertd::checkpoint::Store::open(&sqlite).unwrap();
        assert_eq!(store.revision_count(&source).await.unwrap(), ITEMS as u64, "every item remembered");
    }
    sim.shutdown().await;
}

/// Red Canary detections acknowledged and remediated, twice each.
fn red_canary() -> Case {
    Case {
        vendor: SimVendor::RedCanary,
        key: RED_CANARY_DEMO_KEY,
        extra: "",
        subject: "alertd.red_canary.test-red_canary.detection",
        native_id: |d| native_id(d, "id"),
        rounds: 2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_canary_acknowledgement_and_remediation_after_the_overlap_arrive_once_each() {
    updates_after_the_overlap_arrive_once_each(red_canary()).await;
}

/// The same with the bookkeeping in the `nats-kv` backend (a key per
/// item, `revisit.<source>` moved by compare-and-set, the streamed prune).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_canary_updates_after_the_overlap_arrive_once_each_on_the_kv_backend() {
    updates_after_the_overlap_arrive_once_each_on(red_canary(), StateBackend::NatsKv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid7_alert_version_bumps_after_the_overlap_arrive_once_each() {
    updates_after_the_overlap_arrive_once_each(Case {
        vendor: SimVendor::Rapid7,
        key: RAPID7_DEMO_KEY,
        extra: "",
        subject: "alertd.rapid7.test-rapid7.alert",
        native_id: |a| native_id(a, "rrn"),
        rounds: 2,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid7_investigation_status_and_disposition_after_the_overlap_arrive_once_each() {
    updates_after_the_overlap_arrive_once_each(Case {
        vendor: SimVendor::Rapid7,
        key: RAPID7_DEMO_KEY,
        extra: "[source.options]\nendpoint = \"investigations\"",
        subject: "alertd.rapid7.test-rapid7.investigation",
        native_id: |a| native_id(a, "investigation_rrn"),
        rounds: 2,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catchpoint_acknowledgements_after_the_overlap_arrive_once_each() {
    updates_after_the_overlap_arrive_once_each(Case {
        vendor: SimVendor::Catchpoint,
        key: CATCHPOINT_DEMO_KEY,
        extra: "",
        subject: "alertd.catchpoint.test-catchpoint.alert",
        native_id: |a| native_id(a, "id"),
        rounds: 1,
    })
    .await;
}

/// The KV backend keeps the same revisit bookkeeping as SQLite, and a
/// second daemon's revisit move wins over a stale one by compare-and-set.
#[tokio::test]
async fn the_kv_backend_passes_the_revision_suite() {
    let nats = NatsServer::start();
    let open = |writer: &'static str| {
        let url = nats.url();
        async move {
            let client = async_nats::connect(url).await.expect("connect");
            let js = async_nats::jetstream::new(client);
            alertd::checkpoint::Store::open_kv(&js, "cursors", 1, writer).await.expect("bucket")
        }
    };
    let (store, reopened) = (open("a").await, open("b").await);
    alertd::checkpoint::revision_conformance::run(&store, &reopened).await;

    use alertd::checkpoint::RevisitMove;
    let started_at = Utc::now();
    store.revisit_state("cas").await.unwrap();
    reopened.revisit_state("cas").await.unwrap();
    let page = |walk: &str| RevisitMove::Page { walk: walk.into(), started_at };
    reopened.commit_revisit("cas", page("b"), Vec::new()).await.unwrap();
    let stale = store.commit_revisit("cas", page("a"), Vec::new()).await;
    assert!(
        matches!(stale, Err(alertd::checkpoint::StoreError::Conflict { .. })),
        "a stale revisit move is refused: {stale:?}"
    );
    assert_eq!(store.revisit_state("cas").await.unwrap().walk.as_deref(), Some("b"));

    // `alertd cursors reset` while a revisit runs: the runner's next page
    // commit is refused, and its next run starts over.
    store.commit_revisit("cas", page("c"), Vec::new()).await.unwrap();
    reopened.reset("cas", "some_vendor", None).await.unwrap();
    let after_reset = store.commit_revisit("cas", page("d"), Vec::new()).await;
    assert!(
        matches!(after_reset, Err(alertd::checkpoint::StoreError::Conflict { .. })),
        "a revisit move after a reset is refused: {after_reset:?}"
    );
    assert_eq!(store.revisit_state("cas").await.unwrap(), alertd::checkpoint::RevisitState::default());
    store.commit_revisit("cas", page("e"), Vec::new()).await.unwrap();
}

/// SIGKILLs of the real binary while it revisits (and polls): the stream
/// ends with every item's current revision, each revision once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_in_the_middle_of_revisits_lose_nothing_and_duplicate_nothing() {
    use rand::{Rng, SeedableRng};
    use std::process::{Command, Stdio};

    const ITEMS: usize = 150;
    const KILLS: usize = 8;
    const SUBJECT: &str = "alertd.rapid7.r7.alert";
    let nats = NatsServer::start();
    let sim = simulator(SimVendor::Rapid7, ITEMS).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.sqlite");
    let config = dir.path().join("alertd.toml");
    std::fs::write(
        &config,
        format!(
            "[nats]\nurl = \"{}\"\nack_timeout = \"2s\"\n\n[state]\npath = \"{}\"\n\n[service]\nlisten = \"off\"\n\n\
             [[source]]\nvendor = \"rapid7\"\nname = \"r7\"\nbase_url = \"{}\"\ncredential = {{ env = \"ALERTD_REVISIT_KEY\" }}\n\
             schedule = \"every 1s\"\njitter = \"0s\"\nlag = \"0s\"\ninitial_lookback = \"72h\"\npage_size = 2\n\
             rate_limits = []\nrevisit = {{ window = \"7d\", every = \"1s\" }}\n",
            nats.url(),
            state.display(),
            sim.base_url()
        ),
    )
    .unwrap();
    let daemon = || {
        Command::new(common::alertd_bin())
            .arg("run")
            .arg("-c")
            .arg(&config)
            .env("ALERTD_REVISIT_KEY", RAPID7_DEMO_KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let seed = std::env::var("ALERTD_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(19u64);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let mut child = daemon();
    wait_for(&nats, SUBJECT, "the backlog", |items| items.len() == ITEMS).await;
    let before = Utc::now() - chrono::Duration::hours(1);
    let mut mid_revisit = 0;
    for _ in 0..KILLS {
        sim.update_items_before(4, before);
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..2500))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        let store = alertd::checkpoint::Store::open(&state).unwrap();
        if store.revisit_state("r7").await.unwrap().walk.is_some() {
            mid_revisit += 1;
        }
        child = daemon();
    }
    // The last daemon runs until the stream holds every current revision.
    let truth: HashMap<String, String> = sim
        .ground_truth()
        .iter()
        .map(|a| (native_id(a, "rrn"), a["version"].as_u64().unwrap_or(1).to_string()))
        .collect();
    wait_for(&nats, SUBJECT, "every current revision", |items| {
        truth.iter().all(|(id, version)| items.get(id).is_some_and(|r| r.contains(version)))
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();

    let stream = revisions_in_stream(&nats.url(), "ALERTD", SUBJECT).await;
    assert_no_duplicates(&stream);
    assert_eq!(by_item(&stream).len(), ITEMS, "every alert, nothing else");
    eprintln!("seed {seed}: {KILLS} SIGKILLs, {mid_revisit} in the middle of a revisit");
    assert!(mid_revisit > 0, "no kill landed in the middle of a revisit (seed {seed}); make revisits longer");
    sim.shutdown().await;
}

/// Sum and count of a histogram in the metrics text.
fn histogram(metrics: &str, name: &str) -> (f64, f64) {
    let value = |suffix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}_{suffix}")))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (value("sum"), value("count"))
}

async fn scrape(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// Under a tight rate limit (the simulator refuses anything beyond it), a
/// revisit far longer than the gap between polls runs only on what the
/// polls leave: the polls start as late, and take as long, as before it
/// started, and no request is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_revisit_under_a_tight_rate_limit_does_not_delay_the_regular_polls() {
    use alertd::throttle::RateLimit;
    let nats = NatsServer::start();
    let limit = RateLimit::new(5, Duration::from_secs(1));
    let sim_config = SimConfig {
        seed: 19,
        initial_items: 120,
        history: Duration::from_secs(6 * 3600),
        enforce_limit: Some(limit),
        ..SimConfig::for_vendor(SimVendor::RedCanary)
    };
    let sim = Simulator::start(SimVendor::RedCanary, sim_config).await.expect("simulator");
    let dir = tempfile::tempdir().unwrap();
    // The first revisit starts 10 s after the backfill: the polls before
    // it are the baseline.
    let mut cfg = config(
        dir.path(),
        Some(&nats.url()),
        "red_canary",
        &sim.base_url(),
        RED_CANARY_DEMO_KEY,
        "page_size = 4\nrate_limits = [\"5/s\"]\nrevisit = { window = \"7d\", every = \"10s\" }",
    );
    let port = common::free_port();
    cfg.service.listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    let daemon = RunningDaemon::start(&cfg);
    wait_for(&nats, "alertd.red_canary.test-red_canary.detection", "the backlog", |items| items.len() == 120)
        .await;
    let drift = "alertd_schedule_drift_seconds";
    let duration = "alertd_poll_duration_seconds";
    // The backfill's own (long) poll is left out of the baseline.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let start = scrape(port).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let baseline = scrape(port).await;
    // Revisits from here on (~30 pages each at what the polls leave).
    tokio::time::sleep(Duration::from_secs(16)).await;
    let during = scrape(port).await;
    daemon.stop().await;

    let mean = |from: &str, to: &str, name: &str| {
        let ((s0, c0), (s1, c1)) = (histogram(from, name), histogram(to, name));
        assert!(c1 > c0, "{name}: no polls between the scrapes");
        (s1 - s0) / (c1 - c0)
    };
    let pages = during
        .lines()
        .find(|l| l.starts_with("alertd_revisit_pages_total{"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    let (drift_before, drift_during) = (mean(&start, &baseline, drift), mean(&baseline, &during, drift));
    let (took_before, took_during) = (mean(&start, &baseline, duration), mean(&baseline, &during, duration));
    eprintln!(
        "revisit pages {pages}; mean drift {drift_before:.3}s before, {drift_during:.3}s during; \
         mean poll {took_before:.3}s before, {took_during:.3}s during; 429s {}",
        sim.rate_limited_count()
    );
    assert!(pages > 0.0, "the revisit ran: {during}");
    assert_eq!(sim.rate_limited_count(), 0, "no request beyond the limit");
    assert!(
        drift_during <= drift_before + 0.25,
        "polls start later while a revisit runs: {drift_before:.3}s → {drift_during:.3}s"
    );
    assert!(
        took_during <= took_before + 0.25,
        "polls take longer while a revisit runs: {took_before:.3}s → {took_during:.3}s"
    );
    sim.shutdown().await;
}
