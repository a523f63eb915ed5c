//! Lenient field access shared by the normalizers.
//!
//! Vendors' JSON is patchy: numbers as strings, several timestamp formats,
//! fields that are null, absent or empty. These helpers read what is there and
//! say precisely which field is missing or unreadable when a required one is.

use chrono::{DateTime, Datelike, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

use super::NormalizeError;

/// The value at `pointer` (`/a/b`), if present and not null.
pub fn get<'a>(item: &'a Value, pointer: &str) -> Option<&'a Value> {
    lookup(item, pointer).filter(|v| !v.is_null())
}

/// [`Value::pointer`] without its allocations: serde_json unescapes every
/// token into a new `String` (two `replace` calls), which, at a dozen
/// fields per item, was about 8 % of a backfill's CPU. Tokens with an
/// escape (`~0`, `~1`) take serde_json's path.
///
/// The tokens are found with one byte loop, which also looks for `~`:
/// `str::split('/')` and `contains('~')` go through a `CharSearcher` or
/// memchr with their set-up, more than the loop on pointers this short
/// (a separate `contains(&b'~')` pass was 12 % of a lookup's instructions).
pub fn lookup<'a>(item: &'a Value, pointer: &str) -> Option<&'a Value> {
    let bytes = pointer.as_bytes();
    if bytes.is_empty() {
        return Some(item);
    }
    if bytes[0] != b'/' {
        return None;
    }
    let mut value = item;
    let mut start = 1;
    loop {
        let mut end = start;
        while let Some(&b) = bytes.get(end) {
            match b {
                b'/' => break,
                // Unescaping is serde_json's; the tokens before this one
                // have no escape, so it walks them as this loop did.
                b'~' => return item.pointer(pointer),
                _ => end += 1,
            }
        }
        // `/` is ASCII, so `start` and `end` are character boundaries.
        let token = pointer.get(start..end)?;
        value = match value {
            Value::Object(map) => map.get(token)?,
            Value::Array(list) => list.get(array_index(token)?)?,
            _ => return None,
        };
        if end == bytes.len() {
            return Some(value);
        }
        start = end + 1;
    }
}

/// An array index token as RFC 6901 spells it: digits, no leading zero
/// (`0` itself excepted), no sign.
fn array_index(token: &str) -> Option<usize> {
    if token.is_empty()
        || (token.len() > 1 && token.starts_with('0'))
        || !token.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    token.parse().ok()
}

/// A non-empty string (numbers and booleans are rendered as text).
pub fn text(item: &Value, pointer: &str) -> Option<String> {
    match get(item, pointer)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A required non-empty string.
pub fn required_text(item: &Value, pointer: &str) -> Result<String, NormalizeError> {
    text(item, pointer)
        .ok_or_else(|| NormalizeError(format!("required field `{}` is missing or empty", display(pointer))))
}

/// A finite float, from a number or numeric string (`"NaN"` and `"inf"`
/// parse as floats but are no coordinate or threshold).
pub fn float(item: &Value, pointer: &str) -> Option<f64> {
    match get(item, pointer)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

/// An integer, from a number or an integer string (Thinkst sends counts,
/// ports and ids both ways).
pub fn integer(item: &Value, pointer: &str) -> Option<i64> {
    match get(item, pointer)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean, from `true`, `"True"`, `"true"`, `1`, `"1"` and their negations.
pub fn boolean(item: &Value, pointer: &str) -> Option<bool> {
    match get(item, pointer)? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A time: RFC 3339 / ISO 8601 with or without offset (no offset means
/// UTC), `YYYY-MM-DD HH:MM:SS` (optionally followed by `UTC+0000`), RFC 1123
/// (`Wed, 08 Apr 2020 10:55:09 GMT`), or epoch seconds/milliseconds as a
/// number or string. Only years 0000 to 9999 in UTC are times: an event's
/// timestamps are RFC 3339, which has four-digit years, and a date outside
/// them (a huge epoch, `9999-12-31T23:59:59-01:00`) is garbage, not a time.
pub fn time(item: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    match get(item, pointer)? {
        Value::String(s) => parse_lenient_time(s),
        Value::Number(n) => n.as_f64().and_then(from_epoch),
        _ => None,
    }
}

/// A required time.
pub fn required_time(item: &Value, pointer: &str) -> Result<DateTime<Utc>, NormalizeError> {
    match get(item, pointer) {
        None => Err(NormalizeError(format!("required time `{}` is missing", display(pointer)))),
        Some(_) => time(item, pointer).ok_or_else(|| {
            NormalizeError(format!("time `{}` is not a recognised timestamp", display(pointer)))
        }),
    }
}

/// Parse the timestamp forms vendors use, in years 0000 to 9999 UTC (see [`time`]).
pub fn parse_lenient_time(s: &str) -> Option<DateTime<Utc>> {
    parse_any_time(s).filter(rfc3339_year)
}

/// Whether `t` has a four-digit year, as RFC 3339 requires.
fn rfc3339_year(t: &DateTime<Utc>) -> bool {
    (0..=9999).contains(&t.year())
}

fn parse_any_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    // Epoch strings (Thinkst's `created`, `updated_time`) skip the ten
    // written-out forms: none reads a string of digits and dots (each
    // needs a `-` or a month's name), so trying them first only cost time
    // (a seventh of normalizing a Thinkst incident).
    if !is_epoch_text(s)
        && let Some(t) = parse_formatted(s)
    {
        return Some(t);
    }
    s.parse::<f64>().ok().and_then(from_epoch)
}

/// Digits and dots only (`1720684078`, `1720684078.5`).
fn is_epoch_text(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// The written-out forms: RFC 3339 and ISO 8601 variants, RFC 1123.
fn parse_formatted(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f %z",
        "%Y-%m-%d %H:%M:%S %z",
        "%Y-%m-%d %H:%M:%S%.f UTC%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    DateTime::parse_from_rfc2822(s).ok().map(|t| t.with_timezone(&Utc))
}

/// Every non-empty string of the array at `pointer` (numbers rendered as
/// text); nothing when it is absent or not an array.
pub fn strings(item: &Value, pointer: &str) -> Vec<String> {
    each_string(item, pointer).collect()
}

/// [`strings`], one at a time: for arrays of any length (a hostile item's
/// tags), which a normalizer reads into a bounded list without first
/// copying the whole array.
pub fn each_string<'a>(item: &'a Value, pointer: &str) -> impl Iterator<Item = String> + 'a {
    let values = match get(item, pointer) {
        Some(Value::Array(values)) => values.as_slice(),
        _ => &[],
    };
    values.iter().filter_map(|v| match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// An enumeration or lookup value, which APIs serialize as an `{id, name}`
/// object (Catchpoint's enums, nodes, tests) or as a bare id or name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdName {
    /// The id, as text.
    pub id: Option<String>,
    /// The name.
    pub name: Option<String>,
}

/// The `{id, name}` value at `pointer`: an object's `id`/`name`, a number as
/// the id, a string as the name. `None` when absent or both parts are empty.
pub fn id_name(item: &Value, pointer: &str) -> Option<IdName> {
    let value = get(item, pointer)?;
    let found = match value {
        Value::Object(_) => IdName { id: text(value, "/id"), name: text(value, "/name") },
        Value::Number(n) => IdName { id: Some(n.to_string()), name: None },
        Value::String(s) if !s.trim().is_empty() => IdName { id: None, name: Some(s.trim().to_owned()) },
        _ => return None,
    };
    (found != IdName::default()).then_some(found)
}

/// Epoch seconds, or milliseconds when the number is too large to be seconds.
fn from_epoch(n: f64) -> Option<DateTime<Utc>> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = if n > 1e11 { n / 1000.0 } else { n };
    let whole = secs.trunc() as i64;
    let nanos = ((secs - secs.trunc()) * 1e9).round() as u32;
    Utc.timestamp_opt(whole, nanos.min(999_999_999)).single().filter(rfc3339_year)
}

fn display(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookup_agrees_with_serde_json_pointer() {
        let item = json!({
            "a": {"b": [10, {"c": "deep"}], "": "empty key", "a/b": "slash", "m~n": "tilde"},
            "0": "zero key", "n": null, "list": [1, 2, 3]
        });
        for pointer in [
            "",
            "/",
            "/a",
            "/a/b",
            "/a/b/0",
            "/a/b/1/c",
            "/a/b/2",
            "/a/b/01",
            "/a/b/-",
            "/a/b/+1",
            "/a/",
            "/a/a~1b",
            "/a/m~0n",
            "/0",
            "/n",
            "/list/2",
            "/list/3",
            "/list/x",
            "/missing/deeper",
            "a",
            "/a/b/1/c/d",
            "/list/18446744073709551616",
            "//",
            "/a//",
            "/é/b",
            "/missing/m~0n",
            "/a/b/m~0n",
            "/n/m~0n",
            "/a~1b",
            "/~",
            "/a/~2",
            "/a/m~0n/x",
        ] {
            assert_eq!(lookup(&item, pointer), item.pointer(pointer), "{pointer:?}");
        }
    }

    #[test]
    fn times_in_every_vendor_form_parse_to_the_same_instant() {
        let want = Utc.with_ymd_and_hms(2026, 3, 27, 8, 15, 42).unwrap();
        for v in [
            json!("2026-03-27T08:15:42Z"),
            json!("2026-03-27T10:15:42+02:00"),
            json!("2026-03-27T08:15:42"),
            json!("2026-03-27 08:15:42"),
            json!("2026-03-27 08:15:42 +0000"),
            json!("2026-03-27 10:15:42 UTC+0200"),
            json!("2026-03-27 08:15:42 UTC+0000"),
            json!("Fri, 27 Mar 2026 08:15:42 GMT"),
            json!(1774599342),
            json!("1774599342"),
            json!(1774599342000_i64),
        ] {
            assert_eq!(time(&json!({ "t": v }), "/t"), Some(want), "{v}");
        }
    }

    /// Epoch strings skip the written-out forms: that is only the same
    /// answer while none of those forms reads digits and dots, which this
    /// holds (a format like `%Y%m%d` added later would fail here).
    #[test]
    fn no_written_out_form_reads_an_epoch_string() {
        for s in ["1774599342", "1774599342000", "1774599342.5", "20260327", "2026", "0", "1.2.3", ".", "00"]
        {
            assert!(is_epoch_text(s), "{s}");
            assert_eq!(parse_formatted(s), None, "{s}");
            assert_eq!(parse_lenient_time(s), s.parse::<f64>().ok().and_then(from_epoch), "{s}");
        }
        let half =
            Utc.with_ymd_and_hms(2026, 3, 27, 8, 15, 42).unwrap() + chrono::TimeDelta::milliseconds(500);
        assert_eq!(parse_lenient_time(" 1774599342.5 "), Some(half));
        for s in ["", "-1774599342", "1e9", "+1774599342", "2026-03-27"] {
            assert!(!is_epoch_text(s), "{s}");
        }
    }

    /// Found by the property tests: years past 9999 serialized as
    /// `+10000-…`, which the event schema (RFC 3339) refuses.
    #[test]
    fn times_outside_four_digit_years_are_not_times() {
        for v in [
            json!("9999-12-31T23:59:59-01:00"),
            json!("0000-01-01T00:30:00+01:00"),
            json!("9999-12-31 23:59:59 UTC-0100"),
            json!(253_402_300_800_000_i64),
            json!("253402300800000"),
            json!(1.8e19),
        ] {
            assert_eq!(time(&json!({ "t": v }), "/t"), None, "{v}");
        }
        let last = time(&json!({ "t": "9999-12-31T23:59:59Z" }), "/t").unwrap();
        assert_eq!(serde_json::to_value(last).unwrap(), json!("9999-12-31T23:59:59Z"));
        assert!(time(&json!({ "t": "0000-01-01T00:00:00Z" }), "/t").is_some());
        let err = required_time(&json!({ "t": 253_402_300_800_000_i64 }), "/t").unwrap_err();
        assert!(err.0.contains("not a recognised"), "{err}");
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let err = required_text(&json!({ "a": {} }), "/a/id").unwrap_err();
        assert!(err.0.contains("a.id"), "{err}");
        let err = required_time(&json!({ "t": "soon" }), "/t").unwrap_err();
        assert!(err.0.contains("not a recognised"), "{err}");
    }

    #[test]
    fn stringly_integers_are_read() {
        assert_eq!(integer(&json!({ "n": "53804" }), "/n"), Some(53804));
        assert_eq!(integer(&json!({ "n": 142 }), "/n"), Some(142));
        assert_eq!(integer(&json!({ "n": "" }), "/n"), None);
        assert_eq!(integer(&json!({ "n": "1.5" }), "/n"), None);
    }

    /// Found by the property tests: `"NaN"` became a latitude (serialized as null).
    #[test]
    fn non_finite_float_strings_are_not_floats() {
        for v in ["NaN", "inf", "-infinity", "1e400"] {
            assert_eq!(float(&json!({ "f": v }), "/f"), None, "{v}");
        }
        assert_eq!(float(&json!({ "f": " 52.52 " }), "/f"), Some(52.52));
    }

    #[test]
    fn stringly_booleans_are_read() {
        assert_eq!(boolean(&json!({ "b": "True" }), "/b"), Some(true));
        assert_eq!(boolean(&json!({ "b": "false" }), "/b"), Some(false));
        assert_eq!(boolean(&json!({ "b": 1 }), "/b"), Some(true));
        assert_eq!(boolean(&json!({ "b": "maybe" }), "/b"), None);
    }

    #[test]
    fn id_name_values_are_read_from_objects_and_bare_values() {
        let item = json!({
            "level": { "id": 1, "name": "Critical" },
            "bare": 3,
            "named": "Warning",
            "empty": { "id": null, "name": null },
        });
        assert_eq!(
            id_name(&item, "/level"),
            Some(IdName { id: Some("1".into()), name: Some("Critical".into()) })
        );
        assert_eq!(id_name(&item, "/bare").unwrap().id.as_deref(), Some("3"));
        assert_eq!(id_name(&item, "/named").unwrap().name.as_deref(), Some("Warning"));
        assert_eq!(id_name(&item, "/empty"), None);
        assert_eq!(id_name(&item, "/missing"), None);
    }

    #[test]
    fn string_arrays_skip_empty_and_non_text_entries() {
        let item = json!({ "a": ["T1110", " ", null, 7, {"x": 1}], "b": "not an array" });
        assert_eq!(strings(&item, "/a"), vec!["T1110", "7"]);
        assert!(strings(&item, "/b").is_empty());
    }
}
