//! Catchpoint alert (`AlertApiModel`) → event. The mapping is documented in
//! `docs/vendors/catchpoint.md`.
//!
//! Catchpoint alerts are threshold crossings of synthetic tests run from
//! monitoring nodes. `level` carries both severity and state: `Critical` and
//! `Warning` are the two alarm thresholds (`criticalTrigger`,
//! `warningTrigger`), `Information` is a notice, and `Improved` is the
//! recovery notification, so it resolves. Every notification is its own
//! alert with its own random id (a recovery is a new alert, not an update
//! of the failure). What changes in place is `acknowledgedBy`: the revision
//! is `1` until someone acknowledges the alert, then `acknowledged:<contact
//! id>` (or the name, when the answer gives no id), so an acknowledgement
//! is a new event (revisits, issue 19).

use serde_json::Value;

use crate::event::{
    Entities, Event, Host, Kind, Role, SCHEMA_VERSION, Severity, SeverityLevel, Status, StatusState,
};
use crate::vendors::bounded::{Capped, Dropped};
use crate::vendors::fields::{
    IdName, each_string, float, id_name, required_text, required_time, strings, text, time,
};
use crate::vendors::{NormalizeContext, NormalizeError, Normalized};

use super::Catchpoint;

/// `NotificationLevel` names by id, for answers that give only the id.
const LEVELS: [&str; 4] = ["Warning", "Critical", "Information", "Improved"];

pub(super) fn normalize(item: &Value, ctx: &NormalizeContext<'_>) -> Result<Normalized, NormalizeError> {
    let id = required_text(item, "/id")?;
    let reported = required_time(item, "/reportTime")?;
    let level = level_name(item);
    let test = id_name(item, "/test").unwrap_or_default();
    let test_name = test.name.clone().or_else(|| test.id.as_ref().map(|id| format!("#{id}")));
    let alert_type = name_of(item, "/alertType");
    let subtype = name_of(item, "/alertSubtype").filter(|s| s != "None");
    let node = id_name(item, "/node");

    let what = match (&alert_type, &subtype) {
        (Some(t), Some(s)) => format!("{t} / {s}"),
        (Some(t), None) => t.clone(),
        (None, Some(s)) => s.clone(),
        (None, None) => "test".to_owned(),
    };
    let title = format!(
        "{}: {what} alert on test {}",
        level.as_deref().unwrap_or("Alert"),
        test_name.as_deref().unwrap_or("(unnamed)")
    );

    let mut entities = Entities::default();
    if let Some(IdName { id, name }) = &node {
        entities.hosts.push(Host {
            hostname: name.clone(),
            id: id.clone(),
            ips: Vec::new(),
            role: Role::Source,
        });
    }

    let revision = revision(item);
    let event = Event {
        schema_version: SCHEMA_VERSION.to_owned(),
        id: ctx.id::<Catchpoint>(&id, &revision),
        source: ctx.source_ref::<Catchpoint>(Kind::Alert),
        native_id: id,
        revision,
        title,
        description: Some(describe(item, test_name.as_deref(), &what, level.as_deref(), node.as_ref())),
        severity: Severity { level: severity(level.as_deref()), vendor: level.clone() },
        status: status(item, level.as_deref()),
        created_at: reported,
        updated_at: None,
        observed_at: time(item, "/startTime").or(Some(reported)),
        ingested_at: ctx.ingested_at,
        entities,
        tags: Dropped::default().into_capped_tags(tags(item, &test)),
        attack: Vec::new(),
        console_url: text(item, "/testUrl").or_else(|| text(item, "/testSmartboardUrl")),
        raw: ctx.raw(item),
    };
    Ok(Normalized { event, item_time: reported, mark: None })
}

/// The level's name, from the object or, failing that, its documented id.
fn level_name(item: &Value) -> Option<String> {
    let level = id_name(item, "/level")?;
    level.name.or_else(|| {
        let id: usize = level.id?.parse().ok()?;
        LEVELS.get(id).map(|name| (*name).to_owned())
    })
}

fn name_of(item: &Value, pointer: &str) -> Option<String> {
    id_name(item, pointer).and_then(|v| v.name)
}

/// Catchpoint's two alarm thresholds map onto the matching levels; a
/// notice and a recovery are informational.
fn severity(level: Option<&str>) -> SeverityLevel {
    match level.map(str::to_ascii_lowercase).as_deref() {
        Some("critical") => SeverityLevel::Critical,
        Some("warning") => SeverityLevel::Medium,
        Some("information" | "improved") => SeverityLevel::Info,
        _ => SeverityLevel::Unknown,
    }
}

/// `1`, or `acknowledged:<who>` once someone acknowledged the alert.
fn revision(item: &Value) -> String {
    match id_name(item, "/acknowledgedBy") {
        Some(by) => format!("acknowledged:{}", by.id.or(by.name).unwrap_or_default()),
        None => "1".to_owned(),
    }
}

/// A recovery resolves; an alert someone acknowledged is acknowledged;
/// anything else is new.
fn status(item: &Value, level: Option<&str>) -> Status {
    if level.is_some_and(|l| l.eq_ignore_ascii_case("improved")) {
        return Status { state: StatusState::Resolved, vendor: Some("Improved".into()) };
    }
    match id_name(item, "/acknowledgedBy") {
        Some(by) => Status {
            state: StatusState::Acknowledged,
            vendor: Some(match by.name {
                Some(name) => format!("acknowledged by {name}"),
                None => "acknowledged".into(),
            }),
        },
        None => Status { state: StatusState::New, vendor: None },
    }
}

fn describe(
    item: &Value,
    test_name: Option<&str>,
    what: &str,
    level: Option<&str>,
    node: Option<&IdName>,
) -> String {
    let test_type = name_of(item, "/testType");
    let mut text_parts = vec![format!(
        "Catchpoint {}test {}",
        test_type.map(|t| format!("{t} ")).unwrap_or_default(),
        test_name.unwrap_or("(unnamed)")
    )];
    if let Some(path) = text(item, "/testPathStyled") {
        text_parts.push(format!("({path})"));
    }
    text_parts.push(format!("raised a {} {what} alert", level.unwrap_or("level-less")));
    if let Some(name) = node.and_then(|n| n.name.as_deref()) {
        text_parts.push(format!("from node {name}"));
    }
    let mut sentence = format!("{}.", text_parts.join(" "));
    let mut trigger = Vec::new();
    if let Some(t) = name_of(item, "/triggerType").filter(|t| t != "None") {
        trigger.push(t);
    }
    if let Some(op) = name_of(item, "/operationType") {
        trigger.push(op);
    }
    if let Some(w) = float(item, "/warningTrigger") {
        trigger.push(format!("warning {w}"));
    }
    if let Some(c) = float(item, "/criticalTrigger") {
        trigger.push(format!("critical {c}"));
    }
    if let Some(d) = text(item, "/durationInSecond") {
        trigger.push(format!("over {d} s"));
    }
    if !trigger.is_empty() {
        sentence.push_str(&format!(" Trigger: {}.", trigger.join(", ")));
    }
    sentence
}

/// One tag per label value, as Catchpoint lists them (a label repeated is a
/// tag repeated), at most [`crate::vendors::bounded::MAX_VALUES`] in all.
fn tags(item: &Value, test: &IdName) -> Capped<String> {
    let mut tags = Capped::new();
    tags.push("synthetic_monitoring".to_owned());
    if let Some(id) = &test.id {
        tags.push(format!("test_id:{id}"));
    }
    for (tag, pointer) in [
        ("test_type", "/testType"),
        ("alert_type", "/alertType"),
        ("alert_subtype", "/alertSubtype"),
        ("trigger_type", "/triggerType"),
    ] {
        if let Some(name) = name_of(item, pointer) {
            tags.push(format!("{tag}:{name}"));
        }
    }
    let path = strings(item, "/testPath");
    if !path.is_empty() {
        tags.push(format!("test_path:{}", path.join("/")));
    }
    if let Some(Value::Array(labels)) = item.get("labels") {
        for label in labels {
            let Some(name) = text(label, "/name") else {
                continue;
            };
            let mut values = each_string(label, "/values").peekable();
            if values.peek().is_none() {
                tags.push(format!("label:{name}"));
            }
            tags.extend(values.map(|value| format!("label:{name}={value}")));
        }
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

    /// Every field of `AlertApiModel`, as the OpenAPI document lists them.
    fn alert() -> Value {
        json!({
            "id": "8231649027711", "reportTime": "2026-03-27T08:15:42.000Z",
            "processingTimestamp": "2026-03-27T08:15:45.000Z", "startTime": "2026-03-27T08:10:42.000Z",
            "level": { "id": 1, "name": "Critical" },
            "test": { "id": 184233, "name": "Checkout API" },
            "testPath": ["Acme", "Payments", "Checkout API"], "testPathStyled": "Acme > Payments > Checkout API",
            "testUrl": "https://portal.catchpoint.com/ui/Symphony/Tests/Test/184233",
            "testSmartboardUrl": "https://portal.catchpoint.com/ui/Symphony/Smartboard/Test/184233",
            "testPerformanceUrl": null, "testStatisticalUrl": null, "testScatterplotUrl": null, "testRecordUrl": null,
            "testType": { "id": 9, "name": "Api" },
            "alertType": { "id": 7, "name": "ResponseTime" },
            "alertSubtype": { "id": 59, "name": "Test Time" },
            "triggerType": { "id": 2, "name": "TrailingValue" },
            "operationType": { "id": 2, "name": "GreaterThan" },
            "warningTrigger": 2000.0, "criticalTrigger": 5000.0, "durationInSecond": 300,
            "node": { "id": 1871, "name": "New York - Level3" },
            "acknowledgedBy": null,
            "labels": [{ "color": "#1f77b4", "id": 3, "name": "env", "values": ["prod"] }]
        })
    }

    #[test]
    fn a_full_alert_maps_field_by_field() {
        let n = normalize(&alert(), &ctx()).unwrap();
        let e = n.event;
        assert_eq!(e.native_id, "8231649027711");
        assert_eq!(e.revision, "1");
        assert_eq!(e.title, "Critical: ResponseTime / Test Time alert on test Checkout API");
        assert_eq!(e.severity.level, SeverityLevel::Critical);
        assert_eq!(e.severity.vendor.as_deref(), Some("Critical"));
        assert_eq!(e.status.state, StatusState::New);
        assert_eq!(e.created_at, Utc.with_ymd_and_hms(2026, 3, 27, 8, 15, 42).unwrap());
        assert_eq!(e.observed_at, Some(Utc.with_ymd_and_hms(2026, 3, 27, 8, 10, 42).unwrap()));
        assert_eq!(e.entities.hosts[0].hostname.as_deref(), Some("New York - Level3"));
        assert_eq!(e.entities.hosts[0].id.as_deref(), Some("1871"));
        assert_eq!(
            e.console_url.as_deref(),
            Some("https://portal.catchpoint.com/ui/Symphony/Tests/Test/184233")
        );
        for tag in [
            "test_id:184233",
            "test_type:Api",
            "alert_type:ResponseTime",
            "alert_subtype:Test Time",
            "test_path:Acme/Payments/Checkout API",
            "label:env=prod",
        ] {
            assert!(e.tags.contains(&tag.to_owned()), "{tag} in {:?}", e.tags);
        }
        let description = e.description.unwrap();
        assert!(description.contains("(Acme > Payments > Checkout API)"), "{description}");
        assert!(description.contains("warning 2000, critical 5000, over 300 s"), "{description}");
        assert_eq!(n.item_time, e.created_at);
    }

    #[test]
    fn levels_map_to_severity_and_improved_resolves() {
        for (level, severity, state) in [
            (json!({"id": 0, "name": "Warning"}), SeverityLevel::Medium, StatusState::New),
            (json!({"id": 2, "name": "Information"}), SeverityLevel::Info, StatusState::New),
            (json!({"id": 3, "name": "Improved"}), SeverityLevel::Info, StatusState::Resolved),
            (json!(3), SeverityLevel::Info, StatusState::Resolved),
            (json!({"id": 1}), SeverityLevel::Critical, StatusState::New),
            (json!(null), SeverityLevel::Unknown, StatusState::New),
        ] {
            let mut item = alert();
            item["level"] = level.clone();
            let e = normalize(&item, &ctx()).unwrap().event;
            assert_eq!((e.severity.level, e.status.state), (severity, state), "{level}");
        }
    }

    #[test]
    fn an_acknowledged_alert_names_who() {
        let mut item = alert();
        item["acknowledgedBy"] = json!({ "id": 52, "name": "Dana Ops" });
        let status = normalize(&item, &ctx()).unwrap().event.status;
        assert_eq!(status.state, StatusState::Acknowledged);
        assert_eq!(status.vendor.as_deref(), Some("acknowledged by Dana Ops"));
    }

    #[test]
    fn an_acknowledgement_is_a_new_revision() {
        let mut item = alert();
        let first = normalize(&item, &ctx()).unwrap().event;
        item["acknowledgedBy"] = json!({ "id": 52, "name": "Dana Ops" });
        let acked = normalize(&item, &ctx()).unwrap().event;
        assert_eq!((first.revision.as_str(), acked.revision.as_str()), ("1", "acknowledged:52"));
        assert_ne!(first.id, acked.id, "a new event id");
    }

    /// 50,000 labels: at most `MAX_VALUES` tags, the first ones, and a mark.
    #[test]
    fn a_hostile_alert_keeps_at_most_the_cap_of_tags_and_says_so() {
        use crate::vendors::bounded::{MAX_VALUES, assert_bounded};
        let mut item = alert();
        item["labels"] = json!(
            (0..50_000).map(|i| json!({ "name": format!("l{i}"), "values": ["a", "b"] })).collect::<Vec<_>>()
        );
        let e = normalize(&item, &ctx()).unwrap().event;
        assert_bounded(&e);
        assert_eq!(e.tags.len(), MAX_VALUES);
        assert_eq!(e.tags[0], "synthetic_monitoring");
        assert!(e.tags.contains(&"label:l0=b".to_owned()), "the first labels are kept");
        assert_eq!(e.tags.last().map(String::as_str), Some("truncated:tags"));
    }

    #[test]
    fn a_sparse_alert_still_normalizes_and_a_missing_id_is_named() {
        let item = json!({ "id": "1", "reportTime": "2024-04-11T05:02:55.710Z", "level": {"id": 1, "name": "Critical"} });
        let e = normalize(&item, &ctx()).unwrap().event;
        assert_eq!(e.title, "Critical: test alert on test (unnamed)");
        assert!(e.entities.is_empty());
        assert!(e.console_url.is_none());

        let mut item = alert();
        item["id"] = json!(null);
        assert!(normalize(&item, &ctx()).unwrap_err().0.contains("`id`"));
        let mut item = alert();
        item["reportTime"] = json!("soon");
        assert!(normalize(&item, &ctx()).unwrap_err().0.contains("reportTime"));
    }
}
