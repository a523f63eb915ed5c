//! Per-source health: when each source last succeeded, and whether that is
//! recent enough for its schedule.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// One source's health.
#[derive(Debug, Clone)]
pub struct SourceHealth {
    /// Vendor key.
    pub vendor: &'static str,
    /// The longest a healthy source goes without a successful poll.
    pub allowed_gap: Duration,
    /// The last successful poll's end.
    pub last_success: Option<DateTime<Utc>>,
    /// The last failure's bounded code, cleared by a success.
    pub last_error: Option<String>,
    /// The watermark after the last complete walk.
    pub watermark: Option<String>,
    /// When the poll in flight last made progress (`None` between polls).
    pub in_poll_progress: Option<DateTime<Utc>>,
    /// How long a poll may go without progress before the source counts as
    /// stuck (and the systemd watchdog is no longer fed).
    pub stall_after: Duration,
    /// Whether this instance polls the source (always, unless `[cluster]`
    /// gave the source's lease to another instance).
    pub active: bool,
    /// When it last became active: its health is judged from then.
    pub active_since: DateTime<Utc>,
}

/// Health of all sources.
#[derive(Debug)]
pub struct Health {
    started: DateTime<Utc>,
    sources: Mutex<BTreeMap<String, SourceHealth>>,
}

impl Default for Health {
    fn default() -> Self {
        Health { started: Utc::now(), sources: Mutex::new(BTreeMap::new()) }
    }
}

impl Health {
    /// Start tracking `source`, which polls about every `interval`. A source
    /// may miss one start (a slow vendor, a retry) and still be healthy.
    pub fn register(&self, source: &str, vendor: &'static str, interval: Duration, stall_after: Duration) {
        let allowed_gap = (interval * 2).max(interval + Duration::from_secs(60));
        self.with(|s| {
            // Registered again (a reload changed its schedule): new bounds,
            // the same history.
            s.entry(source.to_owned())
                .and_modify(|h| {
                    h.allowed_gap = allowed_gap;
                    h.stall_after = stall_after;
                })
                .or_insert(SourceHealth {
                    vendor,
                    allowed_gap,
                    last_success: None,
                    last_error: None,
                    watermark: None,
                    in_poll_progress: None,
                    stall_after,
                    active: true,
                    active_since: self.started,
                });
        });
    }

    /// Stop tracking `source` (a reload removed it).
    pub fn remove(&self, source: &str) {
        self.with(|s| {
            s.remove(source);
        });
    }

    /// This instance starts (`true`) or stops polling `source`; an inactive
    /// source is another instance's business and never unhealthy here.
    pub fn set_active(&self, source: &str, active: bool) {
        self.with(|s| {
            if let Some(h) = s.get_mut(source) {
                if active && !h.active {
                    h.active_since = Utc::now();
                }
                h.active = active;
                if !active {
                    h.in_poll_progress = None;
                }
            }
        });
    }

    /// A poll started, or the poll in flight made progress (an answer, a page).
    pub fn progress(&self, source: &str) {
        self.with(|s| {
            if let Some(h) = s.get_mut(source) {
                h.in_poll_progress = Some(Utc::now());
            }
        });
    }

    /// Sources whose poll in flight has made no progress for longer than
    /// their stall bound: a hung task, which a restart would cure.
    pub fn stalled(&self, now: DateTime<Utc>) -> Vec<String> {
        self.snapshot()
            .into_iter()
            .filter(|(_, h)| {
                h.active
                    && h.in_poll_progress
                        .is_some_and(|t| (now - t).to_std().unwrap_or_default() > h.stall_after)
            })
            .map(|(name, _)| name)
            .collect()
    }

    /// Record a successful poll.
    pub fn success(&self, source: &str, watermark: Option<&str>) {
        self.with(|s| {
            if let Some(h) = s.get_mut(source) {
                h.last_success = Some(Utc::now());
                h.last_error = None;
                h.in_poll_progress = None;
                if let Some(w) = watermark {
                    h.watermark = Some(w.to_owned());
                }
            }
        });
    }

    /// Record a failed poll.
    pub fn failure(&self, source: &str, code: &str) {
        self.with(|s| {
            if let Some(h) = s.get_mut(source) {
                h.last_error = Some(code.to_owned());
                h.in_poll_progress = None;
            }
        });
    }

    /// Every source's state.
    pub fn snapshot(&self) -> Vec<(String, SourceHealth)> {
        let mut out = Vec::new();
        self.with(|s| out = s.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        out
    }

    /// The sources that are not healthy at `now`, with why. A source is
    /// healthy when it succeeded within its allowed gap, or, before its first
    /// success, while the daemon is younger than that gap.
    pub fn unhealthy(&self, now: DateTime<Utc>) -> Vec<(String, String)> {
        self.snapshot()
            .into_iter()
            .filter(|(_, h)| h.active)
            .filter_map(|(name, h)| {
                let since = h.last_success.map_or(h.active_since, |last| last.max(h.active_since));
                let gap = (now - since).to_std().unwrap_or_default();
                (gap > h.allowed_gap).then(|| {
                    let why = match (&h.last_success, &h.last_error) {
                        (None, Some(e)) => format!("no successful poll yet; last error: {e}"),
                        (None, None) => "no successful poll yet".to_owned(),
                        (Some(_), Some(e)) => format!("last success {}s ago; last error: {e}", gap.as_secs()),
                        (Some(_), None) => format!("last success {}s ago", gap.as_secs()),
                    };
                    (name, why)
                })
            })
            .collect()
    }

    fn with(&self, f: impl FnOnce(&mut BTreeMap<String, SourceHealth>)) {
        let mut guard = match self.sources.lock() {
            Ok(g) => g,
            // A panic while holding the lock leaves plain data behind; keep serving it.
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_healthy_until_it_misses_its_allowed_gap() {
        let health = Health::default();
        health.register("a", "canaryguard", Duration::from_secs(60), Duration::from_secs(600));
        let now = Utc::now();
        assert!(health.unhealthy(now).is_empty(), "a new source gets its first interval");
        let late = now + chrono::Duration::seconds(121);
        health.failure("a", "auth");
        let bad = health.unhealthy(late);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].1.contains("auth"), "{bad:?}");
        health.success("a", None);
        assert!(health.unhealthy(Utc::now()).is_empty());
    }

    #[test]
    fn a_poll_without_progress_past_its_bound_is_stalled() {
        let health = Health::default();
        health.register("a", "canaryguard", Duration::from_secs(60), Duration::from_secs(30));
        assert!(health.stalled(Utc::now()).is_empty(), "not polling: not stalled");
        health.progress("a");
        assert!(health.stalled(Utc::now()).is_empty());
        assert_eq!(health.stalled(Utc::now() + chrono::Duration::seconds(31)), vec!["a".to_owned()]);
        health.success("a", None);
        assert!(health.stalled(Utc::now() + chrono::Duration::seconds(31)).is_empty());
    }

    #[test]
    fn a_source_another_instance_polls_is_never_unhealthy_here() {
        let health = Health::default();
        health.register("a", "canaryguard", Duration::from_secs(60), Duration::from_secs(30));
        health.set_active("a", false);
        let much_later = Utc::now() + chrono::Duration::hours(5);
        assert!(health.unhealthy(much_later).is_empty());
        health.progress("a");
        assert!(health.stalled(much_later).is_empty());
        // Taken over: judged from the takeover, not from the daemon's start.
        health.set_active("a", true);
        assert!(health.unhealthy(Utc::now() + chrono::Duration::seconds(100)).is_empty());
        assert_eq!(health.unhealthy(Utc::now() + chrono::Duration::seconds(121)).len(), 1);
    }
}
