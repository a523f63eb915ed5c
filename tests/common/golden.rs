//! Golden tests on real vendor payloads.
//!
//! Every JSON file in `../shared/fixtures/vendors/<dir>/` is split into items
//! (a page through the vendor's own `parse_page`, anything else is one item),
//! each item is normalized, the event is validated against
//! `schemas/alertd-event.v1.schema.json`, its `raw` must be the item verbatim,
//! and the rest (without `raw` and `ingested_at`) must equal the reviewed
//! expectation in `tests/golden/<vendor key>/<stem>[-<n>].json` (`-<n>`,
//! 1-based, for the items of a page). `ALERTD_BLESS=1` (re)writes the
//! expectations instead: review what it writes, it is a claim that the
//! mapping is right.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use alertd::config::Config;
use alertd::vendors::{NormalizeContext, Vendor};
use chrono::{DateTime, Utc};
use serde_json::Value;
use url::Url;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The vendor `V` as a source named `golden` at `base_url` would build it.
fn vendor<V: Vendor>(base_url: &str) -> V {
    let text = format!(
        "[[source]]\nvendor = \"{}\"\nname = \"golden\"\nbase_url = \"{base_url}\"\ncredential = {{ env = \"UNUSED\" }}\n",
        V::KEY
    );
    let config = Config::from_toml(&text, "golden.toml").expect("golden source config");
    let url = Url::parse(base_url).expect("base url");
    V::new(&config.sources[0], url, V::Options::default()).expect("vendor builds")
}

/// `(golden name, item)` for every item of one fixture file.
fn items_of<V: Vendor>(v: &V, path: &Path) -> Vec<(String, Value)> {
    let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
    let bytes = std::fs::read(path).unwrap();
    match v.parse_page(&bytes) {
        Ok(page) if !page.items.is_empty() => {
            page.items.into_iter().enumerate().map(|(i, item)| (format!("{stem}-{}", i + 1), item)).collect()
        }
        _ => vec![(stem, serde_json::from_slice(&bytes).expect("fixture is JSON"))],
    }
}

/// Run the golden test of `V` over `fixtures/vendors/<fixture_dir>/`.
pub fn check<V: Vendor>(fixture_dir: &str, base_url: &str) {
    let fixtures = manifest_dir().join("../shared/fixtures/vendors").join(fixture_dir);
    if !fixtures.is_dir() {
        eprintln!(
            "SKIP: ../shared/fixtures/vendors/{fixture_dir} not found; golden tests need the shared fixtures"
        );
        return;
    }
    let bless = std::env::var_os("ALERTD_BLESS").is_some_and(|v| v == "1");
    let goldens = manifest_dir().join("tests/golden").join(V::KEY);
    if bless {
        std::fs::create_dir_all(&goldens).unwrap();
    }
    let schema: Value = serde_json::from_slice(
        &std::fs::read(manifest_dir().join("schemas/alertd-event.v1.schema.json"))
            .expect("schemas/alertd-event.v1.schema.json (generate with `alertd schema`)"),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the event schema compiles");

    let v = vendor::<V>(base_url);
    let ctx = NormalizeContext {
        source: "golden",
        ingested_at: DateTime::parse_from_rfc3339("2026-03-28T00:00:00Z").unwrap().with_timezone(&Utc),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", fixtures.display());

    let mut checked = BTreeSet::new();
    let mut failures = Vec::new();
    for file in &files {
        for (name, item) in items_of(&v, file) {
            let normalized = v
                .normalize(&item, &ctx)
                .unwrap_or_else(|e| panic!("{name}: a real payload must normalize: {e}"));
            let mut event = serde_json::to_value(&normalized.event).unwrap();
            let errors: Vec<String> =
                validator.iter_errors(&event).map(|e| format!("{} at {}", e, e.instance_path)).collect();
            assert!(errors.is_empty(), "{name}: not a valid event: {errors:#?}");
            assert_eq!(event["raw"], item, "{name}: raw is the item verbatim");
            let object = event.as_object_mut().unwrap();
            object.remove("raw");
            object.remove("ingested_at");

            let path = goldens.join(format!("{name}.json"));
            if bless {
                let text = serde_json::to_string_pretty(&event).unwrap() + "\n";
                std::fs::write(&path, text).unwrap();
            } else {
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        let expected: Value = serde_json::from_slice(&bytes).unwrap();
                        if expected != event {
                            failures.push(format!(
                                "{name}: the event differs from {}\n--- expected\n{}\n--- actual\n{}",
                                path.display(),
                                serde_json::to_string_pretty(&expected).unwrap(),
                                serde_json::to_string_pretty(&event).unwrap()
                            ));
                        }
                    }
                    Err(_) => failures.push(format!("{name}: no golden file {}", path.display())),
                }
            }
            checked.insert(format!("{name}.json"));
        }
    }
    let stale: Vec<String> = std::fs::read_dir(&goldens)
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !checked.contains(n))
                .collect()
        })
        .unwrap_or_default();
    assert!(stale.is_empty(), "golden files without a fixture item: {stale:?}");
    assert!(
        failures.is_empty(),
        "{}\n(run with ALERTD_BLESS=1 to rewrite, then review the diff)",
        failures.join("\n\n")
    );
}
