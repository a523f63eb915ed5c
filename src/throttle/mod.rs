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
//! - **A send log**: for each of the last `n` requests, the latest instant
//!   the vendor can have counted it: its send (recorded when
//!   [`Throttle::acquire`] returns) plus a margin, or the end of its attempt
//!   if that is later, since a request cannot arrive after its answer. The
//!   next request waits until the `n`-th previous one's instant is `period`
//!   old, so `n + 1` arrivals never share a window however late any of them
//!   went or arrived. GCRA keeps one timestamp and cannot express "at most
//!   `n` in any window as counted at arrival", hence this small log next to
//!   governor.
//!
//! Why the end of the attempt: what is recorded is the send, the vendor
//! counts the arrival, and in between the request can wait for a CPU, for a
//! new connection (TCP and TLS handshakes on the first request after idle),
//! or in the network. On a loaded host that exceeds any margin one would pay
//! for: with both cores saturated, the simulator in the test process (which
//! stamps a request when its handler runs) saw some requests 0.3 s after
//! `acquire` returned, most within 2 ms. The answer bounds the arrival
//! whatever the delay, and costs nothing while answers come back within the
//! margin.
//!
//! **The margin** is `period / 40`, at least 50 ms, at most 1 s (and never
//! more than a quarter of a sub-second period). It covers a vendor that
//! counts by a clock of its own: nodes of a distributed limiter apart by
//! what NTP allows (the 50 ms floor), coarse or approximate counters (the
//! share of the period), whole-second timestamps (the 1 s cap; more would
//! only waste budget). A slow answer needs none: its end lies after the
//! vendor's count by at least the answer's way back. The cost is the
//! long-run rate, at most `n` per `period + max(margin, answer time)`: with
//! answers faster than the margin, 95.2 % of a per-second budget (the
//! floor), 97.6 % for periods of 2–40 s, 98.4 % of `20/min`, over 99.9 % of
//! hourly and daily budgets. The binding limit of every vendor default is
//! the per-minute one, where answers within a second cost nothing more.
//!
//! The throttle also takes hints: `RateLimit-Remaining` running low spaces
//! the remaining requests until `RateLimit-Reset`, so the 429 never comes,
//! and [`Throttle::pause`] holds every request for a server's `Retry-After`.
//!
//! **Stopping.** A source that stops (shutdown) drops its
//! [`Throttle::acquire`] wherever it waits (`http::fetch` races the whole
//! request against the stop). That is safe at every await: the turn is
//! released, the send log is written only once every wait is over, and
//! governor takes a slot only when it grants one, so a dropped wait counts
//! no request, except that a limit already passed keeps its slot: the next
//! request waits one spacing more on it than it would have (never less).

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use tokio::time::Instant;

/// The least margin a window gets beyond its period (module doc).
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

    /// How much later than its send a request counts in the log (module doc).
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

/// One request in a [`SendLog`].
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The request's number, to find it when its attempt ends.
    seq: u64,
    /// The latest the vendor can have counted it: the send plus the margin,
    /// or the end of the attempt if later.
    counted_by: Instant,
    /// Whether the attempt is still under way: it may then arrive as late
    /// as now.
    open: bool,
}

impl Entry {
    fn counted_by(&self, now: Instant) -> Instant {
        if self.open { self.counted_by.max(now) } else { self.counted_by }
    }
}

/// One limit's last `n` requests, for the "at most `n` in any window as
/// counted at arrival" check governor cannot make (module doc).
#[derive(Debug)]
struct SendLog {
    limit: RateLimit,
    margin: Duration,
    /// Oldest first: at most `n`, and none that a window can no longer
    /// hold (they constrain nothing, and a source polling now and then keeps
    /// a short log even under a daily limit of thousands).
    sent: VecDeque<Entry>,
}

impl SendLog {
    fn new(limit: RateLimit) -> SendLog {
        SendLog { limit, margin: limit.margin(), sent: VecDeque::new() }
    }

    /// The earliest instant the next request may go: `period` after the
    /// earliest instant by which the last `n` requests were all counted (the
    /// oldest one's, when they went one after another); `None` while fewer
    /// than `n` are in the log.
    fn ready_at(&self, now: Instant) -> Option<Instant> {
        if self.sent.len() < self.limit.requests.get() as usize {
            return None;
        }
        self.sent.iter().map(|e| e.counted_by(now)).min().map(|at| at + self.limit.period)
    }

    /// Note request `seq`, sent at `at` (not earlier than any recorded).
    fn record(&mut self, seq: u64, at: Instant) {
        let period = self.limit.period;
        while self.sent.front().is_some_and(|e| !e.open && e.counted_by + period <= at) {
            self.sent.pop_front();
        }
        if self.sent.len() >= self.limit.requests.get() as usize {
            self.sent.pop_front();
        }
        self.sent.push_back(Entry { seq, counted_by: at + self.margin, open: true });
    }

    /// Request `seq`'s attempt ended at `at`: it was counted by then.
    fn ended(&mut self, seq: u64, at: Instant) {
        if let Some(entry) = self.sent.iter_mut().rev().find(|e| e.seq == seq) {
            entry.counted_by = entry.counted_by.max(at);
            entry.open = false;
        }
    }
}

/// Every limit's log and the next request's number.
#[derive(Debug)]
struct Logs {
    next: u64,
    limits: Vec<SendLog>,
}

/// One source's pacing.
pub struct Throttle {
    /// Each limit's even pacing.
    limits: Vec<(RateLimit, DefaultDirectRateLimiter)>,
    /// Taken for a whole [`Throttle::acquire`], so concurrent callers queue
    /// and no two of them pass on the same free slot.
    turn: tokio::sync::Mutex<()>,
    /// Each limit's send log, in the order of `limits`. Never held across
    /// an await: a [`Sent`] being dropped updates it.
    logs: Mutex<Logs>,
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
        let logs = Logs { next: 0, limits: limits.iter().map(|(l, _)| SendLog::new(*l)).collect() };
        Throttle {
            limits,
            turn: tokio::sync::Mutex::new(()),
            logs: Mutex::new(logs),
            paused_until: Mutex::new(None),
        }
    }

    /// The limits enforced.
    pub fn limits(&self) -> Vec<RateLimit> {
        self.limits.iter().map(|(l, _)| *l).collect()
    }

    /// Wait until a request may go out under every limit and any pause, and
    /// count it as sent now: call it right before sending, and keep the
    /// [`Sent`] until the attempt has ended.
    pub async fn acquire(&self) -> Sent<'_> {
        let _turn = self.turn.lock().await;
        // The windows first: governor's pacing then starts from the instant
        // they allow, not from before a wait it knows nothing of.
        self.wait_for_room().await;
        for (_, limiter) in &self.limits {
            limiter.until_ready().await;
        }
        // An answer to a request still in flight may have asked for a pause.
        self.wait_for_room().await;
        let at = Instant::now();
        let seq = {
            let mut logs = self.logs();
            let seq = logs.next;
            logs.next += 1;
            for log in &mut logs.limits {
                log.record(seq, at);
            }
            seq
        };
        Sent { throttle: self, seq, at }
    }

    /// Wait until neither a pause nor a full window holds the next request.
    async fn wait_for_room(&self) {
        loop {
            let now = Instant::now();
            let pause = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
            let window = self.logs().limits.iter().filter_map(|l| l.ready_at(now)).max();
            match pause.max(window) {
                Some(at) if at > now => tokio::time::sleep_until(at).await,
                _ => return,
            }
        }
    }

    fn logs(&self) -> std::sync::MutexGuard<'_, Logs> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether one more request could go now without waiting and still
    /// leave, in every limit's window, `reserve(limit)` requests free, with
    /// the limit's spacing elapsed by `by`: how a revisit (issue 19) spends
    /// only what the regular polls leave, without delaying the next one
    /// (due at `by`). Never waits and counts nothing; a request that may go
    /// still takes [`Throttle::acquire`].
    pub fn spare(&self, reserve: impl Fn(&RateLimit) -> u32, by: Instant) -> bool {
        let now = Instant::now();
        let paused =
            self.paused_until.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|until| until > now);
        if paused {
            return false;
        }
        let logs = self.logs();
        logs.limits.iter().all(|log| {
            let (period, n) = (log.limit.period, log.limit.requests.get() as usize);
            // Room now, so this request does not wait…
            let in_window = log.sent.iter().filter(|e| e.counted_by(now) + period > now).count();
            // …and at `by` the window still holds `reserve` free requests,
            // this one counted if it is still inside it then.
            let alive_then = log.sent.iter().filter(|e| e.counted_by(now) + period > by).count();
            let this_then = usize::from(now + log.margin + period > by);
            let reserve = reserve(&log.limit) as usize;
            // The pacing: this one goes only once the last one's spacing has
            // passed, and the next poll's finds this one's passed.
            let spacing = log.limit.spacing();
            let paced = log.sent.back().is_none_or(|e| e.counted_by(now) + spacing <= now);
            in_window < n && alive_then + this_then + reserve <= n && paced && now + spacing <= by
        })
    }

    /// Hold every request for `wait` (a server asked for it).
    pub fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut guard = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        *guard = Some(guard.map_or(until, |u| u.max(until)));
    }
}

/// A request counted against a [`Throttle`]'s limits. Dropping it marks the
/// end of its attempt (answered, failed or given up): the vendor counted
/// the request by then, so when that is later than the send plus the margin,
/// the request holds its place in every window until then.
#[derive(Debug)]
#[must_use = "keep it until the attempt has ended: dropping it says the request was counted by then"]
pub struct Sent<'a> {
    throttle: &'a Throttle,
    seq: u64,
    at: Instant,
}

impl Sent<'_> {
    /// When the request counted as sent.
    pub fn at(&self) -> Instant {
        self.at
    }
}

impl Drop for Sent<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        for log in &mut self.throttle.logs().limits {
            log.ended(self.seq, now);
        }
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
mod tests;
