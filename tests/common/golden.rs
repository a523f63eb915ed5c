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
