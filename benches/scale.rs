//! Scale and idle footprint: the real `alertd` binary with N configured
//! sources (tenants spread evenly over the five vendor simulators, all
//! served by one simulator per vendor), publishing to a real
//! `nats-server -js`. For each N in `ALERTD_BENCH_SCALE_COUNTS` (default
//! `5,1000`): after the first round of polls, RSS and CPU (% of one core)
//! over `ALERTD_BENCH_SCALE_IDLE` (default `60s`) in which no new alerts
//! arrive, and schedule drift (p50/p99 of
//! `alertd_schedule_drift_seconds`, scraped from `/metrics`).
//!
//! Sources poll `every ALERTD_BENCH_SCALE_EVERY` (default `30s`) with 5 s of
//! jitter, so the idle minute contains the polls of every source (each an
//! empty page): the steady state of a daemon with nothing new to ingest.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alertd::sim::{SimConfig, SimVendor, Simulator};

const VENDORS: &[(SimVendor, &str)] = &[
    (SimVendor::CanaryGuard, "canaryguard"),
    (SimVendor::Catchpoint, "catchpoint"),
    (SimVendor::Rapid7, "rapid7"),
    (SimVendor::RedCanary, "red_canary"),
    (SimVendor::ThinkstCanary, "thinkst_canary"),
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !support::bench_mode("scale") {
        return;
    }
    let counts = std::env::var("ALERTD_BENCH_SCALE_COUNTS").unwrap_or_else(|_| "5,1000".to_owned());
    let idle = support::duration_param("ALERTD_BENCH_SCALE_IDLE", Duration::from_secs(60));
    let every = std::env::var("ALERTD_BENCH_SCALE_EVERY").unwrap_or_else(|_| "30s".to_owned());
    let mut sims = Vec::new();
    for (vendor, _) in VENDORS {
        let config = SimConfig { initial_items: 10, ..SimConfig::for_vendor(*vendor) };
        sims.push(Simulator::start(*vendor, config).await.expect("simulator starts"));
    }
    for count in counts.split(',').filter_map(|c| c.trim().parse::<usize>().ok()) {
        run(count, idle, &every, &sims).await;
    }
    for sim in sims {
        sim.shutdown().await;
    }
}

async fn run(count: usize, idle: Duration, every: &str, sims: &[Simulator]) {
    let nats = common::NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let port = common::free_port();
    let mut config = format!(
        "[nats]\nurl = \"{}\"\nstream = \"ALERTD\"\n\n[state]\npath = \"{}\"\n\n[service]\nlisten = \"127.0.0.1:{port}\"\n",
        nats.url(),
        dir.path().join("state.sqlite").display()
    );
    for i in 0..count {
        let (vendor, key) = VENDORS[i % VENDORS.len()];
        let sim = &sims[i % VENDORS.len()];
        config.push_str(&format!(
            "\n[[source]]\nvendor = \"{key}\"\nname = \"t{i}-{key}\"\nbase_url = \"{}\"\ncredential = {{ env = \"KEY_{}\" }}\n\
             schedule = \"every {every}\"\njitter = \"5s\"\nlag = \"0s\"\ninitial_lookback = \"72h\"\nrate_limits = []\n",
            sim.base_url(),
            vendor_env(vendor),
        ));
    }
    let path = dir.path().join("alertd.toml");
    std::fs::write(&path, config).expect("write config");
    let mut command = Command::new(common::alertd_bin());
    command.arg("--config").arg(&path).arg("run").env("ALERTD_LOG", "warn").stdout(Stdio::null());
    for (vendor, _) in VENDORS {
        command.env(format!("KEY_{}", vendor_env(*vendor)), vendor.default_api_key());
    }
    let started = Instant::now();
    let mut child = command.spawn().expect("spawn alertd");
    let pid = child.id();
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");

    // The first round: every source polled once (the backfill of 10 items).
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let text = scrape(&http, &metrics_url).await;
        let polls: f64 = text
            .lines()
            .filter(|l| l.starts_with("alertd_polls_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if polls >= count as f64 {
            break;
        }
        assert!(Instant::now() < deadline, "the first round of {count} polls did not finish in 300 s");
    }
    let first_round = started.elapsed().as_secs_f64();
    let rss_after_backfill = support::proc_status_mib(pid, "VmRSS");
    let cpu_before = support::proc_cpu_secs(pid);
    let idle_started = Instant::now();
    tokio::time::sleep(idle).await;
    let cpu = support::proc_cpu_secs(pid) - cpu_before;
    let idle_pct = 100.0 * cpu / idle_started.elapsed().as_secs_f64();
    let rss = support::proc_status_mib(pid, "VmRSS");
    let hwm = support::proc_status_mib(pid, "VmHWM");
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().to_owned()))
        .unwrap_or_default();
    let text = scrape(&http, &metrics_url).await;
    let (n, p50, p99, max_bucket) = drift(&text);
    // SAFETY: kill has no memory-safety preconditions; pid is our child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let _ = child.wait();

    println!("scale[{count}]: first round of {count} polls done after {first_round:.1} s");
    println!(
        "scale[{count}]: RSS {rss:.1} MiB (after first round {rss_after_backfill:.1} MiB, peak {hwm:.1} MiB), {threads} threads"
    );
    println!(
        "scale[{count}]: CPU over {} with no new alerts (every source polled every {every}): {cpu:.2} s = {idle_pct:.2} % of one core",
        humantime::format_duration(idle)
    );
    println!(
        "scale[{count}]: schedule drift over {n} starts: p50 ≤ {p50} s, p99 ≤ {p99} s (histogram bucket bounds), max bucket ≤ {max_bucket} s"
    );
}

fn vendor_env(vendor: SimVendor) -> String {
    format!("{vendor:?}").to_uppercase()
}

async fn scrape(http: &reqwest::Client, url: &str) -> String {
    match http.get(url).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Count, p50, p99 and the highest non-empty bucket of the drift histogram
/// (each as the upper bound of its bucket).
fn drift(metrics: &str) -> (u64, String, String, String) {
    let buckets: Vec<(String, u64)> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("alertd_schedule_drift_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, rest) = l.split_once('"')?;
            Some((le.to_owned(), rest.rsplit(' ').next()?.parse::<u64>().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0, |b| b.1);
    let at = |p: f64| {
        let want = (total as f64 * p).ceil() as u64;
        buckets.iter().find(|b| b.1 >= want.max(1)).map_or("-".to_owned(), |b| b.0.clone())
    };
    let max = buckets.iter().find(|b| b.1 >= total).map_or("-".to_owned(), |b| b.0.clone());
    (total, at(0.5), at(0.99), max)
}
