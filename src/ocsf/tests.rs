use chrono::TimeZone;

use super::*;
use crate::event::{
    AttackTechnique, Entities, Geo, Host, IpEntity, Kind, Role, Severity, SourceRef, Status, User,
};

fn event(vendor: &str, kind: Kind, revision: &str, state: StatusState) -> Event {
    let created = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    Event {
        schema_version: crate::event::SCHEMA_VERSION.into(),
        id: crate::event::event_id(vendor, "acme", "a1", revision),
        source: SourceRef { vendor: vendor.into(), name: "acme".into(), kind },
        native_id: "a1".into(),
        revision: revision.into(),
        title: "t".into(),
        description: None,
        severity: Severity { level: SeverityLevel::High, vendor: Some("8".into()) },
        status: Status { state, vendor: None },
        created_at: created,
        updated_at: None,
        observed_at: None,
        ingested_at: created,
        entities: Entities::default(),
        tags: vec![],
        attack: vec![],
        console_url: None,
        raw: crate::event::Raw::new(&json!({"id": "a1"})),
    }
}

/// A product whose revisions count up from 1.
const COUNTED: Product = Product { name: "P", vendor_name: "V", is_first_revision: revision_is_one };
/// A product whose revisions are change times.
const TIMED: Product = Product { name: "P", vendor_name: "V", is_first_revision: not_yet_updated };

#[test]
fn activity_is_create_then_update_and_close_wins() {
    let first = event("v", Kind::Alert, "1", StatusState::New);
    assert_eq!(Activity::of(&first, &COUNTED), Activity::Create);
    let later = event("v", Kind::Alert, "3", StatusState::InProgress);
    assert_eq!(Activity::of(&later, &COUNTED), Activity::Update);
    let closed = event("v", Kind::Alert, "1", StatusState::Resolved);
    assert_eq!(Activity::of(&closed, &COUNTED), Activity::Close);
    let f = finding(&later, &COUNTED);
    assert_eq!((f["activity_id"].as_u64(), f["type_uid"].as_u64()), (Some(2), Some(200402)));
    assert_eq!(finding(&closed, &COUNTED)["type_uid"], 200403);
    assert_eq!(f["metadata"]["product"], json!({"name": "P", "vendor_name": "V"}));
}

#[test]
fn timestamp_revisions_are_first_until_updated() {
    let mut e = event("v", Kind::Detection, "2026-01-01T00:00:00.000Z", StatusState::New);
    assert_eq!(Activity::of(&e, &TIMED), Activity::Create);
    e.updated_at = Some(e.created_at + chrono::TimeDelta::minutes(5));
    assert_eq!(Activity::of(&e, &TIMED), Activity::Update);
}

#[test]
fn finding_ids_are_deterministic_and_distinct_from_the_event_id() {
    let e = event("v", Kind::Alert, "1", StatusState::New);
    let m = message("alertd", &e, &COUNTED).unwrap();
    assert_eq!(m.id, finding_id(e.id).to_string());
    assert_ne!(m.id, e.id.to_string());
    assert_eq!(m.id, message("alertd", &e, &COUNTED).unwrap().id);
    assert_eq!(m.subject, "alertd.ocsf.v.acme.alert");
    let f: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(f["metadata"]["uid"], e.id.to_string());
    assert_eq!(f["time"], 1_767_225_600_000_i64);
    assert_eq!(f["time_dt"], "2026-01-01T00:00:00.000Z");
    assert_eq!(f["raw_data"], r#"{"id":"a1"}"#);
    assert_eq!(f["unmapped"]["vendor_severity"], "8");
}

#[test]
fn sub_techniques_and_rules_land_in_finding_info() {
    let mut e = event("v", Kind::Alert, "1", StatusState::New);
    e.attack = vec![AttackTechnique {
        id: "T1059.001".into(),
        name: Some("PowerShell".into()),
        tactic: Some("Execution".into()),
    }];
    e.tags = vec!["rule_name:Encoded PowerShell".into(), "rule:rrn:1".into()];
    let f = finding(&e, &COUNTED);
    let a = &f["finding_info"]["attacks"][0];
    assert_eq!(a["technique"]["uid"], "T1059");
    assert_eq!(a["sub_technique"]["uid"], "T1059.001");
    assert_eq!(a["tactic"]["name"], "Execution");
    assert_eq!(f["finding_info"]["analytic"]["name"], "Encoded PowerShell");
    assert_eq!(f["finding_info"]["analytic"]["uid"], "rrn:1");
}

#[test]
fn entities_become_device_evidences_and_observables() {
    let mut e = event("v", Kind::Incident, "7", StatusState::New);
    let src: std::net::IpAddr = "203.0.113.7".parse().unwrap();
    e.entities = Entities {
        hosts: vec![Host {
            hostname: Some("canary-1".into()),
            id: None,
            ips: vec!["10.0.0.1".into()],
            role: Role::Target,
        }],
        users: vec![User { name: "alice".into(), role: Role::Source }],
        ips: vec![
            IpEntity { address: src, role: Role::Source },
            IpEntity { address: "10.0.0.1".parse().unwrap(), role: Role::Target },
        ],
        geo: vec![Geo { ip: Some(src), country: Some("NL".into()), ..Geo::default() }],
        user_agents: vec!["curl/8".into(), "wget".into()],
        urls: vec![],
    };
    let f = finding(&e, &COUNTED);
    assert_eq!(f["device"]["hostname"], "canary-1");
    assert_eq!(f["device"]["ip"], "10.0.0.1");
    let ev = f["evidences"].as_array().unwrap();
    assert_eq!(ev[0]["src_endpoint"]["location"]["country"], "NL");
    assert_eq!(ev[0]["http_request"]["user_agent"], "curl/8");
    assert_eq!(ev.len(), 2, "the device's own IP is not repeated: {ev:?}");
    let values: Vec<&str> =
        f["observables"].as_array().unwrap().iter().map(|o| o["value"].as_str().unwrap()).collect();
    assert_eq!(values, ["canary-1", "10.0.0.1", "203.0.113.7", "alice", "curl/8", "wget"]);
    assert_eq!(f["unmapped"]["user_agents"], json!(["wget"]));
}

/// A source address's location is the first geolocation tied to it; later
/// ones, and ones of addresses that are no source, stay in `unmapped.geo`.
#[test]
fn a_source_ip_gets_the_first_geolocation_tied_to_it() {
    let mut e = event("v", Kind::Incident, "7", StatusState::New);
    let a: std::net::IpAddr = "203.0.113.7".parse().unwrap();
    let b: std::net::IpAddr = "198.51.100.2".parse().unwrap();
    let place = |ip, city: &str| Geo { ip: Some(ip), city: Some(city.into()), ..Geo::default() };
    e.entities = Entities {
        ips: vec![IpEntity { address: b, role: Role::Source }, IpEntity { address: a, role: Role::Source }],
        geo: vec![place(a, "Lyon"), place(a, "Paris"), place("192.0.2.1".parse().unwrap(), "Nice")],
        ..Entities::default()
    };
    let f = finding(&e, &COUNTED);
    let ev = f["evidences"].as_array().unwrap();
    assert_eq!(ev[0]["src_endpoint"].get("location"), None, "{b} has no location");
    assert_eq!(ev[1]["src_endpoint"]["location"]["city"], "Lyon");
    let unmapped: Vec<&str> =
        f["unmapped"]["geo"].as_array().unwrap().iter().map(|g| g["city"].as_str().unwrap()).collect();
    assert_eq!(unmapped, ["Paris", "Nice"]);
}

#[test]
fn raw_data_is_the_raw_item_whatever_it_escapes() {
    // Quotes, backslashes, escapes, non-ASCII, a tab between tokens (the
    // vendor's own spacing): `raw_data` is the same text, and the payload
    // is one JSON object that says so.
    let text = "{\"q\":\"say \\\"hi\\\"\",\t\"path\":\"C:\\\\Windows\\\\x.exe\",\"nl\":\"a\\nb\\u0001\",\"u\":\"Zürich ✓ 😀\",\"e\":\"\\/\"}";
    let item: crate::event::Raw = serde_json::from_str(text).unwrap();
    let mut e = event("v", Kind::Alert, "1", StatusState::New);
    e.raw = crate::event::Raw::from_text(&item);
    assert_eq!(e.raw.get(), text);
    let m = message("alertd", &e, &COUNTED).unwrap();
    let f: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(f["raw_data"], text);
    assert_eq!(f["unmapped"]["revision"], "1", "the keys before raw_data are all there");
    assert_eq!(f, finding(&e, &COUNTED));
    assert_eq!(m.payload.iter().filter(|b| **b == b'\n').count(), 0, "one line");
}

/// The payload sonic-rs writes is the one serde_json writes, byte for byte,
/// with text to escape in every string the finding carries, every kind
/// of entity, numbers and all the optional times.
#[test]
fn the_payload_is_what_serde_json_writes() {
    let text = "q \" b \\ t \t n \n nul \u{0} del \u{7f} é ✓ 😀 </x>";
    let mut e = event("v", Kind::Detection, "2", StatusState::InProgress);
    let src: std::net::IpAddr = "2001:db8::7".parse().unwrap();
    e.title = text.into();
    e.description = Some(text.into());
    e.status.vendor = Some(text.into());
    e.updated_at = Some(e.created_at + chrono::TimeDelta::nanoseconds(1_234_567));
    e.observed_at = Some(e.created_at - chrono::TimeDelta::days(400));
    e.entities = Entities {
        hosts: vec![Host {
            hostname: Some(text.into()),
            id: Some(text.into()),
            ips: vec![text.into()],
            role: Role::Target,
        }],
        users: vec![User { name: text.into(), role: Role::Source }],
        ips: vec![IpEntity { address: src, role: Role::Source }],
        geo: vec![
            Geo {
                ip: Some(src),
                city: Some(text.into()),
                lat: Some(-33.868_8),
                lon: Some(151.209_3),
                ..Geo::default()
            },
            Geo { country: Some(text.into()), lat: Some(1e-7), lon: Some(180.0), ..Geo::default() },
        ],
        user_agents: vec![text.into(), "curl/8".into()],
        urls: vec![crate::event::UrlEntity {
            url: format!("https://example.invalid/{text}"),
            role: Role::Related,
        }],
    };
    e.tags = vec![text.into()];
    e.attack =
        vec![AttackTechnique { id: "T1059.001".into(), name: Some(text.into()), tactic: Some(text.into()) }];
    e.console_url = Some(format!("https://example.invalid/{text}"));
    for product in [COUNTED, TIMED] {
        let m = message("alertd", &e, &product).unwrap();
        let expected = payload_by_serde_json(&e, &product);
        assert_eq!(String::from_utf8_lossy(&m.payload), String::from_utf8_lossy(&expected));
    }
}

/// A finding of an item past `SIMD_ITEM_MAX` is written by serde_json
/// (no sixfold reservation, see `event::write_published`): the same bytes.
#[test]
fn a_large_items_finding_is_what_serde_json_writes() {
    let long = "y\\".repeat(crate::event::SIMD_ITEM_MAX);
    let mut e = event("v", Kind::Alert, "1", StatusState::New);
    e.title = long.clone();
    e.raw = crate::event::Raw::new(&json!({ "title": long }));
    let m = message("alertd", &e, &COUNTED).unwrap();
    assert_eq!(m.payload.as_ref(), payload_by_serde_json(&e, &COUNTED).as_slice());
}

proptest::proptest! {
    // Failures are fixed and pinned by a unit test, not kept in files (as
    // in `vendors::proptests`).
    #![proptest_config(proptest::test_runner::Config {
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })]

    /// The SIMD escaper, a piece at a time, writes what serde_json writes,
    /// for any text (pieces ending inside a multi-byte character included).
    #[test]
    fn raw_data_escapes_as_serde_json_does(
        s in "(?s).{0,200}",
        bytes in proptest::collection::vec(0u8..0x80, 0..100),
        piece in 1usize..40,
    ) {
        let ascii = String::from_utf8(bytes).unwrap();
        for text in [&s, &ascii] {
            let expected = serde_json::to_string(text).unwrap();
            for piece in [piece, ESCAPE_PIECE] {
                let mut out = b"x".to_vec();
                push_json_string(&mut out, text, piece);
                let out = String::from_utf8(out).unwrap();
                let out = out.strip_prefix('x').unwrap();
                proptest::prop_assert_eq!(out, expected.as_str());
            }
        }
    }
}
