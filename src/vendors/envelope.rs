//! A vendor's answer parsed once: the envelope as a [`Value`], and the item
//! list at a path of keys taken out of it as items *and* their texts, so an
//! event's `raw` is the vendor's own bytes for the item rather than the
//! item parsed into a tree and serialized again (issue 16, "one parse, few
//! copies").
//!
//! The answer is read in one pass ([`walk`]): the objects on the way to the
//! list and the list itself are stepped through by hand (whitespace and
//! the punctuation between values), every value in them is parsed by
//! serde_json's stream reader, which says where the value ended, and each
//! item is parsed at once into the part its vendor reads, its text being
//! the bytes between where it began and ended. Reading the list as
//! borrowed `RawValue`s first and parsing each item from its text after
//! scanned every item twice; that first scan was 11 % of a Red Canary
//! backfill (issue 16, tenth pass).
//!
//! When that pass refuses the answer, the answer is read again as before
//! (the list as borrowed [`RawValue`]s, each item parsed from its text),
//! so that an error is serde_json's on the whole answer, with its message
//! and position, and so that an answer serde_json takes is never lost to a
//! difference between the two. One margin differs, as it did for items
//! before: serde_json's depth limit counts from each value the walk reads,
//! not from the top of the answer, so an envelope value may nest a level
//! or two deeper than a whole-answer parse allows.
//!
//! A vendor that does not use this (the `http` source's JSONPath lists)
//! leaves its pages without texts, and `raw` is serialized from the item.

use std::cell::Cell;
use std::fmt;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::PageError;
use super::keep::Keep;
use crate::event::Raw;
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
    pub texts: Vec<Raw>,
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
    match walk(text, path, keep) {
        Some(envelope) => Ok(envelope),
        None => parse_twice(text, path, keep),
    }
}

/// The answer read with the list as borrowed [`RawValue`]s, each item then
/// parsed from its text: serde_json's verdict on the whole answer.
fn parse_twice(text: &str, path: &[&str], keep: &Keep) -> Result<Envelope, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mut list = None;
    let rest = (Level { path, list: &mut list }).deserialize(&mut de)?.into_rest();
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
        // Parsed by serde_json just now: JSON, as a `RawValue` is.
        texts.push(Raw::parsed(r.get()));
    }
    Ok(Items { values, texts, partial: keep.is_partial() })
}

/// The one-pass read of `text` (see the module's documentation): `None`
/// where it stops short of a whole answer, which is then read the other way.
fn walk(text: &str, path: &[&str], keep: &Keep) -> Option<Envelope> {
    let mut walk = Walk { text, at: 0, keep: *keep, items: None };
    let found = walk.level(path)?;
    walk.space();
    if walk.at != text.len() {
        return None;
    }
    let rest = found.into_rest();
    let items = walk.items.map(|(values, texts)| Items { values, texts, partial: keep.is_partial() });
    Some(Envelope { rest, items })
}

/// The reader of [`walk`]: the text, where it is, and the list once found.
struct Walk<'t> {
    text: &'t str,
    at: usize,
    keep: Keep,
    items: Option<(Vec<Value>, Vec<Raw>)>,
}

impl<'t> Walk<'t> {
    /// The value here at `path` (as [`Level`] reads it).
    fn level(&mut self, path: &[&str]) -> Option<Found> {
        self.space();
        match (path.split_first(), self.peek()) {
            (None, Some(b'[')) => self.list().map(|()| Found::List),
            (Some((first, rest)), Some(b'{')) => self.object(first, rest).map(Found::Value),
            _ => self.value().map(Found::Value),
        }
    }

    /// An object on the path: key `first` leads on, the others are values.
    fn object(&mut self, first: &str, rest: &[&str]) -> Option<Value> {
        self.at += 1;
        let mut out = Map::new();
        self.space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Some(Value::Object(out));
        }
        loop {
            self.space();
            if self.peek() != Some(b'"') {
                return None;
            }
            let key: String = self.one()?;
            self.space();
            if self.peek() != Some(b':') {
                return None;
            }
            self.at += 1;
            if key == first {
                self.level(rest)?.settle(&mut out, key);
            } else {
                let value = self.value()?;
                out.insert(key, value);
            }
            if !self.next(b'}')? {
                return Some(Value::Object(out));
            }
        }
    }

    /// The list: each item parsed into its kept part, with its text.
    fn list(&mut self) -> Option<()> {
        self.at += 1;
        KEEP.with(|k| k.set(self.keep));
        let (mut values, mut texts) = (Vec::new(), Vec::new());
        self.space();
        if self.peek() == Some(b']') {
            self.at += 1;
        } else {
            loop {
                self.space();
                let start = self.at;
                values.push(self.one::<Kept>()?.0);
                // What serde_json just parsed as one value: JSON.
                texts.push(Raw::parsed(self.text.get(start..self.at)?));
                if !self.next(b']')? {
                    break;
                }
            }
        }
        // A later duplicate list wins, as in [`Level`].
        self.items = Some((values, texts));
        Some(())
    }

    /// Any other value, as serde_json's `Value`.
    fn value(&mut self) -> Option<Value> {
        self.one()
    }

    /// One value from here, by serde_json's stream reader, which refuses a
    /// value not followed by whitespace, punctuation or the end, and says
    /// where the value ended.
    fn one<T: serde::Deserialize<'t>>(&mut self) -> Option<T> {
        let rest = self.text.get(self.at..)?;
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<T>();
        let value = stream.next()?.ok()?;
        self.at += stream.byte_offset();
        Some(value)
    }

    /// Past whitespace.
    fn space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// After a value in a list or object closed by `close`: `Some(true)`
    /// past a comma (another value follows), `Some(false)` past `close`.
    fn next(&mut self, close: u8) -> Option<bool> {
        self.space();
        let more = match self.peek()? {
            b',' => true,
            c if c == close => false,
            _ => return None,
        };
        self.at += 1;
        Some(more)
    }
}

thread_local! {
    /// What [`Kept`] keeps of an item: serde_json's stream reader takes a
    /// type, not a seed, so the walk sets it before reading a list.
    static KEEP: Cell<Keep> = const { Cell::new(Keep::All) };
}

/// An item parsed into the part [`KEEP`] says.
struct Kept(Value);

impl<'de> serde::Deserialize<'de> for Kept {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Kept, D::Error> {
        KEEP.with(Cell::get).read(deserializer).map(Kept)
    }
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

impl Found {
    /// The envelope left at the top: the value, or `null` when the whole
    /// answer was the list (an empty path).
    fn into_rest(self) -> Value {
        match self {
            Found::Value(v) => v,
            Found::List => Value::Null,
        }
    }

    /// Put what the path's `key` held into its object `out`: the value,
    /// or, for the list taken out, no key at all (a later duplicate key
    /// wins, as in serde_json's `Value`).
    fn settle(self, out: &mut Map<String, Value>, key: String) {
        match self {
            Found::Value(v) => {
                out.insert(key, v);
            }
            Found::List => {
                out.remove(&key);
            }
        }
    }
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
                map.next_value_seed(level)?.settle(&mut out, key);
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

    /// The one-pass walk reads what the two-pass read reads: the same rest,
    /// items and texts, or it stands aside (and the two-pass read decides).
    fn same_as_twice(body: &str, path: &[&str], keep: &Keep) -> bool {
        let twice = parse_twice(body, path, keep);
        match walk(body, path, keep) {
            Some(once) => {
                let twice =
                    twice.unwrap_or_else(|e| panic!("walk took what serde_json refuses ({e}): {body}"));
                assert_eq!(once.rest, twice.rest, "{body}");
                let (a, b) = (once.items, twice.items);
                assert_eq!(a.as_ref().map(|i| &i.values), b.as_ref().map(|i| &i.values), "{body}");
                assert_eq!(a.as_ref().map(texts), b.as_ref().map(texts), "{body}");
                assert_eq!(a.map(|i| i.partial), b.map(|i| i.partial), "{body}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn one_pass_reads_what_two_passes_read() {
        const KEEP: Keep = Keep::Keys(&[("id", Keep::All), ("a", Keep::Keys(&[("b", Keep::All)]))]);
        let taken = [
            (
                r#"{"meta": {"total": 2}, "data": [ {"id": 1, "s": "caf\u00e9",  "n": 1.50}, [2] ], "z": null}"#,
                &["data"][..],
            ),
            ("\n\t{ \"data\" :[ ] , \"x\":[1,{\"y\":-0.5e-3}] }\r\n", &["data"]),
            (
                r#"{"data": {"hasMore": true, "alerts": [{"a": {"b": 1, "c": 2}, "id": "x"}]}, "alerts": [9]}"#,
                &["data", "alerts"],
            ),
            (r#"[ {"a": 1} , 2 , "t\"", true, null, -1, 1e5, [[]] ]"#, &[]),
            (r#"{"data": [1], "data": {"x": "\"q\""}}"#, &["data"]),
            (r#"{"data": 7, "data": [3]}"#, &["data"]),
            (r#"{"data": [1], "data": [2, 3]}"#, &["data"]),
            (r#"{"data": "no", "k\u0041": 12345678901234567890123}"#, &["data"]),
            (r#"{"data": {"alerts": 5}}"#, &["data", "alerts"]),
            (r#"{}"#, &["data"]),
            (r#""text""#, &["data"]),
            (r#"{"d\u0061ta": [{"id": 1}]}"#, &["data"]),
        ];
        for (body, path) in taken {
            for keep in [Keep::All, KEEP] {
                assert!(same_as_twice(body, path, &keep), "the walk stood aside: {body}");
            }
        }
        let deep = format!("{{\"data\": [{}{}]}}", "[".repeat(200), "]".repeat(200));
        for body in [
            "{\"data\": [1,]}",
            "{\"data\": [1]} trailing",
            "{\"data\": [1] \"x\": 2}",
            "{\"data\" [1]}",
            "{\"data\": [1 2]}",
            "{\"data\": [1}",
            "{\"data\": [1], }",
            "{1: [1]}",
            "{\"data\": [01]}",
            "{\"data\": [1\"a\"]}",
            "{\"data\": [\"\\ud800\"]}",
            "{\"meta\": 1e400, \"data\": []}",
            "",
            "   ",
            "{\"data\": [",
            &deep,
        ] {
            assert!(!same_as_twice(body, &["data"], &KEEP), "the walk took a bad answer: {body}");
        }
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let scalar = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
            "[a-z\"\\\\\u{0}-\u{1f}é😀 ]{0,12}".prop_map(Value::String),
        ];
        scalar.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(("[a-z]{1,3}", inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Any answer, compact or pretty, with any items: the walk reads it
        /// as the two-pass read does.
        #[test]
        fn one_pass_reads_any_answer_as_two_passes_do(
            meta in any_json(),
            items in proptest::collection::vec(any_json(), 0..5),
            z in any_json(),
            pretty in proptest::prelude::any::<bool>(),
            nested in proptest::prelude::any::<bool>(),
        ) {
            const KEEP: Keep = Keep::Keys(&[("a", Keep::All), ("b", Keep::Keys(&[("c", Keep::All)]))]);
            let list = Value::Array(items);
            let (body, path): (Value, &[&str]) = if nested {
                (serde_json::json!({"meta": meta, "data": {"more": true, "alerts": list}, "z": z}), &["data", "alerts"])
            } else {
                (serde_json::json!({"meta": meta, "data": list, "z": z}), &["data"])
            };
            let text = if pretty { serde_json::to_string_pretty(&body) } else { serde_json::to_string(&body) }.unwrap();
            for keep in [Keep::All, KEEP] {
                proptest::prop_assert!(same_as_twice(&text, path, &keep), "the walk stood aside: {}", text);
            }
        }
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
