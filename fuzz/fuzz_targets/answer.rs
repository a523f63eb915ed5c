//! A whole answer (status, headers, body) from the fuzzer's bytes, through
//! classification and every vendor's readers: no panic, and every message
//! bounded and free of control characters.
//!
//! Input layout: 2 bytes of status; 1 byte of header count; per header 1
//! byte choosing its name, 1 byte of value length and the value; the rest
//! is the body.

#![no_main]

use alertd::hostile::{check_message, exercise};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

const NAMES: [&str; 10] = [
    "content-type",
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "link",
    "location",
];

fn split(data: &[u8]) -> Option<(StatusCode, HeaderMap, &[u8])> {
    let (status, mut rest) = data.split_first_chunk::<2>()?;
    let status = StatusCode::from_u16(100 + u16::from_be_bytes(*status) % 900).ok()?;
    let (&count, after) = rest.split_first()?;
    rest = after;
    let mut headers = HeaderMap::new();
    for _ in 0..count % 12 {
        let (&[name, len], after) = rest.split_first_chunk::<2>()?;
        let len = usize::from(len).min(after.len());
        let (value, after) = after.split_at(len);
        rest = after;
        let name = HeaderName::from_static(NAMES[usize::from(name) % NAMES.len()]);
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    Some((status, headers, rest))
}

fuzz_target!(|data: &[u8]| {
    let Some((status, headers, body)) = split(data) else {
        return;
    };
    for message in exercise(status, &headers, &Bytes::copy_from_slice(body)) {
        if let Err(problem) = check_message(&message) {
            panic!("{problem}");
        }
    }
});
