//! Rapid7 InsightIDR API semantics over real loopback HTTP: index paging of
//! the alerts search and the investigations list, exclusive time bounds,
//! `Accept-version`, `X-Api-Key` and `/validate`, `RateLimit-*` headers, and
//! alerts that change version.

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::super::{Fault, RAPID7_DEMO_KEY, SimConfig, SimVendor, Simulator};
use super::anchor;

async fn start(items: usize) -> Simulator {
    let config =
        SimConfig { initial_items: items, api_key: RAPID7_DEMO_KEY.to_owned(), ..SimConfig::default() };
    Simulator::start_at(SimVendor::Rapid7, config, anchor()).await.unwrap()
}

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn created(item: &Value) -> DateTime<Utc> {
    crate::vendors::fields::time(item, "/created_at").unwrap()
}

fn ascending_search(start: DateTime<Utc>, end: DateTime<Utc>) -> Value {
    json!({
        "search": { "start_time": iso(start), "end_time": iso(end) },
        "sorts": [{ "field_id": "created_at", "order": "ASCENDING_NULLS_LAST" }],
    })
}

async fn search(sim: &Simulator, index: u64, size: u64, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/idr/at/alerts/ops/search", sim.base_url()))
        .query(&[("index", index), ("size", size)])
        .header("X-Api-Key", RAPID7_DEMO_KEY)
        .header("Accept-version", "strong-force-preview")
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn investigations(sim: &Simulator, query: &[(&str, String)]) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/idr/v2/investigations", sim.base_url()))
        .query(query)
        .header("X-Api-Key", RAPID7_DEMO_KEY)
        .header("Accept-version", "investigations-preview")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_alert_search_walks_indexes_oldest_first_until_the_last_index() {
    let sim = start(95).await;
    let body = ascending_search(anchor() - TimeDelta::days(3), anchor());
    let mut seen = Vec::new();
    for index in 0.. {
        let response = search(&sim, index, 20, &body).await;
        assert_eq!(response.status(), StatusCode::OK);
        let page: Value = response.json().await.unwrap();
        assert_eq!(page["metadata"]["total_items"], 95);
        assert_eq!(page["metadata"]["index"], index);
        seen.extend(page["alerts"].as_array().unwrap().iter().cloned());
        if page["metadata"]["is_last_index"] == true {
            assert_eq!(index, 4);
            assert_eq!(page["metadata"]["items_in_index"], 15);
            break;
        }
    }
    assert_eq!(seen, sim.ground_truth());
}

#[tokio::test]
async fn without_a_sort_alerts_come_newest_first_and_bounds_are_exclusive() {
    let sim = start(60).await;
    let truth = sim.ground_truth();
    let (low, high) = (created(&truth[10]), created(&truth[50]));
    let page: Value =
        search(&sim, 0, 100, &json!({ "search": { "start_time": iso(low), "end_time": iso(high) } }))
            .await
            .json()
            .await
            .unwrap();
    let expected: Vec<Value> =
        truth.iter().rev().filter(|i| created(i) > low && created(i) < high).cloned().collect();
    assert_eq!(page["alerts"].as_array().unwrap(), &expected);
}

#[tokio::test]
async fn a_search_without_start_time_or_accept_version_is_refused() {
    let sim = start(5).await;
    let response = search(&sim, 0, 10, &json!({ "search": {} })).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("start_time"));

    let response = reqwest::Client::new()
        .post(format!("{}/idr/at/alerts/ops/search", sim.base_url()))
        .header("X-Api-Key", RAPID7_DEMO_KEY)
        .json(&ascending_search(anchor() - TimeDelta::days(3), anchor()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("strong-force-preview"));
    assert!(body["correlation_id"].is_string());
}

#[tokio::test]
async fn the_key_is_checked_on_data_routes_and_by_validate() {
    let sim = start(5).await;
    let client = reqwest::Client::new();
    let validate = |key: &'static str| {
        client.get(format!("{}/validate", sim.base_url())).header("X-Api-Key", key).send()
    };
    let good = validate(RAPID7_DEMO_KEY).await.unwrap();
    assert_eq!(good.status(), StatusCode::OK);
    assert_eq!(good.json::<Value>().await.unwrap(), json!({ "message": "Authorized" }));
    let bad = validate("00000000-0000-4000-a000-000000000000").await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bad.json::<Value>().await.unwrap()["message"], "Unauthorized");

    let response = client
        .get(format!("{}/idr/v2/investigations", sim.base_url()))
        .header("Accept-version", "investigations-preview")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_vendors_validate_request_passes_with_the_right_key_only() {
    let sim = start(1).await;
    let text = format!(
        "[[source]]\nvendor = \"rapid7\"\nname = \"t\"\nbase_url = \"{}\"\ncredential = {{ env = \"X\" }}\n",
        sim.base_url()
    );
    let config = crate::registry::parse(&text, "t.toml").unwrap();
    let vendor = crate::vendors::instantiate::<crate::vendors::rapid7::Rapid7>(&config.sources[0]).unwrap();
    let client = reqwest::Client::new();
    let check = |key: &str| {
        use crate::vendors::Vendor;
        let key = crate::config::Credential::from_secret(key.to_owned().into());
        crate::http::fetch_once(
            vendor.validate_request(&client, &key).unwrap(),
            crate::http::ThrottleSignals::NONE,
            crate::http::DEFAULT_MAX_RESPONSE_BYTES,
        )
    };
    let body = check(RAPID7_DEMO_KEY).await.unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&body.body).unwrap()["message"], "Authorized");
    let err = check("wrong").await.unwrap_err();
    assert_eq!(err.code(), "auth", "{err}");
}

#[tokio::test]
async fn data_answers_carry_ratelimit_headers_and_a_429_says_when_it_resets() {
    let sim = start(5).await;
    let body = ascending_search(anchor() - TimeDelta::days(3), anchor());
    let first = search(&sim, 0, 10, &body).await;
    let second = search(&sim, 0, 10, &body).await;
    let header =
        |r: &reqwest::Response, name: &str| -> i64 { r.headers()[name].to_str().unwrap().parse().unwrap() };
    assert_eq!(header(&first, "ratelimit-limit"), 1000);
    assert_eq!(header(&first, "ratelimit-remaining"), 999);
    assert_eq!(header(&second, "ratelimit-remaining"), 998);
    assert!(header(&first, "ratelimit-reset") > Utc::now().timestamp());

    sim.inject(Fault::RateLimited { retry_after_secs: 30 }, 1);
    let throttled = search(&sim, 0, 10, &body).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&throttled, "ratelimit-remaining"), 0);
    let reset = header(&throttled, "ratelimit-reset") - Utc::now().timestamp();
    assert!((25..=31).contains(&reset), "{reset}");
}

#[tokio::test]
async fn updates_bump_version_and_move_alerts_through_triage() {
    let sim = start(10).await;
    let before = sim.ground_truth();
    assert_eq!(sim.update_items(2).len(), 2);
    let after = sim.ground_truth();
    assert_eq!(before[..8], after[..8], "older alerts are untouched");
    for (old, new) in before[8..].iter().zip(&after[8..]) {
        assert_eq!(old["rrn"], new["rrn"]);
        assert_eq!(new["version"].as_u64().unwrap(), old["version"].as_u64().unwrap() + 1);
        assert_eq!((old["status"].as_str(), new["status"].as_str()), (Some("OPEN"), Some("INVESTIGATING")));
        assert_ne!(old["updated_at"], new["updated_at"]);
    }
    sim.update_items(1);
    let closed = &sim.ground_truth()[9];
    assert_eq!(closed["status"], "CLOSED");
    assert_ne!(closed["disposition"], "UNDECIDED");
}

#[tokio::test]
async fn investigations_are_index_paged_with_total_pages_and_sortable() {
    let sim = start(45).await;
    let truth = sim.ground_truth();
    let mut seen = Vec::new();
    for index in 0..3 {
        let response = investigations(
            &sim,
            &[
                ("start_time", iso(anchor() - TimeDelta::days(3))),
                ("end_time", iso(anchor())),
                ("index", index.to_string()),
                ("size", "20".to_owned()),
                ("sort", "created_time,ASC".to_owned()),
            ],
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().contains_key("ratelimit-remaining"));
        let page: Value = response.json().await.unwrap();
        assert_eq!(page["metadata"]["total_pages"], 3);
        assert_eq!(page["metadata"]["total_data"], 45);
        seen.extend(page["data"].as_array().unwrap().iter().cloned());
    }
    let rrns: Vec<&Value> = seen.iter().map(|i| &i["rrn"]).collect();
    let expected: Vec<&Value> = truth.iter().map(|a| &a["investigation_rrn"]).collect();
    assert_eq!(rrns, expected);
    assert_eq!(seen[0]["created_time"], truth[0]["created_at"]);
    assert_eq!(seen[0]["source"], "ALERT");

    let response = investigations(&sim, &[("size", "101".to_owned())]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_malformed_item_breaks_one_alert() {
    let sim = start(10).await;
    sim.inject(Fault::MalformedItem, 1);
    let page: Value = search(&sim, 0, 10, &ascending_search(anchor() - TimeDelta::days(3), anchor()))
        .await
        .json()
        .await
        .unwrap();
    let alerts = page["alerts"].as_array().unwrap();
    assert_eq!(alerts.iter().filter(|a| a.get("rrn").is_none()).count(), 1);
}
