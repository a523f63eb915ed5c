//! Redirects: followed only where the credentials may go.
//!
//! Every vendor request carries a key, in a header (`Authorization`,
//! `X-API-Key`, `X-Canary-Auth-Token`, `X-Api-Key`) or in the query
//! (Thinkst's `auth_token`). reqwest's default policy follows ten redirects
//! anywhere and strips only `Authorization` and `Cookie` on the way, so a
//! 302 to another host would hand it every other vendor's key (and a query
//! key is in the URL itself). The one client every poller and `alertd check`
//! share therefore follows a redirect only to the origin it came from
//! (scheme, host and port: so never https→http), and only a few times;
//! anything else stops, and [`refusal`] turns the 3xx answer into a
//! [`FetchError::Redirect`] that names where it pointed without its path,
//! query or userinfo (a query can hold a key, a path a tenant's secret).

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION};
use url::Url;

use super::FetchError;

/// Redirects followed for one request, all within its origin.
pub const MAX_REDIRECTS: usize = 5;

/// Why a redirect was not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectStop {
    /// It leads to another host or port (or scheme).
    OtherOrigin,
    /// It leads from https to plain http.
    Downgrade,
    /// More than [`MAX_REDIRECTS`] redirects within the origin.
    TooMany,
    /// A 3xx without a `Location` that resolves to a URL (or one reqwest
    /// never follows, such as 300 or 304).
    NoTarget,
}

/// The policy of the shared client: follow within the first request's
/// origin, at most [`MAX_REDIRECTS`] times; otherwise hand the 3xx answer
/// back, for [`refusal`] to explain.
pub fn policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        // `previous` holds every URL requested so far, the first one too.
        let follow = attempt.previous().len() <= MAX_REDIRECTS
            && attempt.previous().first().is_some_and(|first| same_origin(first, attempt.url()));
        if follow { attempt.follow() } else { attempt.stop() }
    })
}

/// Scheme, host and port all equal (ports defaulted by scheme).
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host() == b.host() && a.port_or_known_default() == b.port_or_known_default()
}

/// `scheme://host:port` of `url`: what an operator needs to see where a
/// redirect pointed, and nothing that may be secret (userinfo, path, query).
pub fn origin_label(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    let label = match url.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    };
    crate::text::clip(&label, 200)
}

/// The error for a 3xx answer to a request for `url` (every 3xx that
/// reaches classification was not followed); `None` for other statuses.
pub fn refusal(status: StatusCode, headers: &HeaderMap, url: &Url) -> Option<FetchError> {
    if !status.is_redirection() {
        return None;
    }
    let target = headers
        .get(LOCATION)
        // reqwest follows only a Location of visible ASCII; so is it read here.
        .and_then(|value| value.to_str().ok())
        .and_then(|location| url.join(location.trim()).ok())
        .filter(|t| t.has_host());
    let (target, stop) = match target {
        None => (String::new(), RedirectStop::NoTarget),
        Some(t) if url.scheme() == "https" && t.scheme() == "http" => {
            (origin_label(&t), RedirectStop::Downgrade)
        }
        Some(t) if !same_origin(url, &t) => (origin_label(&t), RedirectStop::OtherOrigin),
        // Same origin, yet not followed: the hop limit, or a status reqwest
        // does not follow (300, 304, 305).
        Some(t) if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) => {
            (origin_label(&t), RedirectStop::TooMany)
        }
        Some(_) => (String::new(), RedirectStop::NoTarget),
    };
    Some(FetchError::Redirect { status: status.as_u16(), target, stop })
}

/// The operator's half of a [`FetchError::Redirect`] message.
pub(super) fn hint(stop: RedirectStop, target: &str) -> String {
    match stop {
        RedirectStop::OtherOrigin => format!(
            "the server redirects to another origin, {target}; alertd follows redirects only within base_url's origin, so the API key never leaves it: fix base_url (use the address the API answers at)"
        ),
        RedirectStop::Downgrade => format!(
            "the server redirects from https to plain http ({target}); alertd never sends the API key unencrypted: fix base_url or the server"
        ),
        RedirectStop::TooMany => format!(
            "more than {MAX_REDIRECTS} redirects within the origin (the last to {target}); fix base_url (use the address the API answers at)"
        ),
        RedirectStop::NoTarget => {
            "a redirect status without a usable Location; alertd does not follow it: check base_url"
                .to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn located(location: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(LOCATION, HeaderValue::from_bytes(location).unwrap());
        h
    }

    fn stop_of(from: &str, location: &[u8], status: u16) -> (String, RedirectStop) {
        let url = Url::parse(from).unwrap();
        match refusal(StatusCode::from_u16(status).unwrap(), &located(location), &url) {
            Some(FetchError::Redirect { target, stop, .. }) => (target, stop),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_target_is_named_by_origin_only() {
        let (target, stop) = stop_of(
            "https://tenant.example/api?auth_token=k",
            b"https://user:pw@evil.example/steal?auth_token=k#x",
            302,
        );
        assert_eq!((target.as_str(), stop), ("https://evil.example:443", RedirectStop::OtherOrigin));
        let (target, stop) = stop_of("https://tenant.example/api", b"http://tenant.example/api", 307);
        assert_eq!((target.as_str(), stop), ("http://tenant.example:80", RedirectStop::Downgrade));
        let (target, stop) = stop_of("http://127.0.0.1:8080/a", b"//127.0.0.1:9090/b?k=1", 301);
        assert_eq!((target.as_str(), stop), ("http://127.0.0.1:9090", RedirectStop::OtherOrigin));
        let (target, stop) = stop_of("http://127.0.0.1:8080/a", b"/b", 308);
        assert_eq!((target.as_str(), stop), ("http://127.0.0.1:8080", RedirectStop::TooMany));
        // An empty Location is the same URL again: followed until the limit.
        let (target, stop) = stop_of("http://127.0.0.1:8080/a", b"", 302);
        assert_eq!((target.as_str(), stop), ("http://127.0.0.1:8080", RedirectStop::TooMany));
        let (target, stop) = stop_of("http://127.0.0.1:8080/a", b"/b", 300);
        assert_eq!((target.as_str(), stop), ("", RedirectStop::NoTarget), "300 is never followed");
    }

    #[test]
    fn an_unusable_location_is_no_target() {
        for location in [&b"http://"[..], b"\xff\xfe", b"mailto:x@y", b"http://[::1"] {
            let (target, stop) = stop_of("https://tenant.example/api", location, 302);
            assert_eq!((target.as_str(), stop), ("", RedirectStop::NoTarget), "{location:?}");
        }
        let url = Url::parse("https://tenant.example/").unwrap();
        let err = refusal(StatusCode::NOT_MODIFIED, &HeaderMap::new(), &url).unwrap();
        assert!(
            err.to_string().starts_with("HTTP 304: a redirect status without a usable Location"),
            "{err}"
        );
        assert!(refusal(StatusCode::OK, &located(b"https://evil.example/"), &url).is_none());
    }

    #[test]
    fn messages_say_to_fix_base_url() {
        let err = FetchError::Redirect {
            status: 302,
            target: "http://127.0.0.1:9".into(),
            stop: RedirectStop::OtherOrigin,
        };
        let text = err.to_string();
        assert!(
            text.starts_with("HTTP 302: the server redirects to another origin, http://127.0.0.1:9;"),
            "{text}"
        );
        assert!(text.contains("fix base_url"), "{text}");
        assert!(!err.is_transient());
        assert_eq!(err.code(), "redirect");
    }
}
