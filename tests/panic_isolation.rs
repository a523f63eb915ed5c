//! A panic in one source's poll stays in that source. The stand-in for a
//! bug is a vendor that is CanaryGuard in every respect but panics while
//! parsing its first pages (as a slicing bug on vendor bytes once did); the
//! other source is a plain CanaryGuard. Both run through the real poller and
//! scheduler against a simulator, a real nats-server and a SQLite file.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use alertd::checkpoint::Store;
use alertd::cluster::Slot;
use alertd::config::{Credential, SourceConfig};
use alertd::event::Kind;
use alertd::http::RetryPolicy;
use alertd::paginate::{Page, Position, Scheme};
use alertd::poller::{PollerDeps, build};
use alertd::schedule::{self, Scheduled};
use alertd::telemetry::Telemetry;
use alertd::vendors::canaryguard::{CanaryGuard, Options};
use alertd::vendors::{Finish, NormalizeContext, NormalizeError, Normalized, PageError, Vendor};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use url::Url;

use common::{NatsServer, stream_messages};

/// Pages the buggy vendor has parsed (it panics on the first two).
static PARSED: AtomicUsize = AtomicUsize::new(0);

/// CanaryGuard with a bug: its first two page parses panic.
struct Buggy(CanaryGuard);

impl Vendor for Buggy {
    const KEY: &'static str = CanaryGuard::KEY;
    const NAME: &'static str = "CanaryGuard (with a bug)";
    const DEFAULT_BASE_URL: Option<&'static str> = None;
    const MAX_PAGE_SIZE: u32 = CanaryGuard::MAX_PAGE_SIZE;
    const OCSF: alertd::ocsf::Product = CanaryGuard::OCSF;
    type Options = Options;
    type Plan = <CanaryGuard as Vendor>::Plan;

    fn new(source: &SourceConfig, base_url: Url, options: Options) -> Result<Self, String> {
        CanaryGuard::new(source, base_url, options).map(Buggy)
    }
    fn kind(&self) -> Kind {
        self.0.kind()
    }
    fn scheme(&self) -> Scheme {
        self.0.scheme()
    }
    fn plan(&self, watermark: Option<&str>, now: DateTime<Utc>) -> Result<Self::Plan, PageError> {
        self.0.plan(watermark, now)
    }
    fn request(
        &self,
        client: &reqwest::Client,
        plan: &Self::Plan,
        at: &Position,
        key: &Credential,
    ) -> reqwest::RequestBuilder {
        self.0.request(client, plan, at, key)
    }
    fn parse_page(&self, body: &[u8]) -> Result<Page, PageError> {
        if PARSED.fetch_add(1, Ordering::SeqCst) < 2 {
            let text = "é".repeat(100);
            std::hint::black_box(&text[..1]); // cuts a character in two: panics
        }
        self.0.parse_page(body)
    }
    fn normalize(
        &self,
        item: &serde_json::Value,
        ctx: &NormalizeContext<'_>,
    ) -> Result<Normalized, NormalizeError> {
        self.0.normalize(item, ctx)
    }
    fn finish(&self, plan: &Self::Plan, max_mark: Option<i64>) -> Finish {
        self.0.finish(plan, max_mark)
    }
}

#[tokio::test]
async fn a_panicking_source_fails_its_poll_while_the_others_keep_delivering() {
    let nats = NatsServer::start();
    let buggy_sim = common::canaryguard(15).await;
    let good_sim = common::canaryguard(15).await;
    let dir = tempfile::tempdir().unwrap();
    let mut buggy_cfg =
        common::canaryguard_config(dir.path(), Some(&nats.url()), &buggy_sim, "page_size = 10");
    let good_cfg = common::canaryguard_config(dir.path(), Some(&nats.url()), &good_sim, "page_size = 10");
    buggy_cfg.sources[0].name = toml::Spanned::new(0..0, "buggy".to_owned());

    let shutdown = CancellationToken::new();
    let sink = alertd::daemon::connect_sink(&good_cfg, &shutdown).await.expect("NATS");
    let telemetry = Arc::new(Telemetry::default());
    let deps = PollerDeps {
        store: Store::open(&good_cfg.state.path).unwrap(),
        sink,
        client: alertd::daemon::http_client(None).unwrap(),
        retry: RetryPolicy::default(),
        telemetry: Arc::clone(&telemetry),
        instance: None,
    };
    let every_second = |poller| Scheduled {
        poller,
        schedule: "every 1s".parse().unwrap(),
        jitter: Duration::ZERO,
        telemetry: Arc::clone(&telemetry),
        slot: Slot::always(&shutdown),
    };
    let buggy = build::<Buggy>(&buggy_cfg.sources[0], deps.clone()).unwrap();
    let good = build::<CanaryGuard>(&good_cfg.sources[0], deps.clone()).unwrap();
    let daemon = tokio::spawn(schedule::run(
        vec![every_second(Arc::from(buggy)), every_second(Arc::from(good))],
        shutdown.clone(),
    ));

    // Both sources deliver everything: the good one from its first poll,
    // the buggy one once its bug stops firing (its third poll).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stored = stream_messages(&nats.url(), "ALERTD").await;
        let from = |source: &str| stored.iter().filter(|m| m.payload["source"]["name"] == source).count();
        if from("buggy") == 15 && from("test-canaryguard") == 15 {
            break;
        }
        assert!(!daemon.is_finished(), "the scheduler ended");
        assert!(
            Instant::now() < deadline,
            "not delivered: buggy {}, good {}",
            from("buggy"),
            from("test-canaryguard")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = telemetry.render();
    assert!(
        metrics.contains(r#"alertd_polls_total{source="buggy",vendor="canaryguard",result="panic"} 2"#),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"source="test-canaryguard",vendor="canaryguard",result="panic""#),
        "the good source never saw the panic"
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), daemon).await.expect("stops").expect("no panic escaped");
    let stored = stream_messages(&nats.url(), "ALERTD").await;
    let ids: std::collections::HashSet<_> = stored.iter().filter_map(|m| m.msg_id.clone()).collect();
    assert_eq!((stored.len(), ids.len()), (30, 30), "every event once");
}
