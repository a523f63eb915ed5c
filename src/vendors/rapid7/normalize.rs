//! Rapid7 InsightIDR alert / investigation → event. The mapping is
//! documented in `docs/vendors/rapid7.md`.
//!
//! Alerts come from the alerts search (`rrn`, `version`, `created_at`,
//! `rule`, `rule_keys_of_interest` …); the older v2 investigation-alert shape
//! (`id`, `alert_type`, `created_time`, `detection_rule_rrn`) is read by the
//! same code through fallbacks, since both describe one detection. An
//! alert's `version` bumps whenever Rapid7 changes it, so it is the
//! revision. Investigations carry no version; their revision is their triage
//! state (status, priority, disposition, assignee), so a triage change is a
//! new event and re-reading an unchanged investigation is not.

use serde_json::Value;

use crate::event::{Entities, Event, Kind, SCHEMA_VERSION, Severity, SeverityLevel, Status, StatusState};
use crate::vendors::bounded::{Distinct, Dropped};
use crate::vendors::fields::{each_string, get, required_time, text, time};
use crate::vendors::{NormalizeContext, NormalizeError, Normalized};

use super::Rapid7;
use super::rule::{attack, entities};

pub(super) fn alert(item: &Value, ctx: &NormalizeContext<'_>) -> Result<Normalized, NormalizeError> {
    let id = native_id(item)?;
    let created = match get(item, "/created_at") {
        Some(_) => required_time(item, "/created_at")?,
        None => required_time(item, "/created_time")?,
    };
    let alert_type = text(item, "/type").or_else(|| text(item, "/alert_type"));
    let title =
        text(item, "/title").or_else(|| alert_type.clone()).unwrap_or_else(|| "InsightIDR alert".to_owned());
    let rule_name = text(item, "/detection_rule_rrn/rule_name");
    let origin = text(item, "/external_source").or_else(|| text(item, "/alert_source"));

    let mut dropped = Dropped::default();
    let mut tags = Distinct::new();
    tags.push("insightidr".to_owned());
    push_tag(&mut tags, "type", alert_type.as_deref());
    push_tag(&mut tags, "alert_source", origin.as_deref());
    push_tag(&mut tags, "disposition", text(item, "/disposition").as_deref());
    push_tag(&mut tags, "responsibility", text(item, "/responsibility").as_deref());
    push_tag(&mut tags, "rule", text(item, "/rule/rrn").as_deref());
    push_tag(&mut tags, "rule_name", rule_name.as_deref());
    push_tag(
        &mut tags,
        "rule",
        text(item, "/detection_rule_rrn/rule_rrn").or_else(|| text(item, "/detection_rule_rrn")).as_deref(),
    );
    push_tag(&mut tags, "investigation", text(item, "/investigation_rrn").as_deref());
    organization_tags(item, &mut tags);
    let (attack, tactics) = attack(item);
    for tactic in tactics.values() {
        push_tag(&mut tags, "tactic", Some(tactic));
    }
    if tactics.dropped() {
        dropped.note("tags");
    }
    for tag in each_string(item, "/tags") {
        push_tag(&mut tags, "tag", Some(&tag));
    }
    let attack = attack.finish("attack", &mut dropped);
    let entities = entities(item, &mut dropped);

    let description = text(item, "/alert_type_description").or_else(|| {
        let mut parts = vec![format!("InsightIDR alert \"{title}\"")];
        if let Some(t) = alert_type.as_ref().filter(|t| **t != title) {
            parts.push(format!("of type {t}"));
        }
        if let Some(o) = &origin {
            parts.push(format!("from {o}"));
        }
        Some(format!("{}.", parts.join(" ")))
    });

    let revision = version(item)?;
    let event = Event {
        schema_version: SCHEMA_VERSION.to_owned(),
        id: ctx.id::<Rapid7>(&id, &revision),
        source: ctx.source_ref::<Rapid7>(Kind::Alert),
        native_id: id,
        revision,
        title,
        description,
        severity: severity(item),
        status: status(item),
        created_at: created,
        updated_at: time(item, "/updated_at"),
        observed_at: time(item, "/alerted_at").or_else(|| time(item, "/first_event_time")),
        ingested_at: ctx.ingested_at,
        entities,
        tags: dropped.into_tags(tags),
        attack,
        console_url: None,
        raw: ctx.raw(item),
    };
    Ok(Normalized { event, item_time: created, mark: None })
}

pub(super) fn investigation(item: &Value, ctx: &NormalizeContext<'_>) -> Result<Normalized, NormalizeError> {
    let id = native_id(item)?;
    let created = required_time(item, "/created_time")?;
    let title = text(item, "/title").unwrap_or_else(|| "InsightIDR investigation".to_owned());
    let assignee = text(item, "/assignee/email").or_else(|| text(item, "/assignee/name"));

    let mut tags = Distinct::new();
    tags.push("insightidr".to_owned());
    push_tag(&mut tags, "investigation_source", text(item, "/source").as_deref());
    push_tag(&mut tags, "disposition", text(item, "/disposition").as_deref());
    push_tag(&mut tags, "responsibility", text(item, "/responsibility").as_deref());
    push_tag(&mut tags, "assignee", assignee.as_deref());
    push_tag(&mut tags, "organization_id", text(item, "/organization_id").as_deref());
    for tag in each_string(item, "/tags") {
        push_tag(&mut tags, "tag", Some(&tag));
    }

    let first = time(item, "/first_alert_time");
    let latest = time(item, "/latest_alert_time");
    let mut description = format!(
        "InsightIDR investigation \"{title}\" opened by {}",
        text(item, "/source").as_deref().unwrap_or("an unknown source")
    );
    if let (Some(first), Some(latest)) = (first, latest) {
        description.push_str(&format!("; alerts from {} to {}", first.to_rfc3339(), latest.to_rfc3339()));
    }
    description.push('.');

    let revision = [text(item, "/status"), text(item, "/priority"), text(item, "/disposition"), assignee]
        .map(|part| part.unwrap_or_default())
        .join("|");
    let event = Event {
        schema_version: SCHEMA_VERSION.to_owned(),
        id: ctx.id::<Rapid7>(&id, &revision),
        source: ctx.source_ref::<Rapid7>(Kind::Investigation),
        native_id: id,
        revision,
        title,
        description: Some(description),
        severity: severity(item),
        status: status(item),
        created_at: created,
        updated_at: None,
        observed_at: first,
        ingested_at: ctx.ingested_at,
        entities: Entities::default(),
        tags: Dropped::default().into_tags(tags),
        attack: Vec::new(),
        console_url: None,
        raw: ctx.raw(item),
    };
    Ok(Normalized { event, item_time: created, mark: None })
}

/// The `rrn`; items of the older APIs (v1 investigations, v2
/// investigation alerts) have an `id` instead. Both are documented as
/// strings: an id of another type is not guessed at (a number rendered as
/// text could collide with another item's id).
fn native_id(item: &Value) -> Result<String, NormalizeError> {
    let (field, value) = match (get(item, "/rrn"), get(item, "/id")) {
        (Some(rrn), _) => ("rrn", rrn),
        (None, Some(id)) => ("id", id),
        (None, None) => {
            return Err(NormalizeError("required field `rrn` (or `id`) is missing or empty".into()));
        }
    };
    match value {
        Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Value::String(_) => Err(NormalizeError(format!("required field `{field}` is empty"))),
        other => {
            Err(NormalizeError(format!("field `{field}` is {}, not the documented string", kind(other))))
        }
    }
}

/// An alert's `version`, a documented integer that grows with every change:
/// the revision. Absent (investigations, older APIs): revision "1". Any
/// other type is refused rather than read as a guessed revision, which
/// could hide a later change behind an id already delivered.
fn version(item: &Value) -> Result<String, NormalizeError> {
    match get(item, "/version") {
        None => Ok("1".to_owned()),
        Some(Value::Number(n)) if n.is_u64() => Ok(n.to_string()),
        Some(other) => {
            Err(NormalizeError(format!("field `version` is {}, not the documented integer", kind(other))))
        }
    }
}

/// A JSON value's type, for error messages (never its content).
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `priority` names alertd's levels, plus `UNMAPPED`/`UNSPECIFIED` for none.
fn severity(item: &Value) -> Severity {
    let vendor = text(item, "/priority");
    let level = match vendor.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("CRITICAL") => SeverityLevel::Critical,
        Some("HIGH") => SeverityLevel::High,
        Some("MEDIUM") => SeverityLevel::Medium,
        Some("LOW") => SeverityLevel::Low,
        Some("INFO" | "INFORMATIONAL") => SeverityLevel::Info,
        _ => SeverityLevel::Unknown,
    };
    Severity { level, vendor }
}

/// `status` gives the state; `disposition` (in tags) says how it ended.
fn status(item: &Value) -> Status {
    let vendor = text(item, "/status");
    let state = match vendor.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("OPEN") => StatusState::New,
        Some("INVESTIGATING" | "WAITING") => StatusState::InProgress,
        Some("CLOSED") => StatusState::Resolved,
        _ => StatusState::Unknown,
    };
    Status { state, vendor }
}

/// `name:value`, once: the same tag from two fields (`rule:` from the
/// search and from the v2 shape) or repeated in `tags` is one tag.
fn push_tag(tags: &mut Distinct<String>, name: &str, value: Option<&str>) {
    if let Some(value) = value {
        tags.push(format!("{name}:{value}"));
    }
}

/// The organization (the tenant on Rapid7's side) as tags.
fn organization_tags(item: &Value, tags: &mut Distinct<String>) {
    for (tag, pointer) in [
        ("organization", "/organization/name"),
        ("organization_id", "/organization/id"),
        ("region", "/organization/region"),
        ("customer", "/organization/customer_name"),
        ("customer_id", "/organization/customer_id"),
    ] {
        push_tag(tags, tag, text(item, pointer).as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{AttackTechnique, Role};
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn ctx() -> NormalizeContext<'static> {
        NormalizeContext::new("acme", Utc.with_ymd_and_hms(2026, 3, 28, 0, 0, 0).unwrap())
    }

    fn search_alert() -> Value {
        json!({
            "rrn": "rrn:alerts:us1:org:alert:1:abc", "version": 6,
            "created_at": "2023-12-11T11:58:00.869483Z", "updated_at": "2023-12-11T12:05:01.0419Z",
            "alerted_at": "2023-12-11T11:58:00.553Z", "external_source": "IDR ABA",
            "organization": { "id": "org", "name": "Dev Test", "region": "us1", "customer_name": "Dev Test" },
            "title": "MVD Verification", "type": "MVD Verification",
            "rule": { "rrn": "rrn:cba:::detection-rule:X", "mitre_tcodes": ["Credential Access", "T1110"] },
            "rule_matching_keys": [{ "key": "source_ip", "values": ["208.118.227.31"] }],
            "rule_keys_of_interest": [
                { "key": "account", "values": ["a@example.com"] },
                { "key": "geoip_country_code", "values": ["US"] },
                { "key": "source_ip", "values": ["208.118.227.31"] }
            ],
            "priority": "HIGH", "status": "INVESTIGATING", "disposition": "UNDECIDED",
            "investigation_rrn": "rrn:investigation:us:org:investigation:B85"
        })
    }

    #[test]
    fn a_search_alert_maps_field_by_field() {
        let n = alert(&search_alert(), &ctx()).unwrap();
        let e = n.event;
        assert_eq!(e.native_id, "rrn:alerts:us1:org:alert:1:abc");
        assert_eq!(e.revision, "6");
        assert_eq!(e.source.kind, Kind::Alert);
        assert_eq!((e.severity.level, e.status.state), (SeverityLevel::High, StatusState::InProgress));
        assert_eq!(
            e.attack,
            vec![AttackTechnique {
                id: "T1110".into(),
                name: None,
                tactic: Some("Credential Access".into())
            }]
        );
        assert_eq!(e.entities.ips.len(), 1, "the same IP in both key lists is one entity");
        assert_eq!(e.entities.ips[0].role, Role::Source);
        assert_eq!(e.entities.users[0].name, "a@example.com");
        assert_eq!(e.entities.geo[0].country.as_deref(), Some("US"));
        assert_eq!(e.entities.geo[0].ip, Some("208.118.227.31".parse().unwrap()));
        for tag in [
            "organization:Dev Test",
            "region:us1",
            "tactic:Credential Access",
            "investigation:rrn:investigation:us:org:investigation:B85",
            "disposition:UNDECIDED",
        ] {
            assert!(e.tags.contains(&tag.to_owned()), "{tag} in {:?}", e.tags);
        }
        assert_eq!(
            e.updated_at,
            Some(
                Utc.with_ymd_and_hms(2023, 12, 11, 12, 5, 1).unwrap()
                    + chrono::Duration::microseconds(41_900)
            )
        );
        assert_eq!(n.item_time, e.created_at);
    }

    #[test]
    fn a_version_or_id_of_the_wrong_type_is_refused_not_guessed() {
        let ok = json!({"rrn": "rrn:a", "version": 3, "created_at": "2024-01-01T00:00:00Z", "title": "t"});
        assert!(alert(&ok, &ctx()).is_ok());
        for (field, bad) in [
            ("version", json!("3")),
            ("version", json!(3.5)),
            ("version", json!(-1)),
            ("version", json!([3])),
            ("rrn", json!(12)),
            ("rrn", json!({"id": "x"})),
            ("rrn", json!("  ")),
        ] {
            let mut item = ok.clone();
            item[field] = bad.clone();
            let err = alert(&item, &ctx()).unwrap_err();
            assert!(err.0.contains(field), "{field} = {bad}: {err}");
        }
    }

    #[test]
    fn a_higher_version_is_a_new_event_and_the_same_version_the_same_event() {
        let a = alert(&search_alert(), &ctx()).unwrap().event;
        let mut item = search_alert();
        item["status"] = json!("CLOSED");
        let same_version = alert(&item, &ctx()).unwrap().event;
        assert_eq!(a.id, same_version.id);
        item["version"] = json!(7);
        let bumped = alert(&item, &ctx()).unwrap().event;
        assert_ne!(a.id, bumped.id);
        assert_eq!(bumped.status.state, StatusState::Resolved);
    }

    #[test]
    fn the_investigation_alert_shape_is_read_through_fallbacks() {
        let item = json!({
            "id": "rrn0", "title": "title0", "alert_type": "Suspicious Process",
            "alert_type_description": "Activity that resembles attacker behavior.",
            "created_time": "2024-01-09T12:28:26.820Z", "first_event_time": null,
            "alert_source": "Attacker Behavior Analytics",
            "detection_rule_rrn": { "rule_name": "Suspicious Process", "rule_rrn": "rrn" }
        });
        let e = alert(&item, &ctx()).unwrap().event;
        assert_eq!((e.native_id.as_str(), e.revision.as_str()), ("rrn0", "1"));
        assert_eq!(e.description.as_deref(), Some("Activity that resembles attacker behavior."));
        assert_eq!(e.severity.level, SeverityLevel::Unknown);
        assert!(e.tags.contains(&"rule_name:Suspicious Process".to_owned()));
        assert!(e.tags.contains(&"alert_source:Attacker Behavior Analytics".to_owned()));
    }

    #[test]
    fn an_investigation_changes_revision_with_its_triage_state_only() {
        let item = json!({
            "rrn": "rrn:investigation:eu:org:investigation:P1", "organization_id": "org",
            "title": "Suspicious Process", "source": "ALERT", "status": "OPEN", "priority": "CRITICAL",
            "last_accessed": "2024-01-16T09:54:08.932Z", "created_time": "2024-01-09T09:20:06.714Z",
            "disposition": "UNDECIDED", "assignee": null,
            "first_alert_time": "2024-01-09T09:20:05.793Z", "latest_alert_time": "2024-01-09T12:28:26.82Z"
        });
        let e = investigation(&item, &ctx()).unwrap().event;
        assert_eq!(e.source.kind, Kind::Investigation);
        assert_eq!(e.revision, "OPEN|CRITICAL|UNDECIDED|");
        assert_eq!((e.severity.level, e.status.state), (SeverityLevel::Critical, StatusState::New));
        let mut viewed = item.clone();
        viewed["last_accessed"] = json!("2024-02-01T00:00:00Z");
        assert_eq!(investigation(&viewed, &ctx()).unwrap().event.id, e.id);
        let mut assigned = item.clone();
        assigned["assignee"] = json!({ "name": "Ana", "email": "ana@example.com" });
        let assigned = investigation(&assigned, &ctx()).unwrap().event;
        assert_ne!(assigned.id, e.id);
        assert!(assigned.tags.contains(&"assignee:ana@example.com".to_owned()));

        use crate::ocsf::Activity;
        use crate::vendors::Vendor;
        let product = &super::super::Rapid7::OCSF;
        assert_eq!(Activity::of(&e, product), Activity::Create, "new while untriaged");
        let mut investigating = item.clone();
        investigating["status"] = json!("INVESTIGATING");
        let investigating = investigation(&investigating, &ctx()).unwrap().event;
        assert_eq!(Activity::of(&investigating, product), Activity::Update, "triaged: a later revision");
        let first_alert =
            alert(&json!({"rrn": "a", "version": 1, "created_at": "2024-01-01T00:00:00Z"}), &ctx());
        assert_eq!(Activity::of(&first_alert.unwrap().event, product), Activity::Create);
        assert_eq!(Activity::of(&alert(&search_alert(), &ctx()).unwrap().event, product), Activity::Update);
    }

    fn many(n: usize, value: impl Fn(usize) -> String) -> Vec<String> {
        (0..n).map(value).collect()
    }

    /// 50,000 values in every list an alert is read from: the event keeps at
    /// most `MAX_VALUES` of each, the first ones, and says which lists it cut.
    /// (Deduplicating by scanning the list made this item take minutes.)
    #[test]
    fn a_hostile_alert_keeps_at_most_the_cap_of_each_list_and_says_so() {
        use crate::vendors::bounded::{MAX_VALUES, assert_bounded};
        let n = 50_000;
        let ip = |i: usize| std::net::Ipv4Addr::from(0x0a00_0000 + i as u32).to_string();
        let mut item = search_alert();
        item["tags"] = json!(many(n, |i| format!("t{i}")));
        item["rule"]["mitre_tcodes"] = json!(many(n, |i| format!("T{:04}", i % 10_000)));
        item["rule_keys_of_interest"] = json!([
            { "key": "account", "values": many(n, |i| format!("user{i}")) },
            { "key": "source_ip", "values": many(n, ip) },
            { "key": "hostname", "values": many(n, |i| format!("host-{i}")) },
            { "key": "url", "values": many(n, |i| format!("https://x.example/{i}")) },
            { "key": "geoip_city", "values": many(n, |i| format!("City {i}")) }
        ]);
        let e = alert(&item, &ctx()).unwrap().event;
        assert_bounded(&e);
        assert_eq!(e.tags.len(), MAX_VALUES);
        assert_eq!(e.tags[0], "insightidr");
        assert!(e.tags.contains(&"tag:t0".to_owned()), "the first tags are kept");
        let marks: Vec<&str> = e.tags.iter().filter_map(|t| t.strip_prefix("truncated:")).collect();
        assert_eq!(
            marks,
            ["attack", "entities.hosts", "entities.users", "entities.ips", "entities.urls", "tags"]
        );
        assert_eq!(e.attack.len(), MAX_VALUES);
        assert_eq!(e.attack[0].id, "T0000");
        assert_eq!(e.entities.users.len(), MAX_VALUES);
        assert_eq!(e.entities.users[0].name, "user0");
        assert_eq!(e.entities.ips[MAX_VALUES - 1].address.to_string(), ip(MAX_VALUES - 1));
        assert_eq!(e.entities.geo.len(), 1);
        assert_eq!(e.entities.geo[0].city.as_deref(), Some("City 0"));
        assert_eq!(e.entities.geo[0].ip, Some("10.0.0.0".parse().unwrap()), "still the first source IP");
    }

    /// The same values repeated 50,000 times are one value each, and nothing
    /// was cut.
    #[test]
    fn a_hostile_alert_repeating_its_values_keeps_each_once_without_marks() {
        let n = 50_000;
        let mut item = search_alert();
        item["tags"] = json!(many(n, |i| format!("t{}", i % 3)));
        item["rule_keys_of_interest"] = json!([
            { "key": "account", "values": many(n, |i| format!("user{}", i % 2)) },
            { "key": "source_ip", "values": many(n, |_| "203.0.113.9".to_owned()) }
        ]);
        let e = alert(&item, &ctx()).unwrap().event;
        assert!(!e.tags.iter().any(|t| t.starts_with("truncated:")), "{:?}", e.tags);
        let vendor_tags: Vec<&str> = e.tags.iter().filter_map(|t| t.strip_prefix("tag:")).collect();
        assert_eq!(vendor_tags, ["t0", "t1", "t2"]);
        assert_eq!(e.entities.users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["user0", "user1"]);
        let ips: Vec<String> = e.entities.ips.iter().map(|i| i.address.to_string()).collect();
        assert_eq!(ips, ["203.0.113.9", "208.118.227.31"], "once, then the matching key's");
    }

    #[test]
    fn a_hostile_investigation_keeps_at_most_the_cap_of_tags() {
        use crate::vendors::bounded::{MAX_VALUES, assert_bounded};
        let item = json!({
            "rrn": "rrn:investigation:eu:org:investigation:P1", "created_time": "2024-01-09T09:20:06.714Z",
            "tags": many(50_000, |i| format!("t{i}"))
        });
        let e = investigation(&item, &ctx()).unwrap().event;
        assert_bounded(&e);
        assert_eq!(e.tags.len(), MAX_VALUES);
        assert_eq!(e.tags.last().map(String::as_str), Some("truncated:tags"));
    }

    #[test]
    fn missing_ids_and_times_are_named() {
        let mut item = search_alert();
        item.as_object_mut().unwrap().remove("rrn");
        assert!(alert(&item, &ctx()).unwrap_err().0.contains("rrn"));
        let mut item = search_alert();
        item["created_at"] = json!("not a date");
        assert!(alert(&item, &ctx()).unwrap_err().0.contains("created_at"));
        assert!(investigation(&json!({"rrn": "r"}), &ctx()).unwrap_err().0.contains("created_time"));
    }
}
