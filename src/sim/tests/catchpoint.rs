//! Catchpoint API semantics over real loopback HTTP: `hasMore` paging, the
//! time window, 404 for an empty result, auth, parameter validation, usage
//! counters and the alert object against the vendor's OpenAPI schema.

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::Value;

use super::super::{CATCHPOINT_DEMO_KEY, Fault, SimConfig, SimVendor, Simulator};
use super::anchor;

const PATH: &str = "/api/v2/tests/alerts";

async fn start(items: usize) -> Simulator {
    let config =
        SimConfig { initial_items: items, api_key: CATCHPOINT_DEMO_KEY.to_owned(), ..SimConfig::default() };
    Simulator::start_at(SimVendor::Catchpoint, config, anchor()).await.unwrap()
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// The whole history as a window: the simulator's default is 24 hours.
fn everything() -> Vec<(&'static str, String)> {
    vec![("startTimeUtc", utc(anchor() - TimeDelta::days(3))), ("endTimeUtc", utc(anchor()))]
}

async fn get(sim: &Simulator, query: &[(&str, String)]) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{PATH}", sim.base_url()))
        .query(query)
        .bearer_auth(CATCHPOINT_DEMO_KEY)
        .send()
        .await
        .unwrap()
}

async fn ok(sim: &Simulator, query: &[(&str, String)]) -> Value {
    let response = get(sim, query).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn alerts(body: &Value) -> Vec<Value> {
    match &body["data"]["alerts"] {
        Value::Array(list) => list.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        other => panic!("alerts is {other}"),
    }
}

fn report_time(item: &Value) -> DateTime<Utc> {
    crate::vendors::fields::time(item, "/reportTime").unwrap()
}

#[tokio::test]
async fn walking_page_numbers_while_has_more_yields_every_alert_once_newest_first() {
    let sim = start(250).await;
    let mut seen = Vec::new();
    for page in 1.. {
        let mut query = everything();
        query.extend([("pageSize", "40".to_owned()), ("pageNumber", page.to_string())]);
        let body = ok(&sim, &query).await;
        assert_eq!(body["completed"], true);
        seen.extend(alerts(&body));
        if body["data"]["hasMore"] != true {
            assert_eq!(page, 7, "250 alerts in pages of 40");
            break;
        }
    }
    let mut truth = sim.ground_truth();
    truth.reverse();
    assert_eq!(seen, truth);
    assert!(seen.windows(2).all(|w| report_time(&w[0]) >= report_time(&w[1])));
}

#[tokio::test]
async fn the_window_includes_its_start_and_excludes_its_end() {
    let sim = start(100).await;
    let truth = sim.ground_truth();
    let (low, high) = (report_time(&truth[20]), report_time(&truth[80]));
    let body = ok(&sim, &[("startTimeUtc", utc(low)), ("endTimeUtc", utc(high))]).await;
    let expected: HashSet<&Value> =
        truth.iter().filter(|i| report_time(i) >= low && report_time(i) < high).collect();
    let got = alerts(&body);
    assert_eq!(got.len(), expected.len());
    assert!(got.iter().all(|i| expected.contains(i)));
    assert!(got.iter().any(|i| report_time(i) == low));
}

#[tokio::test]
async fn a_query_matching_nothing_is_a_404_error_envelope() {
    let sim = start(20).await;
    let response = get(
        &sim,
        &[
            ("startTimeUtc", utc(anchor() + TimeDelta::hours(1))),
            ("endTimeUtc", utc(anchor() + TimeDelta::hours(2))),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["completed"], false);
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("No alerts"));
    assert_eq!(body["usageLimits"]["limits"]["minute"], 20);
}

#[tokio::test]
async fn a_page_of_one_alert_is_the_bare_object() {
    let sim = start(3).await;
    let mut query = everything();
    query.extend([("pageSize", "2".to_owned()), ("pageNumber", "2".to_owned())]);
    let body = ok(&sim, &query).await;
    assert!(body["data"]["alerts"].is_object(), "{body}");
    assert_eq!(body["data"]["hasMore"], false);
    assert_eq!(body["data"]["alerts"], sim.ground_truth()[0]);
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_a_401_envelope() {
    let sim = start(5).await;
    let client = reqwest::Client::new();
    let url = format!("{}{PATH}", sim.base_url());
    for request in [client.get(&url), client.get(&url).bearer_auth("eyJ.wrong.key")] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["completed"], false);
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("denied"));
    }
}

#[tokio::test]
async fn invalid_parameters_are_400s_naming_the_parameter() {
    let sim = start(5).await;
    let start_only = vec![("startTimeUtc", utc(anchor()))];
    for (query, named) in [
        (vec![("pageSize", "101".to_owned())], "pageSize"),
        (vec![("pageNumber", "0".to_owned())], "pageNumber"),
        (vec![("testIds", "1,x".to_owned())], "testIds"),
        (
            vec![("startTimeUtc", "2026-03-27T08:15:42Z".to_owned()), ("endTimeUtc", utc(anchor()))],
            "startTimeUtc",
        ),
        (start_only, "endTimeUtc"),
    ] {
        let response = get(&sim, &query).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query:?}");
        let body: Value = response.json().await.unwrap();
        let text = body["errors"][0]["message"].as_str().unwrap();
        assert!(text.contains(named), "{text}");
    }
}

#[tokio::test]
async fn test_ids_filter_and_usage_runs_count_calls() {
    let sim = start(60).await;
    let truth = sim.ground_truth();
    let test_id = truth[0]["test"]["id"].as_i64().unwrap();
    let mut query = everything();
    query.push(("testIds", test_id.to_string()));
    let body = ok(&sim, &query).await;
    let got = alerts(&body);
    let expected = truth.iter().filter(|i| i["test"]["id"] == test_id).count();
    assert_eq!(got.len(), expected);
    assert!(got.iter().all(|i| i["test"]["id"] == test_id));
    let first = body["usageLimits"]["runs"]["day"].as_u64().unwrap();
    let again = ok(&sim, &everything()).await;
    assert_eq!(again["usageLimits"]["runs"]["day"].as_u64().unwrap(), first + 1);
    assert_eq!(again["usageLimits"]["limits"]["hour"], 500);
}

#[tokio::test]
async fn faults_use_catchpoints_envelope() {
    let sim = start(10).await;
    sim.inject(Fault::RateLimited { retry_after_secs: 3 }, 1);
    let response = get(&sim, &everything()).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("retry-after").is_none(), "undocumented");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["completed"], false);
    assert!(body["usageLimits"]["exceededMessage"].is_string());

    sim.inject(Fault::MalformedItem, 1);
    let broken = alerts(&ok(&sim, &everything()).await);
    assert_eq!(broken.iter().filter(|a| a.get("id").is_none()).count(), 1);
}

/// The vendor's OpenAPI extract, when the shared fixtures are present.
fn schema_extract() -> Option<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/vendors/catchpoint/openapi_v2_alerts_schema_extract.json");
    match std::fs::read(&path) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).unwrap()),
        Err(_) => {
            eprintln!("SKIP: {} not found; golden tests need the shared fixtures", path.display());
            None
        }
    }
}

#[tokio::test]
async fn alerts_follow_the_openapi_alert_model_field_by_field() {
    let Some(spec) = schema_extract() else {
        return;
    };
    let schemas = &spec["components"]["schemas"];
    let model = &schemas["Catchpoint.Symphony.REST.Common.Response.v2_0.Alert.AlertApiModel"]["properties"];
    let properties: HashSet<&str> = model.as_object().unwrap().keys().map(String::as_str).collect();
    let sim = start(300).await;
    let truth = sim.ground_truth();
    let mut acknowledged = 0;
    for alert in &truth {
        let fields: HashSet<&str> = alert.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(fields, properties, "every AlertApiModel property, nothing else");
        for (field, definition) in model.as_object().unwrap() {
            let Some(reference) = definition["$ref"].as_str() else {
                continue;
            };
            let target = &schemas[reference.trim_start_matches("#/components/schemas/")];
            if let Some(values) = target["enum"].as_array() {
                assert!(values.contains(&alert[field]), "{field} = {} is not in the enum", alert[field]);
            } else if !alert[field].is_null() {
                let keys: HashSet<&String> = alert[field].as_object().unwrap().keys().collect();
                let allowed: HashSet<&String> = target["properties"].as_object().unwrap().keys().collect();
                assert!(keys.is_subset(&allowed), "{field}");
            }
        }
        for time in ["reportTime", "processingTimestamp", "startTime"] {
            assert!(crate::vendors::fields::time(alert, &format!("/{time}")).is_some());
        }
        acknowledged += usize::from(!alert["acknowledgedBy"].is_null());
    }
    let levels: HashSet<&str> = truth.iter().map(|a| a["level"]["name"].as_str().unwrap()).collect();
    assert_eq!(levels.len(), 4, "every level occurs: {levels:?}");
    assert!((15..=90).contains(&acknowledged), "{acknowledged}");
}
