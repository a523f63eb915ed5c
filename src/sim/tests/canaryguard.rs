//! CanaryGuard API semantics over real loopback HTTP: paging, filters,
//! auth, parameter validation and the alert object.

use chrono::DateTime;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::super::SimConfig;
use super::{alerts, get, ids, start};

fn at(item: &Value) -> DateTime<chrono::FixedOffset> {
    DateTime::parse_from_rfc3339(item["triggered_at"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn walking_all_pages_yields_every_item_once_newest_first() {
    let sim = start(SimConfig::default()).await;
    let mut seen = Vec::new();
    for page in 1.. {
        let body = alerts(&sim, &[("limit", "7"), ("page", &page.to_string())]).await;
        assert_eq!(body["meta"], json!({"page": page, "limit": 7, "total": 250}));
        let data = body["data"].as_array().unwrap();
        if data.is_empty() {
            break;
        }
        seen.extend(data.iter().cloned());
    }
    let mut truth = sim.ground_truth();
    truth.reverse();
    assert_eq!(seen, truth);
    assert!(seen.windows(2).all(|w| at(&w[0]) >= at(&w[1])));
}

#[tokio::test]
async fn after_and_before_are_strict() {
    let sim = start(SimConfig::default()).await;
    let truth = sim.ground_truth();
    let (low, high) = (truth[40]["triggered_at"].as_str().unwrap(), at(&truth[200]));
    let high_offset = high.with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap()).to_rfc3339();
    let page = alerts(&sim, &[("after", low), ("before", &high_offset), ("limit", "100")]).await;
    let low = DateTime::parse_from_rfc3339(low).unwrap();
    let expected: Vec<Value> = truth.iter().rev().filter(|i| at(i) > low && at(i) < high).cloned().collect();
    assert!(expected.len() > 50);
    assert_eq!(page["meta"]["total"], expected.len());
    assert_eq!(page["data"].as_array().unwrap(), &expected[..100]);
}

#[tokio::test]
async fn token_filters_match_only_that_token() {
    let sim = start(SimConfig::default()).await;
    let truth = sim.ground_truth();
    let token = truth[0]["token_id"].as_str().unwrap();
    let expected: Vec<String> = ids(&truth)
        .into_iter()
        .zip(&truth)
        .rev()
        .filter(|(_, i)| i["token_id"] == token)
        .map(|(id, _)| id)
        .collect();
    let by_param = alerts(&sim, &[("token_id", token), ("limit", "100")]).await;
    assert_eq!(ids(by_param["data"].as_array().unwrap()), expected);
    let response = get(&sim, &format!("/api/v1/tokens/{token}/alerts"), &[("limit", "100")]).await;
    let by_path: Value = response.json().await.unwrap();
    assert_eq!(by_path, by_param);
}

#[tokio::test]
async fn missing_or_wrong_key_is_unauthorized_but_health_is_open() {
    let sim = start(SimConfig::default()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/alerts", sim.base_url());
    let envelope =
        json!({"error": {"code": "UNAUTHORIZED", "message": "Missing, invalid, or expired API key."}});
    for request in
        [client.get(&url), client.get(&url).bearer_auth("cg_live_0000000000000000000000000000000000000000")]
    {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.json::<Value>().await.unwrap(), envelope);
    }
    let health = client.get(format!("{}/api/v1/health", sim.base_url())).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body, json!({"data": {"status": "ok", "version": "1.0.0"}}));
}

#[tokio::test]
async fn invalid_parameters_are_bad_requests_naming_the_parameter() {
    let sim = start(SimConfig::default()).await;
    for (name, value) in [
        ("limit", "101"),
        ("limit", "0"),
        ("page", "0"),
        ("page", "x"),
        ("after", "yesterday"),
        ("before", "2026-03-27"),
    ] {
        let response = get(&sim, "/api/v1/alerts", &[(name, value)]).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}={value}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "BAD_REQUEST");
        assert!(body["error"]["message"].as_str().unwrap().contains(name));
    }
}

#[tokio::test]
async fn pages_past_the_end_are_empty_and_unknown_paths_are_not_found() {
    let sim = start(SimConfig::default()).await;
    let body = alerts(&sim, &[("page", "99")]).await;
    assert_eq!(body, json!({"data": [], "meta": {"page": 99, "limit": 50, "total": 250}}));
    let response = get(&sim, "/api/v1/nope", &[]).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn alerts_look_like_the_documented_object() {
    let sim = start(SimConfig::default()).await;
    let truth = sim.ground_truth();
    let count = |f: &dyn Fn(&Value) -> bool| truth.iter().filter(|i| f(i)).count();
    for item in &truth {
        let id = item["id"].as_str().unwrap();
        assert!(id.len() == 12 && id.starts_with("alt_"), "{id}");
        assert!(item["token_id"].as_str().unwrap().starts_with("tok_"));
        assert!(item["triggered_at"].as_str().unwrap().ends_with('Z'));
        let kind = item["token_type"].as_str().unwrap();
        assert_eq!(kind == "dns", item.get("user_agent").is_none());
        assert_eq!(kind.starts_with("crypto_"), item.get("metadata").is_some());
        assert!(item["reviewed"].is_boolean());
    }
    let reviewed = count(&|i| i["reviewed"] == true);
    assert!((25..=80).contains(&reviewed), "{reviewed}");
    assert!(count(&|i| i.get("geo").is_none()) > 0);
    assert!(count(&|i| i.get("geo").is_some_and(|g| g.get("lat").is_none())) > 0);
    assert!(count(&|i| i["source_ip"].as_str().unwrap().contains(':')) > 0);
}
