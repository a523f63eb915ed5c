//! Staying inside vendors' rate limits, before they have to say so.
//!
//! Each source has a [`Throttle`]: one `governor` limiter per documented
//! limit (Red Canary: 10/s and 20/min; Catchpoint: 7/s, 20/min, 500/h,
//! 2000/day), all of which a request must pass. Each limit is paced as one
//! request per `period / n` with no burst: GCRA with a burst of `n` would let
//! up to `2n − 1` through in the first window, which a vendor counting fixed
//! windows calls a violation; spacing never exceeds `n` in any window and
//! still uses the whole budget over a long backfill.
//!
//! The throttle also takes hints: `RateLimit-Remaining` running low spaces
//! the remaining requests until `RateLimit-Reset`, so the 429 never comes.

use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use tokio::time::Instant;

/// A limit of `requests` per `period`, e.g. `20/min`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed…
    pub requests: NonZeroU32,
    /// …per this period.
    pub period: Duration,
}

impl RateLimit {
    /// `requests` per `period` (for vendors' constant defaults).
    pub const fn new(requests: u32, period: Duration) -> RateLimit {
        let requests = match NonZeroU32::new(requests) {
            Some(n) => n,
            None => NonZeroU32::MIN,
        };
        RateLimit { requests, period }
    }

    /// The spacing that keeps any window of `period` at `requests` or fewer.
    fn spacing(&self) -> Duration {
        self.period / self.requests.get()
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.requests, humantime::format_duration(self.period))
    }
}

impl FromStr for RateLimit {
    type Err = String;

    /// `N/s`, `N/min`, `N/h`, `N/day`, or `N/<duration>` (`100/15m`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("rate limit `{text}` is not `N/unit` (e.g. `10/s`, `20/min`, `500/h`, `2000/day`)");
        let (n, unit) = text.trim().split_once('/').ok_or_else(bad)?;
        let requests = n.trim().parse::<NonZeroU32>().map_err(|_| bad())?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            other => humantime::parse_duration(other).map_err(|_| bad())?,
        };
        if period.is_zero() {
            return Err(bad());
        }
        Ok(RateLimit { requests, period })
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// One source's pacing.
pub struct Throttle {
    limits: Vec<(RateLimit, DefaultDirectRateLimiter)>,
    paused_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let limits: Vec<String> = self.limits.iter().map(|(l, _)| l.to_string()).collect();
        f.debug_struct("Throttle").field("limits", &limits).finish()
    }
}

impl Throttle {
    /// A throttle enforcing every one of `limits` (none: no pacing).
    pub fn new(limits: &[RateLimit]) -> Throttle {
        let limits = limits
            .iter()
            .filter_map(|l| {
                let quota = Quota::with_period(l.spacing())?.allow_burst(NonZeroU32::MIN);
                Some((*l, RateLimiter::direct(quota)))
            })
            .collect();
        Throttle { limits, paused_until: Mutex::new(None) }
    }

    /// The limits enforced.
    pub fn limits(&self) -> Vec<RateLimit> {
        self.limits.iter().map(|(l, _)| *l).collect()
    }

    /// Wait until a request may go out under every limit and any pause.
    pub async fn acquire(&self) {
        let pause = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = pause {
            tokio::time::sleep_until(until).await;
        }
        for (_, limiter) in &self.limits {
            limiter.until_ready().await;
        }
    }

    /// Hold every request for `wait` (a server asked for it).
    pub fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut guard = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        *guard = Some(guard.map_or(until, |u| u.max(until)));
    }
}

/// How long to hold the next request, from `RateLimit-Limit`,
/// `RateLimit-Remaining` and `RateLimit-Reset` (also `X-RateLimit-*`).
/// When fewer than a tenth of the budget (at least 2) remain, the remaining
/// requests are spread evenly until the reset. `Reset` is read as epoch
/// seconds when it is that large, else as seconds from now (vendors differ).
/// Either way it has whole seconds, so the window may reset up to a second
/// after it says: the wait runs to one second past it, or the last call of a
/// window could land just before the reset and draw the 429 it avoids.
/// `now` is the time since the Unix epoch.
pub fn hint(headers: &reqwest::header::HeaderMap, now: Duration) -> Option<Duration> {
    let get = |name: &str| -> Option<u64> {
        let value = headers.get(name).or_else(|| headers.get(format!("x-{name}").as_str()))?;
        value.to_str().ok()?.split([',', ';']).next()?.trim().parse().ok()
    };
    let remaining = get("ratelimit-remaining")?;
    let reset = get("ratelimit-reset")?;
    let limit = get("ratelimit-limit").unwrap_or(0);
    let low = (limit / 10).max(2);
    if remaining >= low {
        return None;
    }
    let reset_in = if reset > 1_000_000_000 {
        Duration::from_secs(reset.saturating_add(1)).saturating_sub(now)
    } else {
        Duration::from_secs(reset.saturating_add(1))
    };
    // `remaining + 1` calls share the wait; a huge `Remaining` (with a
    // larger `Limit`) must neither overflow nor divide by zero.
    let calls = u32::try_from(remaining.saturating_add(1)).unwrap_or(u32::MAX);
    Some(reset_in / calls).filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn limits_parse_in_the_vendors_words() {
        assert_eq!("20/min".parse::<RateLimit>().unwrap(), RateLimit::new(20, Duration::from_secs(60)));
        assert_eq!("7/s".parse::<RateLimit>().unwrap(), RateLimit::new(7, Duration::from_secs(1)));
        assert_eq!(
            "2000/day".parse::<RateLimit>().unwrap(),
            RateLimit::new(2000, Duration::from_secs(86_400))
        );
        assert_eq!("100/15m".parse::<RateLimit>().unwrap(), RateLimit::new(100, Duration::from_secs(900)));
        for bad in ["20", "0/s", "x/min", "5/fortnight", "5/0s"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn spacing_never_lets_a_window_exceed_its_budget() {
        assert_eq!(RateLimit::new(20, Duration::from_secs(60)).spacing(), Duration::from_secs(3));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_low_remaining_budget_spreads_requests_until_the_reset() {
        let now = Duration::from_millis(1_800_000_000_500);
        let h = headers(&[
            ("ratelimit-limit", "100"),
            ("ratelimit-remaining", "3"),
            ("ratelimit-reset", "1800000040"),
        ]);
        // 40.5 s to one second past the stated reset, for 4 calls.
        assert_eq!(hint(&h, now), Some(Duration::from_millis(10_125)));
        let delta = headers(&[("ratelimit-remaining", "0"), ("ratelimit-reset", "30")]);
        assert_eq!(hint(&delta, now), Some(Duration::from_secs(31)));
        let plenty =
            headers(&[("ratelimit-limit", "100"), ("ratelimit-remaining", "50"), ("ratelimit-reset", "30")]);
        assert_eq!(hint(&plenty, now), None);
        let prefixed = headers(&[("x-ratelimit-remaining", "1"), ("x-ratelimit-reset", "9")]);
        assert_eq!(hint(&prefixed, now), Some(Duration::from_secs(5)));
        let past = headers(&[("ratelimit-remaining", "0"), ("ratelimit-reset", "1799999990")]);
        assert_eq!(hint(&past, now), None, "a reset in the past holds nothing");
        assert_eq!(hint(&HeaderMap::new(), now), None);
    }

    /// `Remaining` of u32::MAX under a larger `Limit` overflowed `+ 1`
    /// (a panic in debug builds, a division by zero in release builds).
    #[test]
    fn a_huge_remaining_budget_neither_overflows_nor_divides_by_zero() {
        let now = Duration::from_secs(1_800_000_000);
        for remaining in ["4294967294", "4294967295", "4294967296", "18446744073709551615"] {
            let h = headers(&[
                ("ratelimit-limit", "18446744073709551615"),
                ("ratelimit-remaining", remaining),
                ("ratelimit-reset", "18446744073709551615"),
            ]);
            let _ = hint(&h, now);
        }
    }

    #[tokio::test]
    async fn a_pause_holds_the_next_request() {
        let t = Throttle::new(&[]);
        t.pause(Duration::from_millis(200));
        let start = Instant::now();
        t.acquire().await;
        assert!(start.elapsed() >= Duration::from_millis(200));
    }
}
