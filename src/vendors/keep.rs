//! The part of an item its vendor reads, and a parse that builds only that
//! part (issue 16, "one parse, few copies").
//!
//! A vendor's item becomes an event through a few dozen JSON pointers, but
//! parsing it into a [`Value`] allocates every key, string and map node of
//! it, and dropping the tree frees them again: about half of a Red Canary
//! detection (links, reporting tags, the related user) and much of a
//! Thinkst incident's events are fields no pointer reaches. A vendor that lists what it reads ([`Keep`]) gets its
//! items parsed with the rest skipped: the item is still read whole, and
//! fails as `serde_json` fails on the whole item (invalid JSON, nesting past
//! its recursion limit, in a skipped part too), but the skipped parts build
//! nothing.
//!
//! A projected item is only for reading fields: an event's `raw` is the
//! item's own text (see [`super::envelope`]), and a dead letter carries the
//! whole item, parsed again from that text ([`crate::paginate::Page::whole`]).
//!
//! Two rules keep a projection indistinguishable from the whole item to
//! code that reads only the listed keys:
//! - an array keeps every element, each projected with the same [`Keep`],
//!   so lengths and positions hold;
//! - an object that had keys never comes out empty: when none of its listed
//!   keys is present, its first key stays (as `null`), so that "an empty
//!   object" reads the same (Red Canary's hollow detections are those whose
//!   `attributes` are empty).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// What of a value to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The whole value.
    All,
    /// Of an object, these keys (each with what to keep of its value); of
    /// an array, this for each element; a scalar whole.
    Keys(&'static [(&'static str, Keep)]),
}

impl Keep {
    /// Parse one item's `text`, keeping this part of it.
    ///
    /// # Errors
    /// Where `serde_json::from_str::<Value>` fails on the whole text. (One
    /// difference stays: serde_json reads an object whose first key is its
    /// private `$serde_json::private::RawValue` token as the JSON text that
    /// key holds; a projection reads it as the object it is.)
    pub fn parse(&self, text: &str) -> Result<Value, serde_json::Error> {
        if *self == Keep::All {
            return serde_json::from_str(text);
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let value = Part(self).deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }

    /// Read one value from `deserializer`, keeping this part of it (what
    /// [`Keep::parse`] does on a whole text).
    pub(super) fn read<'de, D: Deserializer<'de>>(&self, deserializer: D) -> Result<Value, D::Error> {
        Part(self).deserialize(deserializer)
    }

    /// True when this keeps less than the whole value.
    pub fn is_partial(&self) -> bool {
        *self != Keep::All
    }
}

/// The seed that builds the kept part of one value.
struct Part<'k>(&'k Keep);

impl<'de> DeserializeSeed<'de> for Part<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        match self.0 {
            Keep::All => Value::deserialize(deserializer),
            Keep::Keys(keys) => deserializer.deserialize_any(PartVisitor(keys)),
        }
    }
}

struct PartVisitor(&'static [(&'static str, Keep)]);

/// The `visit_*` methods of a visitor whose scalars become what
/// serde_json's own `Value` makes of them, each passed through `$wrap`
/// (the visitor's value type around a `Value`). Shared with
/// [`super::envelope`]'s envelope visitor.
macro_rules! json_scalars {
    ($wrap:expr) => {
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok($wrap(serde_json::Value::Bool(v)))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok($wrap(serde_json::Value::from(v)))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok($wrap(serde_json::Value::from(v)))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok($wrap(
                serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number),
            ))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok($wrap(serde_json::Value::String(v.to_owned())))
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok($wrap(serde_json::Value::String(v)))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($wrap(serde_json::Value::Null))
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($wrap(serde_json::Value::Null))
        }
    };
}
pub(super) use json_scalars;

impl<'de> Visitor<'de> for PartVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    json_scalars!(std::convert::identity);

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let keep = Keep::Keys(self.0);
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(element) = seq.next_element_seed(Part(&keep))? {
            list.push(element);
        }
        Ok(Value::Array(list))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut first_skipped: Option<Cow<'de, str>> = None;
        while let Some(key) = map.next_key_seed(Key)? {
            match self.0.iter().find(|(k, _)| *k == key) {
                Some((name, keep)) => {
                    let value = map.next_value_seed(Part(keep))?;
                    // A later duplicate wins, as in serde_json's `Value`.
                    out.insert((*name).to_owned(), value);
                }
                None => {
                    map.next_value_seed(Skip)?;
                    if first_skipped.is_none() {
                        first_skipped = Some(key);
                    }
                }
            }
        }
        if out.is_empty()
            && let Some(key) = first_skipped
        {
            out.insert(key.into_owned(), Value::Null);
        }
        Ok(Value::Object(out))
    }
}

/// An object key, borrowed from the text when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

/// A skipped value: read through `deserialize_any`, so that serde_json's
/// recursion limit and its checks of strings and numbers apply to it as to
/// a kept value (its `IgnoredAny` scan has no depth limit), building nothing.
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Keys are read as kept ones are, so they fail where those would.
        while map.next_key_seed(Key)?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The projection as a plain function of the whole value: what
    /// [`Keep::parse`] must build without building the rest.
    fn project(value: &Value, keep: &Keep) -> Value {
        let Keep::Keys(keys) = keep else {
            return value.clone();
        };
        match value {
            Value::Array(list) => Value::Array(list.iter().map(|v| project(v, keep)).collect()),
            Value::Object(map) => {
                let mut out: Map<String, Value> = map
                    .iter()
                    .filter_map(|(k, v)| {
                        keys.iter().find(|(name, _)| name == k).map(|(_, kk)| (k.clone(), project(v, kk)))
                    })
                    .collect();
                if out.is_empty()
                    && let Some(first) = map.keys().next()
                {
                    out.insert(first.clone(), Value::Null);
                }
                Value::Object(out)
            }
            scalar => scalar.clone(),
        }
    }

    const INNER: Keep = Keep::Keys(&[("b", Keep::All), ("c", Keep::Keys(&[("d", Keep::All)]))]);
    const SAMPLE: Keep = Keep::Keys(&[("a", INNER), ("id", Keep::All), ("list", INNER)]);

    #[test]
    fn only_the_listed_keys_are_built() {
        let text = r#"{"x": {"big": [1, 2, {"deep": "no"}]}, "id": 7, "a": {"b": {"kept": ["whole"]},
            "c": {"d": 1.5, "e": "dropped"}, "z": null}, "list": [{"b": 1, "q": 2}, 3, [{"c": {"d": "x"}}], {"q": 1}]}"#;
        let part = SAMPLE.parse(text).unwrap();
        assert_eq!(
            part,
            json!({"id": 7, "a": {"b": {"kept": ["whole"]}, "c": {"d": 1.5}},
                   "list": [{"b": 1}, 3, [{"c": {"d": "x"}}], {"q": null}]})
        );
        assert_eq!(part, project(&serde_json::from_str(text).unwrap(), &SAMPLE));
    }

    #[test]
    fn an_object_with_keys_never_comes_out_empty() {
        // Red Canary pads past its end with detections whose `attributes`
        // are empty: an item whose attributes hold only unlisted keys must
        // not read as one of those.
        assert_eq!(SAMPLE.parse(r#"{"a": {"q\u0041": 1, "r": 2}}"#).unwrap(), json!({"a": {"qA": null}}));
        assert_eq!(SAMPLE.parse(r#"{"a": {}}"#).unwrap(), json!({"a": {}}));
        assert_eq!(SAMPLE.parse(r#"{"q": 1}"#).unwrap(), json!({"q": null}));
    }

    #[test]
    fn all_is_the_whole_value() {
        let text = r#"{"a": [1, {"b": "\u00e9"}], "n": -0.5e3}"#;
        assert_eq!(Keep::All.parse(text).unwrap(), serde_json::from_str::<Value>(text).unwrap());
        assert!(!Keep::All.is_partial());
        assert!(SAMPLE.is_partial());
    }

    #[test]
    fn a_skipped_part_fails_where_a_whole_parse_fails() {
        let deep = format!(r#"{{"x": {}1{}}}"#, "[".repeat(200), "]".repeat(200));
        let shallow = format!(r#"{{"x": {}1{}}}"#, "[".repeat(100), "]".repeat(100));
        assert!(SAMPLE.parse(&shallow).is_ok());
        for text in [
            deep.as_str(),
            r#"{"x": "\ud800"}"#,
            r#"{"\ud800": 1}"#,
            r#"{"x": {"\ud800": 1}}"#,
            r#"{"x": "\q"}"#,
            r#"{"x": 01}"#,
            r#"{"x": 1e999}"#,
            r#"{"x": [1,]}"#,
            r#"{"x": 1} {}"#,
            r#"{"x": 1"#,
            "{\"x\": \"tab\there\"}",
        ] {
            let theirs = serde_json::from_str::<Value>(text).unwrap_err().to_string();
            let ours = SAMPLE.parse(text).unwrap_err().to_string();
            assert_eq!(ours, theirs, "{text}");
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let key = prop::sample::select(vec!["a", "b", "c", "d", "id", "list", "q", "é", "a\"b"]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "[a-z\\\\\"\u{0}-\u{1f}é😀]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6).prop_map(|pairs| Value::Object(
                    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn a_projection_is_the_whole_value_projected(value in json_value(), pretty in any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) };
            let text = text.unwrap();
            // Against the text parsed whole (serde_json reads some floats
            // back one bit off what it wrote; both parses do the same).
            let whole: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(SAMPLE.parse(&text).unwrap(), project(&whole, &SAMPLE));
            prop_assert_eq!(INNER.parse(&text).unwrap(), project(&whole, &INNER));
        }

        #[test]
        fn the_last_of_duplicate_keys_wins_as_in_a_whole_parse(a in json_value(), b in json_value()) {
            let text = format!(r#"{{"a": {a}, "id": 1, "a": {b}, "q": {a}}}"#);
            let whole: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(SAMPLE.parse(&text).unwrap(), project(&whole, &SAMPLE));
        }
    }
}
