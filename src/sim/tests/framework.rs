//! Framework behaviour (determinism, faults, arrivals, request log,
//! shutdown), exercised through CanaryGuard.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::Value;

use super::super::{Fault, SimConfig, SimVendor, Simulator};
use super::{TEST_UA, alerts, anchor, get, ids, start};

#[tokio::test]
async fn same_seed_same_data_different_seed_different_data() {
    let a = start(SimConfig::default()).await;
    let b = start(SimConfig::default()).await;
    let c = start(SimConfig { seed: 2, ..SimConfig::default() }).await;
    assert_eq!(a.ground_truth().len(), 250);
    assert_eq!(a.ground_truth(), b.ground_truth());
    assert_ne!(a.ground_truth(), c.ground_truth());
}

#[tokio::test]
async fn initial_items_lie_within_history_before_start() {
    let sim = start(SimConfig { history: Duration::from_secs(3600), ..SimConfig::default() }).await;
    let earliest = anchor() - chrono::TimeDelta::hours(1);
    for item in sim.ground_truth() {
        let at = DateTime::parse_from_rfc3339(item["triggered_at"].as_str().unwrap()).unwrap();
        assert!(at >= earliest && at < anchor(), "{at}");
    }
}

#[tokio::test]
async fn zero_arrival_or_update_interval_is_rejected() {
    for config in [
        SimConfig { arrival_every: Some(Duration::ZERO), ..SimConfig::default() },
        SimConfig { update_every: Some(Duration::ZERO), ..SimConfig::default() },
    ] {
        let error = Simulator::start(SimVendor::CanaryGuard, config).await.err().unwrap();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    }
}

#[tokio::test]
async fn each_vendor_accepts_its_own_default_key() {
    for vendor in [SimVendor::CanaryGuard, SimVendor::RedCanary, SimVendor::ThinkstCanary] {
        let config = SimConfig::for_vendor(vendor);
        assert_eq!(config.api_key, vendor.default_api_key());
    }
    assert_ne!(SimVendor::RedCanary.default_api_key(), SimVendor::ThinkstCanary.default_api_key());
}

#[tokio::test]
async fn repeat_previous_page_fault_serves_the_last_good_answer_again() {
    let sim = start(SimConfig::default()).await;
    let first = alerts(&sim, &[("limit", "4"), ("page", "1")]).await;
    sim.inject(Fault::RepeatPreviousPage, 1);
    let repeated = alerts(&sim, &[("limit", "4"), ("page", "2")]).await;
    assert_eq!(repeated, first);
    let second = alerts(&sim, &[("limit", "4"), ("page", "2")]).await;
    assert_ne!(second, first);
    assert_eq!(second["meta"]["page"], 2);
}

#[tokio::test]
async fn error_in_200_fault_is_the_error_envelope_with_status_ok() {
    let sim = start(SimConfig::default()).await;
    sim.inject(Fault::ErrorIn200, 1);
    let response = get(&sim, "/api/v1/alerts", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INTERNAL_ERROR");
    recovers(&sim).await;
}

#[tokio::test]
async fn alerts_that_never_change_are_not_updated() {
    let sim = start(SimConfig::default()).await;
    let before = sim.ground_truth();
    assert!(sim.update_items(5).is_empty());
    assert_eq!(sim.ground_truth(), before);
}

/// Asserts that the following request is served normally again.
async fn recovers(sim: &Simulator) {
    let page = alerts(sim, &[("limit", "5")]).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn rate_limited_fault_sends_envelope_and_retry_after() {
    let sim = start(SimConfig::default()).await;
    sim.inject(Fault::RateLimited { retry_after_secs: 7 }, 1);
    let response = get(&sim, "/api/v1/alerts", &[]).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    recovers(&sim).await;
}

#[tokio::test]
async fn unavailable_fault_is_a_short_503_and_consumed_in_order() {
    let sim = start(SimConfig::default()).await;
    sim.inject(Fault::Unavailable, 2);
    sim.inject(Fault::Unauthorized, 1);
    for _ in 0..2 {
        let response = get(&sim, "/api/v1/alerts", &[]).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.text().await.unwrap().len() < 64);
    }
    let response = get(&sim, "/api/v1/alerts", &[]).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    recovers(&sim).await;
}

#[tokio::test]
async fn html_error_fault_is_a_500_html_page() {
    let sim = start(SimConfig::default()).await;
    sim.inject(Fault::HtmlError, 1);
    let response = get(&sim, "/api/v1/alerts", &[]).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(response.text().await.unwrap().contains("<html>"));
    recovers(&sim).await;
}

#[tokio::test]
async fn truncated_json_fault_cuts_a_valid_page() {
    let sim = start(SimConfig::default()).await;
    let full = get(&sim, "/api/v1/alerts", &[]).await.bytes().await.unwrap();
    sim.inject(Fault::TruncatedJson, 1);
    let response = get(&sim, "/api/v1/alerts", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cut = response.bytes().await.unwrap();
    assert_eq!(cut.len(), full.len() / 2);
    assert_eq!(cut, full.slice(..cut.len()));
    assert!(serde_json::from_slice::<Value>(&cut).is_err());
    recovers(&sim).await;
}

#[tokio::test]
async fn slow_fault_answers_correctly_after_the_delay() {
    let sim = start(SimConfig::default()).await;
    sim.inject(Fault::Slow(Duration::from_millis(300)), 1);
    let began = Instant::now();
    let page = alerts(&sim, &[("limit", "3")]).await;
    assert!(began.elapsed() >= Duration::from_millis(300));
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    let began = Instant::now();
    recovers(&sim).await;
    assert!(began.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn malformed_item_fault_breaks_exactly_one_item() {
    let sim = start(SimConfig::default()).await;
    sim.inject(Fault::MalformedItem, 1);
    let page = alerts(&sim, &[("limit", "10")]).await;
    let items = page["data"].as_array().unwrap();
    assert_eq!(items.len(), 10);
    let broken: Vec<&Value> = items.iter().filter(|i| i.get("id").is_none()).collect();
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0]["triggered_at"], "not a date");
    assert_eq!(page["meta"]["total"], 250);
    recovers(&sim).await;
}

#[tokio::test]
async fn faults_skip_health_and_wait_for_a_data_request() {
    let sim = start(SimConfig::default()).await;
    sim.inject(Fault::Unavailable, 1);
    let health = reqwest::get(format!("{}/api/v1/health", sim.base_url())).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let response = get(&sim, "/api/v1/alerts", &[]).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn added_items_arrive_on_top_and_in_ground_truth() {
    let sim = start(SimConfig::default()).await;
    sim.add_items(3);
    let truth = sim.ground_truth();
    assert_eq!(truth.len(), 253);
    let newest: Vec<String> = ids(&truth[250..]).into_iter().rev().collect();
    let page = alerts(&sim, &[("limit", "3")]).await;
    assert_eq!(ids(page["data"].as_array().unwrap()), newest);
    assert_eq!(page["meta"]["total"], 253);
    let at = DateTime::parse_from_rfc3339(truth[252]["triggered_at"].as_str().unwrap()).unwrap();
    assert!((Utc::now() - at.with_timezone(&Utc)).num_seconds() < 5);
}

#[tokio::test]
async fn request_log_records_what_was_asked_and_answered() {
    let sim = start(SimConfig::default()).await;
    sim.inject(Fault::Unavailable, 1);
    get(&sim, "/api/v1/alerts", &[("limit", "7")]).await;
    get(&sim, "/api/v1/alerts", &[("page", "2")]).await;
    let log = sim.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].path, "/api/v1/alerts");
    assert_eq!(log[0].query.as_deref(), Some("limit=7"));
    assert_eq!(log[0].user_agent.as_deref(), Some(TEST_UA));
    assert_eq!(log[0].status, 503);
    assert_eq!(log[1].status, 200);
    assert!(log[1].received >= log[0].received);
}

#[tokio::test]
async fn arrivals_run_until_shutdown() {
    let sim =
        start(SimConfig { arrival_every: Some(Duration::from_millis(20)), ..SimConfig::default() }).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sim.ground_truth().len() > 250);
    let shared = sim.shared.clone();
    let url = format!("{}/api/v1/health", sim.base_url());
    sim.shutdown().await;
    let count = shared.ground_truth().len();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(shared.ground_truth().len(), count);
    assert!(reqwest::get(url).await.is_err());
}

#[tokio::test]
async fn vendors_whose_items_never_change_update_nothing() {
    let sim = start(SimConfig::default()).await;
    let before = sim.ground_truth();
    assert!(sim.update_items(5).is_empty());
    assert_eq!(sim.ground_truth(), before);
}

#[tokio::test]
async fn an_enforced_limit_refuses_requests_beyond_it_until_the_window_frees() {
    let limit = crate::throttle::RateLimit::new(3, Duration::from_millis(600));
    let sim = start(SimConfig { initial_items: 5, enforce_limit: Some(limit), ..SimConfig::default() }).await;
    for _ in 0..3 {
        assert_eq!(get(&sim, "/api/v1/alerts", &[]).await.status(), StatusCode::OK);
    }
    let refused = get(&sim, "/api/v1/alerts", &[]).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    assert_eq!(get(&sim, "/api/v1/health", &[]).await.status(), StatusCode::OK, "health is never limited");
    assert_eq!(sim.rate_limited_count(), 1);
    tokio::time::sleep(Duration::from_millis(650)).await;
    assert_eq!(get(&sim, "/api/v1/alerts", &[]).await.status(), StatusCode::OK, "the window moved on");
    assert_eq!(sim.rate_limited_count(), 1, "refused requests do not count towards the window");
}
