//! Simulator tests over real loopback HTTP: the shared framework in
//! `framework`, each vendor's API semantics in a file named after it.

mod canaryguard;
mod catchpoint;
mod framework;
mod rapid7;
mod red_canary;
mod thinkst_canary;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::Value;

use super::{CANARYGUARD_DEMO_KEY, SimConfig, SimVendor, Simulator};

const TEST_UA: &str = "alertd-test/0.1";

fn anchor() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-27T12:00:00Z").unwrap().with_timezone(&Utc)
}

async fn start(config: SimConfig) -> Simulator {
    Simulator::start_at(SimVendor::CanaryGuard, config, anchor()).await.unwrap()
}

/// An authenticated GET of `path` with `query`.
async fn get(sim: &Simulator, path: &str, query: &[(&str, &str)]) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{path}", sim.base_url()))
        .query(query)
        .bearer_auth(CANARYGUARD_DEMO_KEY)
        .header("user-agent", TEST_UA)
        .send()
        .await
        .unwrap()
}

async fn alerts(sim: &Simulator, query: &[(&str, &str)]) -> Value {
    let response = get(sim, "/api/v1/alerts", query).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn ids(values: &[Value]) -> Vec<String> {
    values.iter().map(|v| v["id"].as_str().unwrap().to_owned()).collect()
}

/// A real payload from `../shared/fixtures/vendors/<dir>/<file>`, or `None`
/// (with a note) when the shared fixtures are not checked out.
fn fixture(dir: &str, file: &str) -> Option<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/vendors")
        .join(dir)
        .join(file);
    match std::fs::read(&path) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).unwrap()),
        Err(_) => {
            eprintln!("SKIP: {} not found; shape tests need the shared fixtures", path.display());
            None
        }
    }
}

/// Every field path of `real` (arrays folded to `[]`) with its JSON type.
fn paths(value: &Value, prefix: &str, out: &mut Vec<(String, &'static str)>) {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    out.push((prefix.to_owned(), kind));
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                paths(v, &format!("{prefix}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for v in items {
                paths(v, &format!("{prefix}/[]"), out);
            }
        }
        _ => {}
    }
}

/// Asserts that `simulated` has every field of `real` with the same JSON
/// type (null on either side matches anything: the field is nullable).
fn assert_same_shape(real: &Value, simulated: &Value) {
    let (mut want, mut have) = (Vec::new(), Vec::new());
    paths(real, "", &mut want);
    paths(simulated, "", &mut have);
    for (path, kind) in want {
        let found: Vec<_> = have.iter().filter(|(p, _)| *p == path).collect();
        assert!(!found.is_empty(), "the simulator lacks {path}");
        assert!(
            kind == "null" || found.iter().any(|(_, k)| *k == kind || *k == "null"),
            "{path} is {kind} in the real payload but {:?} in the simulator",
            found
        );
    }
}
