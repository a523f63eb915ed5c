//! Limits in the vendors' words, the send log's windows and margin, and
//! the `RateLimit-*` hints.

use super::*;
use reqwest::header::{HeaderMap, HeaderValue};

#[test]
fn limits_parse_in_the_vendors_words() {
    assert_eq!("20/min".parse::<RateLimit>().unwrap(), RateLimit::new(20, Duration::from_secs(60)));
    assert_eq!("7/s".parse::<RateLimit>().unwrap(), RateLimit::new(7, Duration::from_secs(1)));
    assert_eq!("2000/day".parse::<RateLimit>().unwrap(), RateLimit::new(2000, Duration::from_secs(86_400)));
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

/// Requests into `log` one after another, each wanting to go at
/// `wanted(k)` and answered `answer(k)` after it went; returns when each
/// went.
async fn send_all(
    log: &mut SendLog,
    count: u32,
    wanted: impl Fn(u32) -> Instant,
    answer: impl Fn(u32) -> Duration,
) -> Vec<Instant> {
    let mut sent = Vec::new();
    for k in 0..count {
        let at = log.ready_at(Instant::now()).map_or(wanted(k), |ready| ready.max(wanted(k)));
        tokio::time::sleep_until(at).await;
        sent.push(Instant::now());
        log.record(u64::from(k), Instant::now());
        tokio::time::sleep(answer(k)).await;
        log.ended(u64::from(k), Instant::now());
    }
    sent
}

/// Issue 13: `9/3s` paced every 333 ms, and the 2nd request goes out
/// 100 ms late. Governor schedules the ones after it from its scheduled
/// time, so the 11th would go 2.9 s after the 2nd: 10 sends in one
/// window. The log holds every request until the one 9 sends before it
/// is 3 s + 75 ms old.
#[tokio::test(start_paused = true)]
async fn the_send_log_holds_the_requests_after_a_late_one_until_the_window_has_room() {
    let limit = RateLimit::new(9, Duration::from_secs(3));
    let margin = Duration::from_millis(75);
    let mut log = SendLog::new(limit);
    let start = Instant::now();
    let scheduled = |k: u32| start + limit.spacing() * k;
    let late = Duration::from_millis(100);
    assert!(scheduled(10) - (scheduled(1) + late) < limit.period, "governor alone: 10 in a window");
    let wanted = |k: u32| if k == 1 { scheduled(k) + late } else { scheduled(k) };
    let sent = send_all(&mut log, 20, wanted, |_| Duration::from_millis(2)).await;
    assert_eq!(sent[10], sent[1] + limit.period + margin, "the 11th waits for the late 2nd");
    for w in sent.windows(10) {
        assert!(w[9] - w[0] >= limit.period + margin, "10 sends in {:?}", w[9] - w[0]);
    }
}

/// A request whose answer takes longer than the margin (it may have
/// waited for a connection or a CPU before it reached the vendor) holds
/// its place in the window until the answer came.
#[tokio::test(start_paused = true)]
async fn a_slow_answer_holds_the_request_in_the_window_until_it_came() {
    let limit = RateLimit::new(3, Duration::from_secs(1));
    let mut log = SendLog::new(limit);
    let start = Instant::now();
    let slow = Duration::from_millis(300);
    let answer = |k: u32| if k == 0 { slow } else { Duration::from_millis(1) };
    let sent = send_all(&mut log, 7, |k| start + limit.spacing() * k, answer).await;
    assert_eq!(sent[3], sent[0] + slow + limit.period, "the 4th waits for the 1st's answer");
    assert_eq!(sent[4], sent[1] + Duration::from_millis(1_050), "the 5th: the 2nd + margin");
}

/// A request still in flight may arrive any time: `n` of them in flight
/// hold the next request until they are answered and a period old.
#[tokio::test(start_paused = true)]
async fn requests_in_flight_count_as_arriving_now() {
    let limit = RateLimit::new(2, Duration::from_secs(1));
    let mut log = SendLog::new(limit);
    log.record(0, Instant::now());
    log.record(1, Instant::now());
    tokio::time::advance(Duration::from_secs(5)).await;
    let answered = Instant::now();
    assert_eq!(log.ready_at(answered), Some(answered + limit.period));
    log.ended(0, answered);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(log.ready_at(Instant::now()), Some(answered + limit.period), "one is answered");
    log.ended(1, Instant::now());
    assert_eq!(log.ready_at(Instant::now()), Some(answered + limit.period));
}

/// Requests a window can no longer hold are dropped, so a daily limit
/// of thousands keeps a short log.
#[tokio::test(start_paused = true)]
async fn the_send_log_forgets_sends_outside_the_window() {
    let mut log = SendLog::new(RateLimit::new(3, Duration::from_secs(10)));
    for k in 0..3 {
        log.record(k, Instant::now());
        log.ended(k, Instant::now());
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert_eq!(log.sent.len(), 3);
    assert!(log.ready_at(Instant::now()).is_some());
    tokio::time::advance(Duration::from_millis(8_500)).await;
    log.record(3, Instant::now());
    assert_eq!(log.sent.len(), 2, "the requests at 0 s and 1 s are older than 10 s + 250 ms");
    assert_eq!(log.ready_at(Instant::now()), None);
}

/// The whole throttle, on real time (governor's clock is not tokio's):
/// `2/100ms`, with a caller that comes late now and then and an answer
/// that takes 60 ms. Any 3 requests span at least 100 ms + 25 ms of
/// margin, or 100 ms after the slow answer, and the first two are
/// spaced, not sent at once.
#[tokio::test]
async fn acquire_keeps_every_window_as_sent_and_answered() {
    let limit = RateLimit::new(2, Duration::from_millis(100));
    let t = Throttle::new(&[limit]);
    let mut sent = Vec::new();
    let mut slow_answer = None;
    for k in 0..9 {
        if k % 3 == 2 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let request = t.acquire().await;
        sent.push(request.at());
        if k == 4 {
            tokio::time::sleep(Duration::from_millis(60)).await;
            slow_answer = Some(Instant::now());
        }
    }
    assert!(sent[1] - sent[0] >= Duration::from_millis(40), "no burst: {:?}", sent[1] - sent[0]);
    for w in sent.windows(3) {
        assert!(w[2] - w[0] >= Duration::from_millis(125), "3 requests in {:?}", w[2] - w[0]);
    }
    let slow_answer = slow_answer.unwrap();
    assert!(sent[6] - slow_answer >= limit.period, "{:?} after the slow answer", sent[6] - slow_answer);
}

#[tokio::test]
async fn a_pause_holds_the_next_request() {
    let t = Throttle::new(&[]);
    t.pause(Duration::from_millis(200));
    let start = Instant::now();
    drop(t.acquire().await);
    assert!(start.elapsed() >= Duration::from_millis(200));
}
