//! Staying inside rate limits, and recovering when throttled anyway. The
//! simulator's request log is the judge: it records when each request came.

mod common;

use std::time::{Duration, Instant};

use alertd::daemon::{self, Mode};
use alertd::sim::{CANARYGUARD_DEMO_KEY, Fault, SimConfig, SimVendor, Simulator};
use tokio_util::sync::CancellationToken;

use common::config;

/// The most requests seen in any window of `window`.
fn busiest(times: &[Instant], window: Duration) -> usize {
    times
        .iter()
        .map(|start| times.iter().filter(|t| **t >= *start && **t - *start < window).count())
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_backfill_stays_inside_every_configured_limit() {
    let sim =
        Simulator::start(SimVendor::CanaryGuard, SimConfig { initial_items: 70, ..SimConfig::default() })
            .await
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        None,
        "canaryguard",
        &sim.base_url(),
        CANARYGUARD_DEMO_KEY,
        "page_size = 5\nrate_limits = [\"4/s\", \"9/3s\"]",
    );
    let results =
        daemon::run(&cfg, common::quiet_sink(&cfg), Mode::Once, CancellationToken::new()).await.unwrap();
    let report = results[0].1.as_ref().expect("backfill succeeds");
    assert_eq!(report.pages, 14);
    let times: Vec<Instant> = sim.requests().iter().map(|r| r.received).collect();
    assert_eq!(times.len(), 14);
    assert!(busiest(&times, Duration::from_secs(1)) <= 4, "more than 4 requests in a second");
    assert!(busiest(&times, Duration::from_secs(3)) <= 9, "more than 9 requests in 3 seconds");
}

#[tokio::test]
async fn a_429_with_retry_after_pauses_the_source_and_the_poll_recovers() {
    let sim =
        Simulator::start(SimVendor::CanaryGuard, SimConfig { initial_items: 12, ..SimConfig::default() })
            .await
            .unwrap();
    sim.inject(Fault::Slow(Duration::ZERO), 1);
    sim.inject(Fault::RateLimited { retry_after_secs: 2 }, 1);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg =
        config(dir.path(), None, "canaryguard", &sim.base_url(), CANARYGUARD_DEMO_KEY, "page_size = 5");
    cfg.sources[0].retries = 2;
    let results =
        daemon::run(&cfg, common::quiet_sink(&cfg), Mode::Once, CancellationToken::new()).await.unwrap();
    let report = results[0].1.as_ref().expect("the poll recovers from the 429");
    assert_eq!(report.published, 12);
    let log = sim.requests();
    let throttled = log.iter().position(|r| r.status == 429).expect("a 429 was served");
    let next = &log[throttled + 1];
    assert!(
        next.received - log[throttled].received >= Duration::from_secs(2),
        "the retry came {:?} after the 429, before its Retry-After",
        next.received - log[throttled].received
    );
}

#[tokio::test]
async fn persistent_throttling_fails_the_poll_without_moving_the_cursor() {
    let sim =
        Simulator::start(SimVendor::CanaryGuard, SimConfig { initial_items: 12, ..SimConfig::default() })
            .await
            .unwrap();
    sim.inject(Fault::RateLimited { retry_after_secs: 1 }, 10);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), None, "canaryguard", &sim.base_url(), CANARYGUARD_DEMO_KEY, "");
    cfg.sources[0].retries = 1;
    let results =
        daemon::run(&cfg, common::quiet_sink(&cfg), Mode::Once, CancellationToken::new()).await.unwrap();
    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    let err = results[0].1.as_ref().expect_err(&format!("still throttled after the retries: {statuses:?}"));
    assert!(err.to_string().contains("throttled") && err.to_string().contains("Retry-After 1s"), "{err}");
    assert_eq!(sim.requests().len(), 2, "one try and one retry, no more");
    let state =
        alertd::checkpoint::Store::open(&cfg.state.path).unwrap().load("test-canaryguard").await.unwrap();
    assert_eq!(state.watermark, None);
}
