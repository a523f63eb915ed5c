//! Normalization throughput per vendor normalizer (criterion), on the real
//! payloads in `../shared/fixtures/vendors/<vendor>/` (read at bench time;
//! a vendor whose directory is absent is skipped with a message) and on
//! 1,000 simulator-generated items per vendor (CanaryGuard and Catchpoint
//! have no real alert payloads). Each iteration normalizes every item of
//! the set and serializes the event, as the poller does before publishing.
//!
//! `page/<vendor>/…` parses a page of 100 simulator items in the vendor's
//! envelope and normalizes and serializes every item, as a walk does:
//! `raw from the page` with each item's text kept from the parse (issue
//! 16's one parse), `raw serialized again` with the texts dropped, as a
//! caller that has only the parsed item does.
//!
//! `normalize/hostile/…` normalizes one hostile item carrying 20,000 or
//! 50,000 values in each list its vendor reads (`support::hostile`): the
//! time must grow (near) linearly with the count, whatever the count.
//!
//! `ids/…` times one event id's UUID (see [`ids`]).
//!
//! `cargo bench --bench normalize`; under `cargo test` criterion runs each
//! benchmark once.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use alertd::sim::{SimConfig, SimVendor, Simulator};
use alertd::vendors::canaryguard::CanaryGuard;
use alertd::vendors::catchpoint::Catchpoint;
use alertd::vendors::rapid7::{Endpoint, Options as Rapid7Options, Rapid7};
use alertd::vendors::red_canary::RedCanary;
use alertd::vendors::thinkst_canary::ThinkstCanary;
use alertd::vendors::{NormalizeContext, Vendor};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;

const BASE: &str = "https://bench.example";

fn vendor<V: Vendor>(options: V::Options) -> V {
    let text = format!(
        "[[source]]\nvendor = \"{}\"\nname = \"bench\"\nbase_url = \"{BASE}\"\ncredential = {{ env = \"UNUSED\" }}\n",
        V::KEY
    );
    let config = alertd::registry::parse(&text, "bench.toml").expect("bench source config");
    V::new(&config.sources[0], url::Url::parse(BASE).expect("url"), options).expect("vendor builds")
}

fn fixture_dir(name: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/vendors").join(name);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIP: {} not found; the fixture benchmarks need the shared fixtures", dir.display());
        None
    }
}

/// Every item of the JSON files in the fixture directory `dir` (or of
/// `only`) that `v` parses as a page and normalizes; error and health
/// examples are left out.
fn fixture_items<V: Vendor>(v: &V, dir: &str, only: Option<&str>) -> Vec<Value> {
    let Some(dir) = fixture_dir(dir) else { return Vec::new() };
    let ctx = context();
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect()).unwrap_or_default();
    files.sort();
    let mut items = Vec::new();
    for file in files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if !name.ends_with(".json") || only.is_some_and(|o| o != name) {
            continue;
        }
        let Ok(bytes) = std::fs::read(&file) else { continue };
        let candidates = match v.parse_page(&bytes) {
            Ok(page) if !page.items.is_empty() => page.items,
            _ => serde_json::from_slice(&bytes).map(|item| vec![item]).unwrap_or_default(),
        };
        items.extend(candidates.into_iter().filter(|item| v.normalize(item, &ctx).is_ok()));
    }
    items
}

fn simulated(vendor: SimVendor, n: usize) -> Vec<Value> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let config = SimConfig { initial_items: n, ..SimConfig::for_vendor(vendor) };
        let sim = Simulator::start(vendor, config).await.expect("simulator starts");
        let items = sim.ground_truth();
        sim.shutdown().await;
        items
    })
}

fn context() -> NormalizeContext<'static> {
    NormalizeContext::new("bench", chrono::Utc::now())
}

fn bench_set<V: Vendor>(c: &mut Criterion, label: &str, v: &V, items: &[Value]) {
    if items.is_empty() {
        eprintln!("SKIP: normalize/{label}: no items");
        return;
    }
    let ctx = context();
    let mut group = c.benchmark_group("normalize");
    group.throughput(Throughput::Elements(items.len() as u64));
    group.bench_function(format!("{label} ({} items)", items.len()), |b| {
        b.iter(|| {
            let mut bytes = 0;
            for item in items {
                if let Ok(n) = v.normalize(item, &ctx) {
                    bytes += serde_json::to_vec(&n.event).map_or(0, |b| b.len());
                }
            }
            bytes
        });
    });
    group.finish();
}

fn simulated_set<V: Vendor>(c: &mut Criterion, label: &str, v: &V, vendor: SimVendor) {
    let ctx = context();
    let items: Vec<Value> =
        simulated(vendor, 1000).into_iter().filter(|i| v.normalize(i, &ctx).is_ok()).collect();
    bench_set(c, &format!("{label}/simulated"), v, &items);
}

fn normalizers(c: &mut Criterion) {
    let canaryguard = vendor::<CanaryGuard>(Default::default());
    simulated_set(c, "canaryguard", &canaryguard, SimVendor::CanaryGuard);

    let catchpoint = vendor::<Catchpoint>(Default::default());
    simulated_set(c, "catchpoint", &catchpoint, SimVendor::Catchpoint);

    let alerts = vendor::<Rapid7>(Rapid7Options { endpoint: Endpoint::Alerts, region: None });
    let items = fixture_items(&alerts, "rapid7", Some("alerts_search_page_insightconnect.json"));
    bench_set(c, "rapid7-alerts/fixtures", &alerts, &items);
    simulated_set(c, "rapid7-alerts", &alerts, SimVendor::Rapid7);
    let investigations = vendor::<Rapid7>(Rapid7Options { endpoint: Endpoint::Investigations, region: None });
    let items = fixture_items(&investigations, "rapid7", Some("investigations_v2_page_xsoar.json"));
    bench_set(c, "rapid7-investigations/fixtures", &investigations, &items);

    let red_canary = vendor::<RedCanary>(Default::default());
    let items = fixture_items(&red_canary, "redcanary", None);
    bench_set(c, "red_canary/fixtures", &red_canary, &items);
    simulated_set(c, "red_canary", &red_canary, SimVendor::RedCanary);

    let thinkst = vendor::<ThinkstCanary>(Default::default());
    let items = fixture_items(&thinkst, "thinkst", None);
    bench_set(c, "thinkst_canary/fixtures", &thinkst, &items);
    simulated_set(c, "thinkst_canary", &thinkst, SimVendor::ThinkstCanary);
}

/// Pages of 100 simulated items in each walk-benchmarked vendor's
/// envelope: parse, normalize, serialize.
fn pages(c: &mut Criterion) {
    fn page<V: Vendor>(c: &mut Criterion, v: &V, vendor: SimVendor, envelope: impl Fn(Vec<Value>) -> Value) {
        let items: Vec<Value> = simulated(vendor, 100);
        let body = serde_json::to_vec(&envelope(items)).expect("a page body");
        let ctx = context();
        let mut group = c.benchmark_group("page");
        group.throughput(Throughput::Elements(100));
        for keep in [true, false] {
            let label = if keep { "raw from the page" } else { "raw serialized again" };
            group.bench_function(format!("{}/{label}", V::KEY), |b| {
                b.iter(|| {
                    let Ok(mut page) = v.parse_page(&body) else { return 0 };
                    if !keep {
                        page.texts.clear();
                    }
                    let mut bytes = 0;
                    for (i, item) in page.items.iter().enumerate() {
                        if let Ok(n) = v.normalize(item, &ctx.with_text(page.text(i))) {
                            bytes += serde_json::to_vec(&n.event).map_or(0, |b| b.len());
                        }
                    }
                    bytes
                });
            });
        }
        group.finish();
    }
    use serde_json::json;
    page(
        c,
        &vendor::<CanaryGuard>(Default::default()),
        SimVendor::CanaryGuard,
        |items| json!({"data": items, "meta": {"page": 1, "limit": 100, "total": 100}}),
    );
    page(
        c,
        &vendor::<RedCanary>(Default::default()),
        SimVendor::RedCanary,
        |items| json!({"data": items, "links": {"self": format!("{BASE}/openapi/v3/detections?page=1&per_page=100")}, "meta": {"total_items": 100}}),
    );
    page(
        c,
        &vendor::<ThinkstCanary>(Default::default()),
        SimVendor::ThinkstCanary,
        |items| json!({"result": "success", "incidents": items, "cursor": {"next": null}}),
    );
}

/// One hostile item per vendor and size, normalized and serialized.
fn hostile(c: &mut Criterion) {
    use support::hostile;
    let alerts = vendor::<Rapid7>(Rapid7Options { endpoint: Endpoint::Alerts, region: None });
    let investigations = vendor::<Rapid7>(Rapid7Options { endpoint: Endpoint::Investigations, region: None });
    let thinkst = vendor::<ThinkstCanary>(Default::default());
    let red_canary = vendor::<RedCanary>(Default::default());
    let catchpoint = vendor::<Catchpoint>(Default::default());
    for n in [20_000, 50_000] {
        bench_one(c, &format!("hostile/rapid7-alert/{n} values"), &alerts, &hostile::rapid7_alert(n));
        bench_one(
            c,
            &format!("hostile/rapid7-investigation/{n} tags"),
            &investigations,
            &hostile::rapid7_investigation(n),
        );
        bench_one(c, &format!("hostile/thinkst_canary/{n} events"), &thinkst, &hostile::thinkst_incident(n));
        bench_one(
            c,
            &format!("hostile/red_canary/{n} values"),
            &red_canary,
            &hostile::red_canary_detection(n),
        );
        bench_one(c, &format!("hostile/catchpoint/{n} labels"), &catchpoint, &hostile::catchpoint_alert(n));
    }
}

/// One item, normalized and serialized per iteration; few samples, since
/// an item this large takes milliseconds.
fn bench_one<V: Vendor>(c: &mut Criterion, label: &str, v: &V, item: &Value) {
    let ctx = context();
    let mut group = c.benchmark_group("normalize");
    group.sample_size(10);
    group.bench_function(label, |b| {
        b.iter(|| v.normalize(item, &ctx).ok().map(|n| serde_json::to_vec(&n.event).map_or(0, |b| b.len())));
    });
    group.finish();
}

/// `ids/…`: one UUID version 5 of an event id's input (64 bytes), as
/// alertd computes it (`event::v5`, the `sha1` crate) and as uuid's
/// `new_v5` (`sha1_smol`) does.
fn ids(c: &mut Criterion) {
    let namespace = uuid::Uuid::from_u128(0x6c1f_55a0_2d8e_4b8e_9a57_3f0e_7c2a_91d4);
    let name = b"11:red_canary:11:prod-tenant:5:12345:24:2026-12-03T10:00:00.000Z";
    let mut group = c.benchmark_group("ids");
    group.throughput(Throughput::Elements(1));
    group.bench_function("event::v5", |b| {
        b.iter(|| alertd::event::v5(&namespace, std::hint::black_box(name)))
    });
    group.bench_function("uuid new_v5", |b| {
        b.iter(|| uuid::Uuid::new_v5(&namespace, std::hint::black_box(name)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = normalizers, pages, hostile, ids
}
criterion_main!(benches);
