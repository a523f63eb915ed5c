//! Thinkst Canary incident → event. The mapping is documented in
//! `docs/vendors/thinkst-canary.md`.
//!
//! Incidents are stringly typed (`"True"`, ports, counts and epochs as
//! strings) and carry four timestamp forms (epoch strings, `… UTC+0000`,
//! RFC 1123, integer epochs in events); the lenient readers of
//! [`crate::vendors::fields`] take them all. The revision is `updated_id`: the
//! console bumps it whenever the incident changes (events bundled in,
//! acknowledged), so each change is a new event.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::event::{
    Entities, Event, Geo, Host, IpEntity, Kind, Role, SCHEMA_VERSION, Severity, Status, StatusState,
    UrlEntity, User, ip_text,
};
use crate::vendors::bounded::{Distinct, Dropped, GeoKey, geo_key};
use crate::vendors::fields::{boolean, float, get, integer, required_text, text, time};
use crate::vendors::keep::Keep;
use crate::vendors::{NormalizeContext, NormalizeError, Normalized};

use super::ThinkstCanary;
use super::logtype::classify;

/// Every field [`normalize`] reads: items are parsed into these alone (see
/// [`crate::vendors::keep`]); a key read here and missing there fails
/// `the_part_read_normalizes_as_the_whole_item`.
pub(super) const READS: Keep = Keep::Keys(&[
    ("id", Keep::All),
    ("summary", Keep::All),
    ("updated_id", Keep::All),
    ("updated", Keep::All),
    ("updated_std", Keep::All),
    ("updated_time", Keep::All),
    (
        "description",
        Keep::Keys(&[
            ("acknowledged", Keep::All),
            ("created", Keep::All),
            ("created_std", Keep::All),
            ("description", Keep::All),
            ("name", Keep::All),
            ("memo", Keep::All),
            ("node_id", Keep::All),
            ("flock_id", Keep::All),
            ("logtype", Keep::All),
            ("dst_host", Keep::All),
            ("dst_host_public_ip", Keep::All),
            ("dst_port", Keep::All),
            ("src_host", Keep::All),
            ("src_host_reverse", Keep::All),
            ("events_count", Keep::All),
            ("events", EVENT),
        ]),
    ),
]);

/// What [`entities`] and [`normalize`] read of each of `description.events`.
const EVENT: Keep = Keep::Keys(&[
    ("timestamp", Keep::All),
    ("type", Keep::All),
    ("src_host", Keep::All),
    ("USERNAME", Keep::All),
    ("USER", Keep::All),
    ("HOSTNAME", Keep::All),
    ("USERAGENT", Keep::All),
    ("url", Keep::All),
    ("headers", Keep::Keys(&[("User-Agent", Keep::All)])),
    (
        "geoip",
        Keep::Keys(&[
            ("ip", Keep::All),
            ("city", Keep::All),
            ("region", Keep::All),
            ("country_code", Keep::All),
            ("country", Keep::All),
            ("latitude", Keep::All),
            ("longitude", Keep::All),
        ]),
    ),
]);

pub(super) fn normalize(item: &Value, ctx: &NormalizeContext<'_>) -> Result<Normalized, NormalizeError> {
    let id = required_text(item, "/id")?;
    let updated_id = integer(item, "/updated_id")
        .ok_or_else(|| NormalizeError("required field `updated_id` is missing or not an integer".into()))?;
    let created_at =
        first_time(item, &["/description/created", "/description/created_std"]).ok_or_else(|| {
            NormalizeError(
                "required time `description.created` is missing or not a recognised timestamp".into(),
            )
        })?;
    let updated_at = first_time(item, &["/updated_time", "/updated_std", "/updated"]);
    let events: &[Value] =
        get(item, "/description/events").and_then(Value::as_array).map_or(&[], Vec::as_slice);
    let observed_at = events.iter().filter_map(|e| time(e, "/timestamp")).min();

    let logtype = integer(item, "/description/logtype");
    let class = classify(logtype);
    let title = text(item, "/summary")
        .or_else(|| text(item, "/description/description"))
        .unwrap_or_else(|| "Thinkst Canary incident".to_owned());

    let mut dropped = Dropped::default();
    let mut tags = Distinct::new();
    if let Some(code) = logtype {
        tags.push(["logtype:", itoa::Buffer::new().format(code)].concat());
    }
    tags.push(["category:", class.category].concat());
    for token_type in events.iter().filter_map(|e| text(e, "/type")) {
        tags.push(["token_type:", &token_type].concat());
    }
    if let Some(flock) = text(item, "/description/flock_id") {
        tags.push(["flock_id:", &flock].concat());
    }
    let entities = entities(item, events, &mut dropped);

    let revision = itoa::Buffer::new().format(updated_id).to_owned();
    let event = Event {
        schema_version: SCHEMA_VERSION.to_owned(),
        id: ctx.id::<ThinkstCanary>(&id, &revision),
        source: ctx.source_ref::<ThinkstCanary>(Kind::Incident),
        native_id: id,
        revision,
        title: title.clone(),
        description: Some(describe(item, &title, events.len())),
        severity: Severity { level: class.level, vendor: None },
        status: status(item),
        created_at,
        updated_at,
        observed_at,
        ingested_at: ctx.ingested_at,
        entities,
        tags: dropped.into_tags(tags),
        attack: Vec::new(),
        console_url: None,
        raw: ctx.raw(item),
    };
    Ok(Normalized { event, item_time: updated_at.unwrap_or(created_at), mark: Some(updated_id) })
}

/// The first of `pointers` that holds a readable time.
fn first_time(item: &Value, pointers: &[&str]) -> Option<DateTime<Utc>> {
    pointers.iter().find_map(|p| time(item, p))
}

fn status(item: &Value) -> Status {
    match boolean(item, "/description/acknowledged") {
        Some(true) => Status { state: StatusState::Acknowledged, vendor: Some("acknowledged".into()) },
        Some(false) => Status { state: StatusState::New, vendor: Some("unacknowledged".into()) },
        None => Status { state: StatusState::New, vendor: None },
    }
}

/// A text field, unless it is Thinkst's "not applicable" marker.
fn meaningful(item: &Value, pointer: &str) -> Option<String> {
    text(item, pointer).filter(|t| t != "N/A")
}

fn ip(item: &Value, pointer: &str) -> Option<IpAddr> {
    text(item, pointer).and_then(|s| s.parse().ok())
}

/// `Canary Disconnected on web-01 (10.0.0.5:80) from 5.6.7.8 (scanner.example): 3 events.`
fn describe(item: &Value, title: &str, events: usize) -> String {
    let mut text_ = title.to_owned();
    let target = meaningful(item, "/description/name")
        .or_else(|| meaningful(item, "/description/memo").map(|m| ["token \"", &m, "\""].concat()));
    // Pieces pushed, not `format!`ed: eight `format!`s per incident were 5 %
    // of a Thinkst backfill's instructions.
    if let Some(target) = target {
        text_.push_str(" on ");
        text_.push_str(&target);
        if let Some(dst) = ip(item, "/description/dst_host") {
            text_.push_str(" (");
            text_.push_str(&ip_text(&dst));
            if let Some(port) = integer(item, "/description/dst_port").filter(|p| *p > 0) {
                text_.push(':');
                text_.push_str(itoa::Buffer::new().format(port));
            }
            text_.push(')');
        }
    }
    if let Some(src) = ip(item, "/description/src_host") {
        text_.push_str(" from ");
        text_.push_str(&ip_text(&src));
        if let Some(reverse) = text(item, "/description/src_host_reverse") {
            text_.push_str(" (");
            text_.push_str(&reverse);
            text_.push(')');
        }
    }
    let count =
        integer(item, "/description/events_count").and_then(|n| usize::try_from(n).ok()).unwrap_or(events);
    text_.push_str(": ");
    text_.push_str(itoa::Buffer::new().format(count));
    text_.push_str(if count == 1 { " event." } else { " events." });
    text_
}

/// The Canary (target), the attacker (source), and what the events name:
/// each once, in the order first named (an incident bundles many events
/// from one attacker, which repeat the same user, agent or place).
fn entities(item: &Value, events: &[Value], dropped: &mut Dropped) -> Entities {
    let mut hosts: Distinct<Host> = Distinct::new();
    let mut ips: Distinct<IpEntity> = Distinct::new();
    let target_ips: Vec<String> = ["/description/dst_host", "/description/dst_host_public_ip"]
        .iter()
        .filter_map(|p| ip(item, p))
        .map(|a| ip_text(&a))
        .collect();
    let canary = Host {
        hostname: meaningful(item, "/description/name"),
        id: text(item, "/description/node_id"),
        ips: target_ips,
        role: Role::Target,
    };
    if canary.hostname.is_some() || canary.id.is_some() || !canary.ips.is_empty() {
        hosts.push(canary);
    }

    let source = ip(item, "/description/src_host");
    if let Some(address) = source {
        ips.push(IpEntity { address, role: Role::Source });
        if let Some(reverse) = text(item, "/description/src_host_reverse") {
            hosts.push(Host {
                hostname: Some(reverse),
                id: None,
                ips: vec![ip_text(&address)],
                role: Role::Source,
            });
        }
    }

    let mut users: Distinct<User> = Distinct::new();
    let mut user_agents: Distinct<String> = Distinct::new();
    let mut urls: Distinct<UrlEntity> = Distinct::new();
    let mut geos: Distinct<Geo, GeoKey> = Distinct::new();
    for event in events {
        if let Some(address) = ip(event, "/src_host") {
            ips.push(IpEntity { address, role: Role::Source });
        }
        for pointer in ["/USERNAME", "/USER"] {
            if let Some(name) = text(event, pointer) {
                users.push(User { name, role: Role::Target });
            }
        }
        if let Some(hostname) = text(event, "/HOSTNAME") {
            hosts.push(Host { hostname: Some(hostname), id: None, ips: Vec::new(), role: Role::Related });
        }
        for pointer in ["/USERAGENT", "/headers/User-Agent"] {
            if let Some(agent) = text(event, pointer) {
                user_agents.push(agent);
            }
        }
        if let Some(url) = text(event, "/url") {
            urls.push(UrlEntity { url, role: Role::Target });
        }
        if let Some(geo) = geo(event) {
            geos.push_keyed(geo_key(&geo), geo);
        }
    }
    Entities {
        hosts: hosts.finish("entities.hosts", dropped),
        users: users.finish("entities.users", dropped),
        ips: ips.finish("entities.ips", dropped),
        geo: geos.finish("entities.geo", dropped),
        user_agents: user_agents.finish("entities.user_agents", dropped),
        urls: urls.finish("entities.urls", dropped),
    }
}

/// A Canarytoken event's `geoip` block.
fn geo(event: &Value) -> Option<Geo> {
    let g = get(event, "/geoip").filter(|g| g.is_object())?;
    let geo = Geo {
        ip: ip(g, "/ip"),
        city: text(g, "/city"),
        region: text(g, "/region"),
        country: text(g, "/country_code").or_else(|| text(g, "/country")),
        lat: float(g, "/latitude"),
        lon: float(g, "/longitude"),
    };
    let located = Geo { ip: None, ..geo.clone() };
    (located != Geo::default()).then_some(geo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SeverityLevel;
    use chrono::TimeZone;
    use serde_json::json;

    fn ctx() -> NormalizeContext<'static> {
        NormalizeContext::new("acme", Utc.with_ymd_and_hms(2026, 3, 28, 0, 0, 0).unwrap())
    }

    fn ssh() -> Value {
        json!({
            "description": {
                "acknowledged": "False", "created": "1720684078",
                "created_std": "2024-07-11 07:47:58 UTC+0000", "description": "SSH Login Attempt",
                "dst_host": "9.10.11.12", "dst_port": "22",
                "events": [
                    {"USERNAME": "azureuser", "PASSWORD": "test", "timestamp": 1720684078},
                    {"USERNAME": "azureuser", "PASSWORD": "test", "timestamp": 1720684081}
                ],
                "events_count": "2", "logtype": "4002", "name": "thinkst-canary",
                "node_id": "node-id-2", "src_host": "5.6.7.8", "src_host_reverse": "example.com",
                "src_port": "53804", "flock_id": "flock:default"
            },
            "hash_id": "e35d196cf3ff157908b542a401810413",
            "id": "incident:sshlogin:11cdf5d57170cc4d057c8a4ef1a81d65:5.6.7.8:1720684078",
            "summary": "SSH Login Attempt",
            "updated": "Thu, 11 Jul 2024 07:48:01 GMT",
            "updated_id": 2,
            "updated_std": "2024-07-11 07:48:01 UTC+0000",
            "updated_time": "1720684081"
        })
    }

    #[test]
    fn an_ssh_incident_maps_field_by_field() {
        let n = normalize(&ssh(), &ctx()).unwrap();
        let e = &n.event;
        assert_eq!(e.title, "SSH Login Attempt");
        assert_eq!(
            e.description.as_deref(),
            Some("SSH Login Attempt on thinkst-canary (9.10.11.12:22) from 5.6.7.8 (example.com): 2 events.")
        );
        assert_eq!(e.revision, "2");
        assert_eq!(n.mark, Some(2));
        assert_eq!(e.severity.level, SeverityLevel::High);
        assert_eq!(e.status.state, StatusState::New);
        assert_eq!(e.created_at, Utc.timestamp_opt(1720684078, 0).unwrap());
        assert_eq!(e.updated_at, Some(Utc.timestamp_opt(1720684081, 0).unwrap()));
        assert_eq!(n.item_time, e.updated_at.unwrap());
        assert_eq!(e.observed_at, Some(e.created_at));
        assert_eq!(e.entities.users.len(), 1, "the same username twice is one user");
        assert_eq!(e.entities.users[0].role, Role::Target);
        assert_eq!(e.entities.ips[0].address.to_string(), "5.6.7.8");
        assert_eq!(e.entities.hosts[0].hostname.as_deref(), Some("thinkst-canary"));
        assert_eq!(e.entities.hosts[0].id.as_deref(), Some("node-id-2"));
        assert_eq!(e.entities.hosts[0].ips, vec!["9.10.11.12"]);
        assert_eq!(e.entities.hosts[1].hostname.as_deref(), Some("example.com"));
        assert_eq!(e.tags, vec!["logtype:4002", "category:login_attempt", "flock_id:flock:default"]);
    }

    #[test]
    fn a_higher_updated_id_is_a_new_revision_and_acknowledged_is_read_from_text() {
        let first = normalize(&ssh(), &ctx()).unwrap().event;
        let mut item = ssh();
        item["updated_id"] = json!("7");
        item["description"]["acknowledged"] = json!("True");
        let n = normalize(&item, &ctx()).unwrap();
        assert_eq!(n.mark, Some(7));
        assert_ne!(n.event.id, first.id);
        assert_eq!(n.event.native_id, first.native_id);
        assert_eq!(n.event.status.state, StatusState::Acknowledged);
    }

    #[test]
    fn every_timestamp_form_is_accepted() {
        let mut item = ssh();
        let d = item["description"].as_object_mut().unwrap();
        d.remove("created");
        item.as_object_mut().unwrap().remove("updated_time");
        item.as_object_mut().unwrap().remove("updated_std");
        let e = normalize(&item, &ctx()).unwrap().event;
        assert_eq!(e.created_at, Utc.timestamp_opt(1720684078, 0).unwrap(), "from created_std");
        assert_eq!(
            e.updated_at,
            Some(Utc.timestamp_opt(1720684081, 0).unwrap()),
            "from the RFC 1123 `updated`"
        );
    }

    #[test]
    fn a_canarytoken_incident_gets_geo_user_agent_and_token_type() {
        let item = json!({
            "id": "incident:canarytoken:x", "updated_id": 3, "summary": "Canarytoken triggered",
            "description": {"created": "1720684212", "logtype": "17000", "name": "N/A",
                "memo": "Link to generate alert", "node_id": "node-id-1", "src_host": "1.2.3.4",
                "acknowledged": "False", "dst_host": "1.1.1.1", "dst_port": "80",
                "events": [{"type": "http", "src_host": "1.2.3.4", "timestamp": 1720684212,
                    "headers": {"User-Agent": "curl/8.7.1"},
                    "geoip": {"ip": "1.2.3.4", "city": "Emerainville", "country": "France",
                        "country_code": "FR", "region": "Ile-de-France",
                        "latitude": 48.81276, "longitude": 2.62139}}]}
        });
        let e = normalize(&item, &ctx()).unwrap().event;
        assert_eq!(e.entities.hosts[0].hostname, None, "N/A is no name");
        assert_eq!(e.entities.ips.len(), 1, "the event's src_host is the incident's");
        assert_eq!(e.entities.user_agents, vec!["curl/8.7.1"]);
        let geo = &e.entities.geo[0];
        assert_eq!(geo.country.as_deref(), Some("FR"));
        assert_eq!(geo.lat, Some(48.81276));
        assert!(e.tags.contains(&"token_type:http".to_owned()));
        assert!(e.tags.contains(&"category:canarytoken".to_owned()));
        assert_eq!(
            e.description.as_deref(),
            Some(
                "Canarytoken triggered on token \"Link to generate alert\" (1.1.1.1:80) from 1.2.3.4: 1 event."
            )
        );
    }

    fn hostile(events: Vec<Value>) -> Value {
        json!({
            "id": "incident:hostile", "updated_id": 1, "summary": "hostile",
            "description": { "created": "1720684078", "logtype": "4002", "name": "canary",
                "src_host": "5.6.7.8", "src_host_reverse": "attacker.example", "events": events }
        })
    }

    /// An incident bundling 50,000 events, each naming something new: at
    /// most `MAX_VALUES` of each list, the first named, and a mark for each
    /// list cut. (Deduplicating by scanning the lists made this take minutes.)
    #[test]
    fn a_hostile_incident_keeps_at_most_the_cap_of_each_list_and_says_so() {
        use crate::vendors::bounded::{MAX_VALUES, assert_bounded};
        let events = (0..50_000_u32)
            .map(|i| {
                json!({
                    "type": format!("type-{i}"), "src_host": std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string(),
                    "USERNAME": format!("user{i}"), "HOSTNAME": format!("host-{i}"),
                    "USERAGENT": format!("agent/{i}"), "url": format!("https://decoy.example/{i}"),
                    "timestamp": 1_720_684_078 + i, "geoip": { "city": format!("City {i}"), "latitude": i }
                })
            })
            .collect();
        let e = normalize(&hostile(events), &ctx()).unwrap().event;
        assert_bounded(&e);
        let marks: Vec<&str> = e.tags.iter().filter_map(|t| t.strip_prefix("truncated:")).collect();
        assert_eq!(
            marks,
            [
                "entities.hosts",
                "entities.users",
                "entities.ips",
                "entities.geo",
                "entities.user_agents",
                "entities.urls",
                "tags"
            ]
        );
        assert_eq!(e.tags.len(), MAX_VALUES);
        assert_eq!(e.tags[..3], ["logtype:4002", "category:login_attempt", "token_type:type-0"]);
        let ents = &e.entities;
        assert_eq!(ents.hosts[0].hostname.as_deref(), Some("canary"), "the Canary comes first");
        assert_eq!(ents.hosts[1].hostname.as_deref(), Some("attacker.example"));
        assert_eq!(ents.hosts[2].hostname.as_deref(), Some("host-0"));
        assert_eq!(ents.ips[0].address.to_string(), "5.6.7.8", "the incident's source comes first");
        assert_eq!(ents.users.len(), MAX_VALUES);
        assert_eq!(ents.geo[MAX_VALUES - 1].city.as_deref(), Some("City 999"));
        assert_eq!(e.description.as_deref().map(|d| d.ends_with(": 50000 events.")), Some(true));
    }

    /// 50,000 events repeating two attackers: each named once, nothing cut.
    #[test]
    fn a_hostile_incident_repeating_its_events_names_each_thing_once() {
        let events = (0..50_000)
            .map(|i| {
                json!({"type": "http", "src_host": "5.6.7.8", "USERNAME": format!("user{}", i % 2),
                    "USERAGENT": "curl/8", "geoip": { "city": "Lyon", "latitude": 45.76, "longitude": -0.0 }})
            })
            .collect();
        let e = normalize(&hostile(events), &ctx()).unwrap().event;
        assert_eq!(e.tags, ["logtype:4002", "category:login_attempt", "token_type:http"]);
        let ents = &e.entities;
        assert_eq!(ents.ips.len(), 1);
        assert_eq!(ents.users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["user0", "user1"]);
        assert_eq!(ents.user_agents, ["curl/8"]);
        assert_eq!(ents.geo.len(), 1);
    }

    #[test]
    fn missing_id_updated_id_or_creation_time_are_named() {
        for (field, pointer) in
            [("`id`", "/id"), ("updated_id", "/updated_id"), ("description.created", "/description")]
        {
            let mut item = ssh();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            item.pointer_mut(if parent.is_empty() { "" } else { parent })
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove(key);
            let err = normalize(&item, &ctx()).unwrap_err();
            assert!(err.0.contains(field), "{field}: {err}");
        }
    }
}
