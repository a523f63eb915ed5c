//! A 200 `application/json` answer whose body is the fuzzer's bytes,
//! through classification and every vendor's page parser, pagination step
//! and normalizer: the parse paths, without the header layout of `answer`.

#![no_main]

use alertd::hostile::{check_message, exercise};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for message in exercise(StatusCode::OK, &headers, &Bytes::copy_from_slice(data)) {
        if let Err(problem) = check_message(&message) {
            panic!("{problem}");
        }
    }
});
