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
