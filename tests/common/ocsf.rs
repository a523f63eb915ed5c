//! The OCSF 1.8.0 Detection Finding schema from `../shared/ocsf/` (generated
//! with the official OCSF compiler; never copied into this repository), as a
//! validator with format checking on, so `*_dt` values are checked as RFC 3339.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

/// `../shared/ocsf`, or `None` after saying why the caller's test is skipped.
pub fn ocsf_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/ocsf");
    if dir.join("detection_finding-1.8.0.strict.schema.json").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP: ../shared/ocsf/detection_finding-1.8.0.strict.schema.json not found; OCSF validation needs the shared schema"
        );
        None
    }
}

/// The strict schema's validator (unknown attributes rejected, OCSF regexes
/// applied, formats validated).
pub fn strict_validator(dir: &Path) -> jsonschema::Validator {
    let text = std::fs::read_to_string(dir.join("detection_finding-1.8.0.strict.schema.json"))
        .expect("the OCSF schema is readable");
    let schema: Value = serde_json::from_str(&text).expect("the OCSF schema is JSON");
    jsonschema::options().should_validate_formats(true).build(&schema).expect("the OCSF schema compiles")
}

/// Every error of `finding`, as text (empty when valid).
pub fn errors(validator: &jsonschema::Validator, finding: &Value) -> Vec<String> {
    validator.iter_errors(finding).map(|e| format!("{e} at {}", e.instance_path)).collect()
}

/// Panics with the errors when `finding` is not a valid Detection Finding.
pub fn assert_valid(validator: &jsonschema::Validator, finding: &Value, what: &str) {
    let errors = errors(validator, finding);
    assert!(errors.is_empty(), "{what}: OCSF schema errors: {errors:#?}\n{finding:#}");
}
