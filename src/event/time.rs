//! An event's timestamps as text: exactly what chrono's `Serialize` writes
//! for a `DateTime<Utc>` (RFC 3339, `Z`, the fraction in the shortest of
//! milli-, micro- or nanoseconds that holds it), without going through
//! `core::fmt`. chrono formats through `Formatter` and serde_json's
//! `collect_str`: about 2,100 instructions per timestamp, four per event,
//! a tenth of normalizing and encoding a Thinkst incident. Instants
//! outside years 0000 to 9999 and leap seconds (which alertd never makes)
//! take chrono's own path, so the output is chrono's in every case.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::Serializer;

/// `#[serde(serialize_with)]` for a `DateTime<Utc>`.
pub(super) fn serialize<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 30];
    match format(t, &mut buf) {
        Some(text) => serializer.serialize_str(text),
        None => serde::Serialize::serialize(t, serializer),
    }
}

/// `#[serde(serialize_with)]` for an `Option<DateTime<Utc>>` (skipped
/// when `None` by `skip_serializing_if`; a `None` that reaches here is
/// `null`, as chrono's would be).
pub(super) fn serialize_opt<S: Serializer>(
    t: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serialize(t, serializer),
        None => serializer.serialize_none(),
    }
}

/// `t` as `t.to_rfc3339_opts(seconds, true)` writes it, without
/// `core::fmt`: chrono's took about 800 instructions, five times per OCSF
/// finding (`Millis`, OCSF's `datetime_t`) and twice per event in the
/// checkpoint store (`Micros`, its fixed-width times).
pub fn rfc3339(t: &DateTime<Utc>, seconds: SecondsFormat) -> String {
    let mut buf = [0u8; 30];
    match format_in(t, &mut buf, seconds) {
        Some(text) => text.to_owned(),
        None => t.to_rfc3339_opts(seconds, true),
    }
}

/// `t` as chrono's `Serialize` writes it (`AutoSi`), in `buf`; `None`
/// outside years 0000–9999 or in a leap second.
fn format<'b>(t: &DateTime<Utc>, buf: &'b mut [u8; 30]) -> Option<&'b str> {
    format_in(t, buf, SecondsFormat::AutoSi)
}

/// `t` as `to_rfc3339_opts(seconds, true)`, in `buf`; `None` where chrono
/// is left to write it.
fn format_in<'b>(t: &DateTime<Utc>, buf: &'b mut [u8; 30], seconds: SecondsFormat) -> Option<&'b str> {
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let nanos = t.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    let (fraction, width) = match seconds {
        SecondsFormat::Secs => (0, 0),
        SecondsFormat::Millis => (nanos / 1_000_000, 3),
        SecondsFormat::Micros => (nanos / 1_000, 6),
        SecondsFormat::Nanos => (nanos, 9),
        // The fewest of 0, 3, 6 or 9 digits that hold the nanoseconds.
        SecondsFormat::AutoSi => match nanos {
            0 => (0, 0),
            n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
            n if n % 1_000 == 0 => (n / 1_000, 6),
            n => (n, 9),
        },
        _ => return None,
    };
    let mut at = digits(buf, 0, year, 4);
    for (separator, value) in
        [(b'-', t.month()), (b'-', t.day()), (b'T', t.hour()), (b':', t.minute()), (b':', t.second())]
    {
        buf[at] = separator;
        at = digits(buf, at + 1, value, 2);
    }
    if width > 0 {
        buf[at] = b'.';
        at = digits(buf, at + 1, fraction, width);
    }
    buf[at] = b'Z';
    std::str::from_utf8(&buf[..=at]).ok()
}

/// `value` in `width` decimal digits at `buf[at..]`; the index after them.
fn digits(buf: &mut [u8; 30], at: usize, mut value: u32, width: usize) -> usize {
    for slot in buf[at..at + width].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
    at + width
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};

    const EVERY_FORMAT: [SecondsFormat; 5] = [
        SecondsFormat::Secs,
        SecondsFormat::Millis,
        SecondsFormat::Micros,
        SecondsFormat::Nanos,
        SecondsFormat::AutoSi,
    ];

    fn ours(t: DateTime<Utc>) -> String {
        let mut out = Vec::new();
        serialize(&t, &mut serde_json::Serializer::new(&mut out)).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writes_what_chrono_writes() {
        // A fixed walk over 10,000 instants across the four-digit years,
        // with whole seconds and milli-, micro- and nanosecond fractions.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let first = Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap().timestamp();
        let last = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap().timestamp();
        let span = u64::try_from(last - first).unwrap();
        for i in 0..10_000u64 {
            let secs = first + i64::try_from(next() % span).unwrap();
            let raw = u32::try_from(next() % 1_000_000_000).unwrap();
            let nanos = match i % 4 {
                0 => 0,
                1 => raw / 1_000_000 * 1_000_000,
                2 => raw / 1_000 * 1_000,
                _ => raw,
            };
            let t = Utc.timestamp_opt(secs, nanos).unwrap();
            assert_eq!(ours(t), serde_json::to_string(&t).unwrap(), "{secs} {nanos}");
            for seconds in EVERY_FORMAT {
                assert_eq!(
                    rfc3339(&t, seconds),
                    t.to_rfc3339_opts(seconds, true),
                    "{secs} {nanos} {seconds:?}"
                );
            }
        }
    }

    #[test]
    fn the_edges_and_chronos_own_cases() {
        let edges = [
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap() + TimeDelta::nanoseconds(999_999_999),
            Utc.with_ymd_and_hms(2026, 3, 27, 8, 15, 42).unwrap() + TimeDelta::milliseconds(5),
            Utc.with_ymd_and_hms(2026, 3, 27, 8, 15, 42).unwrap() + TimeDelta::nanoseconds(1),
            // Outside four-digit years and in a leap second: chrono's path.
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 12, 31, 23, 59, 59).unwrap(),
            Utc.from_utc_datetime(
                &chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
                    .unwrap()
                    .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
                    .unwrap(),
            ),
        ];
        for t in edges {
            assert_eq!(ours(t), serde_json::to_string(&t).unwrap());
            for seconds in EVERY_FORMAT {
                assert_eq!(rfc3339(&t, seconds), t.to_rfc3339_opts(seconds, true), "{t:?} {seconds:?}");
            }
        }
        assert_eq!(rfc3339(&edges[0], SecondsFormat::Millis), "0000-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(&edges[1], SecondsFormat::Millis),
            "9999-12-31T23:59:59.999Z",
            "truncated, as chrono does"
        );
        assert_eq!(ours(edges[2]), "\"2026-03-27T08:15:42.005Z\"");
        let mut buf = [0u8; 30];
        assert_eq!(format(&edges[4], &mut buf), None, "year 10000 is chrono's to write");
        assert_eq!(format(&edges[6], &mut buf), None, "a leap second is chrono's to write");
    }
}
