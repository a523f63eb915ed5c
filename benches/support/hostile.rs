//! Items a hostile endpoint could send: one item carrying `n` distinct
//! values in every list its vendor's normalizer reads (tags, keys of
//! interest, an incident's events, labels, addresses). A 32 MiB body
//! (`max_response_bytes`' default) holds hundreds of thousands of them;
//! normalizing one such item must stay (near) linear in `n`.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

/// The `i`-th address of 10.0.0.0/8 (distinct for `i` < 2^24).
fn ip(i: usize) -> String {
    Ipv4Addr::from(0x0a00_0000_u32.wrapping_add(i as u32)).to_string()
}

fn list(n: usize, value: impl Fn(usize) -> String) -> Vec<String> {
    (0..n).map(value).collect()
}

/// A Rapid7 alert with `n` tags, MITRE tactics, accounts, source IPs and
/// host names.
pub fn rapid7_alert(n: usize) -> Value {
    json!({
        "rrn": "rrn:alerts:us1:org:alert:1:hostile", "version": 1,
        "created_at": "2024-01-01T00:00:00Z", "title": "hostile",
        "tags": list(n, |i| format!("tag-{i}")),
        "rule": { "rrn": "rrn:cba:::detection-rule:X", "mitre_tcodes": list(n, |i| format!("Tactic {i}")) },
        "rule_keys_of_interest": [
            { "key": "account", "values": list(n, |i| format!("user{i}@example.com")) },
            { "key": "source_ip", "values": list(n, ip) },
            { "key": "hostname", "values": list(n, |i| format!("host-{i}")) }
        ]
    })
}

/// A Rapid7 investigation with `n` tags.
pub fn rapid7_investigation(n: usize) -> Value {
    json!({
        "rrn": "rrn:investigation:us:org:investigation:hostile", "created_time": "2024-01-01T00:00:00Z",
        "title": "hostile", "status": "OPEN", "tags": list(n, |i| format!("tag-{i}"))
    })
}

/// A Thinkst Canary incident bundling `n` events, each with its own token
/// type, source address, user, host, user agent, URL and geolocation.
pub fn thinkst_incident(n: usize) -> Value {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "type": format!("type-{i}"), "src_host": ip(i), "USERNAME": format!("user{i}"),
                "HOSTNAME": format!("host-{i}"), "USERAGENT": format!("agent/{i}"),
                "url": format!("https://decoy.example/{i}"), "timestamp": 1_720_684_078 + i,
                "geoip": { "city": format!("City {i}"), "country_code": "FR" }
            })
        })
        .collect();
    json!({
        "id": "incident:hostile", "updated_id": 1, "summary": "hostile",
        "description": { "created": "1720684078", "logtype": "4002", "src_host": "5.6.7.8", "events": events }
    })
}

/// A Red Canary detection with `n` subclassifications and endpoint addresses.
pub fn red_canary_detection(n: usize) -> Value {
    json!({
        "type": "Detection", "id": 1,
        "attributes": {
            "headline": "hostile", "confirmed_at": "2024-01-01T00:00:00Z",
            "classification": { "superclassification": "hostile", "subclassification": list(n, |i| format!("sub-{i}")) }
        },
        "relationships": { "affected_endpoint": { "data": { "id": 1, "network_addresses": list(n, ip) } } }
    })
}

/// A Catchpoint alert with `n` labels.
pub fn catchpoint_alert(n: usize) -> Value {
    let labels: Vec<Value> =
        (0..n).map(|i| json!({ "name": format!("label-{i}"), "values": ["v"] })).collect();
    json!({
        "id": "hostile", "reportTime": "2024-01-01T00:00:00Z", "level": { "id": 1, "name": "Critical" },
        "testPath": list(n, |i| format!("folder-{i}")), "labels": labels
    })
}
