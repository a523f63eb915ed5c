//! OCSF 1.8.0 output: every v1 [`Event`] as a Detection Finding (class 2004).
//!
//! Many SIEM pipelines (Security Lake, Splunk, Sentinel's ASIM bridges, …)
//! speak OCSF natively; publishing findings in it saves each of them a
//! mapping of their own. The mapping works from the v1 event only (plus its
//! `raw` item, carried as `raw_data`), so all vendors share it; the few
//! per-vendor decisions (product names, what counts as an item's first
//! revision) are each vendor's [`Product`] (`Vendor::OCSF`, in the vendor's
//! folder). `docs/ocsf.md` is the reviewed table of where each field goes.
//!
//! Findings go to their own subject tree `<prefix>.ocsf.<vendor>.<source>.<kind>`
//! with their own deterministic `Nats-Msg-Id` ([`finding_id`]), so they are
//! deduplicated independently of the v1 events published beside them.

mod entities;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::event::{AttackTechnique, Event, SeverityLevel, StatusState};
use crate::publish::{Message, token};

/// The OCSF schema version the findings claim (`metadata.version`).
pub const OCSF_VERSION: &str = "1.8.0";

/// OCSF Detection Finding's class uid.
pub const CLASS_UID: u32 = 2004;

/// The Detection Finding activities alertd emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// The item's first revision.
    Create = 1,
    /// A later revision of an item still open.
    Update = 2,
    /// The vendor says the item is resolved or closed.
    Close = 3,
}

impl Activity {
    /// OCSF's caption.
    pub fn name(self) -> &'static str {
        match self {
            Activity::Create => "Create",
            Activity::Update => "Update",
            Activity::Close => "Close",
        }
    }

    /// The event's activity: Close wins over everything (a resolved item is
    /// closed whatever its revision), then Create for the first revision.
    pub fn of(event: &Event, product: &Product) -> Activity {
        if event.status.state == StatusState::Resolved {
            Activity::Close
        } else if (product.is_first_revision)(event) {
            Activity::Create
        } else {
            Activity::Update
        }
    }
}

/// What a finding says of the product that reported it, and how to tell an
/// item's first revision (OCSF's Create) from a later one (Update): the v1
/// revision string alone cannot say it for every vendor. Each vendor
/// declares its own (`Vendor::OCSF`).
#[derive(Debug, Clone, Copy)]
pub struct Product {
    /// `metadata.product.name`.
    pub name: &'static str,
    /// `metadata.product.vendor_name`.
    pub vendor_name: &'static str,
    /// Whether an event is its item's first revision.
    pub is_first_revision: fn(&Event) -> bool,
}

/// For items whose revision counts up from `1` (or never changes).
pub fn revision_is_one(event: &Event) -> bool {
    event.revision == "1"
}

/// For items whose revision is a change time or a store-wide counter: first
/// while the item has no `updated_at` after its creation.
pub fn not_yet_updated(event: &Event) -> bool {
    event.updated_at.is_none_or(|u| u <= event.created_at)
}

/// The finding's `Nats-Msg-Id`: UUIDv5 of `ocsf` in the v1 event id's
/// namespace, so it is as deterministic as the event id and never equal to it.
pub fn finding_id(event_id: Uuid) -> Uuid {
    Uuid::new_v5(&event_id, b"ocsf")
}

/// The subject of a finding: `<prefix>.ocsf.<vendor>.<source>.<kind>`. Still
/// under `<prefix>.>`, so the stream alertd creates stores it.
pub fn subject(prefix: &str, vendor: &str, source: &str, kind: &str) -> String {
    format!("{prefix}.ocsf.{}.{}.{}", token(vendor), token(source), token(kind))
}

/// The finding of `event` from `product`, ready to publish under `prefix`.
pub fn message(prefix: &str, event: &Event, product: &Product) -> Result<Message, serde_json::Error> {
    let mut payload = Vec::with_capacity(event.raw.get().len() + 2048);
    serde_json::to_writer(&mut payload, &finding(event, product))?;
    Ok(Message {
        subject: subject(prefix, &event.source.vendor, &event.source.name, event.source.kind.as_str()),
        id: finding_id(event.id).to_string(),
        payload: Bytes::from(payload),
    })
}

/// Epoch milliseconds (OCSF `timestamp_t`).
fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// RFC 3339 with a `Z` (OCSF `datetime_t`, Date/Time profile).
fn dt(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Set `key` (epoch ms) and `key_dt` in `map`.
fn put_time(map: &mut Map<String, Value>, key: &str, t: Option<DateTime<Utc>>) {
    if let Some(t) = t {
        map.insert(key.to_owned(), json!(ms(t)));
        map.insert(format!("{key}_dt"), json!(dt(t)));
    }
}

fn severity(level: SeverityLevel) -> (u8, &'static str) {
    match level {
        SeverityLevel::Unknown => (0, "Unknown"),
        SeverityLevel::Info => (1, "Informational"),
        SeverityLevel::Low => (2, "Low"),
        SeverityLevel::Medium => (3, "Medium"),
        SeverityLevel::High => (4, "High"),
        SeverityLevel::Critical => (5, "Critical"),
    }
}

/// OCSF finding status. OCSF has no "acknowledged": it is `Other` (99)
/// with the caption `Acknowledged`, which OCSF allows for values outside its list.
fn status(state: StatusState) -> (u8, &'static str) {
    match state {
        StatusState::New => (1, "New"),
        StatusState::Acknowledged => (99, "Acknowledged"),
        StatusState::InProgress => (2, "In Progress"),
        StatusState::Suppressed => (3, "Suppressed"),
        StatusState::Resolved => (4, "Resolved"),
        StatusState::Unknown => (0, "Unknown"),
    }
}

/// One ATT&CK technique as an OCSF `attack`: a dotted id is a
/// sub-technique of the id before the dot.
fn attack(t: &AttackTechnique) -> Value {
    let mut a = Map::new();
    let named = |uid: &str, name: Option<&String>| {
        let mut o = Map::new();
        o.insert("uid".into(), json!(uid));
        if let Some(name) = name {
            o.insert("name".into(), json!(name));
        }
        Value::Object(o)
    };
    match t.id.split_once('.') {
        Some((parent, _)) => {
            a.insert("technique".into(), named(parent, None));
            a.insert("sub_technique".into(), named(&t.id, t.name.as_ref()));
        }
        None => {
            a.insert("technique".into(), named(&t.id, t.name.as_ref()));
        }
    }
    if let Some(tactic) = &t.tactic {
        a.insert("tactic".into(), json!({ "name": tactic }));
    }
    Value::Object(a)
}

/// The detection rule, where the vendor names one (Rapid7's `rule_name:` /
/// `rule:` tags).
fn analytic(tags: &[String]) -> Option<Value> {
    let find = |prefix: &str| tags.iter().find_map(|t| t.strip_prefix(prefix)).filter(|v| !v.is_empty());
    let name = find("rule_name:");
    let uid = find("rule:");
    if name.is_none() && uid.is_none() {
        return None;
    }
    let mut a = Map::new();
    a.insert("type_id".into(), json!(1));
    a.insert("type".into(), json!("Rule"));
    if let Some(name) = name {
        a.insert("name".into(), json!(name));
    }
    if let Some(uid) = uid {
        a.insert("uid".into(), json!(uid));
    }
    Some(Value::Object(a))
}

/// The OCSF Detection Finding of `event`, reported by `product`.
pub fn finding(event: &Event, product: &Product) -> Value {
    let activity = Activity::of(event, product);
    let (severity_id, severity_name) = severity(event.severity.level);
    let (status_id, status_name) = status(event.status.state);

    let mut info = Map::new();
    info.insert("uid".into(), json!(event.native_id));
    info.insert("title".into(), json!(event.title));
    if let Some(desc) = &event.description {
        info.insert("desc".into(), json!(desc));
    }
    put_time(&mut info, "created_time", Some(event.created_at));
    put_time(&mut info, "modified_time", event.updated_at);
    put_time(&mut info, "first_seen_time", event.observed_at);
    put_time(&mut info, "last_seen_time", event.observed_at);
    info.insert("types".into(), json!([event.source.kind.as_str()]));
    if let Some(url) = &event.console_url {
        info.insert("src_url".into(), json!(url));
    }
    if let Some(a) = analytic(&event.tags) {
        info.insert("analytic".into(), a);
    }
    if !event.attack.is_empty() {
        info.insert("attacks".into(), Value::Array(event.attack.iter().map(attack).collect()));
    }

    let mut metadata = Map::new();
    metadata.insert("product".into(), json!({ "name": product.name, "vendor_name": product.vendor_name }));
    metadata.insert("version".into(), json!(OCSF_VERSION));
    metadata.insert("profiles".into(), json!(["datetime"]));
    metadata.insert("uid".into(), json!(event.id.to_string()));
    metadata.insert("original_event_uid".into(), json!(event.native_id));
    metadata.insert("tenant_uid".into(), json!(event.source.name));
    metadata.insert("log_name".into(), json!(event.source.kind.as_str()));
    metadata.insert("log_provider".into(), json!(event.source.vendor));
    put_time(&mut metadata, "logged_time", Some(event.ingested_at));
    if !event.tags.is_empty() {
        metadata.insert("labels".into(), json!(event.tags));
    }

    let mapped = entities::map(&event.entities);
    let mut unmapped = mapped.unmapped;
    unmapped.insert("alertd_schema_version".into(), json!(event.schema_version));
    unmapped.insert("revision".into(), json!(event.revision));
    if let Some(v) = &event.severity.vendor {
        unmapped.insert("vendor_severity".into(), json!(v));
    }

    let mut f = Map::new();
    f.insert("activity_id".into(), json!(activity as u8));
    f.insert("activity_name".into(), json!(activity.name()));
    f.insert("category_uid".into(), json!(2));
    f.insert("category_name".into(), json!("Findings"));
    f.insert("class_uid".into(), json!(CLASS_UID));
    f.insert("class_name".into(), json!("Detection Finding"));
    f.insert("type_uid".into(), json!(CLASS_UID * 100 + activity as u32));
    f.insert("type_name".into(), json!(format!("Detection Finding: {}", activity.name())));
    f.insert("severity_id".into(), json!(severity_id));
    f.insert("severity".into(), json!(severity_name));
    f.insert("status_id".into(), json!(status_id));
    f.insert("status".into(), json!(status_name));
    if let Some(v) = &event.status.vendor {
        f.insert("status_detail".into(), json!(v));
    }
    f.insert("is_alert".into(), json!(true));
    f.insert("message".into(), json!(event.title));
    put_time(&mut f, "time", Some(event.created_at));
    f.insert("timezone_offset".into(), json!(0));
    f.insert("finding_info".into(), Value::Object(info));
    f.insert("metadata".into(), Value::Object(metadata));
    if let Some(device) = mapped.device {
        f.insert("device".into(), device);
    }
    if !mapped.evidences.is_empty() {
        f.insert("evidences".into(), Value::Array(mapped.evidences));
    }
    if !mapped.observables.is_empty() {
        f.insert("observables".into(), Value::Array(mapped.observables));
    }
    f.insert("raw_data".into(), json!(event.raw.get()));
    f.insert("unmapped".into(), Value::Object(unmapped));
    Value::Object(f)
}

#[cfg(test)]
mod tests;
