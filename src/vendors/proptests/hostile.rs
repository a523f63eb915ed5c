//! Property tests of whole answers: an arbitrary status, headers with
//! arbitrary (also non-UTF-8) values, and bodies from vendor pages to
//! garbage (100k-deep nesting, broken UTF-8, HTML with long titles, error
//! envelopes with long or control-laden messages) go through
//! [`crate::http::classify`] and every vendor's `empty_page_for`,
//! `parse_page`, pagination step and `normalize`, via
//! [`crate::hostile::exercise`] (the entry point of the fuzz targets
//! too). Nothing may panic, and every message produced on the way must be
//! bounded and free of control characters.

use bytes::Bytes;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::shapes;
use super::strategies::bodies;
use crate::hostile::{check_message, exercise};

/// Statuses with a meaning somewhere in classification, and any other.
fn status() -> BoxedStrategy<StatusCode> {
    let known = select(vec![
        200u16, 201, 204, 206, 300, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 406, 409, 418, 429,
        500, 502, 503, 504,
    ]);
    prop_oneof![3 => known, 1 => 100u16..=999]
        .prop_map(|code| StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .boxed()
}

/// Header values that mean something to some reader, and arbitrary bytes
/// (non-UTF-8 included) made legal for a header.
fn header_value() -> BoxedStrategy<HeaderValue> {
    let meaningful = select(vec![
        "0",
        "7",
        "-1",
        "1.5",
        "18446744073709551615",
        "18446744073709551616",
        "4294967295",
        "1800000040",
        "Fri, 15 Jan 2027 08:00:30 GMT",
        "Thu, 01 Jan 1970 00:00:00 GMT",
        "Fri, 31 Dec 9999 23:59:59 -2359",
        "text/html; charset=utf-8",
        "TEXT/HTML",
        "application/json",
        "<https://tenant.example/api?page=2>; rel=\"next\"",
        "https://evil.example/steal?auth_token=k",
        "http://tenant.example/api",
        "//127.0.0.1:1/x",
        "/same/origin?x=1",
        "",
        "mailto:a@b",
        "http://[::1",
        "10, 20;w=60",
    ])
    .prop_map(HeaderValue::from_static);
    let bytes = prop::collection::vec(any::<u8>(), 0..64).prop_map(|mut raw| {
        // Header values may hold any byte but controls (tab excepted).
        for b in &mut raw {
            if (*b < 0x20 && *b != b'\t') || *b == 0x7f {
                *b = b'?';
            }
        }
        HeaderValue::from_bytes(&raw).unwrap_or(HeaderValue::from_static("?"))
    });
    prop_oneof![3 => meaningful, 2 => bytes].boxed()
}

fn headers() -> BoxedStrategy<HeaderMap> {
    let names = [
        "content-type",
        "retry-after",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "link",
        "location",
    ];
    let each: Vec<_> = names
        .iter()
        .map(|name| {
            let name = HeaderName::from_static(name);
            proptest::option::weighted(0.4, header_value()).prop_map(move |v| v.map(|v| (name.clone(), v)))
        })
        .collect();
    // A budget announced in full, with numbers near every overflow edge.
    let number = prop_oneof![
        select(vec![0u64, 1, 2, 10, 4_294_967_294, 4_294_967_295, 4_294_967_296, 1_800_000_040, u64::MAX]),
        any::<u64>(),
    ];
    let budget = proptest::option::weighted(0.5, (any::<bool>(), number.clone(), number.clone(), number));
    (each, budget)
        .prop_map(|(pairs, budget)| {
            let mut headers: HeaderMap = pairs.into_iter().flatten().collect();
            if let Some((prefixed, limit, remaining, reset)) = budget {
                let prefix = if prefixed { "x-" } else { "" };
                for (name, n) in [("limit", limit), ("remaining", remaining), ("reset", reset)] {
                    if let Ok(name) = HeaderName::try_from(format!("{prefix}ratelimit-{name}")) {
                        headers.insert(name, HeaderValue::from(n));
                    }
                }
            }
            headers
        })
        .boxed()
}

/// Bodies: every vendor's pages (whole, cut, with a byte changed), and the
/// answers that are nobody's page.
fn body() -> BoxedStrategy<Vec<u8>> {
    let nested = (1usize..200_000, select(vec!["[", "{\"a\":", "[{\"data\":"]))
        .prop_map(|(depth, open)| open.repeat(depth).into_bytes());
    let titled = (0usize..3000, select(vec!["é", "日", "😀", "\u{202e}", "\r\n"]), any::<bool>()).prop_map(
        |(n, ch, closed)| {
            let close = if closed { "</title>" } else { "" };
            format!("<!DOCTYPE html><html><head><title>x{}{close}</title>", ch.repeat(n)).into_bytes()
        },
    );
    let envelope =
        (0usize..5000, select(vec!["a", "\n", "\u{1b}[2J", "\u{202e}", "日"])).prop_map(|(n, piece)| {
            let message = piece.repeat(n);
            serde_json::json!({
                "error": { "code": message, "message": message },
                "errors": [{ "message": message, "detail": message }],
                "message": message,
                "result": "error",
                "completed": false,
                "region_failures": [message],
                "links": { "next": format!("http://[{message}") },
                "data": [],
                "meta": { "total": 1 },
            })
            .to_string()
            .into_bytes()
        });
    let broken_utf8 = prop::collection::vec(
        select(vec![
            &b"\xff"[..],
            b"\xc0\x80",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"\xe6\x97",
            b"\"",
            b"\\u",
            b"\\ud800",
            b"{\"data\":[",
            b"<title>",
        ]),
        0..64,
    )
    .prop_map(|pieces| pieces.concat());
    prop_oneof![
        2 => bodies(&shapes::canaryguard_page()),
        2 => bodies(&shapes::catchpoint_page()),
        2 => bodies(&shapes::rapid7_alerts_page()),
        1 => bodies(&shapes::rapid7_investigations_page()),
        2 => bodies(&shapes::red_canary_page()),
        2 => bodies(&shapes::thinkst_page()),
        1 => nested,
        1 => titled,
        2 => envelope,
        1 => broken_utf8,
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
    .boxed()
}

fn check(status: StatusCode, headers: &HeaderMap, body: Vec<u8>) -> Result<(), TestCaseError> {
    for message in exercise(status, headers, &Bytes::from(body)) {
        check_message(&message).map_err(TestCaseError::fail)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(super::config())]

    #[test]
    fn any_answer_classifies_parses_and_normalizes_without_panic(
        status in status(),
        headers in headers(),
        body in body(),
    ) {
        check(status, &headers, body)?;
    }
}

/// serde_json stops at 128 levels; every parse path of every vendor must
/// end in an error there, not in a stack overflow, and the deepest item it
/// does accept must survive normalizing, OCSF and serializing.
#[test]
fn deep_nesting_is_an_error_and_the_deepest_accepted_item_is_handled() {
    let deep = Bytes::from("[".repeat(100_000));
    let messages = exercise(StatusCode::OK, &HeaderMap::new(), &deep);
    let parse_errors = messages.iter().filter(|m| m.contains("recursion limit exceeded")).count();
    assert_eq!(parse_errors, 6 + 5, "every vendor configuration and definition refuses it: {messages:?}");

    let inner = format!("{}1{}", "[".repeat(120), "]".repeat(120));
    let items = [
        format!(
            r#"{{"data":[{{"id":"a","triggered_at":"2026-03-27T08:15:42Z","x":{inner}}}],"meta":{{"total":1}}}}"#
        ),
        format!(
            r#"{{"incidents":[{{"id":"i","updated_id":3,"description":{{"created":"1720684078"}},"x":{inner}}}]}}"#
        ),
    ];
    for body in items {
        let messages = exercise(StatusCode::OK, &HeaderMap::new(), &Bytes::from(body));
        assert!(messages.iter().all(|m| !m.contains("recursion")), "{messages:?}");
    }
}

/// The property above can fail: a message a vendor controls, unbounded,
/// is caught by the check it applies.
#[test]
fn the_message_check_refuses_long_and_control_laden_messages() {
    assert!(check_message(&"x".repeat(5000)).is_err());
    assert!(check_message("line one\nline two").is_err());
    assert!(check_message("HTTP 500: vendor server error: ok").is_ok());
}
