//! An event as the JSON alertd publishes: the bytes `serde_json` writes for
//! it, written with sonic-rs's serializer, whose strings are escaped with
//! SIMD. serde_json escapes a byte at a time, which took 6 % of a Red Canary
//! backfill's instructions for the events' keys and text alone
//! (docs/performance.md, issue 16's ninth pass).
//!
//! sonic-rs does not know serde_json's `RawValue`, so the event's fields
//! are written without `raw` ([`Head`]) and `raw`, always the last field,
//! is appended as the text it is. `tests` and the vendors' property tests
//! compare the bytes with serde_json's.
//!
//! sonic-rs reserves six bytes of output per byte of every string it
//! writes. An event's strings come from its item, which may be as large as
//! a body (`max_response_bytes`), so the fields of an event from an item
//! over [`SIMD_ITEM_MAX`] are written by serde_json instead: the same
//! bytes, and no reservation six times a hostile item's size.

use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::{Event, time};

/// The largest item whose event (and OCSF finding) sonic-rs writes: far
/// above a real alert (1–3 KB), small enough that six times it is nothing.
pub const SIMD_ITEM_MAX: usize = 64 * 1024;

/// Append `value` as JSON to `out`, for a message made from an item of
/// `item_len` bytes: by sonic-rs up to [`SIMD_ITEM_MAX`], else by
/// serde_json; the same bytes either way.
pub fn write_published<T: Serialize>(
    out: &mut Vec<u8>,
    value: &T,
    item_len: usize,
) -> Result<(), serde_json::Error> {
    if item_len <= SIMD_ITEM_MAX {
        sonic_rs::to_writer(&mut *out, value).map_err(serde::ser::Error::custom)
    } else {
        serde_json::to_writer(&mut *out, value)
    }
}

impl Event {
    /// Append the event's JSON to `out`: what `serde_json::to_writer`
    /// writes for it, byte for byte.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        let start = out.len();
        write_published(out, &Head(self), self.raw.get().len())?;
        // `{…}` → `{…,"raw":…}`: `Head` always has fields, so a comma.
        if out.len() <= start + 2 || out.pop() != Some(b'}') {
            return Err(serde::ser::Error::custom("an event's fields did not serialize as an object"));
        }
        out.extend_from_slice(b",\"raw\":");
        out.extend_from_slice(self.raw.get().as_bytes());
        out.push(b'}');
        Ok(())
    }
}

/// Every field of an [`Event`] but `raw`, in its order, with its names and
/// skips. The destructuring names each field, so a field added to `Event`
/// does not compile until it is written here too.
struct Head<'a>(&'a Event);

impl Serialize for Head<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Event {
            schema_version,
            id,
            source,
            native_id,
            revision,
            title,
            description,
            severity,
            status,
            created_at,
            updated_at,
            observed_at,
            ingested_at,
            entities,
            tags,
            attack,
            console_url,
            raw: _,
        } = self.0;
        let mut s = serializer.serialize_struct("Event", 17)?;
        s.serialize_field("schema_version", schema_version)?;
        s.serialize_field("id", id)?;
        s.serialize_field("source", source)?;
        s.serialize_field("native_id", native_id)?;
        s.serialize_field("revision", revision)?;
        s.serialize_field("title", title)?;
        if let Some(description) = description {
            s.serialize_field("description", description)?;
        }
        s.serialize_field("severity", severity)?;
        s.serialize_field("status", status)?;
        s.serialize_field("created_at", &Time(created_at))?;
        if let Some(updated_at) = updated_at {
            s.serialize_field("updated_at", &Time(updated_at))?;
        }
        if let Some(observed_at) = observed_at {
            s.serialize_field("observed_at", &Time(observed_at))?;
        }
        s.serialize_field("ingested_at", &Time(ingested_at))?;
        s.serialize_field("entities", entities)?;
        if !tags.is_empty() {
            s.serialize_field("tags", tags)?;
        }
        if !attack.is_empty() {
            s.serialize_field("attack", attack)?;
        }
        if let Some(console_url) = console_url {
            s.serialize_field("console_url", console_url)?;
        }
        s.end()
    }
}

/// A timestamp as the event's `serialize_with` writes it.
struct Time<'a>(&'a chrono::DateTime<chrono::Utc>);

impl Serialize for Time<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        time::serialize(self.0, serializer)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use crate::event::*;

    fn bare() -> Event {
        let at = Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap();
        Event {
            schema_version: SCHEMA_VERSION.into(),
            id: event_id("v", "s", "n", "1"),
            source: SourceRef { vendor: "v".into(), name: "s".into(), kind: Kind::Alert },
            native_id: "n".into(),
            revision: "1".into(),
            title: "t".into(),
            description: None,
            severity: Severity { level: SeverityLevel::Unknown, vendor: None },
            status: Status { state: StatusState::Unknown, vendor: None },
            created_at: at,
            updated_at: None,
            observed_at: None,
            ingested_at: at,
            entities: Entities::default(),
            tags: Vec::new(),
            attack: Vec::new(),
            console_url: None,
            raw: Raw::new(&serde_json::json!({})),
        }
    }

    fn both(event: &Event) -> (String, String) {
        let mut ours = Vec::new();
        event.write_json(&mut ours).unwrap();
        (String::from_utf8(ours).unwrap(), serde_json::to_string(event).unwrap())
    }

    #[test]
    fn a_bare_event_is_written_as_serde_json_writes_it() {
        let (ours, theirs) = both(&bare());
        assert_eq!(ours, theirs);
    }

    #[test]
    fn every_optional_field_and_any_text_is_written_as_serde_json_writes_it() {
        let mut e = bare();
        let text = "quote \" backslash \\ tab \t nl \n nul \u{0} del \u{7f} é ✓ 😀 </script>";
        e.title = text.into();
        e.description = Some(text.into());
        e.severity.vendor = Some("5".into());
        e.status.vendor = Some(text.into());
        e.updated_at =
            Some(Utc.with_ymd_and_hms(2026, 12, 3, 11, 0, 0).unwrap() + chrono::TimeDelta::microseconds(7));
        e.observed_at = Some(Utc.with_ymd_and_hms(1999, 1, 1, 0, 0, 0).unwrap());
        e.entities.user_agents = vec![text.into()];
        e.entities.geo = vec![Geo {
            country: Some("FR".into()),
            region: None,
            city: Some(text.into()),
            lat: Some(48.856_6),
            lon: Some(-0.1),
            ip: Some("2001:db8::1".parse().unwrap()),
        }];
        e.tags = vec!["a".into(), text.into()];
        e.attack = vec![AttackTechnique { id: "T1059.001".into(), name: Some(text.into()), tactic: None }];
        e.console_url = Some("https://example.invalid/a?b=c&d=\"e\"".into());
        e.raw = Raw::new(&serde_json::json!({"k": text, "n": [1, 2.5, -3e300, null, true]}));
        let (ours, theirs) = both(&e);
        assert_eq!(ours, theirs);
        let back: Event = serde_json::from_str(&ours).unwrap();
        assert_eq!(back, e);
    }

    /// An event of a large item is written without reserving six bytes
    /// per byte of its strings (which sonic-rs would), and still as
    /// serde_json writes it.
    #[test]
    fn a_large_items_event_takes_no_sixfold_reservation() {
        let mut e = bare();
        let long = "x".repeat(2 * super::SIMD_ITEM_MAX);
        e.title = long.clone();
        e.raw = Raw::new(&serde_json::json!({ "title": long }));
        let mut out = Vec::new();
        e.write_json(&mut out).unwrap();
        assert_eq!(out, serde_json::to_vec(&e).unwrap());
        // Grown by doubling, not six times the title at once.
        assert!(out.capacity() <= 2 * out.len(), "{} reserved for {} bytes", out.capacity(), out.len());
    }

    #[test]
    fn it_appends_to_what_is_in_the_buffer() {
        let mut out = b"[".to_vec();
        bare().write_json(&mut out).unwrap();
        assert_eq!(out, [b"[".as_slice(), serde_json::to_string(&bare()).unwrap().as_bytes()].concat());
    }
}
