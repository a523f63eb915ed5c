//! The budget's arithmetic; the revisit itself is tested end to end
//! against the simulators in `tests/revisit.rs`.

use std::time::Duration;

use super::Budget;
use crate::throttle::RateLimit;

fn budget(interval_ms: u64, requests: u32) -> Budget {
    Budget {
        deadline: tokio::time::Instant::now(),
        poll_interval: Duration::from_millis(interval_ms),
        poll_requests: requests,
    }
}

#[test]
fn the_reserve_is_the_polls_of_a_window_times_their_requests() {
    let per_minute = RateLimit::new(20, Duration::from_secs(60));
    assert_eq!(budget(5_000, 1).reserve(&per_minute), 12, "12 polls a minute, 1 request each");
    assert_eq!(budget(5_000, 2).reserve(&per_minute), 24, "more than the limit: no room for a revisit");
    let per_second = RateLimit::new(5, Duration::from_secs(1));
    assert_eq!(budget(990, 2).reserve(&per_second), 2, "a tick a little early is still one poll");
    assert_eq!(budget(3_600_000, 3).reserve(&per_second), 3, "at least one poll's requests");
}

fn source(vendor: &str, extra: &str) -> crate::config::SourceConfig {
    let text = format!(
        "[[source]]\nvendor = \"{vendor}\"\nname = \"s\"\nbase_url = \"https://h.example\"\ncredential = {{ env = \"K\" }}\n{extra}\n"
    );
    let mut config = crate::registry::parse(&text, "t.toml").expect("config");
    config.sources.remove(0)
}

#[test]
fn settings_come_from_the_vendor_default_and_the_source() {
    use super::Settings;
    use crate::vendors::{canaryguard::CanaryGuard, catchpoint::Catchpoint, red_canary::RedCanary};
    let hour = Duration::from_secs(3600);
    let rc = Settings::of::<RedCanary>(&source("red_canary", "")).expect("on by default");
    assert_eq!((rc.window, rc.every, rc.overlap), (7 * 24 * hour, hour, Duration::from_secs(600)));
    let cp = Settings::of::<Catchpoint>(&source("catchpoint", "")).expect("on by default");
    assert_eq!(cp.window, 24 * hour);
    assert_eq!(Settings::of::<RedCanary>(&source("red_canary", "revisit = { enabled = false }")), None);
    let every = Settings::of::<RedCanary>(&source("red_canary", "revisit = { every = \"15m\" }")).unwrap();
    assert_eq!((every.window, every.every), (7 * 24 * hour, Duration::from_secs(900)));
    assert_eq!(Settings::of::<CanaryGuard>(&source("canaryguard", "")), None, "off by default");
    assert!(Settings::of::<CanaryGuard>(&source("canaryguard", "revisit = {}")).is_some(), "unless asked");
    let short = "overlap = \"2d\"\nrevisit = { window = \"1d\" }";
    assert_eq!(Settings::of::<RedCanary>(&source("red_canary", short)), None, "a window within the overlap");
}
