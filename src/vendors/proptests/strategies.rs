//! Generators of vendor-shaped JSON.
//!
//! A shape is a JSON template: an object lists the vendor's field names, an
//! array holds the template of its elements, and a string leaf names the
//! kind of value the field holds (`$time`, `$ip`, …). [`shaped`] turns a
//! template into items where each key may be missing (keys written `?key`
//! are rare, for error markers that would otherwise fail every page), each
//! value may be of any other JSON type, and each leaf is drawn from both
//! plausible values and the odd ones vendors send.

use std::net::{Ipv4Addr, Ipv6Addr};

use chrono::{FixedOffset, SecondsFormat, TimeZone, Utc};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::{Map, Number, Value, json};

/// Strings that have broken parsers before, or might: empty and blank text,
/// markers, numbers and times in every odd form, years past 9999 and before
/// 0, out-of-range epochs, non-ASCII.
const ODD_STRINGS: &[&str] = &[
    "",
    " ",
    "N/A",
    "null",
    "NaN",
    "inf",
    "-inf",
    "1e400",
    "-1",
    "0",
    "1.5",
    "99999999999999999999999",
    "True",
    "False",
    "yes",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:30:00-01:00",
    "0000-01-01T00:00:00+23:59",
    "0000-01-01T00:00:00Z",
    "9999-12-31 23:59:59 UTC-0100",
    "0000-01-01 00:00:00 +0100",
    "+275760-09-13T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-03-27T08:15:42.123456789123Z",
    "2026-03-27T25:61:61Z",
    "Fri, 31 Dec 9999 23:59:59 -2359",
    "253402300800",
    "253402300800000",
    "1e15",
    "18446744073709551616",
    "-62167219201",
    "1720684078",
    "2024-07-11 07:47:58 UTC+0000",
    "Thu, 11 Jul 2024 07:48:01 GMT",
    "999.1.1.1",
    "::ffff:1.2.3.4",
    "fe80::1%eth0",
    "low",
    "HIGH",
    "Critical",
    "Improved",
    "CLOSED",
    "remediated",
    "not_remediated_false_positive",
    "crypto_eth",
    "source_ip",
    "T1059.001",
    "Credential Access",
    "ü日本語\u{0}\u{202e}",
    "https://tenant.example/x?page=2",
];

/// Strings matching `regex`, parsed once (a `&str` strategy parses its
/// regex for every value it generates).
fn pattern(regex: &str) -> BoxedStrategy<String> {
    proptest::string::string_regex(regex).expect("a valid regex").boxed()
}

/// A string vendors might send anywhere.
pub(super) fn odd_string() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(ODD_STRINGS).prop_map(str::to_owned),
        2 => pattern("\\PC{0,12}"),
        1 => pattern(".{0,40}"),
    ]
    .boxed()
}

/// A JSON number of any magnitude (serde_json holds no NaN or infinity).
fn odd_number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        select(&[0.0, -0.0, 1e11, 1e11 + 1.0, 2.6e14, 9.2e18, 1.8e19, 1e300, -1e300][..])
            .prop_map(|f| json!(f)),
        (-3i64..3).prop_map(Value::from),
    ]
    .boxed()
}

/// A value of any JSON type, at most two levels deep.
pub(super) fn odd() -> BoxedStrategy<Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        odd_number(),
        odd_string().prop_map(Value::String),
    ];
    scalar
        .prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::vec((pattern("[a-z_]{1,8}"), inner), 0..3)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A time in one of the forms vendors write, from year 0 to 9999 UTC, with
/// offsets that may carry it past either end.
fn time() -> BoxedStrategy<Value> {
    let instant = (-62_167_219_200i64..=253_402_300_799i64, 0u32..1_000_000_000, -1439i32..=1439, 0u8..8);
    prop_oneof![
        6 => instant.prop_map(|(secs, nanos, offset, form)| time_in_form(secs, nanos, offset, form)),
        1 => odd_number(),
        1 => odd_string().prop_map(Value::String),
    ]
    .boxed()
}

fn time_in_form(secs: i64, nanos: u32, offset_minutes: i32, form: u8) -> Value {
    let t = Utc.timestamp_opt(secs, nanos).single().expect("the range is representable");
    let offset = FixedOffset::east_opt(offset_minutes * 60).expect("offset within a day");
    match form {
        0 => json!(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        1 => json!(t.with_timezone(&offset).to_rfc3339()),
        2 => json!(t.format("%Y-%m-%d %H:%M:%S").to_string()),
        3 => json!(t.with_timezone(&offset).format("%Y-%m-%d %H:%M:%S UTC%z").to_string()),
        4 if secs >= 0 => json!(t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()),
        5 => json!(secs),
        6 => json!(secs.to_string()),
        _ => json!(secs.saturating_mul(1000) + i64::from(nanos / 1_000_000)),
    }
}

fn ip() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => any::<Ipv4Addr>().prop_map(|a| json!(a.to_string())),
        1 => any::<Ipv6Addr>().prop_map(|a| json!(a.to_string())),
        1 => odd_string().prop_map(Value::String),
    ]
    .boxed()
}

fn integer() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => (0i64..5000).prop_map(Value::from),
        1 => (0i64..5000).prop_map(|n| json!(n.to_string())),
        1 => odd_number(),
        1 => odd_string().prop_map(Value::String),
    ]
    .boxed()
}

fn boolean() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => any::<bool>().prop_map(Value::Bool),
        1 => select(&["True", "False", "true", "1", "0", "maybe"][..]).prop_map(|s| json!(s)),
        1 => (-1i64..3).prop_map(Value::from),
    ]
    .boxed()
}

fn float() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => (-180.0f64..180.0).prop_map(|f| json!(f)),
        1 => odd_number(),
        1 => select(&["52.52", "NaN", "inf", "-inf", "1e400", "x"][..]).prop_map(|s| json!(s)),
    ]
    .boxed()
}

/// An id: usually a non-empty string or number.
fn id() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => pattern("[a-z0-9:_-]{1,24}").prop_map(Value::String),
        2 => (0u64..1_000_000).prop_map(Value::from),
        1 => odd_string().prop_map(Value::String),
        1 => odd_number(),
    ]
    .boxed()
}

/// A next/self link: the tenant's own, relative, foreign, or garbage; as a
/// string or a JSON:API `{href}` object.
fn link() -> BoxedStrategy<Value> {
    let text = prop_oneof![
        (0u64..20, 0u64..60)
            .prop_map(|(p, n)| format!("https://tenant.example/openapi/v3/detections?page={p}&per_page={n}")),
        (0u64..20).prop_map(|p| format!("/openapi/v3/detections?page={p}")),
        Just("https://evil.example/openapi/v3/detections?page=2".to_owned()),
        Just("http://tenant.example:99999/".to_owned()),
        Just(format!("https://tenant.example/?page={}", u64::MAX)),
        odd_string(),
    ];
    prop_oneof![
        3 => text.clone().prop_map(Value::String),
        1 => text.prop_map(|href| json!({ "href": href })),
    ]
    .boxed()
}

/// Text: plausible words and the odd strings.
fn text() -> BoxedStrategy<Value> {
    prop_oneof![
        2 => pattern("[A-Za-z][A-Za-z0-9 ._-]{0,20}").prop_map(Value::String),
        2 => odd_string().prop_map(Value::String),
        1 => ip(),
    ]
    .boxed()
}

/// One of `words` (a `$one:a|b|c` leaf), or any text.
fn one_of(words: &str) -> BoxedStrategy<Value> {
    let words: Vec<Value> = words.split('|').map(|w| json!(w)).collect();
    prop_oneof![3 => select(words), 1 => text()].boxed()
}

fn leaf(kind: &str) -> BoxedStrategy<Value> {
    match kind {
        "$id" => id(),
        "$time" => time(),
        "$ip" => ip(),
        "$int" => integer(),
        "$bool" => boolean(),
        "$float" => float(),
        "$link" => link(),
        "$text" => text(),
        other => match other.strip_prefix("$one:") {
            Some(words) => one_of(words),
            None => panic!("unknown leaf kind `{other}` in a shape"),
        },
    }
}

/// Items shaped like `template` (see the module doc).
pub(super) fn shaped(template: &Value) -> BoxedStrategy<Value> {
    let strategy = match template {
        Value::Object(fields) => {
            let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
                .iter()
                .map(|(key, value)| {
                    let (key, present) = match key.strip_prefix('?') {
                        Some(rare) => (rare.to_owned(), 0.1),
                        None => (key.clone(), 0.9),
                    };
                    proptest::option::weighted(present, shaped(value))
                        .prop_map(move |v| v.map(|v| (key.clone(), v)))
                        .boxed()
                })
                .collect();
            let extra = proptest::option::weighted(0.1, (pattern("[a-z_]{1,8}"), odd()));
            (fields, extra)
                .prop_map(|(fields, extra)| {
                    let mut object: Map<String, Value> = fields.into_iter().flatten().collect();
                    if let Some((k, v)) = extra {
                        object.entry(k).or_insert(v);
                    }
                    Value::Object(object)
                })
                .boxed()
        }
        Value::Array(element) => {
            let element = element.first().map_or_else(odd, shaped);
            prop::collection::vec(element, 0..4).prop_map(Value::Array).boxed()
        }
        Value::String(kind) => leaf(kind),
        other => Just(other.clone()).boxed(),
    };
    prop_oneof![9 => strategy, 1 => odd()].boxed()
}

/// Response bodies for an envelope `template`: arbitrary bytes, whole
/// envelopes, envelopes cut short, and envelopes with a byte changed.
pub(super) fn bodies(template: &Value) -> BoxedStrategy<Vec<u8>> {
    let whole = shaped(template).prop_map(|v| serde_json::to_vec(&v).expect("JSON serializes"));
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..256),
        4 => whole.clone(),
        2 => (whole.clone(), any::<Index>()).prop_map(|(mut body, cut)| {
            body.truncate(cut.index(body.len() + 1));
            body
        }),
        1 => (whole, any::<Index>(), any::<u8>()).prop_map(|(mut body, at, byte)| {
            if !body.is_empty() {
                let i = at.index(body.len());
                body[i] = byte;
            }
            body
        }),
    ]
    .boxed()
}
