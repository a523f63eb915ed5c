//! Red Canary detection → event. The mapping is documented in
//! `docs/vendors/red-canary.md`.
//!
//! A detection is mutated in place when someone acknowledges or remediates
//! it, or when the threat keeps being active (there is no change feed). Each
//! such change moves one of its timestamps forward, so the revision is the
//! latest of `confirmed_at`, `last_activity_seen_at`, `last_acknowledged_at`
//! and `last_remediated_status.marked_at`: re-reading an unchanged detection
//! gives the same event id (dropped as a duplicate), a changed one a new
//! event.

use chrono::{DateTime, SecondsFormat};
use serde_json::Value;

use crate::event::{
    Entities, Event, Host, IpEntity, Kind, Role, SCHEMA_VERSION, Severity, SeverityLevel, Status,
    StatusState, User,
};
use crate::vendors::bounded::{Capped, Dropped};
use crate::vendors::fields::{get, required_text, required_time, text, time};
use crate::vendors::keep::Keep;
use crate::vendors::{NormalizeContext, NormalizeError, Normalized};

use super::RedCanary;

/// Every field [`normalize`] and the walk's hollow-item check
/// (`detection_key`) read: items are parsed into these alone (see
/// [`crate::vendors::keep`]); a key read here and missing there fails
/// `the_part_read_normalizes_as_the_whole_item`.
pub(super) const READS: Keep = Keep::Keys(&[
    ("id", Keep::All),
    ("hostname", Keep::All),
    ("username", Keep::All),
    (
        "attributes",
        Keep::Keys(&[
            ("headline", Keep::All),
            ("summary", Keep::All),
            ("severity", Keep::All),
            ("confirmed_at", Keep::All),
            ("last_activity_seen_at", Keep::All),
            ("last_acknowledged_at", Keep::All),
            ("time_of_occurrence", Keep::All),
            (
                "last_remediated_status",
                Keep::Keys(&[
                    ("marked_at", Keep::All),
                    ("reason", Keep::All),
                    ("remediation_state", Keep::All),
                ]),
            ),
            (
                "classification",
                Keep::Keys(&[("superclassification", Keep::All), ("subclassification", Keep::All)]),
            ),
        ]),
    ),
    (
        "relationships",
        Keep::Keys(&[(
            "affected_endpoint",
            Keep::Keys(&[("data", Keep::Keys(&[("id", Keep::All), ("network_addresses", Keep::All)]))]),
        )]),
    ),
    ("links", Keep::Keys(&[("self", Keep::Keys(&[("href", Keep::All)]))])),
]);

pub(super) fn normalize(item: &Value, ctx: &NormalizeContext<'_>) -> Result<Normalized, NormalizeError> {
    let id = required_text(item, "/id")?;
    let confirmed_at = required_time(item, "/attributes/confirmed_at")?;
    let changed_at = [
        "/attributes/last_activity_seen_at",
        "/attributes/last_acknowledged_at",
        "/attributes/last_remediated_status/marked_at",
    ]
    .iter()
    .filter_map(|p| time(item, p))
    .fold(confirmed_at, DateTime::max);
    let revision = crate::event::rfc3339(&changed_at, SecondsFormat::Millis);

    let title = text(item, "/attributes/headline").unwrap_or_else(|| format!("Red Canary detection {id}"));
    let severity_text = text(item, "/attributes/severity");
    let level = match severity_text.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("low") => SeverityLevel::Low,
        Some("medium") => SeverityLevel::Medium,
        Some("high") => SeverityLevel::High,
        Some("critical") => SeverityLevel::Critical,
        _ => SeverityLevel::Unknown,
    };

    let mut dropped = Dropped::default();
    let entities = entities(item, &mut dropped);
    let tags = tags(item);
    let event = Event {
        schema_version: SCHEMA_VERSION.to_owned(),
        id: ctx.id::<RedCanary>(&id, &revision),
        source: ctx.source_ref::<RedCanary>(Kind::Detection),
        native_id: id,
        revision,
        title,
        description: text(item, "/attributes/summary"),
        severity: Severity { level, vendor: severity_text },
        status: status(item),
        created_at: confirmed_at,
        updated_at: (changed_at > confirmed_at).then_some(changed_at),
        observed_at: time(item, "/attributes/time_of_occurrence"),
        ingested_at: ctx.ingested_at,
        entities,
        tags: dropped.into_capped_tags(tags),
        attack: Vec::new(),
        console_url: text(item, "/links/self/href")
            .filter(|u| u.starts_with("https://") || u.starts_with("http://")),
        raw: ctx.raw(item),
    };
    Ok(Normalized { event, item_time: confirmed_at, mark: None })
}

/// Remediation decides over acknowledgement: `remediated` is resolved, any
/// `not_remediated…` state (false positive, sanctioned or authorized
/// activity) is closed as benign, i.e. suppressed.
fn status(item: &Value) -> Status {
    if let Some(state) = text(item, "/attributes/last_remediated_status/remediation_state") {
        let reason = text(item, "/attributes/last_remediated_status/reason");
        let vendor = match &reason {
            Some(r) => [state.as_str(), " (", r, ")"].concat(),
            None => state.clone(),
        };
        let state = if state == "remediated" {
            StatusState::Resolved
        } else if state.starts_with("not_remediated") {
            StatusState::Suppressed
        } else {
            StatusState::Unknown
        };
        return Status { state, vendor: Some(vendor) };
    }
    if get(item, "/attributes/last_acknowledged_at").is_some() {
        Status { state: StatusState::Acknowledged, vendor: Some("acknowledged".into()) }
    } else {
        Status { state: StatusState::New, vendor: Some("unacknowledged".into()) }
    }
}

/// The affected endpoint (hostname, endpoint id, its addresses) and user.
/// The addresses are the endpoint's as Red Canary lists them (a repeated
/// one repeats), at most [`crate::vendors::bounded::MAX_VALUES`] of them.
fn entities(item: &Value, dropped: &mut Dropped) -> Entities {
    let mut entities = Entities::default();
    let mut listed = Capped::new();
    if let Some(list) =
        get(item, "/relationships/affected_endpoint/data/network_addresses").and_then(Value::as_array)
    {
        listed.extend(
            list.iter().filter_map(Value::as_str).filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok()),
        );
    }
    if listed.dropped() {
        dropped.note("entities.hosts.ips");
    }
    let addresses = listed.finish("entities.ips", dropped);
    let hostname = text(item, "/hostname");
    let endpoint_id = text(item, "/relationships/affected_endpoint/data/id");
    if hostname.is_some() || endpoint_id.is_some() || !addresses.is_empty() {
        entities.hosts.push(Host {
            hostname,
            id: endpoint_id,
            ips: addresses.iter().map(crate::event::ip_text).collect(),
            role: Role::Target,
        });
    }
    entities.ips.extend(addresses.into_iter().map(|address| IpEntity { address, role: Role::Target }));
    if let Some(name) = text(item, "/username") {
        entities.users.push(User { name, role: Role::Target });
    }
    entities
}

/// The classification, as `classification:…` and `subclassification:…`.
fn tags(item: &Value) -> Capped<String> {
    let mut tags = Capped::new();
    if let Some(c) = text(item, "/attributes/classification/superclassification") {
        tags.push(["classification:", &c].concat());
    }
    if let Some(list) = get(item, "/attributes/classification/subclassification").and_then(Value::as_array) {
        tags.extend(
            list.iter()
                .filter_map(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| ["subclassification:", s].concat()),
        );
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn ctx() -> NormalizeContext<'static> {
        NormalizeContext::new("acme", Utc.with_ymd_and_hms(2026, 3, 28, 0, 0, 0).unwrap())
    }

    fn detection() -> Value {
        json!({
            "type": "Detection", "id": 741,
            "attributes": {
                "headline": "Unwanted Software (Riskware)",
                "confirmed_at": "2019-12-25T02:37:41.311Z",
                "summary": "Riskware was detected.",
                "severity": "low",
                "last_activity_seen_at": "2019-12-25T03:22:26.494Z",
                "classification": {"superclassification": "Unwanted Software", "subclassification": ["Riskware"]},
                "time_of_occurrence": "2019-12-25T02:07:37.329Z",
                "last_acknowledged_at": null, "last_acknowledged_by": null
            },
            "hostname": "victim-llama", "username": "victim-llama\\rem",
            "relationships": {"affected_endpoint": {"data": {"type": "endpoint", "id": 42828,
                "network_addresses": ["10.254.110.86", "not-an-ip"]}}},
            "links": {"self": {"href": "https://acme.my.redcanary.co/openapi/v3/detections/741"}}
        })
    }

    #[test]
    fn a_detection_maps_field_by_field() {
        let n = normalize(&detection(), &ctx()).unwrap();
        let e = &n.event;
        assert_eq!(e.native_id, "741");
        assert_eq!(e.title, "Unwanted Software (Riskware)");
        assert_eq!(e.description.as_deref(), Some("Riskware was detected."));
        assert_eq!(e.severity.level, SeverityLevel::Low);
        assert_eq!(e.status.state, StatusState::New);
        assert_eq!(e.created_at.to_rfc3339(), "2019-12-25T02:37:41.311+00:00");
        assert_eq!(n.item_time, e.created_at, "seen ids are pruned by confirmed_at");
        assert_eq!(e.observed_at.unwrap().to_rfc3339(), "2019-12-25T02:07:37.329+00:00");
        assert_eq!(e.revision, "2019-12-25T03:22:26.494Z", "last activity is the latest change");
        assert_eq!(e.entities.hosts[0].hostname.as_deref(), Some("victim-llama"));
        assert_eq!(e.entities.hosts[0].id.as_deref(), Some("42828"));
        assert_eq!(e.entities.hosts[0].ips, vec!["10.254.110.86"]);
        assert_eq!(e.entities.ips.len(), 1, "the unparsable address is dropped");
        assert_eq!(e.entities.users[0].name, "victim-llama\\rem");
        assert_eq!(e.tags, vec!["classification:Unwanted Software", "subclassification:Riskware"]);
        assert_eq!(e.console_url.as_deref(), Some("https://acme.my.redcanary.co/openapi/v3/detections/741"));
    }

    #[test]
    fn acknowledging_and_remediating_are_new_revisions_with_their_status() {
        let mut item = detection();
        let first = normalize(&item, &ctx()).unwrap().event;
        item["attributes"]["last_acknowledged_at"] = json!("2019-12-26T10:00:00.000Z");
        let acked = normalize(&item, &ctx()).unwrap().event;
        assert_eq!(acked.status.state, StatusState::Acknowledged);
        assert_ne!(acked.id, first.id);
        assert_eq!(acked.updated_at.unwrap().to_rfc3339(), "2019-12-26T10:00:00+00:00");

        item["attributes"]["last_remediated_status"] = json!({
            "reason": null, "remediation_state": "remediated", "marked_at": "2019-12-27T21:00:49.519Z"
        });
        let fixed = normalize(&item, &ctx()).unwrap().event;
        assert_eq!(fixed.status.state, StatusState::Resolved);
        assert_eq!(fixed.status.vendor.as_deref(), Some("remediated"));
        assert_ne!(fixed.id, acked.id);

        item["attributes"]["last_remediated_status"]["remediation_state"] = json!("not_remediated");
        item["attributes"]["last_remediated_status"]["reason"] = json!("authorized_testing");
        let benign = normalize(&item, &ctx()).unwrap().event;
        assert_eq!(benign.status.state, StatusState::Suppressed);
        assert_eq!(benign.status.vendor.as_deref(), Some("not_remediated (authorized_testing)"));

        assert_eq!(
            normalize(&item, &ctx()).unwrap().event.id,
            benign.id,
            "re-reading an unchanged detection gives the same id"
        );
    }

    #[test]
    fn a_sparse_detection_normalizes_and_a_missing_id_or_time_is_named() {
        let sparse = json!({"id": 9, "attributes": {"confirmed_at": "2020-01-01T00:00:00Z"}});
        let e = normalize(&sparse, &ctx()).unwrap().event;
        assert_eq!(e.title, "Red Canary detection 9");
        assert_eq!(e.severity.level, SeverityLevel::Unknown);
        assert!(e.entities.is_empty() && e.tags.is_empty() && e.updated_at.is_none());

        let err = normalize(&json!({"id": 9, "attributes": {}}), &ctx()).unwrap_err();
        assert!(err.0.contains("attributes.confirmed_at"), "{err}");
        let err =
            normalize(&json!({"attributes": {"confirmed_at": "2020-01-01T00:00:00Z"}}), &ctx()).unwrap_err();
        assert!(err.0.contains("`id`"), "{err}");
    }

    /// 50,000 subclassifications and endpoint addresses: at most
    /// `MAX_VALUES` of each, the first listed, and the cut lists named.
    #[test]
    fn a_hostile_detection_keeps_at_most_the_cap_of_each_list_and_says_so() {
        use crate::vendors::bounded::{MAX_VALUES, assert_bounded};
        let n = 50_000_u32;
        let mut item = detection();
        item["attributes"]["classification"]["subclassification"] =
            json!((0..n).map(|i| format!("sub-{i}")).collect::<Vec<_>>());
        item["relationships"]["affected_endpoint"]["data"]["network_addresses"] =
            json!((0..n).map(|i| std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string()).collect::<Vec<_>>());
        let e = normalize(&item, &ctx()).unwrap().event;
        assert_bounded(&e);
        assert_eq!(e.tags.len(), MAX_VALUES);
        assert_eq!(e.tags[..2], ["classification:Unwanted Software", "subclassification:sub-0"]);
        let marks: Vec<&str> = e.tags.iter().filter_map(|t| t.strip_prefix("truncated:")).collect();
        assert_eq!(marks, ["entities.hosts.ips", "entities.ips", "tags"]);
        assert_eq!(e.entities.ips.len(), MAX_VALUES);
        assert_eq!(e.entities.hosts[0].ips.len(), MAX_VALUES);
        assert_eq!(e.entities.hosts[0].ips[0], "10.0.0.0");
    }

    #[test]
    fn a_placeholder_self_link_is_not_a_console_url() {
        let mut item = detection();
        item["links"]["self"]["href"] = json!("url");
        assert_eq!(normalize(&item, &ctx()).unwrap().event.console_url, None);
    }
}
