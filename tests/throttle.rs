//! Staying inside rate limits, and recovering when throttled anyway. The
//! simulator's request log is the judge: it records when each request came.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use alertd::daemon::{self, Mode};
use alertd::sim::{CallBudget, Fault, RAPID7_DEMO_KEY, SimConfig, SimVendor, Simulator};
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

/// Threads spinning on every core until dropped (also when a test panics):
/// a loaded host, where requests go out late. Issue 13 failed only there.
struct BusyCores {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl BusyCores {
    fn start() -> BusyCores {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..cores)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        BusyCores { stop, threads }
    }
}

impl Drop for BusyCores {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The simulator stamps each request when its handler runs, like a vendor
/// counting arrivals; with every core busy, sends go out late and arrive
/// with jitter, and still no window may hold more than its limit.
#[tokio::test]
async fn a_backfill_stays_inside_every_configured_limit() {
    let _load = BusyCores::start();
    let sim = common::canaryguard(70).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::canaryguard_config(
        dir.path(),
        None,
        &sim,
        "page_size = 5\nrate_limits = [\"4/s\", \"9/3s\"]",
    );
    let results =
        daemon::run(&cfg, common::quiet_sink(&cfg), Mode::Once, CancellationToken::new()).await.unwrap();
    let report = results[0].1.as_ref().expect("backfill succeeds");
    assert_eq!(report.pages, 14);
    let times: Vec<Instant> = sim.requests().iter().map(|r| r.received).collect();
    assert_eq!(times.len(), 14);
    // The shortest span of n + 1 consecutive arrivals, for the messages.
    let tightest = |n: usize| times.windows(n + 1).map(|w| w[n] - w[0]).min();
    assert!(
        busiest(&times, Duration::from_secs(1)) <= 4,
        "more than 4 requests in a second: {:?}",
        tightest(4)
    );
    assert!(
        busiest(&times, Duration::from_secs(3)) <= 9,
        "more than 9 requests in 3 seconds: {:?}",
        tightest(9)
    );
}

#[tokio::test]
async fn a_429_with_retry_after_pauses_the_source_and_the_poll_recovers() {
    let sim = common::canaryguard(12).await;
    sim.inject(Fault::Slow(Duration::ZERO), 1);
    sim.inject(Fault::RateLimited { retry_after_secs: 2 }, 1);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::canaryguard_config(dir.path(), None, &sim, "page_size = 5");
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
    let sim = common::canaryguard(12).await;
    sim.inject(Fault::RateLimited { retry_after_secs: 1 }, 10);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::canaryguard_config(dir.path(), None, &sim, "");
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

/// Rapid7 announces its call budget in `RateLimit-*` headers and answers 429
/// once it is spent. A backfill of more pages than one budget holds slows
/// down as `RateLimit-Remaining` runs low and waits for the reset, so the
/// vendor never has to refuse a call.
#[tokio::test]
async fn ratelimit_remaining_slows_a_rapid7_backfill_before_the_429() {
    let budget = CallBudget { calls: 10, window: Duration::from_secs(2) };
    let sim = Simulator::start(
        SimVendor::Rapid7,
        SimConfig {
            initial_items: 120,
            call_budget: Some(budget),
            ..SimConfig::for_vendor(SimVendor::Rapid7)
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // No retries: a 429 would fail the poll.
    let cfg = config(dir.path(), None, "rapid7", &sim.base_url(), RAPID7_DEMO_KEY, "page_size = 5");
    let results =
        daemon::run(&cfg, common::quiet_sink(&cfg), Mode::Once, CancellationToken::new()).await.unwrap();
    let log = sim.requests();
    let statuses: Vec<u16> = log.iter().map(|r| r.status).collect();
    let report = results[0].1.as_ref().unwrap_or_else(|e| panic!("the backfill failed: {e}; {statuses:?}"));
    assert_eq!(report.published, 120);
    assert_eq!(log.len(), 24, "one call per page: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200), "the budget was overrun: {statuses:?}");
    let span = log[log.len() - 1].received - log[0].received;
    assert!(span >= 2 * budget.window, "24 calls on a budget of 10 per 2 s took only {span:?}");
}

/// A Catchpoint stand-in that answers "quota exceeded" (403, the error
/// envelope, `usageLimits.exceededMessage`) `times` times, then 404: no
/// alerts in the window.
async fn catchpoint_over_quota(times: usize) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().fallback(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < times {
                let body = r#"{"data":null,"completed":false,"errors":[{"id":"403","message":"Quota exceeded."}],
                    "usageLimits":{"limits":{"minute":20,"hour":500,"day":2000},"runs":{"minute":3,"hour":41,"day":2000},
                    "exceededMessage":"Daily limit of 2000 calls exceeded."}}"#;
                (axum::http::StatusCode::FORBIDDEN, body)
            } else {
                (axum::http::StatusCode::NOT_FOUND, r#"{"completed":false,"errors":[{"message":"No alerts found."}]}"#)
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, calls)
}

/// Catchpoint's "quota exceeded" is throttling, whatever its status: it is
/// retried with backoff (not taken for a refused key) and the wait counts in
/// `alertd_throttled_seconds_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catchpoint_quota_exceeded_is_retried_and_counted_as_throttling() {
    let (url, calls) = catchpoint_over_quota(2).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), None, "catchpoint", &url, "cp-key", "");
    cfg.sources[0].retries = 3;
    cfg.sources[0].schedule = "every 1h".parse().unwrap();
    let port = common::free_port();
    cfg.service.listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn({
        let (cfg, shutdown) = (cfg.clone(), shutdown.clone());
        async move { daemon::run(&cfg, common::quiet_sink(&cfg), Mode::Forever, shutdown).await }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            let text = r.text().await.unwrap_or_default();
            if text.contains("alertd_polls_total{") {
                break text;
            }
        }
        assert!(Instant::now() < deadline, "no poll was counted within 30s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    shutdown.cancel();
    daemon.await.unwrap().expect("clean stop");
    let sample = |prefix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    let l = r#"source="test-catchpoint",vendor="catchpoint""#;
    assert_eq!(calls.load(Ordering::SeqCst), 3, "two refusals, then the answer");
    assert_eq!(sample(&format!("alertd_polls_total{{{l},result=\"ok\"}}")), Some(1.0), "{metrics}");
    assert_eq!(sample(&format!("alertd_http_responses_total{{{l},status=\"403\"}}")), Some(2.0), "{metrics}");
    let throttled = sample(&format!("alertd_throttled_seconds_total{{{l}}}")).unwrap_or(0.0);
    assert!(throttled > 0.0, "the quota waits count as throttled time: {metrics}");
}

/// The figure for `docs/reliability.md`: a backfill far larger than the
/// budget, throttled to `20/min` for three minutes; prints requests per
/// minute and the busiest 60-second window. Run it with
/// `cargo test --test throttle -- --ignored --nocapture measure_`.
#[tokio::test]
#[ignore = "a three-minute measurement, not a check"]
async fn measure_a_throttled_backfill_for_three_minutes() {
    let sim = common::canaryguard(2000).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::canaryguard_config(dir.path(), None, &sim, "page_size = 5\nrate_limits = [\"20/min\"]");
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn({
        let (cfg, shutdown) = (cfg.clone(), shutdown.clone());
        async move { daemon::run(&cfg, common::quiet_sink(&cfg), Mode::Forever, shutdown).await }
    });
    let run = Duration::from_secs(180);
    tokio::time::sleep(run).await;
    shutdown.cancel();
    daemon.await.unwrap().unwrap();
    let times: Vec<Instant> = sim.requests().iter().map(|r| r.received).collect();
    let per_minute = times.len() as f64 / run.as_secs_f64() * 60.0;
    // The steady rate counts intervals (count / run time credits the fence
    // post, and the page under way at shutdown is finished after it).
    let span = match (times.first(), times.last()) {
        (Some(first), Some(last)) => *last - *first,
        _ => Duration::ZERO,
    };
    let steady = times.len().saturating_sub(1) as f64 / span.as_secs_f64().max(f64::EPSILON) * 60.0;
    let busiest = busiest(&times, Duration::from_secs(60));
    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    println!(
        "20/min allowed: {} requests in {run:?} = {per_minute:.1}/min; first to last {:.1} s = {steady:.2}/min steady; \
         busiest 60 s window {busiest}; non-200: {}",
        times.len(),
        span.as_secs_f64(),
        statuses.iter().filter(|s| **s != 200).count()
    );
    assert!(busiest <= 20);
}
