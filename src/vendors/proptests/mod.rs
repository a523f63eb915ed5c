//! Property tests: no vendor's page parser or normalizer panics on any
//! input, and every event a normalizer does produce validates against the
//! event JSON Schema and serializes.
//!
//! Vendors' JSON is patchy in ways nobody lists in advance (numbers as
//! strings, nulls, missing keys, four timestamp forms, years past 9999), so
//! the inputs are generated: arbitrary bytes and truncated envelopes for
//! `parse_page`, and for `normalize` items shaped like the vendor's (its real
//! field names, see [`shapes`]) whose values are drawn from every JSON type,
//! with odd strings, huge numbers and boundary timestamps. The harness is
//! generic over [`Vendor`]; each vendor has one `proptest!` block below.
//!
//! Failures are not persisted to files: every panic found here is fixed in
//! the vendor code and pinned by a regression unit test beside the fix.

mod hostile;
mod shapes;
mod strategies;

use std::sync::OnceLock;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::Value;

use super::canaryguard::CanaryGuard;
use super::catchpoint::Catchpoint;
use super::rapid7::Rapid7;
use super::red_canary::RedCanary;
use super::thinkst_canary::ThinkstCanary;
use super::{NormalizeContext, Vendor};
use crate::event::Event;
use strategies::{bodies, shaped};

/// Cases per property: enough to find type confusions in every field, few
/// enough that the whole suite stays a few seconds.
const CASES: u32 = 256;

fn config() -> ProptestConfig {
    ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() }
}

/// `V` built for a test tenant, with `options` as `[source.options]` lines.
fn vendor<V: Vendor>(options: &str) -> V {
    let options = if options.is_empty() { String::new() } else { format!("[source.options]\n{options}\n") };
    let text = format!(
        "[[source]]\nvendor = \"{}\"\nname = \"fuzz\"\nbase_url = \"https://tenant.example\"\n\
         credential = {{ env = \"X\" }}\n{options}",
        V::KEY
    );
    let config = crate::registry::parse(&text, "fuzz.toml").expect("the fuzz config is valid");
    super::instantiate::<V>(&config.sources[0]).expect("the fuzz source builds")
}

fn ctx() -> NormalizeContext<'static> {
    NormalizeContext::new("fuzz", Utc.with_ymd_and_hms(2026, 3, 28, 0, 0, 0).unwrap())
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/alertd-event.v1.schema.json");
        let text = std::fs::read_to_string(path).expect("the checked-in event schema");
        let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
        jsonschema::validator_for(&schema).expect("the event schema compiles")
    })
}

/// Parse `body`; when it is a page, ask the scheme for the next position
/// and normalize every item, none of which may panic.
fn check_parse<V: Vendor>(v: &V, body: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(page) = v.parse_page(body) {
        let scheme = v.scheme();
        let _ = scheme.next(&scheme.first(), &page);
        for item in &page.items {
            check_normalize(v, item)?;
        }
    }
    Ok(())
}

/// Normalize `item`; an event it yields must validate, serialize, read back,
/// keep the item verbatim, hold no list longer than the cap and be
/// deterministic.
fn check_normalize<V: Vendor>(v: &V, item: &Value) -> Result<(), TestCaseError> {
    let Ok(normalized) = v.normalize(item, &ctx()) else {
        return Ok(());
    };
    let event = &normalized.event;
    let json = serde_json::to_value(event).map_err(|e| TestCaseError::fail(format!("to_value: {e}")))?;
    let errors: Vec<String> =
        validator().iter_errors(&json).map(|e| format!("{e} at {}", e.instance_path)).collect();
    prop_assert!(errors.is_empty(), "schema violations {errors:?}\nitem: {item}\nevent: {json}");
    let text = serde_json::to_string(event).map_err(|e| TestCaseError::fail(format!("to_string: {e}")))?;
    let back: Event =
        serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("read back: {e}\n{text}")))?;
    // What alertd publishes is these bytes, written by sonic-rs.
    let mut published = Vec::new();
    event.write_json(&mut published).map_err(|e| TestCaseError::fail(format!("write_json: {e}")))?;
    prop_assert_eq!(String::from_utf8_lossy(&published), text.as_str());
    let finding = crate::ocsf::message("alertd", event, &V::OCSF)
        .map_err(|e| TestCaseError::fail(format!("ocsf: {e}")))?;
    let expected = crate::ocsf::payload_by_serde_json(event, &V::OCSF);
    prop_assert_eq!(String::from_utf8_lossy(&finding.payload), String::from_utf8_lossy(&expected));
    prop_assert_eq!(&back.id, &event.id);
    prop_assert_eq!(&event.raw, item);
    prop_assert_eq!(event.source.vendor.as_str(), V::KEY);
    super::bounded::assert_bounded(event);
    let again = v.normalize(item, &ctx()).map_err(|e| TestCaseError::fail(format!("second run: {e}")))?;
    prop_assert_eq!(again.event.id, event.id, "the id is a function of the item");
    Ok(())
}

/// The part of `item` its vendor reads ([`Vendor::READS`]) normalizes as
/// the whole item does: the same event, time and mark, or the same error.
/// A field the normalizer reads and `READS` leaves out fails this as soon
/// as a generated item holds it.
fn check_reads<V: Vendor>(v: &V, item: &Value) -> Result<(), TestCaseError> {
    let text: crate::event::Raw = serde_json::from_str(&item.to_string())
        .map_err(|e| TestCaseError::fail(format!("item text: {e}")))?;
    // Both from the text (serde_json reads some floats back a bit off).
    let whole: Value = serde_json::from_str(text.get()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let part = V::READS.parse(text.get()).map_err(|e| TestCaseError::fail(format!("projection: {e}")))?;
    let ctx = ctx();
    let ctx = ctx.with_text(Some(&text));
    match (v.normalize(&whole, &ctx), v.normalize(&part, &ctx)) {
        (Ok(a), Ok(b)) => {
            let (ea, eb) = (serde_json::to_value(&a.event).ok(), serde_json::to_value(&b.event).ok());
            prop_assert_eq!(ea, eb, "item: {}\npart: {}", item, part);
            prop_assert_eq!((a.item_time, a.mark), (b.item_time, b.mark));
        }
        (Err(a), Err(b)) => prop_assert_eq!(a.0, b.0, "item: {}\npart: {}", item, part),
        (a, b) => prop_assert!(
            false,
            "whole {:?} / part {:?}\nitem: {}\npart: {}",
            a.is_ok(),
            b.is_ok(),
            item,
            part
        ),
    }
    Ok(())
}

/// Red Canary's item key (its hollow-item check) reads the part as it
/// reads the whole item.
fn check_red_canary_key(item: &Value) -> Result<(), TestCaseError> {
    let text = item.to_string();
    let whole: Value = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let part = RedCanary::READS.parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(
        super::red_canary::detection_key(&whole),
        super::red_canary::detection_key(&part),
        "item: {}",
        item
    );
    Ok(())
}

/// How many of `cases` generated items normalize; the strategies must reach
/// the success path often, or the schema property would check nothing.
fn successes<V: Vendor>(v: &V, shape: &Value, cases: usize) -> usize {
    let strategy = shaped(shape);
    let mut runner = TestRunner::deterministic();
    let ok = (0..cases)
        .filter(|_| {
            let item = strategy.new_tree(&mut runner).expect("a value").current();
            v.normalize(&item, &ctx()).is_ok()
        })
        .count();
    eprintln!("{}: {ok} of {cases} generated items normalized", V::KEY);
    ok
}

#[test]
fn the_item_strategies_reach_the_success_path_of_every_normalizer() {
    let counts = [
        ("canaryguard", successes(&vendor::<CanaryGuard>(""), &shapes::canaryguard_item(), 100)),
        ("catchpoint", successes(&vendor::<Catchpoint>(""), &shapes::catchpoint_item(), 100)),
        ("rapid7 alerts", successes(&vendor::<Rapid7>(""), &shapes::rapid7_alert(), 100)),
        (
            "rapid7 investigations",
            successes(
                &vendor::<Rapid7>("endpoint = \"investigations\""),
                &shapes::rapid7_investigation(),
                100,
            ),
        ),
        ("red_canary", successes(&vendor::<RedCanary>(""), &shapes::red_canary_item(), 100)),
        ("thinkst_canary", successes(&vendor::<ThinkstCanary>(""), &shapes::thinkst_item(), 100)),
    ];
    for (name, ok) in counts {
        assert!(ok >= 10, "{name}: only {ok} of 100 generated items normalized");
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn canaryguard_parse_page_never_panics(body in bodies(&shapes::canaryguard_page())) {
        check_parse(&vendor::<CanaryGuard>(""), &body)?;
    }

    #[test]
    fn canaryguard_events_validate(item in shaped(&shapes::canaryguard_item())) {
        check_normalize(&vendor::<CanaryGuard>(""), &item)?;
        check_reads(&vendor::<CanaryGuard>(""), &item)?;
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn catchpoint_parse_page_never_panics(body in bodies(&shapes::catchpoint_page())) {
        check_parse(&vendor::<Catchpoint>(""), &body)?;
    }

    #[test]
    fn catchpoint_events_validate(item in shaped(&shapes::catchpoint_item())) {
        check_normalize(&vendor::<Catchpoint>(""), &item)?;
        check_reads(&vendor::<Catchpoint>(""), &item)?;
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn rapid7_alert_pages_never_panic(body in bodies(&shapes::rapid7_alerts_page())) {
        check_parse(&vendor::<Rapid7>(""), &body)?;
    }

    #[test]
    fn rapid7_investigation_pages_never_panic(body in bodies(&shapes::rapid7_investigations_page())) {
        check_parse(&vendor::<Rapid7>("endpoint = \"investigations\""), &body)?;
    }

    #[test]
    fn rapid7_alert_events_validate(item in shaped(&shapes::rapid7_alert())) {
        check_normalize(&vendor::<Rapid7>(""), &item)?;
        check_reads(&vendor::<Rapid7>(""), &item)?;
    }

    #[test]
    fn rapid7_investigation_events_validate(item in shaped(&shapes::rapid7_investigation())) {
        check_normalize(&vendor::<Rapid7>("endpoint = \"investigations\""), &item)?;
        check_reads(&vendor::<Rapid7>("endpoint = \"investigations\""), &item)?;
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn red_canary_parse_page_never_panics(body in bodies(&shapes::red_canary_page())) {
        check_parse(&vendor::<RedCanary>(""), &body)?;
    }

    #[test]
    fn red_canary_events_validate(item in shaped(&shapes::red_canary_item())) {
        check_normalize(&vendor::<RedCanary>(""), &item)?;
        check_reads(&vendor::<RedCanary>(""), &item)?;
        check_red_canary_key(&item)?;
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn thinkst_canary_parse_page_never_panics(body in bodies(&shapes::thinkst_page())) {
        check_parse(&vendor::<ThinkstCanary>(""), &body)?;
    }

    #[test]
    fn thinkst_canary_events_validate(item in shaped(&shapes::thinkst_item())) {
        check_normalize(&vendor::<ThinkstCanary>(""), &item)?;
        check_reads(&vendor::<ThinkstCanary>(""), &item)?;
    }
}

/// The simulators' items (each vendor's real shape, with its changed
/// revisions: acknowledged, remediated, updated) read the same in part as
/// whole.
#[tokio::test]
async fn simulated_items_read_in_part_normalize_as_whole() {
    use crate::sim::{SimConfig, SimVendor, Simulator};
    async fn items(vendor: SimVendor) -> Vec<Value> {
        let config = SimConfig { initial_items: 400, ..SimConfig::for_vendor(vendor) };
        let sim = Simulator::start(vendor, config).await.expect("the simulator starts");
        let mut items = sim.update_items(150);
        items.extend(sim.ground_truth());
        items
    }
    fn all<V: Vendor>(v: &V, items: &[Value]) {
        assert!(items.len() >= 400, "{}: {} items", V::KEY, items.len());
        for item in items {
            check_reads(v, item).unwrap_or_else(|e| panic!("{}: {e}", V::KEY));
            assert!(v.normalize(item, &ctx()).is_ok(), "{}: the simulator's items normalize", V::KEY);
        }
    }
    let red_canary = items(SimVendor::RedCanary).await;
    all(&vendor::<RedCanary>(""), &red_canary);
    for item in &red_canary {
        check_red_canary_key(item).unwrap_or_else(|e| panic!("{e}"));
    }
    all(&vendor::<ThinkstCanary>(""), &items(SimVendor::ThinkstCanary).await);
    all(&vendor::<CanaryGuard>(""), &items(SimVendor::CanaryGuard).await);
    all(&vendor::<Catchpoint>(""), &items(SimVendor::Catchpoint).await);
}
