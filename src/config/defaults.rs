//! Every setting's default, its bounds, and the field parsers that enforce
//! them while deserializing (so an error points at the offending line).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{Format, StateBackend};

pub(super) fn subject_prefix<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let prefix = String::deserialize(d)?;
    let ok = !prefix.is_empty()
        && prefix
            .split('.')
            .all(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    if ok {
        Ok(prefix)
    } else {
        Err(serde::de::Error::custom(format!(
            "subject_prefix `{prefix}` must be dot-separated tokens of letters, digits, `-` and `_` (no wildcards)"
        )))
    }
}

pub(super) fn formats<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Format>, D::Error> {
    let mut formats = Vec::<Format>::deserialize(d)?;
    if formats.is_empty() {
        return Err(serde::de::Error::custom("formats must name at least one of `alertd`, `ocsf`"));
    }
    let mut seen = std::collections::HashSet::new();
    formats.retain(|f| seen.insert(*f));
    Ok(formats)
}

pub(super) fn default_listen() -> Option<std::net::SocketAddr> {
    Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9464)))
}

pub(super) fn listen_addr<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<std::net::SocketAddr>, D::Error> {
    parse_listen(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// A `listen` value: `host:port`, or `off` (`None`). Also used for the
/// `--listen` override, so several instances on one host can share a file.
pub fn parse_listen(text: &str) -> Result<Option<std::net::SocketAddr>, String> {
    if text == "off" {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| format!("listen `{text}` is not `host:port` (an IP address and a port) or `off`"))
}

/// One year as `humantime` counts it (365.25 days), so `"10years"` is
/// exactly the ten-year bound.
pub(super) const YEAR: Duration = Duration::from_secs(31_557_600);

/// `initial_lookback` and `overlap`: 10 years. Vendors keep alerts for far
/// less; the bound exists so that `now − lookback` is always a date every
/// vendor and chrono can represent (`300000years` used to pass the check
/// and panic in the first poll).
pub const MAX_LOOKBACK: Duration = Duration::from_secs(10 * YEAR.as_secs());
/// `lag`: 1 day. A window that closes further behind now is a
/// misconfiguration, not a delay anyone wants.
pub const MAX_LAG: Duration = Duration::from_secs(24 * 3600);
/// `jitter`: 1 hour, added to each start.
pub const MAX_JITTER: Duration = Duration::from_secs(3600);
/// `timeout` (per request) and `[nats] ack_timeout`: 1 hour. Longer only
/// hides a hung peer from the watchdog, whose stall bound grows with them.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// `credential_expiry_warning`: 2 years, the longest life of a Catchpoint
/// key; a longer warning would warn from a key's first day.
pub const MAX_EXPIRY_WARNING: Duration = Duration::from_secs(2 * YEAR.as_secs());
/// `[nats] duplicate_window`: 30 days. JetStream keeps every id of the
/// window in memory; a month covers any outage worth riding out.
pub const MAX_DUPLICATE_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);
/// `[cluster] lease_ttl`: 1 hour (a dead instance's sources wait up to
/// twice this).
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(3600);

/// A `humantime` duration (`"90s"`, `"24h"`, `"10years"`) of at most
/// `max`, and more than zero when `nonzero`. The error is raised while the
/// value is read, so it carries the value's line.
pub(super) fn bounded_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
    max: Duration,
    nonzero: bool,
) -> Result<Duration, D::Error> {
    let value: Duration = humantime_serde::deserialize(d)?;
    if value > max {
        return Err(serde::de::Error::custom(format!(
            "{} is longer than the maximum {}",
            humantime::format_duration(value),
            humantime::format_duration(max)
        )));
    }
    if nonzero && value.is_zero() {
        return Err(serde::de::Error::custom("must be more than 0s"));
    }
    Ok(value)
}

pub(super) fn lookback<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    bounded_duration(d, MAX_LOOKBACK, false)
}
pub(super) fn opt_lookback<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    bounded_duration(d, MAX_LOOKBACK, false).map(Some)
}
pub(super) fn opt_every<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    bounded_duration(d, MAX_LOOKBACK, true).map(Some)
}
pub(super) fn lag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    bounded_duration(d, MAX_LAG, false)
}
pub(super) fn jitter<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    bounded_duration(d, MAX_JITTER, false)
}
pub(super) fn timeout<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    bounded_duration(d, MAX_TIMEOUT, true)
}
pub(super) fn expiry_warning<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    bounded_duration(d, MAX_EXPIRY_WARNING, false)
}
pub(super) fn duplicate_window<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    bounded_duration(d, MAX_DUPLICATE_WINDOW, false)
}
pub(super) fn lease_ttl<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    bounded_duration(d, MAX_LEASE_TTL, false)
}

pub(super) fn default_expiry_warning() -> Duration {
    Duration::from_secs(14 * 24 * 3600)
}

pub(super) fn default_stream() -> String {
    "ALERTD".into()
}
pub(super) fn default_prefix() -> String {
    "alertd".into()
}
pub(super) fn default_duplicate_window() -> Duration {
    Duration::from_secs(2 * 3600)
}
pub(super) fn default_ack_timeout() -> Duration {
    Duration::from_secs(10)
}
pub(super) fn default_state_path() -> PathBuf {
    match std::env::var_os("STATE_DIRECTORY") {
        // systemd may pass several directories separated by ':'; the first is ours.
        Some(dirs) => {
            let dirs = dirs.to_string_lossy().into_owned();
            PathBuf::from(dirs.split(':').next().unwrap_or(".")).join("alertd.sqlite")
        }
        None => PathBuf::from("alertd.sqlite"),
    }
}
pub(super) fn default_backend() -> Spanned<StateBackend> {
    Spanned::new(0..0, StateBackend::default())
}
pub(super) fn default_disabled() -> Spanned<bool> {
    Spanned::new(0..0, false)
}
pub(super) fn bucket_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = String::deserialize(d)?;
    if !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(name)
    } else {
        Err(serde::de::Error::custom(format!(
            "bucket `{name}` must be 1 to 64 letters, digits, `-` and `_` (a JetStream KV bucket name)"
        )))
    }
}
pub(super) fn default_cursor_bucket() -> String {
    "alertd_cursors".to_owned()
}
pub(super) fn default_lease_bucket() -> String {
    "alertd_leases".to_owned()
}
pub(super) fn default_lease_ttl() -> Duration {
    Duration::from_secs(15)
}
pub(super) fn default_jitter() -> Duration {
    Duration::from_secs(5)
}
pub(super) fn default_page_size() -> u32 {
    100
}
pub(super) fn default_lookback() -> Duration {
    Duration::from_secs(24 * 3600)
}
pub(super) fn default_overlap() -> Duration {
    Duration::from_secs(10 * 60)
}
pub(super) fn default_lag() -> Duration {
    Duration::from_secs(30)
}
pub(super) fn default_max_pages() -> u64 {
    10_000
}
pub(super) fn default_retries() -> usize {
    4
}
/// The default of a source's `max_response_bytes`: 32 MiB, far above the
/// largest page any supported vendor serves (a few MiB at their maximum
/// page sizes) and small enough that every source of a daemon can hold one.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

/// The largest `max_response_bytes` a config may set (1 GiB): one body is
/// held in memory whole, and parsed into a tree several times its size.
pub const MAX_RESPONSE_BYTES_LIMIT: u64 = 1024 * 1024 * 1024;

pub(super) fn default_max_response_bytes() -> u64 {
    DEFAULT_MAX_RESPONSE_BYTES
}
pub(super) fn response_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let limit = MAX_RESPONSE_BYTES_LIMIT;
    match u64::deserialize(d) {
        Ok(n) if (1..=limit).contains(&n) => Ok(n),
        _ => Err(serde::de::Error::custom(format!(
            "max_response_bytes must be a number of bytes from 1 to {limit} (1 GiB); the default is {} (32 MiB)",
            DEFAULT_MAX_RESPONSE_BYTES
        ))),
    }
}
pub(super) fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
pub(super) fn yes() -> bool {
    true
}
pub(super) fn one() -> usize {
    1
}
