//! The revisit's bookkeeping (issue 19) for `ALERTD_BENCH_REVISIT_ITEMS`
//! (default 100,000) items in the window: the store records the revision
//! of every item as the regular walk publishes it (pages of 100), then one
//! revisit compares every item page by page (1 % changed) and ends by
//! pruning the items that left the window. Printed: this process's RSS
//! before, after and at its peak (`VmHWM`), the store's size on disk, and
//! the time of each phase. The bookkeeping lives in the store (SQLite's
//! page cache is bounded) and a revisit holds one page at a time, so RSS
//! should not grow with the window; the target is under 20 MB for 100,000
//! items.
//!
//! With `ALERTD_BENCH_REVISIT_KV=1` the same runs against the `nats-kv`
//! backend (a key per item) on a `nats-server -js` started here. Each
//! backend runs in a process of its own (this benchmark started again with
//! `ALERTD_BENCH_REVISIT_BACKEND`), so each peak is that backend's alone.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use alertd::checkpoint::{Revision, RevisitMove, Store};
use chrono::Utc;

const PAGE: usize = 100;

/// Which backend a child process measures.
const BACKEND: &str = "ALERTD_BENCH_REVISIT_BACKEND";

fn main() {
    if !support::bench_mode("revisit") {
        return;
    }
    if let Ok(backend) = std::env::var(BACKEND) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(measure(&backend));
        return;
    }
    // Each backend in a process of its own: its RSS and peak are its own,
    // not what the other left behind.
    let mut backends = vec!["sqlite"];
    if std::env::var("ALERTD_BENCH_REVISIT_KV").is_ok_and(|v| v == "1") {
        backends.push("nats-kv");
    }
    let exe = std::env::current_exe().expect("this benchmark's path");
    for backend in backends {
        let status = std::process::Command::new(&exe)
            .args(std::env::args().skip(1))
            .env(BACKEND, backend)
            .status()
            .expect("run the benchmark for one backend");
        assert!(status.success(), "revisit[{backend}] failed: {status}");
    }
}

async fn measure(backend: &str) {
    let items: usize = support::param("ALERTD_BENCH_REVISIT_ITEMS", 100_000);
    match backend {
        "sqlite" => {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("state.sqlite");
            let before = support::proc_status_mib(0, "VmRSS");
            let store = Store::open(&path).expect("store");
            run("sqlite", &store, items, before).await;
            let disk: u64 = std::fs::read_dir(dir.path())
                .map(|d| d.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
                .unwrap_or(0);
            println!("revisit[sqlite]: store on disk {:.1} MiB", disk as f64 / (1024.0 * 1024.0));
        }
        "nats-kv" => {
            let nats = common::NatsServer::start();
            let client = async_nats::connect(nats.url()).await.expect("connect");
            let js = async_nats::jetstream::new(client);
            let before = support::proc_status_mib(0, "VmRSS");
            let store = Store::open_kv(&js, "cursors", 1, "bench").await.expect("bucket");
            run("nats-kv", &store, items, before).await;
        }
        other => panic!("{BACKEND}={other}: sqlite or nats-kv"),
    }
}

async fn run(backend: &str, store: &Store, items: usize, rss_before: f64) {
    let now = Utc::now();
    let time_of = |i: usize| now - chrono::Duration::seconds(i as i64);
    let revision = |i: usize, version: u32| Revision {
        native_id: format!("detection-{i}"),
        event_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{i}:{version}").as_bytes())
            .to_string(),
        item_time: time_of(i),
    };

    // The regular walk: every item published once, a page at a time.
    let started = Instant::now();
    for page in (0..items).collect::<Vec<_>>().chunks(PAGE) {
        store
            .record_revisions("bench", page.iter().map(|&i| revision(i, 1)).collect())
            .await
            .expect("record");
    }
    let recorded = started.elapsed();
    let rss_recorded = support::proc_status_mib(0, "VmRSS");

    // One revisit over the whole window: compare, publish 1 % as changed,
    // commit each page; the last page prunes what left the window.
    let started = Instant::now();
    let (mut compared, mut changed) = (0, 0);
    store.revisit_state("bench").await.expect("state");
    let pages: Vec<Vec<usize>> = (0..items).collect::<Vec<_>>().chunks(PAGE).map(<[usize]>::to_vec).collect();
    for (n, page) in pages.iter().enumerate() {
        let ids = page.iter().map(|&i| (format!("detection-{i}"), time_of(i))).collect();
        let published = store.published_revisions("bench", ids).await.expect("published");
        compared += published.len();
        let updates: Vec<Revision> =
            page.iter().filter(|&&i| i % 100 == 7).map(|&i| revision(i, 2)).collect();
        changed += updates.len();
        let change = if n + 1 == pages.len() {
            // Keep all but the oldest tenth.
            RevisitMove::Last { started_at: now, prune_before: time_of(items - items / 10) }
        } else {
            RevisitMove::Page { walk: format!("{{\"next\":{n}}}"), started_at: now }
        };
        store.commit_revisit("bench", change, updates).await.expect("commit");
    }
    let revisited = started.elapsed();
    let rss_after = support::proc_status_mib(0, "VmRSS");
    let peak = support::proc_status_mib(0, "VmHWM");
    let started = Instant::now();
    let remembered = store.revision_count("bench").await.expect("count");
    let counted = started.elapsed();
    assert_eq!(compared, items, "every item had a recorded revision");
    // time_of(i) is older than the prune time for i > items - items / 10.
    let kept = (items - items / 10 + 1).min(items) as u64;
    assert_eq!(remembered, kept, "the prune forgot exactly the items that left the window");
    println!(
        "revisit[{backend}]: {items} items: recorded in {:.1}s, revisited ({compared} compared, {changed} changed) in {:.1}s; \
         {remembered} remembered after pruning (counted in {:.2}s)",
        secs(recorded),
        secs(revisited),
        secs(counted),
    );
    println!(
        "revisit[{backend}]: RSS {rss_before:.1} MiB before, {rss_recorded:.1} MiB after recording, {rss_after:.1} MiB after the revisit \
         (growth {:.1} MiB), peak {peak:.1} MiB",
        rss_after - rss_before
    );
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
