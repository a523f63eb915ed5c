//! End to end: the real `alertd` binary (`run --once`) backfills
//! `ALERTD_BENCH_E2E_ITEMS` (default 100,000) CanaryGuard alerts from an
//! in-process simulator (no latency, no limits) into a real `nats-server -js`
//! with file storage. Reports events/s, CPU seconds per 100k events and peak
//! RSS of the alertd process (exact, from `wait4`), then this machine's
//! ceilings measured in the same run: the same pages fetched and parsed
//! without normalizing or publishing, and raw JetStream publishing of
//! messages of the same size, pipelined per page as alertd does.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::process::{Command, Stdio};
use std::time::Instant;

use alertd::sim::{SimConfig, SimVendor, Simulator};
use alertd::vendors::Vendor;
use alertd::vendors::canaryguard::CanaryGuard;
use async_nats::jetstream::{self, message::PublishMessage, stream};
use bytes::Bytes;

const PAGE: usize = 100;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !support::bench_mode("e2e") {
        return;
    }
    let items: usize = support::param("ALERTD_BENCH_E2E_ITEMS", 100_000);
    let nats = common::NatsServer::start();
    let seeding = Instant::now();
    let sim = Simulator::start(
        SimVendor::CanaryGuard,
        SimConfig { initial_items: items, ..SimConfig::for_vendor(SimVendor::CanaryGuard) },
    )
    .await
    .expect("simulator starts");
    println!("e2e: simulator seeded {items} items in {:.2} s", seeding.elapsed().as_secs_f64());

    // 1. alertd itself, as deployed: the release binary, its own process.
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("alertd.toml");
    let config = format!(
        "[nats]\nurl = \"{nats}\"\nstream = \"ALERTD\"\nstorage = \"file\"\n\n[state]\npath = \"{state}\"\n\n\
         [service]\nlisten = \"off\"\n\n[[source]]\nvendor = \"canaryguard\"\nname = \"bench\"\nbase_url = \"{base}\"\n\
         credential = {{ env = \"BENCH_KEY\" }}\nschedule = \"every 1h\"\njitter = \"0s\"\nlag = \"0s\"\n\
         initial_lookback = \"72h\"\npage_size = {PAGE}\nrate_limits = []\n",
        nats = nats.url(),
        state = dir.path().join("state.sqlite").display(),
        base = sim.base_url(),
    );
    std::fs::write(&config_path, config).expect("write config");
    let started = Instant::now();
    // `ALERTD_BENCH_WRAP="heaptrack -o /tmp/alertd"` runs alertd under a
    // profiler (the figures are then the profiler's, not alertd's).
    let wrap = std::env::var("ALERTD_BENCH_WRAP").unwrap_or_default();
    let mut wrap = wrap.split_whitespace();
    let mut command = match wrap.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(wrap).arg(common::alertd_bin());
            c
        }
        None => Command::new(common::alertd_bin()),
    };
    let child = command
        .args(["--config"])
        .arg(&config_path)
        .args(["run", "--once"])
        .env("BENCH_KEY", SimVendor::CanaryGuard.default_api_key())
        .env("ALERTD_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn alertd");
    let (code, usage) = tokio::task::spawn_blocking(move || support::wait_with_usage(child)).await.unwrap();
    let alertd_secs = started.elapsed().as_secs_f64();
    assert_eq!(code, 0, "alertd run --once failed");

    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = jetstream::new(client);
    let info = js.get_stream("ALERTD").await.expect("stream").info().await.expect("info").clone();
    let stored = info.state.messages as usize;
    let avg_size = (info.state.bytes as usize / stored.max(1)).max(1);
    let alertd_rate = stored as f64 / alertd_secs;
    println!("e2e: alertd: {stored} events in {alertd_secs:.2} s = {alertd_rate:.0} events/s");
    println!(
        "e2e: alertd: {:.2} CPU s per 100k events, peak RSS {:.1} MiB (stored message incl. headers ≈ {avg_size} B)",
        usage.cpu_secs * 100_000.0 / stored.max(1) as f64,
        usage.max_rss_mib
    );
    assert_eq!(stored, items, "every item became one stored event");

    // 2. Ceiling: fetch and parse the same pages, nothing else.
    let http = reqwest::Client::new();
    let vendor = canaryguard_vendor(&sim.base_url());
    let started = Instant::now();
    let mut parsed = 0;
    for page in 1..=items.div_ceil(PAGE) {
        let body = http
            .get(format!("{}/api/v1/alerts", sim.base_url()))
            .query(&[("page", page.to_string()), ("limit", PAGE.to_string())])
            .bearer_auth(SimVendor::CanaryGuard.default_api_key())
            .send()
            .await
            .expect("fetch")
            .bytes()
            .await
            .expect("body");
        parsed += vendor.parse_page(&body).expect("page parses").items.len();
    }
    let fetch_secs = started.elapsed().as_secs_f64();
    let fetch_rate = parsed as f64 / fetch_secs;
    println!("e2e: ceiling fetch+parse: {parsed} items in {fetch_secs:.2} s = {fetch_rate:.0} items/s");

    // 3. Ceiling: raw JetStream publishing of same-sized messages, a page
    // at a time, every PubAck awaited before the next page (as alertd does).
    js.create_stream(stream::Config {
        name: "RAW".into(),
        subjects: vec!["raw.>".into()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .expect("raw stream");
    let payload = Bytes::from(vec![b'x'; avg_size.saturating_sub(120).max(1)]);
    let started = Instant::now();
    for page in 0..items.div_ceil(PAGE) {
        let mut acks = Vec::with_capacity(PAGE);
        for i in 0..PAGE {
            let id = format!("{page}-{i}");
            let message = PublishMessage::build().payload(payload.clone()).message_id(&id);
            acks.push(js.send_publish("raw.bench", message).await.expect("publish"));
        }
        for ack in acks {
            ack.await.expect("PubAck");
        }
    }
    let publish_secs = started.elapsed().as_secs_f64();
    let publish_rate = items.div_ceil(PAGE) as f64 * PAGE as f64 / publish_secs;
    println!("e2e: ceiling raw JetStream publish: {publish_rate:.0} messages/s ({publish_secs:.2} s)");
    println!(
        "e2e: alertd = {:.0} % of fetch+parse, {:.0} % of raw publish; serial bound 1/(1/fetch + 1/publish) = {:.0} events/s",
        100.0 * alertd_rate / fetch_rate,
        100.0 * alertd_rate / publish_rate,
        1.0 / (1.0 / fetch_rate + 1.0 / publish_rate)
    );
    sim.shutdown().await;
}

fn canaryguard_vendor(base_url: &str) -> CanaryGuard {
    let text = format!(
        "[[source]]\nvendor = \"canaryguard\"\nname = \"bench\"\nbase_url = \"{base_url}\"\ncredential = {{ env = \"UNUSED\" }}\n"
    );
    let config = alertd::registry::parse(&text, "bench.toml").expect("config");
    let url = url::Url::parse(base_url).expect("url");
    CanaryGuard::new(&config.sources[0], url, Default::default()).expect("vendor")
}
