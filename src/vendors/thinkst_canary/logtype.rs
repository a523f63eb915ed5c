//! Thinkst's `logtype` codes → a category and alertd's severity.
//!
//! Thinkst gives incidents no severity: a Canary alerts only when something
//! touches it, and nothing legitimate should. So an interaction with a
//! Canary service or a Canarytoken is `high`; reconnaissance that touches it
//! only in passing (port scans, a page load, an HTTP service scan, an NTP
//! monlist) is `medium`; the Canary's own status (disconnected, …) is `info`.
//! Codes not in Thinkst's catalogue (`docs/incidents/incident-objects.md`)
//! are `high`, because a new Canary service is still a touched decoy.
//! The table is documented in `docs/vendors/thinkst-canary.md`.

use crate::event::SeverityLevel;

/// How alertd files one logtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Class {
    /// A tag-friendly category name.
    pub category: &'static str,
    /// alertd's severity.
    pub level: SeverityLevel,
}

const fn class(category: &'static str, level: SeverityLevel) -> Class {
    Class { category, level }
}

/// The class of `logtype` (`None` when the incident has none).
pub(super) fn classify(logtype: Option<i64>) -> Class {
    use SeverityLevel::{High, Info, Medium};
    match logtype {
        Some(1000..=1999) => class("canary_status", Info),
        Some(5003..=5008) => class("port_scan", Medium),
        Some(3000 | 3004 | 11001) => class("probe", Medium),
        Some(16000..=17999) => class("canarytoken", High),
        Some(2000 | 3001 | 4002 | 6001 | 8001 | 9001 | 9002 | 12001 | 14003 | 29001) => {
            class("login_attempt", High)
        }
        Some(5000 | 7001 | 10001 | 13001 | 15001 | 18001..=18003 | 19001 | 20001 | 20002 | 21001) => {
            class("service_interaction", High)
        }
        _ => class("other", High),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_codes_fall_into_their_class() {
        for (code, category, level) in [
            (1004, "canary_status", SeverityLevel::Info),
            (5003, "port_scan", SeverityLevel::Medium),
            (5007, "port_scan", SeverityLevel::Medium),
            (3000, "probe", SeverityLevel::Medium),
            (17000, "canarytoken", SeverityLevel::High),
            (16000, "canarytoken", SeverityLevel::High),
            (17012, "canarytoken", SeverityLevel::High),
            (4002, "login_attempt", SeverityLevel::High),
            (3001, "login_attempt", SeverityLevel::High),
            (5000, "service_interaction", SeverityLevel::High),
            (18002, "service_interaction", SeverityLevel::High),
        ] {
            assert_eq!(classify(Some(code)), class(category, level), "{code}");
        }
    }

    #[test]
    fn unknown_or_missing_codes_are_high() {
        assert_eq!(classify(Some(99999)).level, SeverityLevel::High);
        assert_eq!(classify(None).category, "other");
    }
}
