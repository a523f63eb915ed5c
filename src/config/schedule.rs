//! When a source polls: a fixed interval (`every 5m`) or a crontab line.
//!
//! Cron expressions are parsed by `croner` (POSIX 5-field crontab, optional
//! seconds field), because the `cron` crate numbers weekdays differently from
//! crontab and rejects 5-field lines.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// How often a source polls.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A fixed interval between poll starts.
    Every(Duration),
    /// A crontab expression, evaluated in UTC.
    Cron(Box<croner::Cron>),
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::Every(Duration::from_secs(60))
    }
}

/// The shortest interval accepted: vendors rate-limit far above this anyway.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The longest: one year (365.25 days, `humantime`'s `1year`). Beyond it
/// the next start is a date no one waits for, and far beyond it one chrono
/// cannot represent.
pub const MAX_INTERVAL: Duration = Duration::from_secs(31_557_600);

impl FromStr for Schedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Some(interval) = text.strip_prefix("every ") {
            let d = humantime::parse_duration(interval.trim())
                .map_err(|e| format!("invalid interval `{interval}`: {e} (e.g. `every 5m`)"))?;
            if d < MIN_INTERVAL {
                return Err(format!("interval `{interval}` is shorter than 1s"));
            }
            if d > MAX_INTERVAL {
                return Err(format!("interval `{interval}` is longer than the maximum 1year"));
            }
            return Ok(Schedule::Every(d));
        }
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(text)
            .map_err(|e| {
                format!(
                    "invalid schedule `{text}`: {e} (use `every 5m` or a crontab line like `*/5 * * * *`)"
                )
            })?;
        Ok(Schedule::Cron(Box::new(cron)))
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Schedule {
    /// The first start strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            // Bounded at load; saturating all the same, so no setting can
            // make a schedule panic.
            Schedule::Every(d) => chrono::Duration::from_std(*d)
                .ok()
                .and_then(|d| after.checked_add_signed(d))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            Schedule::Cron(cron) => cron
                .find_next_occurrence(&after, false)
                // A pattern that never matches again (e.g. a date in the past)
                // parks the source for a day rather than spinning.
                .unwrap_or_else(|_| {
                    after.checked_add_signed(chrono::Duration::days(1)).unwrap_or(DateTime::<Utc>::MAX_UTC)
                }),
        }
    }

    /// The longest gap between two starts, for health checks: a source is
    /// late when its last success is older than this (plus slack).
    pub fn nominal_interval(&self, now: DateTime<Utc>) -> Duration {
        let first = self.next_after(now);
        let second = self.next_after(first);
        (second - first).to_std().unwrap_or(Duration::from_secs(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn an_interval_adds_up() {
        let s: Schedule = "every 90s".parse().unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(s.next_after(t), Utc.with_ymd_and_hms(2026, 1, 1, 0, 1, 30).unwrap());
    }

    #[test]
    fn a_five_field_crontab_line_uses_posix_weekdays() {
        // 09:00 on Mondays; 2026-01-01 is a Thursday, so the next is Jan 5.
        let s: Schedule = "0 9 * * 1".parse().unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(s.next_after(t), Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap());
    }

    #[test]
    fn every_five_minutes() {
        let s: Schedule = "*/5 * * * *".parse().unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 3, 10).unwrap();
        assert_eq!(s.next_after(t), Utc.with_ymd_and_hms(2026, 1, 1, 0, 5, 0).unwrap());
        assert_eq!(s.nominal_interval(t), Duration::from_secs(300));
    }

    #[test]
    fn intervals_are_bounded_and_the_next_start_never_panics() {
        assert!("every 1year".parse::<Schedule>().is_ok());
        let err = "every 300000years".parse::<Schedule>().unwrap_err();
        assert!(err.contains("maximum"), "{err}");
        // Built in code, past the bound: the next start saturates.
        let never = Schedule::Every(Duration::MAX);
        assert_eq!(never.next_after(Utc::now()), DateTime::<Utc>::MAX_UTC);
        let far = Schedule::Every(Duration::from_secs(300_000 * 31_557_600));
        assert_eq!(far.next_after(Utc::now()), DateTime::<Utc>::MAX_UTC);
        let _ = far.nominal_interval(Utc::now());
    }

    #[test]
    fn garbage_is_refused_with_a_hint() {
        let err = "sometimes".parse::<Schedule>().unwrap_err();
        assert!(err.contains("every 5m"), "{err}");
        assert!("every 0s".parse::<Schedule>().is_err());
        assert!("every soon".parse::<Schedule>().is_err());
    }
}
