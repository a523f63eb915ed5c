//! A vendor's answer parsed once: the envelope as a [`Value`], and the item
//! list at a path of keys taken out of it as items *and* their texts, so an
//! event's `raw` is the vendor's own bytes for the item rather than the
//! item parsed into a tree and serialized again (issue 16, "one parse, few
//! copies").
//!
//! The list is read as borrowed [`RawValue`]s (a scan that validates and
//! allocates nothing), and each item is then parsed from its text. A
//! vendor that does not use this (the `http` source's JSONPath lists)
//! leaves its pages without texts, and `raw` is serialized from the item.

use std::fmt;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::PageError;
use super::keep::Keep;
use crate::paginate::{Continuation, Page};

/// An answer split at its item list.
#[derive(Debug)]
pub struct Envelope {
    /// The answer, without the item list when that was an array (its key
    /// is then absent); any other value at the path stays in place, for
    /// the vendor's own shape errors.
    pub rest: Value,
    /// The item list, when the path led to an array.
    pub items: Option<Items>,
}

/// An item list: each item parsed, and its text as the vendor sent it.
#[derive(Debug, Default)]
pub struct Items {
    /// The items (the part of each the vendor reads, see [`Keep`]).
    pub values: Vec<Value>,
    /// Each item's JSON text, in the same order.
    pub texts: Vec<Box<RawValue>>,
    /// True when `values` hold only part of each item.
    pub partial: bool,
}

/// Parse `body`, taking the array at `path` (object keys from the top)
/// out as [`Items`], each item parsed as far as `keep` says. Fails
/// ([`PageError::Json`]) as `serde_json` does on the whole answer: invalid
/// JSON, invalid UTF-8, nesting past its recursion limit (in an item too),
/// trailing characters.
pub fn parse(body: &[u8], path: &[&str], keep: &Keep) -> Result<Envelope, PageError> {
    parse_json(body, path, keep).map_err(|e| PageError::Json(e.to_string()))
}

impl Items {
    /// The page of these items (with their texts) and `continuation`.
    pub fn into_page(self, continuation: Continuation) -> Page {
        let partial = self.partial;
        Page::with_texts(self.values, self.texts, continuation).partial(partial)
    }
}

fn parse_json(body: &[u8], path: &[&str], keep: &Keep) -> Result<Envelope, serde_json::Error> {
    let Ok(text) = std::str::from_utf8(body) else {
        // Let serde_json say where and what (its message and position).
        return serde_json::from_slice::<Value>(body).map(|rest| Envelope { rest, items: None });
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let mut list = None;
    let rest = match (Level { path, list: &mut list }).deserialize(&mut de)? {
        Found::Value(v) => v,
        // The whole answer was the list (an empty path).
        Found::List => Value::Null,
    };
    de.end()?;
    let items = match list {
        Some(texts) => Some(items_of(texts, keep)?),
        None => None,
    };
    Ok(Envelope { rest, items })
}

fn items_of(raw: Vec<&RawValue>, keep: &Keep) -> Result<Items, serde_json::Error> {
    let mut values = Vec::with_capacity(raw.len());
    let mut texts = Vec::with_capacity(raw.len());
    for r in raw {
        values.push(keep.parse(r.get())?);
        texts.push(r.to_owned());
    }
    Ok(Items { values, texts, partial: keep.is_partial() })
}

/// A value at one level of the path: an object whose key `path[0]` leads
/// on, or (with the path used up) the list itself.
struct Level<'p, 'l, 'de> {
    path: &'p [&'p str],
    list: &'l mut Option<Vec<&'de RawValue>>,
}

/// What a level produced: a value for its parent, or the list taken out.
enum Found {
    Value(Value),
    List,
}

impl<'de> DeserializeSeed<'de> for Level<'_, '_, 'de> {
    type Value = Found;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Found, D::Error> {
        deserializer.deserialize_any(LevelVisitor(self))
    }
}

struct LevelVisitor<'p, 'l, 'de>(Level<'p, 'l, 'de>);

impl<'de> Visitor<'de> for LevelVisitor<'_, '_, 'de> {
    type Value = Found;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    // Every value that is neither the path's object nor the list is built
    // as serde_json's own `Value` would be.
    super::keep::json_scalars!(Found::Value);

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Found, A::Error> {
        if !self.0.path.is_empty() {
            return value_of_seq(seq).map(Found::Value);
        }
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            list.push(item);
        }
        *self.0.list = Some(list);
        Ok(Found::List)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
        let Some((first, rest)) = self.0.path.split_first() else {
            return value_of_map(map).map(Found::Value);
        };
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == *first {
                let level = Level { path: rest, list: &mut *self.0.list };
                match map.next_value_seed(level)? {
                    Found::Value(v) => {
                        out.insert(key, v);
                    }
                    // A later duplicate key wins, as in serde_json's `Value`.
                    Found::List => {
                        out.remove(&key);
                    }
                }
            } else {
                let value = map.next_value::<Value>()?;
                out.insert(key, value);
            }
        }
        Ok(Found::Value(Value::Object(out)))
    }
}

/// A plain [`Value`] of a sequence already opened.
fn value_of_seq<'de, A: SeqAccess<'de>>(seq: A) -> Result<Value, A::Error> {
    serde::Deserialize::deserialize(SeqAccessDeserializer::new(seq))
}

/// A plain [`Value`] of a map already opened.
fn value_of_map<'de, A: MapAccess<'de>>(map: A) -> Result<Value, A::Error> {
    serde::Deserialize::deserialize(MapAccessDeserializer::new(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts(items: &Items) -> Vec<&str> {
        items.texts.iter().map(|t| t.get()).collect()
    }

    #[test]
    fn the_list_is_taken_out_with_each_items_own_text() {
        let body =
            br#"{"meta": {"total": 2}, "data": [ {"id": 1, "s": "caf\u00e9",  "n": 1.50}, [2] ], "z": null}"#;
        let envelope = parse(body, &["data"], &Keep::All).unwrap();
        assert_eq!(envelope.rest, json!({"meta": {"total": 2}, "z": null}));
        let items = envelope.items.unwrap();
        assert_eq!(items.values, vec![json!({"id": 1, "s": "café", "n": 1.5}), json!([2])]);
        // The vendor's bytes, escapes, spacing and number spelling kept.
        assert_eq!(texts(&items), vec![r#"{"id": 1, "s": "caf\u00e9",  "n": 1.50}"#, "[2]"]);
    }

    #[test]
    fn a_path_of_keys_leads_to_a_nested_list() {
        let body = br#"{"data": {"hasMore": true, "alerts": [{"a": 1}]}, "alerts": [9]}"#;
        let envelope = parse(body, &["data", "alerts"], &Keep::All).unwrap();
        assert_eq!(envelope.rest, json!({"data": {"hasMore": true}, "alerts": [9]}));
        assert_eq!(texts(&envelope.items.unwrap()), vec![r#"{"a": 1}"#]);
    }

    #[test]
    fn anything_but_an_array_stays_in_the_envelope() {
        for (body, rest) in [
            (&br#"{"data": {"x": 1}}"#[..], json!({"data": {"x": 1}})),
            (br#"{"data": null}"#, json!({"data": null})),
            (br#"{"data": "no"}"#, json!({"data": "no"})),
            (br#"{"other": [1]}"#, json!({"other": [1]})),
            (br#"[{"data": [1]}]"#, json!([{"data": [1]}])),
            (br#""text""#, json!("text")),
            (br#"{"data": {"alerts": 5}}"#, json!({"data": {"alerts": 5}})),
        ] {
            let envelope = parse(body, &["data", "alerts"], &Keep::All).unwrap();
            assert!(envelope.items.is_none(), "{}", String::from_utf8_lossy(body));
            assert_eq!(envelope.rest, rest);
        }
        let envelope = parse(br#"{"data": -1.5e3}"#, &["data"], &Keep::All).unwrap();
        assert_eq!(envelope.rest, json!({"data": -1500.0}));
    }

    #[test]
    fn the_last_of_duplicate_keys_wins_as_in_a_value() {
        let envelope = parse(br#"{"data": [1], "data": {"x": 2}}"#, &["data"], &Keep::All).unwrap();
        assert_eq!(envelope.rest, json!({"data": {"x": 2}}));
        let envelope = parse(br#"{"data": 7, "data": [3]}"#, &["data"], &Keep::All).unwrap();
        assert_eq!(envelope.rest, json!({}));
        assert_eq!(texts(&envelope.items.unwrap()), vec!["3"]);
    }

    #[test]
    fn bad_json_fails_as_serde_json_fails_on_the_whole_answer() {
        let deep = format!("{{\"data\": [{}{}]}}", "[".repeat(200), "]".repeat(200));
        let shallow = format!("{{\"data\": [{}{}]}}", "[".repeat(100), "]".repeat(100));
        assert!(parse(shallow.as_bytes(), &["data"], &Keep::All).is_ok());
        for body in [
            &b"<html>502</html>"[..],
            b"{\"data\": [1,]}",
            b"{\"data\": [1]} trailing",
            b"{\"data\": [\"\xff\"]}",
            b"",
            deep.as_bytes(),
        ] {
            let ours = parse_json(body, &["data"], &Keep::All).map(|_| ()).unwrap_err().to_string();
            let theirs = serde_json::from_slice::<Value>(body).unwrap_err().to_string();
            // The same error, at most at another column inside an item.
            assert_eq!(ours.split(" at ").next(), theirs.split(" at ").next(), "{ours} / {theirs}");
        }
    }
}
