//! Dead letters: what could not be published as an event, kept for a person.
//!
//! An item that could not be normalized goes to `<prefix>.deadletter.<vendor>`
//! verbatim, with its source and the reason. A message too large for the
//! server (`max_payload`) becomes a *truncated* dead letter instead: its id,
//! size, reason and the first bytes of what it carried, so that one huge
//! alert never stops its source (every poll would fetch the same page and
//! fail the same publish). Dead-letter ids are derived from the content, so
//! a bad item fetched again is stored once.

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::{Message, dead_letter_subject};

/// The schema name every dead letter carries.
pub const SCHEMA: &str = "alertd.deadletter.v1";

/// How many bytes of an oversized message a truncated dead letter keeps.
pub const EXCERPT_BYTES: usize = 4096;

/// Room left in `max_payload` for the headers (`Nats-Msg-Id`) and the
/// envelope around an excerpt.
pub const HEADROOM: usize = 1024;

/// The id of a dead letter for `raw` from `vendor`'s `source`.
pub fn id(vendor: &str, source: &str, raw: &[u8]) -> uuid::Uuid {
    let mut name = Vec::with_capacity(vendor.len() + source.len() + raw.len() + 2);
    name.extend_from_slice(vendor.as_bytes());
    name.push(0);
    name.extend_from_slice(source.as_bytes());
    name.push(0);
    name.extend_from_slice(raw);
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, &name)
}

/// What is known of a dead item.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The subject prefix.
    pub prefix: &'a str,
    /// Vendor key.
    pub vendor: &'a str,
    /// Source name.
    pub source: &'a str,
    /// When the page was fetched.
    pub ingested_at: DateTime<Utc>,
}

/// A dead letter holding `item` verbatim; `id` is [`id`] of its text (the
/// caller has it already, to look it up among the delivered ids).
pub fn item(origin: Origin<'_>, id: uuid::Uuid, error: &str, item: &serde_json::Value) -> Message {
    envelope(origin, id, error, "raw", item.clone())
}

/// A dead letter standing for `message`, which is larger than the server
/// accepts: the original id and subject, its size, the reason and its first
/// [`EXCERPT_BYTES`] bytes (as text, cut on a character boundary).
pub fn truncated(origin: Origin<'_>, message: &Message, max_payload: usize) -> Message {
    let error = format!(
        "message of {} bytes exceeds the NATS server's max_payload of {max_payload} bytes; only its first bytes are kept here",
        message.payload.len()
    );
    let what = serde_json::json!({
        "id": message.id,
        "subject": message.subject,
        "size": message.payload.len(),
        "excerpt": excerpt(&message.payload, EXCERPT_BYTES),
    });
    envelope(origin, id(origin.vendor, origin.source, message.id.as_bytes()), &error, "truncated", what)
}

/// One dead letter that stands for `count` further bad items of a page,
/// once a poll's dead-letter budget is spent: a vendor answering thousands
/// of broken items must not turn into thousands of messages and log lines.
pub fn overflow(origin: Origin<'_>, page: &str, count: usize, first_error: &str) -> Message {
    let id = id(origin.vendor, origin.source, format!("overflow\0{page}\0{count}\0{first_error}").as_bytes());
    let error = format!(
        "{count} more items on {page} could not be normalized; the poll's dead-letter limit was reached, so they are counted here, not copied (first reason: {first_error})"
    );
    envelope(origin, id, &error, "overflow", serde_json::json!({ "page": page, "count": count }))
}

/// The envelope every dead letter shares, with what it holds under `key`.
fn envelope(origin: Origin<'_>, id: uuid::Uuid, error: &str, key: &str, held: serde_json::Value) -> Message {
    let mut payload = serde_json::json!({
        "schema_version": SCHEMA,
        "id": id,
        "vendor": origin.vendor,
        "source": origin.source,
        "error": error,
        "ingested_at": origin.ingested_at,
    });
    payload[key] = held;
    Message {
        subject: dead_letter_subject(origin.prefix, origin.vendor),
        id: id.to_string(),
        payload: Bytes::from(payload.to_string()),
    }
}

/// The first `max` bytes of `bytes` as text, cut on a character boundary.
fn excerpt(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]);
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin<'static> {
        Origin { prefix: "alertd", vendor: "canaryguard", source: "acme", ingested_at: Utc::now() }
    }

    #[test]
    fn a_dead_item_keeps_its_raw_json_and_a_content_id() {
        let item_json = serde_json::json!({"id": "a-1", "title": null});
        let raw_id = id("canaryguard", "acme", item_json.to_string().as_bytes());
        let a = item(origin(), raw_id, "no title", &item_json);
        let b = item(origin(), raw_id, "no title", &item_json);
        assert_eq!(a.id, b.id, "the same bad item gets the same id");
        assert_eq!(a.subject, "alertd.deadletter.canaryguard");
        let v: serde_json::Value = serde_json::from_slice(&a.payload).unwrap();
        assert_eq!(v["raw"], item_json);
        assert_eq!(v["error"], "no title");
    }

    #[test]
    fn an_oversized_message_becomes_a_small_truncated_dead_letter() {
        let big = Message {
            subject: "alertd.canaryguard.acme.alert".into(),
            id: "e-1".into(),
            // Multi-byte characters straddle the excerpt's end.
            payload: Bytes::from("é".repeat(2_000_000)),
        };
        let dl = truncated(origin(), &big, 1_048_576);
        assert!(dl.payload.len() < EXCERPT_BYTES * 2 + HEADROOM, "{}", dl.payload.len());
        let v: serde_json::Value = serde_json::from_slice(&dl.payload).unwrap();
        assert_eq!(v["truncated"]["id"], "e-1");
        assert_eq!(v["truncated"]["size"], 4_000_000);
        assert!(v["error"].as_str().unwrap().contains("max_payload of 1048576"));
        assert!(v["truncated"]["excerpt"].as_str().unwrap().starts_with("éé"));
    }

    #[test]
    fn excerpts_cut_on_character_boundaries() {
        for max in 0..12 {
            let e = excerpt("aé€😀xyz".as_bytes(), max);
            assert!(e.len() <= max, "{max}: {e:?}");
        }
    }
}
