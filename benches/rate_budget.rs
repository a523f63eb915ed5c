//! Rate-budget efficiency: a backfill from a simulator that enforces
//! 20 requests/min (any 60 s window; the 21st gets the vendor's 429), with
//! the source configured `rate_limits = ["20/min"]`. Reports the requests
//! per minute used against the 20 allowed, the busiest 60 s window, how
//! long the first 20 requests took, and the 429s served.
//!
//! `ALERTD_BENCH_BUDGET_DURATION` (default `3m`) sets how long it runs;
//! `ALERTD_BENCH_BUDGET_LIMIT` (default `20/min`) the limit on both sides.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use alertd::daemon::{self, Mode};
use alertd::sim::{SimConfig, SimVendor, Simulator};
use alertd::throttle::RateLimit;
use tokio_util::sync::CancellationToken;

const PAGE_SIZE: usize = 100;

/// The most of `times` inside any window of `window` starting at one of them.
fn busiest(times: &[Instant], window: Duration) -> usize {
    times
        .iter()
        .enumerate()
        .map(|(i, start)| times[i..].iter().take_while(|t| t.duration_since(*start) < window).count())
        .max()
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !support::bench_mode("rate_budget") {
        return;
    }
    let duration = support::duration_param("ALERTD_BENCH_BUDGET_DURATION", Duration::from_secs(180));
    let limit_text = std::env::var("ALERTD_BENCH_BUDGET_LIMIT").unwrap_or_else(|_| "20/min".to_owned());
    let limit: RateLimit = limit_text.parse().expect("ALERTD_BENCH_BUDGET_LIMIT is N/unit");
    let allowed_per_min = f64::from(limit.requests.get()) * 60.0 / limit.period.as_secs_f64();
    // More pages than the budget allows in `duration`, so the backfill is
    // still running when the measurement ends.
    let pages = (allowed_per_min * duration.as_secs_f64() / 60.0).ceil() as usize + 20;
    let sim = Simulator::start(
        SimVendor::CanaryGuard,
        SimConfig {
            initial_items: pages * PAGE_SIZE,
            enforce_limit: Some(limit),
            ..SimConfig::for_vendor(SimVendor::CanaryGuard)
        },
    )
    .await
    .expect("simulator starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = common::config(
        dir.path(),
        None,
        "canaryguard",
        &sim.base_url(),
        SimVendor::CanaryGuard.default_api_key(),
        &format!("page_size = {PAGE_SIZE}\nrate_limits = [\"{limit_text}\"]"),
    );
    cfg.sources[0].retries = 3;
    println!(
        "rate_budget: {} items, limit {limit} enforced by the simulator and configured in alertd, running {}",
        pages * PAGE_SIZE,
        humantime::format_duration(duration)
    );

    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let started = Instant::now();
    let timer = tokio::spawn(async move {
        tokio::time::sleep(duration).await;
        stop.cancel();
    });
    let results =
        daemon::run(&cfg, common::quiet_sink(&cfg), Mode::Once, shutdown).await.expect("daemon runs");
    let elapsed = started.elapsed();
    timer.abort();

    let log = sim.requests();
    let data: Vec<_> = log.iter().filter(|r| r.path == "/api/v1/alerts").collect();
    let times: Vec<Instant> = data.iter().filter(|r| r.status == 200).map(|r| r.received).collect();
    let throttled = sim.rate_limited_count();
    let minutes = elapsed.as_secs_f64() / 60.0;
    // The steady rate: intervals between the first and last request (the
    // count over the elapsed time would credit the fence post).
    let span = match (times.first(), times.last()) {
        (Some(first), Some(last)) if times.len() > 1 => last.duration_since(*first).as_secs_f64() / 60.0,
        _ => minutes,
    };
    let used_per_min = times.len().saturating_sub(1) as f64 / span;
    let first_n = times.get(limit.requests.get() as usize - 1).map(|t| t.duration_since(started));
    println!("rate_budget: poll result: {:?}", results.first().map(|(_, r)| r.as_ref().map(|p| p.pages)));
    println!(
        "rate_budget: elapsed {:.1} s, requests served {}, 429s {throttled}",
        elapsed.as_secs_f64(),
        times.len()
    );
    println!(
        "rate_budget: {:.2} requests/min over the whole run (count / elapsed)",
        times.len() as f64 / minutes
    );
    println!(
        "rate_budget: steady rate {used_per_min:.2} requests/min of {allowed_per_min:.2} allowed = {:.1} % of the budget",
        100.0 * used_per_min / allowed_per_min
    );
    println!(
        "rate_budget: busiest window of {}: {} requests (limit {})",
        humantime::format_duration(limit.period),
        busiest(&times, limit.period),
        limit.requests
    );
    if let Some(first) = first_n {
        println!(
            "rate_budget: the first {} requests took {:.1} s (a burst-allowing fixed-window vendor would take them at once)",
            limit.requests,
            first.as_secs_f64()
        );
    }
    let mut per_window = Vec::new();
    let mut window_start = started;
    while window_start + limit.period <= started + elapsed {
        let end = window_start + limit.period;
        per_window.push(times.iter().filter(|t| **t >= window_start && **t < end).count());
        window_start = end;
    }
    println!(
        "rate_budget: requests per consecutive {} window: {per_window:?}",
        humantime::format_duration(limit.period)
    );
    sim.shutdown().await;
}
