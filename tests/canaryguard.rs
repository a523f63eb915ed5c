//! CanaryGuard: golden normalization of a seeded simulator data set. No
//! real CanaryGuard answer is public (its docs show snippets only), so the
//! simulator follows the documented alert model field by field, as the
//! Catchpoint goldens do; the pipeline tests run against the same simulator.

mod common;

use std::collections::HashSet;

use alertd::sim::SimVendor;
use alertd::vendors::canaryguard::{CanaryGuard, Options};
use alertd::vendors::{NormalizeContext, Vendor};
use chrono::{TimeZone, Utc};
use serde_json::Value;
use url::Url;

#[tokio::test]
async fn the_seeded_alert_set_normalizes_to_its_reviewed_golden_events() {
    let config = alertd::registry::parse(
        "[[source]]\nvendor = \"canaryguard\"\nname = \"golden\"\nbase_url = \"https://canaryguard.app\"\n\
         credential = { env = \"UNUSED\" }\n",
        "golden.toml",
    )
    .expect("config");
    let base = Url::parse("https://canaryguard.app").expect("url");
    let vendor = CanaryGuard::new(&config.sources[0], base, Options::default()).expect("vendor");
    let ctx = NormalizeContext::new("acme", Utc.with_ymd_and_hms(2026, 3, 28, 0, 0, 0).unwrap());
    let items = common::golden::simulated_items(SimVendor::CanaryGuard, 11, 12).await;
    let events: Vec<Value> = items
        .iter()
        .map(|item| serde_json::to_value(vendor.normalize(item, &ctx).expect("normalizes").event).unwrap())
        .collect();
    let severities: HashSet<&str> = events.iter().filter_map(|e| e["severity"]["level"].as_str()).collect();
    assert!(severities.len() >= 2, "the set covers more than one severity: {severities:?}");
    common::golden::check("canaryguard", "simulated", &items, &events);
}
