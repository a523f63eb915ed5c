//! Incremental polling by time window, shared by the vendors that filter on
//! a timestamp (`after`/`before`, `since`, `start_time`/`end_time`).
//!
//! A poll asks for `(watermark − overlap, now − lag)`. The window's end is
//! fixed for the whole walk, so items arriving while pages are fetched cannot
//! shift pages under the walk; they fall into the next window. The overlap
//! catches items the vendor indexed late; items it returns twice are dropped
//! by the seen-id set in the checkpoint store. Only when the whole window has
//! been delivered does the watermark move to the window's end, so a vendor
//! that lists newest first never makes alertd skip older items.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::SourceConfig;

/// The window settings of a source.
#[derive(Debug, Clone, Copy)]
pub struct WindowSettings {
    /// How far back a source with no watermark starts.
    pub initial_lookback: Duration,
    /// How far before the watermark a window starts.
    pub overlap: Duration,
    /// How far behind now a window ends.
    pub lag: Duration,
}

impl WindowSettings {
    /// The settings of `source`.
    pub fn of(source: &SourceConfig) -> Self {
        WindowSettings { initial_lookback: source.initial_lookback, overlap: source.overlap, lag: source.lag }
    }
}

/// One walk's time window: items with `after < time < before`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    /// Exclusive start.
    pub after: DateTime<Utc>,
    /// Exclusive end; the watermark once the walk completes.
    pub before: DateTime<Utc>,
    /// The overlap the window was planned with, to prune seen ids.
    #[serde(with = "humantime_serde")]
    pub overlap: Duration,
}

/// A stored watermark that is not a timestamp (a corrupted or foreign row).
#[derive(Debug, thiserror::Error)]
#[error("stored watermark `{0}` is not an RFC 3339 time; reset the cursor with `alertd cursors reset`")]
pub struct BadWatermark(pub String);

impl TimeWindow {
    /// The window for a poll at `now` after `watermark`.
    pub fn plan(
        watermark: Option<&str>,
        now: DateTime<Utc>,
        settings: WindowSettings,
    ) -> Result<TimeWindow, BadWatermark> {
        let end = earlier(now, settings.lag);
        let (after, before) = match watermark {
            Some(text) => {
                let mark = parse_time(text).ok_or_else(|| BadWatermark(text.to_owned()))?;
                // A watermark ahead of our clock (skew, a reset into the
                // future) must not make the watermark move backwards.
                (earlier(mark, settings.overlap), end.max(mark))
            }
            None => (earlier(now, settings.initial_lookback), end),
        };
        Ok(TimeWindow { after, before, overlap: settings.overlap })
    }

    /// The watermark once this window is fully delivered.
    pub fn watermark(&self) -> String {
        format_time(self.before)
    }

    /// Seen ids of items older than this can never come back: the next
    /// window starts at `before − overlap`.
    pub fn prune_before(&self) -> DateTime<Utc> {
        earlier(self.before, self.overlap)
    }
}

/// The one text form of times in the checkpoint store: fixed-width UTC, so
/// that SQLite's text comparison orders them correctly.
pub fn format_time(t: DateTime<Utc>) -> String {
    crate::event::rfc3339(&t, chrono::SecondsFormat::Micros)
}

/// Parse an RFC 3339 time (any offset) into UTC.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim()).ok().map(|t| t.with_timezone(&Utc))
}

/// `t − d`, or the Unix epoch where that is not a representable time.
/// Configured durations are bounded at load (`MAX_LOOKBACK`), so the
/// fallback only guards against settings built in code: a plan must never
/// panic (`DateTime - Duration` does on overflow), and no vendor has
/// alerts from before 1970.
pub fn earlier(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d).ok().and_then(|d| t.checked_sub_signed(d)).unwrap_or(DateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn settings() -> WindowSettings {
        WindowSettings {
            initial_lookback: Duration::from_secs(86_400),
            overlap: Duration::from_secs(600),
            lag: Duration::from_secs(30),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn durations_beyond_chronos_range_do_not_panic() {
        let huge =
            WindowSettings { initial_lookback: Duration::MAX, overlap: Duration::MAX, lag: Duration::ZERO };
        let w = TimeWindow::plan(None, now(), huge).unwrap();
        assert_eq!(w.after, DateTime::UNIX_EPOCH);
        let w = TimeWindow::plan(Some("2026-03-01T11:00:00Z"), now(), huge).unwrap();
        assert_eq!(w.after, DateTime::UNIX_EPOCH);
        assert_eq!(w.prune_before(), DateTime::UNIX_EPOCH);
        let ancient = Duration::from_secs(300_000 * 31_557_600);
        assert_eq!(earlier(now(), ancient), DateTime::UNIX_EPOCH);
        assert_eq!(earlier(now(), Duration::from_secs(60)), now() - chrono::Duration::seconds(60));
    }

    #[test]
    fn a_new_source_looks_back_the_initial_lookback() {
        let w = TimeWindow::plan(None, now(), settings()).unwrap();
        assert_eq!(w.after, Utc.with_ymd_and_hms(2026, 2, 28, 12, 0, 0).unwrap());
        assert_eq!(w.before, Utc.with_ymd_and_hms(2026, 3, 1, 11, 59, 30).unwrap());
    }

    #[test]
    fn a_known_source_starts_one_overlap_before_its_watermark() {
        let w = TimeWindow::plan(Some("2026-03-01T11:00:00Z"), now(), settings()).unwrap();
        assert_eq!(w.after, Utc.with_ymd_and_hms(2026, 3, 1, 10, 50, 0).unwrap());
        assert_eq!(w.watermark(), "2026-03-01T11:59:30.000000Z");
        assert_eq!(w.prune_before(), Utc.with_ymd_and_hms(2026, 3, 1, 11, 49, 30).unwrap());
    }

    #[test]
    fn a_watermark_ahead_of_the_clock_never_moves_back() {
        let w = TimeWindow::plan(Some("2026-03-01T13:00:00Z"), now(), settings()).unwrap();
        assert_eq!(w.before, Utc.with_ymd_and_hms(2026, 3, 1, 13, 0, 0).unwrap());
    }

    #[test]
    fn a_garbled_watermark_is_an_error_not_a_silent_rewind() {
        assert!(TimeWindow::plan(Some("yesterday"), now(), settings()).is_err());
    }

    #[test]
    fn stored_times_sort_as_text() {
        let a = format_time(Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap());
        let b = format_time(
            Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap() + chrono::Duration::microseconds(5),
        );
        assert!(a < b);
        assert_eq!(a.len(), b.len());
    }
}
