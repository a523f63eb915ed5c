//! Simulator tests over real loopback HTTP: the shared framework in
//! `framework`, each vendor's API semantics in a file named after it.

mod canaryguard;
mod catchpoint;
mod framework;
mod rapid7;

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
