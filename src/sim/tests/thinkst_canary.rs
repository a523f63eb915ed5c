//! Thinkst Canary Console semantics over real loopback HTTP: the
//! `incidents_since` feed, cursor snapshots, `updated_id` bumps, both auth
//! forms, the error envelope (also with 200) and the documented shapes.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::Value;

use super::super::{Fault, SimConfig, SimVendor, Simulator, THINKST_CANARY_DEMO_KEY};
use super::{anchor, assert_same_shape, fixture};

async fn start(items: usize) -> Simulator {
    let config = SimConfig { initial_items: items, ..SimConfig::for_vendor(SimVendor::ThinkstCanary) };
    Simulator::start_at(SimVendor::ThinkstCanary, config, anchor()).await.unwrap()
}

/// GET `path?query` with the key in the header.
async fn feed(sim: &Simulator, path: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", sim.base_url()))
        .query(query)
        .header("X-Canary-Auth-Token", THINKST_CANARY_DEMO_KEY)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn all(sim: &Simulator, query: &[(&str, &str)]) -> Value {
    let (status, body) = feed(sim, "/api/v1/incidents/all", query).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"], "success", "{body}");
    body
}

fn incidents(body: &Value) -> Vec<Value> {
    body["incidents"].as_array().cloned().unwrap_or_default()
}

fn updated_ids(items: &[Value]) -> Vec<u64> {
    items.iter().map(|i| i["updated_id"].as_u64().unwrap()).collect()
}

/// Every page of a cursor walk from `since` with `limit`.
async fn walk(sim: &Simulator, since: &str, limit: &str) -> Vec<Value> {
    let mut pages = vec![all(sim, &[("incidents_since", since), ("limit", limit)]).await];
    while let Some(cursor) = pages.last().unwrap()["cursor"]["next"].as_str().map(str::to_owned) {
        pages.push(all(sim, &[("cursor", &cursor)]).await);
    }
    pages
}

#[tokio::test]
async fn a_cursor_walk_yields_every_incident_once_in_updated_id_order() {
    let sim = start(23).await;
    let pages = walk(&sim, "0", "10").await;
    assert_eq!(pages.len(), 3);
    let mut seen = Vec::new();
    for page in &pages {
        let items = incidents(page);
        assert_eq!(page["max_updated_id"].as_u64(), updated_ids(&items).into_iter().max());
        seen.extend(items);
    }
    assert_eq!(updated_ids(&seen), (1..=23).collect::<Vec<_>>());
    let last = pages.last().unwrap();
    assert!(last["cursor"]["next"].is_null() && last["cursor"]["next_link"].is_null());
    let next_link = pages[0]["cursor"]["next_link"].as_str().unwrap();
    assert!(next_link.contains("cursor=") && !next_link.contains("auth_token"), "{next_link}");
}

#[tokio::test]
async fn incidents_since_is_strict_and_an_empty_feed_is_null_without_max() {
    let sim = start(10).await;
    let body = all(&sim, &[("incidents_since", "7")]).await;
    assert_eq!(updated_ids(&incidents(&body)), vec![8, 9, 10]);
    assert!(body.get("cursor").is_none(), "no limit, no cursor");
    let empty = all(&sim, &[("incidents_since", "10"), ("limit", "5")]).await;
    assert!(empty["incidents"].is_null());
    assert!(empty.get("max_updated_id").is_none());
    assert!(empty["cursor"]["next"].is_null());
    assert_eq!(empty["feed"], "All Incidents");
}

#[tokio::test]
async fn a_walk_is_a_snapshot_and_changes_during_it_come_next_time() {
    let sim = start(12).await;
    let first = all(&sim, &[("incidents_since", "0"), ("limit", "5")]).await;
    let served: Vec<u64> = updated_ids(&incidents(&first));
    let changed = sim.update_items(3);
    sim.add_items(2);
    assert_eq!(changed.len(), 3);
    assert_eq!(updated_ids(&changed), vec![13, 14, 15], "each change takes the next updated_id");

    let mut rest = Vec::new();
    let mut cursor = first["cursor"]["next"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let page = all(&sim, &[("cursor", &c)]).await;
        rest.extend(incidents(&page));
        cursor = page["cursor"]["next"].as_str().map(str::to_owned);
    }
    let ids: Vec<u64> = served.iter().copied().chain(updated_ids(&rest)).collect();
    assert!(ids.iter().all(|id| *id <= 12), "nothing beyond the snapshot: {ids:?}");
    assert_eq!(ids.len(), ids.iter().collect::<HashSet<_>>().len());

    let next = all(&sim, &[("incidents_since", "12")]).await;
    let later = incidents(&next);
    assert_eq!(updated_ids(&later), vec![13, 14, 15, 16, 17]);
    assert_eq!(later.len(), 5);
}

#[tokio::test]
async fn an_update_bumps_updated_id_and_the_updated_times() {
    let sim = start(30).await;
    let before: Vec<Value> = sim.ground_truth();
    let changed = sim.update_items(5);
    assert_eq!(changed.len(), 5);
    for new in &changed {
        let old = before.iter().find(|i| i["id"] == new["id"]).unwrap();
        assert!(new["updated_id"].as_u64() > Some(30));
        assert_ne!(new, old);
        assert_eq!(new["description"]["created"], old["description"]["created"]);
        let grew = new["description"]["events_count"] != old["description"]["events_count"];
        let acked = new["description"]["acknowledged"] == "True";
        assert!(grew || acked, "an update adds an event or acknowledges");
        assert_ne!(new["updated_time"], old["updated_time"]);
    }
}

#[tokio::test]
async fn the_key_is_accepted_as_header_or_query_and_refused_with_the_envelope() {
    let sim = start(5).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/incidents/all", sim.base_url());
    let ok = client
        .get(&url)
        .query(&[("auth_token", THINKST_CANARY_DEMO_KEY), ("limit", "2")])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let body: Value = ok.json().await.unwrap();
    let next_link = body["cursor"]["next_link"].as_str().unwrap();
    assert!(next_link.contains("auth_token="), "echoed as in the docs: {next_link}");

    for (request, message) in [
        (client.get(&url).query(&[("auth_token", "nope")]), "Invalid auth_token"),
        (client.get(&url).header("X-Canary-Auth-Token", "nope"), "Unauthorized"),
        (client.get(&url), "Unauthorized"),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["result"], "error");
        assert_eq!(body["message"], message);
    }
    let ping = client
        .get(format!("{}/api/v1/ping", sim.base_url()))
        .header("x-canary-auth-token", THINKST_CANARY_DEMO_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(ping.json::<Value>().await.unwrap()["result"], "success");
}

#[tokio::test]
async fn a_bad_cursor_is_an_error_with_200_and_a_bad_parameter_a_400() {
    let sim = start(5).await;
    let (status, body) = feed(&sim, "/api/v1/incidents/all", &[("cursor", "bm90IGEgY3Vyc29y")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"], "error");
    assert_eq!(body["message"], "Invalid cursor");
    for (name, value) in [("incidents_since", "x"), ("limit", "0"), ("newer_than", "2026-03-01")] {
        let (status, body) = feed(&sim, "/api/v1/incidents/all", &[(name, value)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}={value}");
        assert!(body["message"].as_str().unwrap().contains(name));
    }
}

#[tokio::test]
async fn feeds_filter_on_acknowledgement_and_newer_than_on_creation() {
    let sim = start(40).await;
    let truth = sim.ground_truth();
    let acked = |i: &Value| i["description"]["acknowledged"] == "True";
    let (_, body) = feed(&sim, "/api/v1/incidents/acknowledged", &[]).await;
    assert_eq!(body["feed"], "Acknowledged Incidents");
    assert_eq!(incidents(&body).len(), truth.iter().filter(|i| acked(i)).count());
    let (_, body) = feed(&sim, "/api/v1/incidents/unacknowledged", &[]).await;
    assert!(incidents(&body).iter().all(|i| !acked(i)));

    let created = |i: &Value| i["description"]["created"].as_str().unwrap().parse::<i64>().unwrap();
    let cut = created(&truth[20]);
    let bound = chrono::DateTime::from_timestamp(cut, 0).unwrap().format("%Y-%m-%d-%H:%M:%S").to_string();
    let body = all(&sim, &[("newer_than", &bound)]).await;
    let expected = truth.iter().filter(|i| created(i) > cut).count();
    assert_eq!(incidents(&body).len(), expected);
}

#[tokio::test]
async fn malformed_item_fault_breaks_one_incident() {
    let sim = start(6).await;
    sim.inject(Fault::MalformedItem, 1);
    let body = all(&sim, &[]).await;
    let broken: Vec<Value> = incidents(&body).into_iter().filter(|i| i.get("id").is_none()).collect();
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0]["updated_id"], "not a number");
}

#[tokio::test]
async fn incidents_have_the_shape_of_the_documented_ones() {
    let (Some(docs), Some(sekoia)) = (
        fixture("thinkst", "incidents_acknowledged_docs_example.json"),
        fixture("thinkst", "incidents_unacknowledged_sekoia_test.json"),
    ) else {
        return;
    };
    let sim = start(200).await;
    let body = all(&sim, &[("limit", "100")]).await;
    for key in [
        "cursor",
        "feed",
        "incidents",
        "max_updated_id",
        "result",
        "updated",
        "updated_std",
        "updated_timestamp",
    ] {
        assert!(body.get(key).is_some(), "the envelope lacks {key}");
        assert_eq!(docs[key].is_string(), body[key].is_string(), "{key}");
    }
    let truth = sim.ground_truth();
    let of = |logtype: &str| {
        truth
            .iter()
            .find(|i| i["description"]["logtype"] == logtype)
            .unwrap_or_else(|| panic!("no {logtype} incident simulated"))
            .clone()
    };
    let real_ssh = &sekoia["incidents"][0];
    let mut sim_ssh = of("4002");
    // A real bundle has several events; compare against one of the same length.
    sim_ssh["description"]["events"] = Value::Array(vec![sim_ssh["description"]["events"][0].clone(); 2]);
    assert_same_shape(real_ssh, &sim_ssh);
    assert_same_shape(&sekoia["incidents"][1], &of("17000"));
    assert_same_shape(&docs["incidents"][0], &of("3001"));
}
