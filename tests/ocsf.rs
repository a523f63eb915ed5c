//! OCSF 1.8.0 Detection Finding output: every finding alertd makes, from every
//! vendor's real payloads and from every simulator, validates against the
//! official-compiler schema in `../shared/ocsf/` (strict, formats on); and
//! with `formats = ["alertd", "ocsf"]` both subject trees fill exactly once.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alertd::daemon::{self, Mode};
use alertd::event::Event;
use alertd::publish::{Format, Sink, StdoutSink};
use alertd::sim::{CANARYGUARD_DEMO_KEY, SimConfig, SimVendor, Simulator};
use alertd::vendors::{NormalizeContext, Vendor};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use common::ocsf::{assert_valid, errors, ocsf_dir, strict_validator};
use common::{NatsServer, config, stream_messages};

#[test]
fn the_validator_accepts_the_ok_examples_and_rejects_the_bad_ones() {
    let Some(dir) = ocsf_dir() else { return };
    let validator = strict_validator(&dir);
    let mut checked = 0;
    for entry in std::fs::read_dir(dir.join("examples")).expect("examples") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let example: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let errs = errors(&validator, &example);
        if name.starts_with("ok-") {
            assert!(errs.is_empty(), "{name} must pass: {errs:#?}");
        } else {
            assert!(!errs.is_empty(), "{name} must fail the strict schema");
        }
        checked += 1;
    }
    assert!(checked >= 7, "the shared examples are there");
    // Format validation is on: an offset-less time_dt is rejected.
    let mut bad: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("examples/ok-full.json")).unwrap()).unwrap();
    bad["time_dt"] = "2026-01-01 00:00:00".into();
    assert!(!errors(&validator, &bad).is_empty(), "time_dt is checked as date-time");
}

/// Every reviewed golden event (the checked-in output of every vendor
/// fixture; `raw` is not kept there, so a stand-in item is used).
#[test]
fn findings_of_every_golden_event_validate() {
    let Some(dir) = ocsf_dir() else { return };
    let validator = strict_validator(&dir);
    let goldens = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut vendors = HashSet::new();
    let mut activities = HashSet::new();
    for vendor_dir in std::fs::read_dir(&goldens).unwrap() {
        let vendor_dir = vendor_dir.unwrap().path();
        for file in common::golden::fixture_files(&vendor_dir) {
            let mut golden: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            golden["ingested_at"] = "2026-03-28T00:00:00Z".into();
            golden["raw"] = serde_json::json!({ "stand_in": true });
            let event: Event = serde_json::from_value(golden).expect("a golden file is an event");
            let product = alertd::registry::lookup(&event.source.vendor).expect("a registered vendor").ocsf;
            let finding = alertd::ocsf::finding(&event, &product);
            assert_valid(&validator, &finding, &file.display().to_string());
            assert_eq!(finding["finding_info"]["uid"], event.native_id.as_str());
            assert_eq!(finding["metadata"]["uid"], event.id.to_string());
            vendors.insert(event.source.vendor.clone());
            activities.insert(finding["activity_id"].as_u64().unwrap());
        }
    }
    assert!(vendors.len() >= 4, "goldens of several vendors were checked: {vendors:?}");
    assert!(activities.len() >= 2, "more than one activity among the goldens: {activities:?}");
}

/// The real payloads of the vendors whose fixture files are plain pages,
/// normalized with their `raw` item, so `raw_data` is the real thing.
fn fixture_findings<V: Vendor>(
    fixture_dir: &str,
    base_url: &str,
    validator: &jsonschema::Validator,
) -> usize {
    let Some(dir) = common::golden::fixture_dir(fixture_dir) else { return 0 };
    let text = format!(
        "[[source]]\nvendor = \"{}\"\nname = \"golden\"\nbase_url = \"{base_url}\"\ncredential = {{ env = \"UNUSED\" }}\n",
        V::KEY
    );
    let config = alertd::registry::parse(&text, "golden.toml").unwrap();
    let vendor =
        V::new(&config.sources[0], url::Url::parse(base_url).unwrap(), V::Options::default()).unwrap();
    let ctx = NormalizeContext::new("golden", chrono::Utc::now());
    let mut n = 0;
    for file in common::golden::fixture_files(&dir) {
        let bytes = std::fs::read(&file).unwrap();
        let items = match vendor.parse_page(&bytes) {
            Ok(page) if !page.items.is_empty() => page.items,
            _ => vec![serde_json::from_slice(&bytes).unwrap()],
        };
        for item in &items {
            let event = vendor.normalize(item, &ctx).expect("a real payload normalizes").event;
            let finding = alertd::ocsf::finding(&event, &V::OCSF);
            assert_valid(validator, &finding, &file.display().to_string());
            let raw: Value = serde_json::from_str(finding["raw_data"].as_str().unwrap()).unwrap();
            assert_eq!(&raw, item, "raw_data is the vendor item");
            n += 1;
        }
    }
    n
}

#[test]
fn findings_of_real_payloads_validate() {
    let Some(dir) = ocsf_dir() else { return };
    let validator = strict_validator(&dir);
    use alertd::vendors::{red_canary::RedCanary, thinkst_canary::ThinkstCanary};
    let n = fixture_findings::<RedCanary>("redcanary", "https://demo.my.redcanary.co", &validator)
        + fixture_findings::<ThinkstCanary>("thinkst", "https://example.canary.tools", &validator);
    if common::golden::fixture_dir("redcanary").is_some() {
        assert!(n >= 5, "{n} findings");
    }
}

/// A `Write` the test reads back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

const SIMULATED: &[(SimVendor, &str)] = &[
    (SimVendor::CanaryGuard, "canaryguard"),
    (SimVendor::Catchpoint, "catchpoint"),
    (SimVendor::Rapid7, "rapid7"),
    (SimVendor::RedCanary, "red_canary"),
    (SimVendor::ThinkstCanary, "thinkst_canary"),
];

/// Every simulator item of all five vendors, first as created and then
/// after updates, through the real daemon with both formats on the stdout
/// sink: each v1 event has exactly one finding, and every finding validates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_of_every_simulator_item_validate() {
    let Some(ocsf) = ocsf_dir() else { return };
    let validator = strict_validator(&ocsf);
    let mut activities = HashSet::new();
    for (sim_vendor, key) in SIMULATED {
        let sim = Simulator::start(
            *sim_vendor,
            SimConfig { seed: 3, initial_items: 40, ..SimConfig::for_vendor(*sim_vendor) },
        )
        .await
        .expect("simulator starts");
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), None, key, &sim.base_url(), sim_vendor.default_api_key(), "");
        let out = Captured::default();
        let sink = || {
            Some(Sink::Stdout(
                StdoutSink::to_writer(Box::new(out.clone())).with_formats(&[Format::Alertd, Format::Ocsf]),
            ))
        };
        let first = daemon::run(&cfg, sink(), Mode::Once, CancellationToken::new()).await.unwrap();
        first[0].1.as_ref().expect("first poll");
        sim.update_items(10);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let second = daemon::run(&cfg, sink(), Mode::Once, CancellationToken::new()).await.unwrap();
        second[0].1.as_ref().expect("second poll");
        sim.shutdown().await;

        let lines = out.lines();
        let events: HashMap<String, &Value> = lines
            .iter()
            .filter(|l| l["schema_version"] == "alertd.event.v1")
            .map(|l| (l["id"].as_str().unwrap().to_owned(), l))
            .collect();
        let findings: Vec<&Value> = lines.iter().filter(|l| l["class_uid"] == 2004).collect();
        assert!(events.len() >= 40, "{key}: {} events", events.len());
        assert_eq!(findings.len(), events.len(), "{key}: one finding per event");
        for f in findings {
            assert_valid(&validator, f, key);
            let event = events.get(f["metadata"]["uid"].as_str().unwrap()).expect("the finding's event");
            let raw: Value = serde_json::from_str(f["raw_data"].as_str().unwrap()).unwrap();
            assert_eq!(raw, event["raw"], "{key}: raw_data is the event's raw item");
            activities.insert(f["activity_id"].as_u64().unwrap());
        }
    }
    assert_eq!(activities, HashSet::from([1, 2, 3]), "simulated items cover Create, Update and Close");
}

/// Both trees on a real nats-server: each event once under `alertd.<vendor>…`
/// and its finding once under `alertd.ocsf.<vendor>…`, each with its own
/// deterministic id; re-publishing everything (a lost checkpoint store)
/// stores nothing new in either tree.
#[tokio::test]
async fn both_subject_trees_fill_exactly_once() {
    let nats = NatsServer::start();
    let sim = Simulator::start(
        SimVendor::CanaryGuard,
        SimConfig { seed: 9, initial_items: 30, ..SimConfig::default() },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg =
        config(dir.path(), Some(&nats.url()), "canaryguard", &sim.base_url(), CANARYGUARD_DEMO_KEY, "");
    cfg.nats.as_mut().unwrap().formats = vec![Format::Alertd, Format::Ocsf];

    let report = common::poll::run_once(&cfg).await.expect("poll");
    assert_eq!(report.published, 60, "30 events and 30 findings");
    std::fs::remove_file(dir.path().join("state.sqlite")).unwrap();
    let again = common::poll::run_once(&cfg).await.expect("poll with a lost store");
    assert_eq!((again.published, again.duplicates), (0, 60), "JetStream deduplicates both trees");

    let stored = stream_messages(&nats.url(), "ALERTD").await;
    let mut v1 = HashMap::new();
    let mut ocsf = HashMap::new();
    for m in &stored {
        if m.subject == "alertd.canaryguard.test-canaryguard.alert" {
            assert_eq!(m.msg_id.as_deref(), m.payload["id"].as_str());
            *v1.entry(m.payload["native_id"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        } else if m.subject == "alertd.ocsf.canaryguard.test-canaryguard.alert" {
            let event_id: uuid::Uuid = m.payload["metadata"]["uid"].as_str().unwrap().parse().unwrap();
            assert_eq!(m.msg_id, Some(alertd::ocsf::finding_id(event_id).to_string()));
            *ocsf.entry(m.payload["finding_info"]["uid"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        } else {
            panic!("unexpected subject {}", m.subject);
        }
    }
    let truth: HashSet<String> =
        sim.ground_truth().iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(v1.keys().cloned().collect::<HashSet<_>>(), truth);
    assert_eq!(ocsf.keys().cloned().collect::<HashSet<_>>(), truth);
    assert!(v1.values().chain(ocsf.values()).all(|n| *n == 1), "each exactly once");
    sim.shutdown().await;
}
