//! What an answer means: the one pure function every vendor answer goes
//! through, so the rules can be tested (and fuzzed) without a network.
//!
//! Everything here reads bytes a vendor (or whatever answers at its
//! address) chose, so nothing here may panic on them, and every text taken
//! from them into an error is cut to a bounded number of characters with
//! control characters blanked: an error ends up in a log line, a metric
//! label's neighbour and `alertd check`'s table, and a vendor must not be
//! able to forge lines there or fill them.

use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use url::Url;

use super::{Answer, FetchError, ThrottleSignals, redirect};

/// The most characters of a vendor's text kept in an error.
pub const MAX_DETAIL_CHARS: usize = 200;

/// Sort an answer into a body to parse or an error. `url` is the URL that
/// answered (relative `Location`s resolve against it), `now` the time since
/// the Unix epoch (for `Retry-After` dates and `RateLimit-Reset`). An
/// answer `signals` recognises is read like 429.
pub fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    url: &Url,
    body: Bytes,
    signals: ThrottleSignals,
    now: Duration,
) -> Result<Answer, FetchError> {
    // Before the HTML check: a redirect often carries a small HTML page.
    if let Some(refused) = redirect::refusal(status, headers, url) {
        return Err(refused);
    }
    let code = status.as_u16();
    let retry_after = retry_after(headers, now);
    let pace = crate::throttle::hint(headers, now);
    if is_html(headers) || looks_like_html(&body) {
        return Err(FetchError::Html { status: code, title: html_title(&body) });
    }
    if signals.statuses.contains(&code) || (signals.body)(&body) {
        return Err(FetchError::Throttled { status: code, retry_after: retry_after.or(pace) });
    }
    if status.is_success() {
        return Ok(Answer { status, body, pace, next_link: super::next_link(headers) });
    }
    let detail = vendor_message(&body);
    Err(match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => FetchError::Auth { status: code, detail },
        StatusCode::TOO_MANY_REQUESTS => {
            FetchError::Throttled { status: code, retry_after: retry_after.or(pace) }
        }
        s if s.is_server_error() => FetchError::Server { status: code, detail },
        _ => FetchError::Client { status: code, detail },
    })
}

/// `Retry-After` as delta-seconds or an HTTP-date (`now`: since the epoch).
fn retry_after(headers: &HeaderMap, now: Duration) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Duration::from_secs(u64::try_from(when.timestamp()).ok()?).checked_sub(now)
}

fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html")))
}

fn looks_like_html(body: &[u8]) -> bool {
    let start = body.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(body.len());
    let head = body.get(start..).unwrap_or_default();
    let head = head.get(..15).unwrap_or(head);
    let lower = head.to_ascii_lowercase();
    lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html")
}

/// The page's `<title>` (from its first 4 KiB) as ` ("…")`, or nothing.
/// Cut on characters, not bytes: a long non-ASCII title is common on
/// localized proxy pages.
pub(super) fn html_title(body: &[u8]) -> String {
    let head = String::from_utf8_lossy(body.get(..4096).unwrap_or(body));
    // ASCII lowercasing keeps every byte offset, so offsets found in
    // `lower` are offsets in `head`.
    let lower = head.to_ascii_lowercase();
    let Some(start) = lower.find("<title>").map(|i| i + "<title>".len()) else {
        return String::new();
    };
    let rest = head.get(start..).unwrap_or_default();
    let end = lower.get(start..).and_then(|r| r.find("</title>")).unwrap_or(rest.len());
    let title = crate::text::clip(rest.get(..end).unwrap_or(rest), 120);
    if title.is_empty() { String::new() } else { format!(" (\"{title}\")") }
}

/// The vendor's own error text from the common JSON envelopes
/// (`{"error":{"message"}}`, `{"message"}`, `{"errors":[{"message"}]}`),
/// else the start of the body; at most [`MAX_DETAIL_CHARS`] characters.
pub fn vendor_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let candidates = [
            v.pointer("/error/message"),
            v.pointer("/message"),
            v.pointer("/errors/0/message"),
            v.pointer("/error"),
            v.pointer("/errors/0"),
        ];
        for c in candidates.into_iter().flatten() {
            if let Some(s) = c.as_str() {
                return crate::text::clip(s, MAX_DETAIL_CHARS);
            }
        }
    }
    let text = String::from_utf8_lossy(body.get(..MAX_DETAIL_CHARS).unwrap_or(body));
    let text = crate::text::clip(&text, MAX_DETAIL_CHARS);
    if text.is_empty() { "(empty body)".into() } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn url() -> Url {
        Url::parse("https://tenant.example/api/v1/alerts").unwrap()
    }

    fn answer(status: u16, headers: &[(&'static str, &str)], body: &[u8]) -> Result<Answer, FetchError> {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        let now = Duration::from_secs(1_800_000_000);
        classify(
            StatusCode::from_u16(status).unwrap(),
            &h,
            &url(),
            Bytes::copy_from_slice(body),
            ThrottleSignals::NONE,
            now,
        )
    }

    #[test]
    fn html_is_recognised_with_or_without_a_content_type() {
        assert!(looks_like_html(b"\n  <!DOCTYPE html><html>"));
        assert!(looks_like_html(b"<HTML><head>"));
        assert!(!looks_like_html(b"{\"data\":[]}"));
        assert!(!looks_like_html(b"   "));
        assert_eq!(html_title(b"<html><title>502 Bad Gateway</title>"), " (\"502 Bad Gateway\")");
        let err = answer(200, &[("content-type", "Text/HTML; charset=utf-8")], b"{}").unwrap_err();
        assert!(matches!(err, FetchError::Html { status: 200, .. }), "{err}");
    }

    /// The title was cut at byte 120, inside a character, when its closing
    /// tag was not in the first 4 KiB: a panic on a localized proxy page.
    #[test]
    fn a_long_non_ascii_title_is_cut_on_characters_at_any_length_and_offset() {
        for pad in 0..4 {
            for len in [1, 39, 40, 41, 119, 120, 121, 500, 2000] {
                for ch in ["é", "日", "😀", "a"] {
                    // The prefix moves byte 120 of the title inside a character.
                    let lead = "x".repeat(pad);
                    let body = format!("<html><title>{lead}{}", ch.repeat(len));
                    let title = html_title(body.as_bytes());
                    assert!(title.chars().count() <= 120 + 5, "{title}");
                    let closed = format!("{body}</title>");
                    assert!(!html_title(closed.as_bytes()).is_empty());
                    // The 4 KiB cut lands anywhere inside a character too.
                    let mut long = body.clone().into_bytes();
                    long.truncate(4096 - pad - len % 4);
                    let _ = html_title(&long);
                    let err = answer(502, &[], body.as_bytes()).unwrap_err();
                    assert!(err.to_string().starts_with("HTTP 502: the server answered with an HTML page"));
                }
            }
        }
        let tricky = "<html><title>İİİİ</title>".repeat(3);
        assert_eq!(html_title(tricky.as_bytes()), " (\"İİİİ\")");
        assert_eq!(html_title(b"<html><title>a\r\nb\x1b[31m</title>"), " (\"a  b [31m\")");
    }

    #[test]
    fn the_vendor_message_is_taken_from_the_common_envelopes() {
        assert_eq!(
            vendor_message(
                br#"{"error":{"code":"UNAUTHORIZED","message":"Missing, invalid, or expired API key."}}"#
            ),
            "Missing, invalid, or expired API key."
        );
        assert_eq!(vendor_message(br#"{"result":"error","message":"bad token"}"#), "bad token");
        assert_eq!(vendor_message(b""), "(empty body)");
        let long = format!("{{\"message\":\"{}\\n\\u202e\"}}", "日".repeat(5000));
        let message = vendor_message(long.as_bytes());
        assert_eq!(message.chars().count(), MAX_DETAIL_CHARS);
        assert!(!message.contains('\n') && !message.contains('\u{202e}'));
        assert_eq!(vendor_message("€".repeat(100).as_bytes()).chars().count(), 67, "200 bytes, a cut char");
    }

    #[test]
    fn statuses_and_headers_are_sorted() {
        assert!(answer(200, &[], b"{}").is_ok());
        let err = answer(429, &[("retry-after", "7")], b"").unwrap_err();
        assert_eq!(err, FetchError::Throttled { status: 429, retry_after: Some(Duration::from_secs(7)) });
        let dated = answer(429, &[("retry-after", "Fri, 15 Jan 2027 08:00:30 GMT")], b"").unwrap_err();
        assert_eq!(dated, FetchError::Throttled { status: 429, retry_after: Some(Duration::from_secs(30)) });
        let past = answer(429, &[("retry-after", "Thu, 01 Jan 1970 00:00:00 GMT")], b"").unwrap_err();
        assert_eq!(past, FetchError::Throttled { status: 429, retry_after: None });
        assert!(matches!(answer(401, &[], b"").unwrap_err(), FetchError::Auth { status: 401, .. }));
        assert!(matches!(answer(418, &[], b"").unwrap_err(), FetchError::Client { status: 418, .. }));
        assert!(matches!(answer(999, &[], b"").unwrap_err(), FetchError::Client { status: 999, .. }));
        let moved =
            answer(302, &[("location", "https://evil.example/x?auth_token=k")], b"<html>").unwrap_err();
        assert!(matches!(moved, FetchError::Redirect { status: 302, .. }), "{moved}");
        assert!(!moved.to_string().contains("auth_token"), "{moved}");
    }

    #[test]
    fn printable_blanks_controls_and_bounds_length() {
        assert_eq!(crate::text::clip("  a\u{0}b\u{202e}c\u{7f}\n ", 200), "a b c");
        assert_eq!(crate::text::clip(&"x".repeat(1000), 10).len(), 10);
    }
}
