//! Every vendor alertd can poll: one line each in [`VENDORS`].
//!
//! The registry sits above the poller and the vendors and joins them: for
//! each vendor type it keeps what the rest of alertd asks by key (the
//! config's check of a source's options, building its poller, its OCSF
//! product), so neither `vendors` nor `config` has to reach up for the
//! other. Adding a vendor: its folder under `src/vendors/`, and one
//! `entry::<newvendor::NewVendor>()` line below.

use std::sync::Arc;

use crate::config::{Config, ConfigError, SourceConfig, VendorProblem};
use crate::poller::{Poll, PollerDeps};
use crate::vendors::{
    Vendor, canaryguard, catchpoint, http, instantiate, rapid7, red_canary, thinkst_canary,
};

/// Every vendor alertd can poll. One line per vendor.
pub static VENDORS: &[VendorEntry] = &[
    entry::<canaryguard::CanaryGuard>(),
    entry::<catchpoint::Catchpoint>(),
    entry::<http::HttpSource>(),
    entry::<rapid7::Rapid7>(),
    entry::<red_canary::RedCanary>(),
    entry::<thinkst_canary::ThinkstCanary>(),
];

/// Builds a source's poller.
type BuildFn = fn(&SourceConfig, PollerDeps) -> Result<Box<dyn Poll>, String>;

/// A registered vendor, type-erased.
pub struct VendorEntry {
    /// Config key.
    pub key: &'static str,
    /// Human name.
    pub name: &'static str,
    /// Public endpoint, if any.
    pub default_base_url: Option<&'static str>,
    /// What its OCSF findings say of it.
    pub ocsf: crate::ocsf::Product,
    /// Its lines of a commented `[[source]]` (`alertd init`).
    pub config_example: &'static str,
    check: fn(&SourceConfig) -> Result<(), String>,
    build: BuildFn,
}

/// The registry entry of `V`.
pub const fn entry<V: Vendor>() -> VendorEntry {
    VendorEntry {
        key: V::KEY,
        name: V::NAME,
        default_base_url: V::DEFAULT_BASE_URL,
        ocsf: V::OCSF,
        config_example: V::CONFIG_EXAMPLE,
        check: |source| instantiate::<V>(source).map(drop),
        build: crate::poller::build::<V>,
    }
}

/// The vendor registered as `key`.
pub fn lookup(key: &str) -> Option<&'static VendorEntry> {
    VENDORS.iter().find(|e| e.key == key)
}

/// All vendor keys.
pub fn keys() -> impl Iterator<Item = &'static str> {
    VENDORS.iter().map(|e| e.key)
}

/// A source's vendor and its vendor-specific settings, checked without
/// building anything: the check `config` is handed when it loads a file.
pub fn check_source(source: &SourceConfig) -> Result<(), VendorProblem> {
    let entry = lookup(source.vendor()).ok_or_else(|| VendorProblem::Unknown {
        key: source.vendor().to_owned(),
        known: keys().collect::<Vec<_>>().join(", "),
    })?;
    (entry.check)(source).map_err(VendorProblem::Settings)
}

/// Read and check the configuration file at `path`, vendors included.
pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
    Config::from_file(path, &check_source)
}

/// Parse and check `text` (named `file` in errors), vendors included.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, file, &check_source)
}

/// Build the pollers of every enabled source.
pub fn build_all(sources: &[SourceConfig], deps: &PollerDeps) -> Result<Vec<Arc<dyn Poll>>, String> {
    sources
        .iter()
        .filter(|s| s.enabled)
        .map(|s| {
            let entry = lookup(s.vendor()).ok_or_else(|| format!("unknown vendor `{}`", s.vendor()))?;
            (entry.build)(s, deps.clone()).map(Arc::from).map_err(|e| format!("source {}: {e}", s.name()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_public_default_base_url_is_https() {
        for entry in VENDORS {
            if let Some(url) = entry.default_base_url {
                assert!(url.starts_with("https://"), "{}: {url}", entry.key);
            }
        }
    }

    #[test]
    fn vendor_keys_are_unique_subject_tokens() {
        let keys: Vec<_> = keys().collect();
        for k in &keys {
            assert!(
                k.starts_with(|c: char| c.is_ascii_lowercase())
                    && k.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{k}"
            );
            assert_eq!(keys.iter().filter(|o| o == &k).count(), 1, "{k}");
        }
    }
}
