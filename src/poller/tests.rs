//! The walk's page handling on its own: a CanaryGuard poller whose sink
//! writes JSON lines to memory and whose store is an in-memory SQLite
//! database, handed pages directly (no HTTP): what is encoded for each
//! format, what is skipped, what is committed, and that a failed publish
//! commits nothing.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::*;
use crate::paginate::{Continuation, Page, PageHandler};
use crate::publish::{Format, StdoutSink};
use crate::sim::{SimConfig, SimVendor, Simulator};
use crate::vendors::canaryguard::CanaryGuard;

/// A writer into memory that tests read back, or one that always fails.
#[derive(Clone, Default)]
struct Lines {
    out: Arc<Mutex<Vec<u8>>>,
    broken: bool,
}

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.broken {
            return Err(std::io::Error::other("the sink is down"));
        }
        self.out.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn take(&self) -> Vec<Value> {
        let bytes = std::mem::take(&mut *self.out.lock().unwrap());
        String::from_utf8(bytes).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

/// A poller whose overlap (72 h) covers the simulator's 48 h of items, so
/// every id a walk publishes is one it stores.
fn poller(lines: &Lines, store: &Store) -> Poller<CanaryGuard> {
    poller_with(lines, store, "overlap = \"72h\"\n")
}

fn poller_with(lines: &Lines, store: &Store, settings: &str) -> Poller<CanaryGuard> {
    let config = crate::registry::parse(
        &format!(
            "[[source]]\nvendor = \"canaryguard\"\nname = \"acme\"\nbase_url = \"https://cg.example\"\n\
             credential = {{ env = \"UNUSED\" }}\n{settings}"
        ),
        "t.toml",
    )
    .unwrap();
    let sink = Sink::Stdout(
        StdoutSink::to_writer(Box::new(lines.clone())).with_formats(&[Format::Alertd, Format::Ocsf]),
    );
    let deps = PollerDeps {
        store: store.clone(),
        sink,
        client: reqwest::Client::new(),
        retry: RetryPolicy::default(),
        telemetry: Arc::new(Telemetry::default()),
        instance: None,
    };
    Poller::new(&config.sources[0], deps).unwrap()
}

/// Ten CanaryGuard alerts as the simulator serves them.
async fn items() -> Vec<Value> {
    let sim = Simulator::start(SimVendor::CanaryGuard, SimConfig { initial_items: 10, ..Default::default() })
        .await
        .unwrap();
    let items = sim.ground_truth();
    sim.shutdown().await;
    items
}

fn walk(p: &Poller<CanaryGuard>) -> WalkState<<CanaryGuard as Vendor>::Plan> {
    let plan = p.vendor.plan(None, Utc::now()).unwrap();
    WalkState { plan, next: Position::Page(1), max_mark: None }
}

fn page(items: &[Value]) -> Page {
    Page::new(items.to_vec(), Continuation::PageTotal { total: 100, limit: 10 })
}

fn key() -> Credential {
    Credential::resolve(&CredentialSource::Inline(secrecy::SecretString::from("k".to_owned()))).unwrap()
}

#[tokio::test]
async fn a_page_is_encoded_for_every_format_then_committed_with_its_next_position() {
    let (lines, store) = (Lines::default(), Store::open(Path::new(":memory:")).unwrap());
    let p = poller(&lines, &store);
    let shutdown = CancellationToken::new();
    let mut h = Handler::new(&p, key(), walk(&p), &shutdown);
    let items = items().await;
    let go_on = h.deliver(&Position::Page(1), page(&items[..4]), Some(&Position::Page(2))).await.unwrap();
    assert!(go_on);
    h.settle().await.unwrap();

    let out = lines.take();
    assert_eq!(out.len(), 8, "four events, each as v1 and as an OCSF finding");
    assert_eq!(out.iter().filter(|m| m["schema_version"] == crate::event::SCHEMA_VERSION).count(), 4);
    assert_eq!(out.iter().filter(|m| m["class_uid"] == 2004).count(), 4);
    let state = store.load("acme").await.unwrap();
    assert_eq!(state.vendor.as_deref(), Some("canaryguard"));
    let stored: Value = serde_json::from_str(&state.walk.unwrap()).unwrap();
    assert_eq!(stored["next"], json!({"at": "page", "value": 2}), "resumes at page 2");
    let report = h.into_report();
    assert_eq!((report.pages, report.items, report.events, report.published), (1, 4, 4, 8));
    let summary = report.summary(&[Format::Alertd, Format::Ocsf]);
    assert!(summary.starts_with("1 pages, 4 items, 4 events, 8 messages (alertd, ocsf)"), "{summary}");
}

#[tokio::test]
async fn delivered_events_are_skipped_and_a_broken_item_is_dead_lettered_once() {
    let (lines, store) = (Lines::default(), Store::open(Path::new(":memory:")).unwrap());
    let p = poller(&lines, &store);
    let shutdown = CancellationToken::new();
    let mut items = items().await;
    items.truncate(3);
    items.push(json!({ "not": "an alert" }));

    let mut first = Handler::new(&p, key(), walk(&p), &shutdown);
    first.deliver(&Position::Page(1), page(&items), Some(&Position::Page(2))).await.unwrap();
    first.settle().await.unwrap();
    let out = lines.take();
    let dead: Vec<_> = out.iter().filter(|m| m["schema_version"] == "alertd.deadletter.v1").collect();
    assert_eq!((out.len(), dead.len()), (7, 1), "3 × 2 formats and one dead letter");
    assert_eq!(dead[0]["raw"], items[3]);
    assert_eq!(first.into_report().dead_letters, 1);

    let mut again = Handler::new(&p, key(), walk(&p), &shutdown);
    again.deliver(&Position::Page(1), page(&items), Some(&Position::Page(2))).await.unwrap();
    again.settle().await.unwrap();
    assert!(lines.take().is_empty(), "nothing is published twice, the broken item included");
    let report = again.into_report();
    assert_eq!((report.skipped_seen, report.dead_letters), (4, 0));
}

#[tokio::test]
async fn the_last_page_sets_the_watermark_and_ends_the_walk() {
    let (lines, store) = (Lines::default(), Store::open(Path::new(":memory:")).unwrap());
    let p = poller(&lines, &store);
    let shutdown = CancellationToken::new();
    let mut h = Handler::new(&p, key(), walk(&p), &shutdown);
    let items = items().await;
    h.deliver(&Position::Page(1), page(&items), None).await.unwrap();
    let state = store.load("acme").await.unwrap();
    assert_eq!(state.walk, None, "the walk ended");
    let report = h.into_report();
    assert_eq!(state.watermark, report.watermark, "the watermark is the one reported");
    assert!(report.watermark.is_some());
}

#[tokio::test]
async fn a_failed_publish_commits_nothing() {
    let lines = Lines { broken: true, ..Lines::default() };
    let store = Store::open(Path::new(":memory:")).unwrap();
    let p = poller(&lines, &store);
    let shutdown = CancellationToken::new();
    let mut h = Handler::new(&p, key(), walk(&p), &shutdown);
    let items = items().await;
    let err = h.deliver(&Position::Page(1), page(&items), Some(&Position::Page(2))).await.unwrap_err();
    assert_eq!(err.code(), "publish");
    assert_eq!(h.settle().await.unwrap_err().code(), "publish", "the failure stays");
    assert_eq!(store.load("acme").await.unwrap(), crate::checkpoint::SourceState::default(), "no cursor");
    let ids = items.iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect();
    assert!(store.seen("acme", ids).await.unwrap().is_empty());
}

#[tokio::test]
async fn after_shutdown_the_page_in_flight_is_committed_and_the_walk_stops() {
    let (lines, store) = (Lines::default(), Store::open(Path::new(":memory:")).unwrap());
    let p = poller(&lines, &store);
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let mut h = Handler::new(&p, key(), walk(&p), &shutdown);
    let items = items().await;
    let go_on = h.deliver(&Position::Page(1), page(&items), Some(&Position::Page(2))).await.unwrap();
    assert!(!go_on, "no next page after shutdown");
    assert!(store.load("acme").await.unwrap().walk.is_some(), "but this one is committed");
    assert_eq!(lines.take().len(), 20);
}

#[tokio::test]
async fn pages_in_flight_commit_in_order_and_skip_what_an_earlier_page_in_flight_sent() {
    let (lines, store) = (Lines::default(), Store::open(Path::new(":memory:")).unwrap());
    let p = poller(&lines, &store);
    let shutdown = CancellationToken::new();
    let mut h = Handler::new(&p, key(), walk(&p), &shutdown);
    let items = items().await;
    // Page 2 repeats page 1's last item (new items shifted the pages).
    h.deliver(&Position::Page(1), page(&items[..4]), Some(&Position::Page(2))).await.unwrap();
    h.deliver(&Position::Page(2), page(&items[3..7]), Some(&Position::Page(3))).await.unwrap();
    h.deliver(&Position::Page(3), page(&items[7..]), Some(&Position::Page(4))).await.unwrap();
    h.settle().await.unwrap();

    assert_eq!(lines.take().len(), 20, "ten distinct events, each in two formats");
    let stored: Value = serde_json::from_str(&store.load("acme").await.unwrap().walk.unwrap()).unwrap();
    assert_eq!(stored["next"], json!({"at": "page", "value": 4}), "the last page's position is the cursor");
    let ids: Vec<String> = items
        .iter()
        .map(|i| crate::event::event_id("canaryguard", "acme", i["id"].as_str().unwrap(), "1").to_string())
        .collect();
    assert_eq!(store.seen("acme", ids).await.unwrap().len(), 10, "every page's ids are committed");
    let report = h.into_report();
    assert_eq!((report.pages, report.items, report.published, report.skipped_seen), (3, 11, 20, 1));
}

#[tokio::test]
async fn a_walk_stores_only_the_ids_its_end_would_not_prune() {
    let (lines, store) = (Lines::default(), Store::open(Path::new(":memory:")).unwrap());
    // The default overlap (10 minutes): of the simulator's 48 h of items,
    // only those in the window's last 10 minutes can come back in a later
    // walk; the older ones are published but never stored.
    let p = poller_with(&lines, &store, "");
    let shutdown = CancellationToken::new();
    let walk = walk(&p);
    let forget_before = p.vendor.forget_before(&walk.plan).unwrap();
    assert_eq!(Some(forget_before), p.vendor.finish(&walk.plan, None).prune_before);
    let mut items = items().await;
    // Two of the ten are recent: inside the last 10 minutes of the window.
    for item in &mut items[..2] {
        item["triggered_at"] =
            json!(crate::incremental::format_time(forget_before + chrono::TimeDelta::seconds(30)));
    }
    let mut h = Handler::new(&p, key(), walk, &shutdown);
    h.deliver(&Position::Page(1), page(&items[..5]), Some(&Position::Page(2))).await.unwrap();
    h.deliver(&Position::Page(2), page(&items[5..]), Some(&Position::Page(3))).await.unwrap();
    h.settle().await.unwrap();
    assert_eq!(lines.take().len(), 20, "every item is published, in both formats");

    let ids: Vec<String> = items
        .iter()
        .map(|i| crate::event::event_id("canaryguard", "acme", i["id"].as_str().unwrap(), "1").to_string())
        .collect();
    let stored = store.seen("acme", ids.clone()).await.unwrap();
    assert_eq!(stored, ids[..2].iter().cloned().collect(), "only the two recent ids are stored");
    let rows = store.list().await.unwrap();
    assert_eq!(rows[0].seen, 2);
    assert!(rows[0].walk_in_progress, "the cursor moved all the same");
}

#[tokio::test]
async fn a_walk_remembers_revisions_only_inside_the_revisit_window() {
    let (lines, store) = (Lines::default(), Store::open(Path::new(":memory:")).unwrap());
    // Revisits reach back one hour: of the simulator's 48 h of items, only
    // those of the last hour can be asked for by one.
    let p = poller_with(&lines, &store, "revisit = { window = \"1h\", every = \"1h\" }\n");
    assert!(p.revisit.is_some(), "the source revisits");
    let shutdown = CancellationToken::new();
    let mut items = items().await;
    let now = Utc::now();
    for (i, item) in items.iter_mut().enumerate() {
        // Three inside the window, seven older than it.
        let age = if i < 3 { chrono::TimeDelta::minutes(20) } else { chrono::TimeDelta::hours(2) };
        item["triggered_at"] = json!(crate::incremental::format_time(now - age));
    }
    let mut h = Handler::new(&p, key(), walk(&p), &shutdown);
    h.deliver(&Position::Page(1), page(&items[..5]), Some(&Position::Page(2))).await.unwrap();
    h.deliver(&Position::Page(2), page(&items[5..]), None).await.unwrap();
    h.settle().await.unwrap();
    assert_eq!(lines.take().len(), 20, "every item is published, in both formats");
    assert_eq!(store.revision_count("acme").await.unwrap(), 3, "the three inside the window are remembered");
    let asked: Vec<(String, chrono::DateTime<Utc>)> = items
        .iter()
        .map(|i| {
            let time = crate::incremental::parse_time(i["triggered_at"].as_str().unwrap()).unwrap();
            (i["id"].as_str().unwrap().to_owned(), time)
        })
        .collect();
    let found = store.published_revisions("acme", asked.clone()).await.unwrap();
    let mut found: Vec<&String> = found.keys().collect();
    found.sort();
    let mut recent: Vec<&String> = asked[..3].iter().map(|(id, _)| id).collect();
    recent.sort();
    assert_eq!(found, recent);
}
