//! Golden files for normalized events: `tests/golden/<vendor>/<stem>[-<n>].json`,
//! reviewed JSON of each event without `raw` (asserted separately to be the
//! vendor's item verbatim) and without `ingested_at` (the fetch time).
//! Every event is also validated against the checked-in event JSON Schema.
//! `ALERTD_BLESS=1` rewrites the golden files instead of comparing; review
//! the diff, since a golden file is a claim that the mapping is right.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

/// `../shared/fixtures/vendors/<vendor>`, or `None` after saying why the
/// caller's test is skipped.
pub fn fixture_dir(vendor: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/vendors").join(vendor);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP: ../shared/fixtures/vendors/{vendor} not found; golden tests need the shared fixtures"
        );
        None
    }
}

/// The fixture files (`*.json`) of a vendor, sorted by name.
pub fn fixture_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixture directory is readable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn schema_validator() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/alertd-event.v1.schema.json");
    let text = std::fs::read_to_string(&path).expect("the event schema is checked in");
    let schema: Value = serde_json::from_str(&text).expect("the event schema is JSON");
    jsonschema::validator_for(&schema).expect("the event schema compiles")
}

/// Check the events normalized from `items` (in order) against
/// `tests/golden/<vendor>/<stem>[-<n>].json`; `-<n>` (1-based) only when
/// there is more than one item.
pub fn check(vendor: &str, stem: &str, items: &[Value], events: &[Value]) {
    assert_eq!(items.len(), events.len(), "{stem}: one event per item");
    let validator = schema_validator();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(vendor);
    let bless = std::env::var_os("ALERTD_BLESS").is_some_and(|v| v == "1");
    let mut mismatches = Vec::new();
    for (n, (item, event)) in items.iter().zip(events).enumerate() {
        let errors: Vec<String> =
            validator.iter_errors(event).map(|e| format!("{} at {}", e, e.instance_path)).collect();
        assert!(errors.is_empty(), "{stem} item {}: schema errors: {errors:#?}", n + 1);
        assert_eq!(&event["raw"], item, "{stem} item {}: raw is the item verbatim", n + 1);

        let mut reviewed = event.clone();
        let object = reviewed.as_object_mut().expect("an event is an object");
        object.remove("raw");
        object.remove("ingested_at");
        let name = if items.len() == 1 { format!("{stem}.json") } else { format!("{stem}-{}.json", n + 1) };
        let path = dir.join(&name);
        let text = serde_json::to_string_pretty(&reviewed).expect("serializable") + "\n";
        if bless {
            std::fs::create_dir_all(&dir).expect("golden directory");
            std::fs::write(&path, text).expect("write golden file");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(expected) => {
                let expected: Value = serde_json::from_str(&expected).expect("golden file is JSON");
                if expected != reviewed {
                    mismatches.push(format!("{name} differs; got:\n{text}"));
                }
            }
            Err(_) => mismatches
                .push(format!("{} is missing; run with ALERTD_BLESS=1 and review it", path.display())),
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// The golden test of vendor `V` over every JSON file in
/// `../shared/fixtures/vendors/<fixture_dir>/`: a file is split into items
/// with the vendor's own `parse_page` (anything else is one item), each item
/// is normalized as a source named `golden` at `base_url` would, and checked
/// with [`check`]. Golden files that match no fixture item fail the test.
pub fn check_fixtures<V: alertd::vendors::Vendor>(fixture_dir: &str, base_url: &str) {
    use alertd::vendors::NormalizeContext;
    let Some(dir) = self::fixture_dir(fixture_dir) else { return };
    let text = format!(
        "[[source]]\nvendor = \"{}\"\nname = \"golden\"\nbase_url = \"{base_url}\"\ncredential = {{ env = \"UNUSED\" }}\n",
        V::KEY
    );
    let config = alertd::registry::parse(&text, "golden.toml").expect("golden source config");
    let url = url::Url::parse(base_url).expect("base url");
    let vendor = V::new(&config.sources[0], url, V::Options::default()).expect("vendor builds");
    let ctx = NormalizeContext::new(
        "golden",
        chrono::DateTime::parse_from_rfc3339("2026-03-28T00:00:00Z").unwrap().to_utc(),
    );
    let mut expected_names = std::collections::BTreeSet::new();
    let files = fixture_files(&dir);
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    for file in files {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&file).unwrap();
        let items = match vendor.parse_page(&bytes) {
            Ok(page) if !page.items.is_empty() => page.items,
            _ => vec![serde_json::from_slice(&bytes).expect("fixture is JSON")],
        };
        let events: Vec<Value> = items
            .iter()
            .map(|item| {
                let n = vendor
                    .normalize(item, &ctx)
                    .unwrap_or_else(|e| panic!("{stem}: a real payload must normalize: {e}"));
                serde_json::to_value(&n.event).unwrap()
            })
            .collect();
        for n in 1..=items.len() {
            expected_names.insert(if items.len() == 1 {
                format!("{stem}.json")
            } else {
                format!("{stem}-{n}.json")
            });
        }
        check(V::KEY, &stem, &items, &events);
    }
    let goldens = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(V::KEY);
    let stale: Vec<String> = std::fs::read_dir(&goldens)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !expected_names.contains(n))
                .collect()
        })
        .unwrap_or_default();
    assert!(stale.is_empty(), "golden files without a fixture item: {stale:?}");
}

/// The alerts of `vendor`'s simulator seeded with `seed`, `items` of them
/// over the six hours before a fixed instant: a reviewed golden set that is
/// a pure function of its arguments (for vendors with no public payloads).
pub async fn simulated_items(vendor: alertd::sim::SimVendor, seed: u64, items: usize) -> Vec<Value> {
    use chrono::TimeZone;
    let config = alertd::sim::SimConfig {
        seed,
        initial_items: items,
        history: std::time::Duration::from_secs(6 * 3600),
        ..alertd::sim::SimConfig::for_vendor(vendor)
    };
    let anchor = chrono::Utc.with_ymd_and_hms(2026, 3, 27, 12, 0, 0).unwrap();
    let sim = alertd::sim::Simulator::start_at(vendor, config, anchor).await.expect("simulator starts");
    let items = sim.ground_truth();
    sim.shutdown().await;
    items
}
