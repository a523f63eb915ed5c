//! Staying inside vendors' rate limits, before they have to say so.
//!
//! Each source has a [`Throttle`] enforcing every documented limit (Red
//! Canary: 10/s and 20/min; Catchpoint: 7/s, 20/min, 500/h, 2000/day). A
//! request must pass two checks per limit:
//!
//! - **Even pacing** (`governor`, one request per `period / n`, no burst).
//!   GCRA with a burst of `n` would let up to `2n − 1` through in the first
//!   window, which a vendor counting fixed windows calls a violation; spacing
//!   spreads a backfill over the window and still uses the whole budget over
//!   a long run. It cannot keep the window on its own: governor schedules
//!   from its *theoretical* arrival time, so a request that went out late
//!   (the process was descheduled between the check and the send) is
//!   followed by one `period / n` after its scheduled time, and the pair
//!   puts `n + 1` arrivals into the vendor's window (issue 13).
//! - **A send log**: the instants at which the last `n` requests actually
//!   went (recorded when [`Throttle::acquire`] returns). The next request
//!   waits until the `n`-th previous one is at least `period + margin` old,
//!   so `n + 1` sends never share a window however late any of them was.
//!   GCRA keeps one timestamp and cannot express "at most `n` in any window
//!   as counted at arrival", hence this small log next to governor.
//!
//! **The margin** is `period / 40`, at least 50 ms, at most 1 s (and never
//! more than a quarter of a sub-second period). The vendor counts arrivals,
//! the log counts sends: the margin absorbs how much later one request may
//! arrive after its send than the request `n` before it did. That is
//! scheduling jitter on a loaded host (the task can be descheduled between
//! `acquire` and the write; the in-process simulator stamps a request when
//! its handler runs, on the same busy cores), connection set-up on the first
//! request, and network latency varying between requests: 50 ms is many
//! scheduler slices and more than a same-region round trip. The share of the
//! period covers vendors whose counters are coarser than our clock (per-node
//! counters in a distributed limiter, coarse timestamps); 1 s covers
//! whole-second timestamps, and more would only waste budget. The margin's
//! cost is the long-run rate, at most `n` per `period + margin`: 95.2 % of a
//! per-second budget (the floor), 97.6 % for periods of 2–40 s, 98.4 % of
//! `20/min`, over 99.9 % of hourly and daily budgets. The binding limit of
//! every vendor default is the per-minute one.
//!
//! The throttle also takes hints: `RateLimit-Remaining` running low spaces
//! the remaining requests until `RateLimit-Reset`, so the 429 never comes,
//! and [`Throttle::pause`] holds every request for a server's `Retry-After`.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use tokio::time::Instant;

/// The least margin a window gets beyond its period: a few scheduler slices
/// on a loaded host, and a round trip's jitter (see the module doc).
const MARGIN_FLOOR: Duration = Duration::from_millis(50);
/// The most margin a window gets: a vendor's whole-second clock.
const MARGIN_CAP: Duration = Duration::from_secs(1);

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

    /// How much longer than `period` the `n` sends before a request must
    /// span, so arrivals stay inside the vendor's window (module doc).
    fn margin(&self) -> Duration {
        (self.period / 40).clamp(MARGIN_FLOOR, MARGIN_CAP).min(self.period / 4)
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

/// When one limit's last requests were sent, for the "at most `n` in any
/// window" check governor cannot make (module doc).
#[derive(Debug)]
struct SendLog {
    limit: RateLimit,
    margin: Duration,
    /// Send instants, oldest first: at most `n`, none older than
    /// `period + margin` once a newer one is recorded (older ones constrain
    /// nothing, and a source polling now and then keeps a short log even
    /// under a daily limit of thousands).
    sent: VecDeque<Instant>,
}

impl SendLog {
    fn new(limit: RateLimit) -> SendLog {
        SendLog { limit, margin: limit.margin(), sent: VecDeque::new() }
    }

    /// The earliest instant the next request may go: when the `n`-th
    /// previous send is `period + margin` old; `None` while fewer than `n`
    /// requests are in the log.
    fn ready_at(&self) -> Option<Instant> {
        if self.sent.len() < self.limit.requests.get() as usize {
            return None;
        }
        self.sent.front().map(|first| *first + self.limit.period + self.margin)
    }

    /// Note a request sent at `at` (not earlier than any recorded).
    fn record(&mut self, at: Instant) {
        let span = self.limit.period + self.margin;
        while self.sent.front().is_some_and(|t| at.saturating_duration_since(*t) >= span) {
            self.sent.pop_front();
        }
        if self.sent.len() >= self.limit.requests.get() as usize {
            self.sent.pop_front();
        }
        self.sent.push_back(at);
    }
}

/// One source's pacing.
pub struct Throttle {
    /// Each limit's even pacing.
    limits: Vec<(RateLimit, DefaultDirectRateLimiter)>,
    /// Each limit's send log, in the order of `limits`. Held for a whole
    /// [`Throttle::acquire`], so concurrent callers queue and no two of them
    /// pass on the same free slot.
    sent: tokio::sync::Mutex<Vec<SendLog>>,
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
        let limits: Vec<_> = limits
            .iter()
            .filter_map(|l| {
                let quota = Quota::with_period(l.spacing())?.allow_burst(NonZeroU32::MIN);
                Some((*l, RateLimiter::direct(quota)))
            })
            .collect();
        let sent = limits.iter().map(|(l, _)| SendLog::new(*l)).collect();
        Throttle { limits, sent: tokio::sync::Mutex::new(sent), paused_until: Mutex::new(None) }
    }

    /// The limits enforced.
    pub fn limits(&self) -> Vec<RateLimit> {
        self.limits.iter().map(|(l, _)| *l).collect()
    }

    /// Wait until a request may go out under every limit and any pause, and
    /// count it as sent now: call it right before sending. Returns the
    /// instant recorded as the send.
    pub async fn acquire(&self) -> Instant {
        let mut sent = self.sent.lock().await;
        self.wait_for_pause().await;
        // The log first: governor's pacing then starts from the instant the
        // window allows, not from before a wait it knows nothing of.
        if let Some(at) = sent.iter().filter_map(SendLog::ready_at).max() {
            sleep_until(at).await;
        }
        for (_, limiter) in &self.limits {
            limiter.until_ready().await;
        }
        // An answer to a request still in flight may have asked for a pause.
        self.wait_for_pause().await;
        let now = Instant::now();
        for log in sent.iter_mut() {
            log.record(now);
        }
        now
    }

    async fn wait_for_pause(&self) {
        let pause = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = pause {
            sleep_until(until).await;
        }
    }

    /// Hold every request for `wait` (a server asked for it).
    pub fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut guard = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        *guard = Some(guard.map_or(until, |u| u.max(until)));
    }
}

/// Sleep until `at`, without touching the timer when it has passed.
async fn sleep_until(at: Instant) {
    if at > Instant::now() {
        tokio::time::sleep_until(at).await;
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
    Some(reset_in / (u32::try_from(remaining).unwrap_or(u32::MAX - 1) + 1)).filter(|d| !d.is_zero())
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

    #[test]
    fn the_margin_is_a_fortieth_of_the_period_between_50ms_and_1s() {
        let margin = |text: &str| text.parse::<RateLimit>().unwrap().margin();
        assert_eq!(margin("4/s"), Duration::from_millis(50));
        assert_eq!(margin("9/3s"), Duration::from_millis(75));
        assert_eq!(margin("20/min"), Duration::from_secs(1));
        assert_eq!(margin("2000/day"), Duration::from_secs(1));
        assert_eq!(margin("5/100ms"), Duration::from_millis(25), "never a quarter of the period");
        // What it costs: at most n per `period + margin` in the long run.
        for text in ["1/s", "10/s", "9/3s", "20/min", "500/h", "2000/day"] {
            let limit: RateLimit = text.parse().unwrap();
            let share = limit.period.as_secs_f64() / (limit.period + limit.margin()).as_secs_f64();
            assert!(share > 0.95, "{text}: {share}");
        }
    }

    /// Issue 13: `9/3s` paced every 333 ms, and the 2nd request goes out
    /// 100 ms late. Governor schedules the ones after it from its scheduled
    /// time, so the 11th would go 2.9 s after the 2nd: 10 sends in one
    /// window. The log holds every request until the one 9 sends before it is
    /// 3 s + 75 ms old.
    #[tokio::test(start_paused = true)]
    async fn the_send_log_holds_the_requests_after_a_late_one_until_the_window_has_room() {
        let limit = RateLimit::new(9, Duration::from_secs(3));
        let margin = Duration::from_millis(75);
        let mut log = SendLog::new(limit);
        let start = Instant::now();
        let scheduled = |k: u32| start + limit.spacing() * k;
        let late = Duration::from_millis(100);
        assert!(scheduled(10) - (scheduled(1) + late) < limit.period, "governor alone: 10 in a window");
        let mut sent = Vec::new();
        for k in 0..20 {
            let wanted = if k == 1 { scheduled(k) + late } else { scheduled(k) };
            if k < 9 {
                assert_eq!(log.ready_at(), None, "fewer than 9 sent: send {k} may go");
            }
            let at = log.ready_at().map_or(wanted, |ready| ready.max(wanted));
            tokio::time::sleep_until(at).await;
            sent.push(Instant::now());
            log.record(Instant::now());
        }
        assert_eq!(sent[10], sent[1] + limit.period + margin, "the 11th waits for the late 2nd");
        for w in sent.windows(10) {
            assert!(w[9] - w[0] >= limit.period + margin, "10 sends in {:?}", w[9] - w[0]);
        }
    }

    /// Sends older than a window plus margin constrain nothing and are
    /// dropped, so a daily limit of thousands keeps a short log.
    #[tokio::test(start_paused = true)]
    async fn the_send_log_forgets_sends_outside_the_window() {
        let mut log = SendLog::new(RateLimit::new(3, Duration::from_secs(10)));
        for _ in 0..3 {
            log.record(Instant::now());
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert_eq!(log.sent.len(), 3);
        assert!(log.ready_at().is_some());
        tokio::time::advance(Duration::from_millis(8_500)).await;
        log.record(Instant::now());
        assert_eq!(log.sent.len(), 2, "the sends at 0 s and 1 s are older than 10 s + 250 ms");
        assert_eq!(log.ready_at(), None);
    }

    /// The whole throttle, on real time (governor's clock is not tokio's):
    /// `2/100ms` with a caller that comes late now and then. Any 3 sends
    /// span at least 100 ms + 25 ms of margin, and the first two are spaced,
    /// not sent at once.
    #[tokio::test]
    async fn acquire_keeps_every_window_as_sent_with_its_margin() {
        let limit = RateLimit::new(2, Duration::from_millis(100));
        let t = Throttle::new(&[limit]);
        let mut sent = Vec::new();
        for k in 0..9 {
            if k % 3 == 2 {
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            sent.push(t.acquire().await);
        }
        assert!(sent[1] - sent[0] >= Duration::from_millis(40), "no burst: {:?}", sent[1] - sent[0]);
        for w in sent.windows(3) {
            assert!(w[2] - w[0] >= Duration::from_millis(125), "3 sends in {:?}", w[2] - w[0]);
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
