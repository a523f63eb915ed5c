//! The normalized event: alertd's one schema (v1) for every vendor's alerts.
//!
//! Subscribers (SIEM forwarders, people's own tools) read only this shape, so a
//! field added here is a promise. `schemas/alertd-event.v1.schema.json` is
//! generated from these types (`alertd schema`) and a test fails when the
//! checked-in file drifts from them.

mod id;
mod ip;
mod json;
mod time;

pub use id::{event_id, v5};
pub use ip::ip_text;
pub use json::{SIMD_ITEM_MAX, write_published};
pub use time::rfc3339;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The schema version every event carries, so consumers can route on it.
pub const SCHEMA_VERSION: &str = "alertd.event.v1";

/// Every timestamp in an event is RFC 3339 in UTC (`Z`), so consumers can
/// compare them as text; the schema enforces it with this pattern.
pub const UTC_RFC3339: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$";

/// One vendor item (at one revision), normalized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "alertd event v1")]
pub struct Event {
    /// Always `alertd.event.v1`.
    pub schema_version: String,
    /// Deterministic id: UUIDv5 of vendor, source name, native id and revision.
    /// The same item at the same revision always gets the same id; it is the
    /// JetStream `Nats-Msg-Id`, so a re-published event is deduplicated.
    pub id: Uuid,
    /// Where the event came from.
    pub source: SourceRef,
    /// The vendor's own id of the item.
    pub native_id: String,
    /// What makes an update of the same item a new event (an update counter,
    /// a version, or the item's last-modified time, per vendor).
    pub revision: String,
    /// One-line summary.
    pub title: String,
    /// Longer human-readable text, when the vendor gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Normalized severity plus the vendor's own value.
    pub severity: Severity,
    /// Normalized triage status plus the vendor's own value.
    pub status: Status,
    /// When the vendor created the item (UTC, RFC 3339).
    #[serde(serialize_with = "time::serialize")]
    #[schemars(regex(pattern = UTC_RFC3339))]
    pub created_at: DateTime<Utc>,
    /// When the vendor last changed the item, if it says.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "time::serialize_opt")]
    #[schemars(regex(pattern = UTC_RFC3339))]
    pub updated_at: Option<DateTime<Utc>>,
    /// When the activity behind the item happened, if the vendor says.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "time::serialize_opt")]
    #[schemars(regex(pattern = UTC_RFC3339))]
    pub observed_at: Option<DateTime<Utc>>,
    /// When alertd fetched the item.
    #[serde(serialize_with = "time::serialize")]
    #[schemars(regex(pattern = UTC_RFC3339))]
    pub ingested_at: DateTime<Utc>,
    /// Hosts, users, addresses and the like named by the item.
    pub entities: Entities,
    /// Free-form labels: the vendor's classification, token type, log type…
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// MITRE ATT&CK techniques, where the vendor names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attack: Vec<AttackTechnique>,
    /// A link to the item in the vendor's console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_url: Option<String>,
    /// The vendor's item, verbatim.
    pub raw: Raw,
}

/// The vendor's item, kept as its JSON text: serialized once when the event
/// is made and written into every message (the v1 event, the OCSF
/// finding's `raw_data`) as it is, never copied as a tree or serialized
/// again.
///
/// The text is always JSON: an item serialized ([`Raw::new`]), a
/// `RawValue` read ([`Deserialize`]), or, inside the crate, the text serde_json
/// just parsed an item from ([`Raw::parsed`]), which spares a second scan of
/// every item only to validate it again as a `RawValue`.
#[derive(Debug, Clone)]
pub struct Raw(Box<str>);

impl Raw {
    /// `item` as JSON text.
    pub fn new(item: &serde_json::Value) -> Raw {
        // A `Value` always serializes (its keys are strings); `null` is a
        // fallback that cannot happen.
        Raw(serde_json::to_string(item).map_or_else(|_| Box::from("null"), String::into_boxed_str))
    }

    /// `text`, which serde_json has just parsed as one JSON value (it
    /// refuses what it would not write back: trailing text, invalid
    /// escapes, lone surrogates).
    pub(crate) fn parsed(text: &str) -> Raw {
        Raw(Box::from(text))
    }

    /// An item's `text` as it is, unless it spans lines (a pretty-printed
    /// answer): an event is one line of JSON (the stdout sink writes one per
    /// line), so that one is parsed whole and written on one line. Not the
    /// parsed item the normalizer read: that may hold only the fields its
    /// vendor reads (`vendors::keep`).
    pub fn from_text(text: &Raw) -> Raw {
        // One memchr2 pass for both line breaks (a byte loop here cost as
        // much as serializing the item again; two `contains` scan twice).
        if memchr::memchr2(b'\n', b'\r', text.get().as_bytes()).is_some() {
            Raw::new(&text.to_value())
        } else {
            text.clone()
        }
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        &self.0
    }

    /// The item as a JSON value (parsed again: for tests and tools).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.get()).unwrap_or(serde_json::Value::Null)
    }
}

impl PartialEq for Raw {
    /// The same JSON, whatever its whitespace.
    fn eq(&self, other: &Raw) -> bool {
        self.get() == other.get() || self.to_value() == other.to_value()
    }
}

impl PartialEq<serde_json::Value> for Raw {
    /// `other` is the item this was made of: the same text as `other`
    /// serialized, or (the vendor's own text, spelled another way) the same
    /// value once parsed.
    fn eq(&self, other: &serde_json::Value) -> bool {
        serde_json::to_string(other).is_ok_and(|text| text == self.get()) || self.to_value() == *other
    }
}

impl Serialize for Raw {
    /// The text as it is, through serde_json's `RawValue` (which checks it
    /// again; the published paths append it themselves, see `event::json`).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde_json::from_str::<&serde_json::value::RawValue>(&self.0)
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Raw, D::Error> {
        Box::<serde_json::value::RawValue>::deserialize(deserializer).map(|raw| Raw(raw.into()))
    }
}

impl JsonSchema for Raw {
    fn inline_schema() -> bool {
        <serde_json::Value as JsonSchema>::inline_schema()
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        <serde_json::Value as JsonSchema>::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <serde_json::Value as JsonSchema>::json_schema(generator)
    }
}

/// The configured source an event came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceRef {
    /// Vendor key, e.g. `canaryguard`, `red_canary`.
    pub vendor: String,
    /// The configured source's name (one per tenant/account).
    pub name: String,
    /// What sort of item the vendor calls it.
    pub kind: Kind,
}

/// What sort of item the vendor produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A detection (Red Canary).
    Detection,
    /// An alert (CanaryGuard, Catchpoint, Rapid7 alerts).
    Alert,
    /// An incident (Thinkst Canary).
    Incident,
    /// An investigation (Rapid7).
    Investigation,
}

impl Kind {
    /// The token used in NATS subjects.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Detection => "detection",
            Kind::Alert => "alert",
            Kind::Incident => "incident",
            Kind::Investigation => "investigation",
        }
    }
}

/// Severity, normalized and as the vendor said it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Severity {
    /// alertd's scale.
    pub level: SeverityLevel,
    /// The vendor's own value, verbatim as text, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
}

/// alertd's severity scale (OCSF-compatible names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeverityLevel {
    /// The vendor gave nothing we can map.
    Unknown,
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

/// Triage status, normalized and as the vendor said it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Status {
    /// alertd's status.
    pub state: StatusState,
    /// The vendor's own value, verbatim as text, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
}

/// alertd's triage states (a subset of OCSF `status_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusState {
    /// Nobody has looked at it yet.
    New,
    /// Someone has seen or acknowledged it.
    Acknowledged,
    /// Under investigation.
    InProgress,
    /// Muted or marked benign without being resolved.
    Suppressed,
    /// Resolved or closed.
    Resolved,
    /// The vendor gave nothing we can map.
    Unknown,
}

/// Everything the item names, as far as the vendor gives it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Entities {
    /// Hosts (endpoints, sensors, canaries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<Host>,
    /// User accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<User>,
    /// IP addresses and their role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpEntity>,
    /// Geolocations (usually of a source IP).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub geo: Vec<Geo>,
    /// HTTP user agents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_agents: Vec<String>,
    /// URLs (referers, requested URLs, tested URLs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<UrlEntity>,
}

impl Entities {
    /// True when the vendor named nothing.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
            && self.users.is_empty()
            && self.ips.is_empty()
            && self.geo.is_empty()
            && self.user_agents.is_empty()
            && self.urls.is_empty()
    }
}

/// The part an entity played in the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Where the activity came from (attacker, triggering client).
    Source,
    /// What the activity targeted (canary, endpoint, decoy).
    Target,
    /// Named without a clear role.
    Related,
}

/// A host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// Host name, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The vendor's id of the host (sensor/endpoint/node id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// Its part in the item.
    pub role: Role,
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Account name as the vendor wrote it.
    pub name: String,
    /// Its part in the item.
    pub role: Role,
}

/// An IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpEntity {
    /// The address, IPv4 or IPv6, in canonical text form.
    #[serde(serialize_with = "ip::serialize")]
    pub address: std::net::IpAddr,
    /// Its part in the item.
    pub role: Role,
}

/// A geolocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Geo {
    /// The address this location belongs to, if the vendor ties it to one.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "ip::serialize_opt")]
    pub ip: Option<std::net::IpAddr>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Region or state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Country (ISO 3166-1 alpha-2 where the vendor gives that).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Latitude in degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    /// Longitude in degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
}

/// A URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UrlEntity {
    /// The URL as the vendor wrote it.
    pub url: String,
    /// Its part in the item (a referer is `source`, a requested URL `target`).
    pub role: Role,
}

/// A MITRE ATT&CK technique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttackTechnique {
    /// Technique id, e.g. `T1059` or `T1059.001`.
    pub id: String,
    /// Technique name, if the vendor gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tactic, if the vendor gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tactic: Option<String>,
}

/// The JSON Schema of [`Event`], as checked in under `schemas/`.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Event);
    serde_json::to_value(schema).unwrap_or(serde_json::Value::Null)
}
