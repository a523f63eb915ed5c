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
use chrono::{DateTime, Utc};
use serde::Serialize;
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
    crate::event::v5(&event_id, b"ocsf")
}

/// The subject of a finding: `<prefix>.ocsf.<vendor>.<source>.<kind>`. Still
/// under `<prefix>.>`, so the stream alertd creates stores it.
pub fn subject(prefix: &str, vendor: &str, source: &str, kind: &str) -> String {
    format!("{prefix}.ocsf.{}.{}.{}", token(vendor), token(source), token(kind))
}

/// The finding of `event` from `product`, ready to publish under `prefix`.
///
/// `raw_data` is the event's `raw` item as a JSON string, so every quote of
/// the item is escaped: serde_json's byte-at-a-time escaping of those few
/// kilobytes took about 5 % of alertd's instructions on an OCSF backfill
/// (docs/performance.md, issue 16's seventh pass). It is escaped with
/// SIMD ([`json_escape_simd`], the same output as serde_json's) and
/// written as the finding's last key. That crate picks AVX2 at run time,
/// where sonic-rs's serializer (the finding's other fields) uses the SIMD
/// the build targets (SSE2 on a baseline x86-64 build): on these few
/// kilobytes it took 1 % fewer instructions of an OCSF backfill.
pub fn message(prefix: &str, event: &Event, product: &Product) -> Result<Message, serde_json::Error> {
    let subject = subject(prefix, &event.source.vendor, &event.source.name, event.source.kind.as_str());
    message_to(subject, event, product)
}

/// [`message`] under `subject`, built once by a caller that publishes
/// many findings of one source (it is [`subject`] of the event's vendor,
/// source and kind).
pub fn message_to(subject: String, event: &Event, product: &Product) -> Result<Message, serde_json::Error> {
    let raw = event.raw.get();
    // Sized for the finding at once (its raw item with some escapes and
    // about 2 KB of fields): the payload is kept as it is allocated until
    // NATS acks it.
    let mut payload = Vec::with_capacity(raw.len() + raw.len() / 8 + 2048);
    // The fields go through sonic-rs's serializer, which escapes strings
    // with SIMD: serde_json's byte-at-a-time escaping of the keys and text
    // took 8 % of a Red Canary OCSF backfill's instructions (issue 16's
    // ninth pass). Same bytes as serde_json's (tested); serde_json's for
    // a large item (see `write_published`).
    crate::event::write_published(&mut payload, &Finding::of(event, product), raw.len())?;
    // `{…}` → `{…,"raw_data":"…"}`: a serialized struct ends in its `}`.
    if payload.pop() != Some(b'}') {
        return Err(serde::ser::Error::custom("a finding did not serialize as an object"));
    }
    payload.extend_from_slice(b",\"raw_data\":");
    push_json_string(&mut payload, raw, ESCAPE_PIECE);
    payload.push(b'}');
    Ok(Message { subject, id: finding_id(event.id).to_string(), payload: Bytes::from(payload) })
}

/// The payload [`message`] writes, written by serde_json alone (its
/// serializer and its escaping): what the tests compare [`message`]'s with.
#[cfg(test)]
pub(crate) fn payload_by_serde_json(event: &Event, product: &Product) -> Vec<u8> {
    let mut payload = serde_json::to_vec(&Finding::of(event, product)).unwrap_or_default();
    payload.pop();
    payload.extend_from_slice(b",\"raw_data\":");
    payload.extend_from_slice(&serde_json::to_vec(event.raw.get()).unwrap_or_default());
    payload.push(b'}');
    payload
}

/// Bytes of text escaped per call of the SIMD escaper.
const ESCAPE_PIECE: usize = 64 * 1024;

/// Append `text` to `out` as a JSON string, quotes included, escaped
/// `piece` bytes at a time: the escaper reserves six bytes per input byte,
/// so one call on a vendor's multi-megabyte item would reserve six times
/// its size at once.
fn push_json_string(out: &mut Vec<u8>, text: &str, piece: usize) {
    let mut scratch = Vec::new();
    out.push(b'"');
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(piece.max(4));
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (head, tail) = rest.split_at(end);
        scratch.clear();
        json_escape_simd::escape_into(head, &mut scratch);
        // Each piece comes back quoted: keep what is between the quotes.
        out.extend_from_slice(scratch.get(1..scratch.len().saturating_sub(1)).unwrap_or_default());
        rest = tail;
    }
    out.push(b'"');
}

/// Epoch milliseconds (OCSF `timestamp_t`).
fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// RFC 3339 with a `Z` (OCSF `datetime_t`, Date/Time profile).
fn dt(t: DateTime<Utc>) -> String {
    crate::event::rfc3339(&t, chrono::SecondsFormat::Millis)
}

/// A time as OCSF gives it: `key` (epoch ms) beside `key_dt`. Flattened
/// into its object under the field's names (see the `rename`s).
#[derive(Serialize)]
struct Time {
    ms: i64,
    dt: String,
}

impl Time {
    fn of(t: DateTime<Utc>) -> Time {
        Time { ms: ms(t), dt: dt(t) }
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

/// The OCSF Detection Finding of `event`, reported by `product`, as JSON:
/// the payload [`message`] publishes, parsed.
pub fn finding(event: &Event, product: &Product) -> Value {
    // A Finding of strings, numbers and `Value`s always serializes.
    message("alertd", event, product)
        .ok()
        .and_then(|m| serde_json::from_slice(&m.payload).ok())
        .unwrap_or(Value::Null)
}

/// A Detection Finding, serialized as it is published: typed, so that
/// publishing writes it at once instead of building a `Value` tree of owned
/// keys first (that took about 2 CPU s per 100,000 findings).
#[derive(Serialize)]
struct Finding<'a> {
    activity_id: u8,
    activity_name: &'static str,
    category_uid: u8,
    category_name: &'static str,
    class_uid: u32,
    class_name: &'static str,
    type_uid: u32,
    type_name: &'static str,
    severity_id: u8,
    severity: &'static str,
    status_id: u8,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_detail: Option<&'a str>,
    is_alert: bool,
    message: &'a str,
    time: i64,
    time_dt: String,
    timezone_offset: i32,
    finding_info: FindingInfo<'a>,
    metadata: Metadata<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<entities::Device<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    evidences: Vec<entities::Evidence<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    observables: Vec<entities::Observable<'a>>,
    unmapped: Map<String, Value>,
    // `raw_data` follows, written by [`message`].
}

#[derive(Serialize)]
struct FindingInfo<'a> {
    uid: &'a str,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    desc: Option<&'a str>,
    #[serde(flatten, serialize_with = "created_time")]
    created_time: Time,
    #[serde(flatten, serialize_with = "modified_time")]
    modified_time: Option<Time>,
    #[serde(flatten, serialize_with = "first_seen_time")]
    first_seen_time: Option<Time>,
    #[serde(flatten, serialize_with = "last_seen_time")]
    last_seen_time: Option<Time>,
    types: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    src_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    analytic: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attacks: Vec<Value>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    product: ProductName,
    version: &'static str,
    profiles: [&'static str; 1],
    uid: String,
    original_event_uid: &'a str,
    tenant_uid: &'a str,
    log_name: &'static str,
    log_provider: &'a str,
    #[serde(flatten, serialize_with = "logged_time")]
    logged_time: Time,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    labels: &'a [String],
}

#[derive(Serialize)]
struct ProductName {
    name: &'static str,
    vendor_name: &'static str,
}

/// Serializers for the flattened times: each writes `<name>` and
/// `<name>_dt`, or nothing for `None`.
macro_rules! time_fields {
    ($($name:ident),*) => {$(
        fn $name<T: TimeFields, S: serde::Serializer>(t: &T, s: S) -> Result<S::Ok, S::Error> {
            t.write([stringify!($name), concat!(stringify!($name), "_dt")], s)
        }
    )*};
}
time_fields!(created_time, modified_time, first_seen_time, last_seen_time, logged_time);

/// A time field or an absent one, written as the two keys OCSF names.
trait TimeFields {
    fn write<S: serde::Serializer>(&self, names: [&'static str; 2], s: S) -> Result<S::Ok, S::Error>;
}

impl TimeFields for Time {
    fn write<S: serde::Serializer>(&self, names: [&'static str; 2], s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry(names[0], &self.ms)?;
        map.serialize_entry(names[1], &self.dt)?;
        map.end()
    }
}

impl TimeFields for Option<Time> {
    fn write<S: serde::Serializer>(&self, names: [&'static str; 2], s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Some(t) => t.write(names, s),
            None => s.serialize_map(Some(0))?.end(),
        }
    }
}

impl<'a> Finding<'a> {
    fn of(event: &'a Event, product: &Product) -> Finding<'a> {
        let activity = Activity::of(event, product);
        let (severity_id, severity_name) = severity(event.severity.level);
        let (status_id, status_name) = status(event.status.state);
        let mapped = entities::map(&event.entities);
        let mut unmapped = mapped.unmapped;
        unmapped.insert("alertd_schema_version".into(), json!(event.schema_version));
        unmapped.insert("revision".into(), json!(event.revision));
        if let Some(v) = &event.severity.vendor {
            unmapped.insert("vendor_severity".into(), json!(v));
        }
        Finding {
            activity_id: activity as u8,
            activity_name: activity.name(),
            category_uid: 2,
            category_name: "Findings",
            class_uid: CLASS_UID,
            class_name: "Detection Finding",
            type_uid: CLASS_UID * 100 + activity as u32,
            type_name: match activity {
                Activity::Create => "Detection Finding: Create",
                Activity::Update => "Detection Finding: Update",
                Activity::Close => "Detection Finding: Close",
            },
            severity_id,
            severity: severity_name,
            status_id,
            status: status_name,
            status_detail: event.status.vendor.as_deref(),
            is_alert: true,
            message: &event.title,
            time: ms(event.created_at),
            time_dt: dt(event.created_at),
            timezone_offset: 0,
            finding_info: FindingInfo {
                uid: &event.native_id,
                title: &event.title,
                desc: event.description.as_deref(),
                created_time: Time::of(event.created_at),
                modified_time: event.updated_at.map(Time::of),
                first_seen_time: event.observed_at.map(Time::of),
                last_seen_time: event.observed_at.map(Time::of),
                types: [event.source.kind.as_str()],
                src_url: event.console_url.as_deref(),
                analytic: analytic(&event.tags),
                attacks: event.attack.iter().map(attack).collect(),
            },
            metadata: Metadata {
                product: ProductName { name: product.name, vendor_name: product.vendor_name },
                version: OCSF_VERSION,
                profiles: ["datetime"],
                uid: event.id.to_string(),
                original_event_uid: &event.native_id,
                tenant_uid: &event.source.name,
                log_name: event.source.kind.as_str(),
                log_provider: &event.source.vendor,
                logged_time: Time::of(event.ingested_at),
                labels: &event.tags,
            },
            device: mapped.device,
            evidences: mapped.evidences,
            observables: mapped.observables,
            unmapped,
        }
    }
}

#[cfg(test)]
mod tests;
