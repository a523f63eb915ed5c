//! The checked-in event schema is the one the code generates, and what the
//! daemon emits validates against it.

mod common;

use std::process::Command;

fn checked_in() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/alertd-event.v1.schema.json");
    let text = std::fs::read_to_string(path).expect("schema file is checked in");
    serde_json::from_str(&text).expect("schema file is JSON")
}

#[test]
fn the_checked_in_schema_matches_the_rust_types() {
    assert_eq!(
        checked_in(),
        alertd::event::json_schema(),
        "schemas/alertd-event.v1.schema.json is stale: regenerate it with \
         `cargo run -q -- schema > schemas/alertd-event.v1.schema.json`"
    );
}

#[test]
fn the_schema_rejects_a_local_time_and_an_unknown_severity() {
    let validator = jsonschema::validator_for(&checked_in()).expect("schema compiles");
    let output =
        Command::new(common::alertd_bin()).args(["demo", "--items", "1"]).output().expect("demo runs");
    let line = String::from_utf8(output.stdout).unwrap();
    let event: serde_json::Value = serde_json::from_str(line.lines().next().expect("one event")).unwrap();
    assert!(validator.is_valid(&event));

    let mut local = event.clone();
    local["created_at"] = "2026-03-27T10:15:42+02:00".into();
    assert!(!validator.is_valid(&local), "a non-UTC timestamp must be refused");

    let mut severity = event.clone();
    severity["severity"]["level"] = "apocalyptic".into();
    assert!(!validator.is_valid(&severity));

    let mut extra = event;
    extra["surprise"] = 1.into();
    assert!(!validator.is_valid(&extra), "unknown top-level fields are refused");
}

#[test]
fn the_demo_prints_only_schema_valid_events() {
    let validator = jsonschema::validator_for(&checked_in()).expect("schema compiles");
    let output = Command::new(common::alertd_bin())
        .args(["demo", "--items", "60", "--seed", "3"])
        .output()
        .expect("demo runs");
    assert!(output.status.success(), "demo failed: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let events: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert!(events.len() >= 60, "one event per simulated alert, got {}", events.len());
    for event in &events {
        let errors: Vec<String> =
            validator.iter_errors(event).map(|e| format!("{e} at {}", e.instance_path)).collect();
        assert!(errors.is_empty(), "{errors:?} in {event}");
    }
}
