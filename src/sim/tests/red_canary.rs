//! Red Canary API semantics over real loopback HTTP: `links.next` paging,
//! `since`, auth, the HTML 404, updates, and the past-the-end faults.

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::super::{Fault, RED_CANARY_DEMO_KEY, SimConfig, SimVendor, Simulator};
use super::{anchor, assert_same_shape, fixture};

async fn start(items: usize) -> Simulator {
    let config = SimConfig { initial_items: items, ..SimConfig::for_vendor(SimVendor::RedCanary) };
    Simulator::start_at(SimVendor::RedCanary, config, anchor()).await.unwrap()
}

async fn get_url(url: &str, key: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some(key) = key {
        request = request.header("X-Api-Key", key);
    }
    request.send().await.unwrap()
}

async fn page(url: &str) -> Value {
    let response = get_url(url, Some(RED_CANARY_DEMO_KEY)).await;
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    response.json().await.unwrap()
}

fn detections_url(sim: &Simulator, query: &str) -> String {
    format!("{}/openapi/v3/detections?{query}", sim.base_url())
}

fn confirmed(item: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(item["attributes"]["confirmed_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn string_ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| i["id"].to_string()).collect()
}

#[tokio::test]
async fn following_next_links_yields_every_detection_once_newest_first() {
    let sim = start(23).await;
    let mut url = detections_url(&sim, "per_page=10");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let body = page(&url).await;
        pages += 1;
        assert_eq!(body["meta"], json!({"api_version": "v3.0", "total_items": 23}));
        let data = body["data"].as_array().unwrap();
        seen.extend(data.iter().cloned());
        match body["links"]["next"].as_str() {
            Some(next) => {
                assert!(!data.is_empty(), "only pages with data link on");
                url = next.to_owned();
            }
            None => {
                assert!(data.is_empty(), "the last page with data still links on");
                break;
            }
        }
    }
    assert_eq!(pages, 4, "3 pages of data and the empty one past the end");
    let mut truth = sim.ground_truth();
    truth.reverse();
    assert_eq!(string_ids(&seen), string_ids(&truth));
    assert!(seen.windows(2).all(|w| confirmed(&w[0]) >= confirmed(&w[1])));
}

#[tokio::test]
async fn links_keep_the_query_and_since_filters_on_confirmed_at() {
    let sim = start(60).await;
    let truth = sim.ground_truth();
    let since = truth[30]["attributes"]["confirmed_at"].as_str().unwrap();
    let body = page(&format!(
        "{}/openapi/v3/detections?per_page=5&since={}",
        sim.base_url(),
        since.replace(':', "%3A")
    ))
    .await;
    let expected = truth.iter().filter(|i| confirmed(i) >= confirmed(&truth[30])).count();
    assert_eq!(body["meta"]["total_items"], expected);
    let next = body["links"]["next"].as_str().unwrap();
    assert!(next.starts_with(&sim.base_url()), "{next}");
    assert!(next.contains("page=2") && next.contains("per_page=5") && next.contains("since="));
    assert!(body["links"]["self"].as_str().unwrap().contains("page=1"));
    assert!(body["links"].get("prev").is_none());
    let second = page(next).await;
    assert!(second["links"]["prev"].as_str().unwrap().contains("page=1"));
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_403_and_an_unknown_path_the_html_404() {
    let sim = start(3).await;
    for key in [None, Some("0000000000000000000000000000000000000000")] {
        let response = get_url(&detections_url(&sim, ""), key).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["status"], "403");
    }
    let response =
        get_url(&format!("{}/wrong-tenant/openapi/v3/detections", sim.base_url()), Some(RED_CANARY_DEMO_KEY))
            .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(response.text().await.unwrap().starts_with("<!DOCTYPE html>"));
}

#[tokio::test]
async fn invalid_parameters_are_bad_requests_naming_the_parameter() {
    let sim = start(3).await;
    for (name, value) in [("page", "0"), ("per_page", "101"), ("per_page", "x"), ("since", "yesterday")] {
        let response =
            get_url(&detections_url(&sim, &format!("{name}={value}")), Some(RED_CANARY_DEMO_KEY)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}={value}");
        let body: Value = response.json().await.unwrap();
        assert!(body["errors"][0]["detail"].as_str().unwrap().contains(name));
    }
}

#[tokio::test]
async fn one_detection_comes_as_a_one_element_data_array() {
    let sim = start(3).await;
    let truth = sim.ground_truth();
    let body = page(&format!("{}/openapi/v3/detections/{}", sim.base_url(), truth[1]["id"])).await;
    assert_eq!(body, json!({"data": [truth[1].clone()]}));
}

#[tokio::test]
async fn updates_acknowledge_then_remediate_and_keep_confirmed_at() {
    let sim = start(2).await;
    let before = sim.ground_truth();
    assert_eq!(sim.update_items(2).len(), 2);
    let acked = sim.ground_truth();
    for (old, new) in before.iter().zip(&acked) {
        assert!(new["attributes"]["last_acknowledged_at"].is_string());
        assert_eq!(new["attributes"]["last_acknowledged_by"]["type"], "PortalUser");
        assert_eq!(confirmed(old), confirmed(new));
        assert!(new["attributes"].get("last_remediated_status").is_none());
    }
    assert_eq!(sim.update_items(2).len(), 2);
    for item in sim.ground_truth() {
        let state = item["attributes"]["last_remediated_status"]["remediation_state"].as_str().unwrap();
        assert!(state.starts_with("remediated") || state.starts_with("not_remediated"), "{state}");
    }
    assert!(sim.update_items(2).is_empty(), "remediated detections no longer change");
}

#[tokio::test]
async fn past_the_end_faults_hollow_or_repeat_the_page() {
    let sim = start(4).await;
    let last = page(&detections_url(&sim, "per_page=10")).await;
    let past = last["links"]["next"].as_str().unwrap().to_owned();

    sim.inject(Fault::HollowItems, 1);
    let hollow = page(&past).await;
    let items = hollow["data"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|i| i["id"].is_null() && i["attributes"].is_null()));

    let _ = page(&detections_url(&sim, "per_page=10")).await;
    sim.inject(Fault::RepeatPreviousPage, 1);
    assert_eq!(page(&past).await, last);
}

#[tokio::test]
async fn the_next_link_fault_points_elsewhere_and_malformed_breaks_one_item() {
    let sim = start(12).await;
    sim.inject(Fault::NextLinkTo("http://evil.example:8080".into()), 1);
    let body = page(&detections_url(&sim, "per_page=5")).await;
    let next = body["links"]["next"].as_str().unwrap();
    assert!(next.starts_with("http://evil.example:8080/openapi/v3/detections?page=2"), "{next}");

    sim.inject(Fault::MalformedItem, 1);
    let body = page(&detections_url(&sim, "per_page=5")).await;
    let broken: Vec<&Value> =
        body["data"].as_array().unwrap().iter().filter(|d| d.get("id").is_none()).collect();
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0]["attributes"]["confirmed_at"], "not a date");
}

#[tokio::test]
async fn detections_have_the_shape_of_the_real_2025_payload() {
    let Some(real) = fixture("redcanary", "detection_xsoar_detection2.json") else {
        return;
    };
    let sim = start(10).await;
    sim.update_items(10);
    sim.update_items(10);
    let truth = sim.ground_truth();
    // The real sample has a subclassification; some detections have none
    // (as in the XSOAR page sample).
    let classified = |d: &&Value| {
        d["attributes"]["classification"]["subclassification"].as_array().is_some_and(|a| !a.is_empty())
    };
    assert!(truth.iter().any(|d| !classified(&d)));
    for item in truth.iter().filter(classified) {
        assert_same_shape(&real, item);
        assert!(item["id"].is_u64());
        assert!(item["links"]["self"]["href"].as_str().unwrap().starts_with(&sim.base_url()));
    }
}
