//! The configuration file: TOML into typed settings, with errors that name the
//! file, the line and the field.
//!
//! Everything a value can be wrong about is checked while deserializing, so
//! the TOML parser's span points at the offending line; the few checks across
//! entries (duplicate source names, vendor options) keep the span of the
//! value they refer to. `alertd check-config FILE` runs exactly this.

//!
//! Its files: this one holds the types; `load.rs` reads a file and checks
//! across entries (with the vendor check the caller hands down), building
//! errors that never repeat a secret; `defaults.rs` holds every default, the
//! bounds of every setting and the field parsers that enforce them.

mod credentials;
mod defaults;
mod load;
mod schedule;
#[cfg(test)]
mod tests;

pub use credentials::{Credential, CredentialError, CredentialSource, UrlLogin};
pub use defaults::*;
pub use load::{ConfigError, VendorCheck, VendorProblem, check_transport};
pub use schedule::Schedule;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where events go. Absent: JSON lines on stdout (the embedded default).
    #[serde(default)]
    pub nats: Option<NatsConfig>,
    /// Where cursors are kept.
    #[serde(default)]
    pub state: StateConfig,
    /// The metrics and health listener.
    #[serde(default)]
    pub service: ServiceConfig,
    /// Sharing the sources among several instances.
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// The vendor sources to poll.
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
}

/// `[service]`: the HTTP listener for `/metrics` (Prometheus) and `/healthz`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// `host:port` to listen on, or `"off"`. Default `127.0.0.1:9464`:
    /// loopback, since the metrics name your tenants.
    #[serde(default = "default_listen", deserialize_with = "listen_addr")]
    pub listen: Option<std::net::SocketAddr>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig { listen: default_listen() }
    }
}

/// `[nats]`: the JetStream stream events are published to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated: `nats://127.0.0.1:4222`, `tls://…`.
    /// May carry `user:password@` or `token@`; it displays without them.
    pub url: NatsUrl,
    /// Stream name; created on start if missing.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// First subject token: events go to `<prefix>.<vendor>.<source>.<kind>`.
    #[serde(default = "default_prefix", deserialize_with = "subject_prefix")]
    pub subject_prefix: String,
    /// How long JetStream remembers message ids to drop re-published events.
    /// Keep it longer than the NATS outages you expect.
    /// At most [`MAX_DUPLICATE_WINDOW`].
    #[serde(default = "default_duplicate_window", deserialize_with = "duplicate_window")]
    pub duplicate_window: Duration,
    /// How long to wait for each PubAck before the page counts as failed.
    /// More than 0, at most [`MAX_TIMEOUT`].
    #[serde(default = "default_ack_timeout", deserialize_with = "timeout")]
    pub ack_timeout: Duration,
    /// A `.creds` file (JWT + NKey seed) for NATS decentralized auth.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// A token, from the same places as API keys.
    #[serde(default)]
    pub token: Option<CredentialSource>,
    /// User name for user/password auth (with `password`).
    #[serde(default)]
    pub user: Option<String>,
    /// Password, from the same places as API keys.
    #[serde(default)]
    pub password: Option<CredentialSource>,
    /// A PEM file of CA certificates to trust for `tls://` servers (in
    /// addition to the system's roots); for private CAs.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Stream storage when alertd creates the stream.
    #[serde(default)]
    pub storage: StorageKind,
    /// Stream replicas when alertd creates the stream (1 for a single server).
    #[serde(default = "one")]
    pub replicas: usize,
    /// What to publish for each event: `alertd` (schema v1, the default)
    /// and/or `ocsf` (OCSF 1.8.0 Detection Finding on `<prefix>.ocsf.…`).
    #[serde(default = "default_formats", deserialize_with = "formats")]
    pub formats: Vec<Format>,
}

/// An output format: what is published for each event. Several may be
/// configured (`[nats] formats`); each has its own subject tree and ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// alertd's own event schema v1 on `<prefix>.<vendor>.<source>.<kind>`.
    Alertd,
    /// OCSF 1.8.0 Detection Finding on `<prefix>.ocsf.<vendor>.<source>.<kind>`.
    Ocsf,
}

impl Format {
    /// Its name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Alertd => "alertd",
            Format::Ocsf => "ocsf",
        }
    }
}

/// The formats when none are configured: alertd v1 events only.
pub fn default_formats() -> Vec<Format> {
    vec![Format::Alertd]
}

/// The `[nats] url` setting. It may embed credentials (`nats://user:pw@…`,
/// `nats://token@…`), so it has no way to be printed with them: `Display`
/// and `Debug` show it through [`crate::text::redact_url`], and only
/// [`NatsUrl::expose`] (for connecting) gives the text as written.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct NatsUrl(String);

impl NatsUrl {
    /// The URL(s) as configured, credentials included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for NatsUrl {
    fn from(url: String) -> Self {
        NatsUrl(url)
    }
}

impl std::fmt::Display for NatsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::text::redact_url(&self.0))
    }
}

impl std::fmt::Debug for NatsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NatsUrl({self})")
    }
}

/// JetStream storage for a stream alertd creates.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StorageKind {
    /// On disk: survives a server restart.
    #[default]
    File,
    /// In memory.
    Memory,
}

/// `[state]`: where cursors are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `"sqlite"` (default: a local file) or `"nats-kv"` (a JetStream KV
    /// bucket on the `[nats]` servers, shared by instances; required by
    /// `[cluster]`).
    #[serde(default = "default_backend")]
    pub backend: Spanned<StateBackend>,
    /// The SQLite file. Default: `$STATE_DIRECTORY/alertd.sqlite` under
    /// systemd (`StateDirectory=`), else `alertd.sqlite` in the working directory.
    #[serde(default = "default_state_path")]
    pub path: PathBuf,
    /// The KV bucket of the `nats-kv` backend, created with `[nats] replicas`
    /// copies if missing.
    #[serde(default = "default_cursor_bucket", deserialize_with = "bucket_name")]
    pub bucket: String,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: default_backend(),
            path: default_state_path(),
            bucket: default_cursor_bucket(),
        }
    }
}

/// Where cursors are kept.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum StateBackend {
    /// A SQLite file (one instance).
    #[default]
    #[serde(rename = "sqlite")]
    Sqlite,
    /// A NATS JetStream KV bucket (any number of instances).
    #[serde(rename = "nats-kv")]
    NatsKv,
}

/// `[cluster]`: many instances share the sources through leases in a
/// JetStream KV bucket; see docs/scale-out.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Share the sources with the other instances loading this config.
    #[serde(default = "default_disabled")]
    pub enabled: Spanned<bool>,
    /// A lease not renewed for this long expires; a dead instance's sources
    /// are taken over within twice this. Every instance must use the same.
    /// At least 1s (checked when enabled), at most [`MAX_LEASE_TTL`].
    #[serde(default = "default_lease_ttl", deserialize_with = "lease_ttl")]
    pub lease_ttl: Duration,
    /// The KV bucket of leases and live instances.
    #[serde(default = "default_lease_bucket", deserialize_with = "bucket_name")]
    pub bucket: String,
    /// This instance's name, unique among the instances. Usually not set
    /// here (all instances share the file) but by `--instance` or
    /// `ALERTD_INSTANCE`; default: the host name.
    #[serde(default)]
    pub instance: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: default_disabled(),
            lease_ttl: default_lease_ttl(),
            bucket: default_lease_bucket(),
            instance: None,
        }
    }
}

impl ClusterConfig {
    /// Whether the sources are shared.
    pub fn is_enabled(&self) -> bool {
        *self.enabled.get_ref()
    }

    /// This instance's name: the configured one, else the host name, made
    /// safe as a KV key token.
    pub fn instance_name(&self) -> String {
        let raw = match &self.instance {
            Some(name) => name.clone(),
            None => gethostname::gethostname().to_string_lossy().into_owned(),
        };
        let clean: String = raw
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .take(64)
            .collect();
        if clean.is_empty() { "alertd".to_owned() } else { clean }
    }
}

/// One `[[source]]`: one tenant/account of one vendor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Vendor key (`canaryguard`, …); see `alertd vendors`. Whether it
    /// names a vendor is checked by the [`VendorCheck`] a file is loaded with.
    pub vendor: Spanned<String>,
    /// Unique name of this source: the tenant in events and subjects.
    pub name: Spanned<String>,
    /// API base URL; defaults to the vendor's public endpoint where it has one.
    /// `https://` unless the host is loopback or `allow_insecure_http` is set.
    #[serde(default)]
    pub base_url: Option<Spanned<Url>>,
    /// Accept an `http://` base URL to a host that is not loopback. The API
    /// key would cross the network readable by anyone on the path, so this
    /// is off; loopback hosts (127.0.0.0/8, ::1, `localhost`) never need it,
    /// since a key sent to them does not leave the host.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Where the API key comes from.
    pub credential: CredentialSource,
    /// When to poll.
    #[serde(default)]
    pub schedule: Schedule,
    /// A random delay up to this much is added to each start, so many
    /// sources on one schedule do not hit their vendors in the same second.
    /// At most [`MAX_JITTER`].
    #[serde(default = "default_jitter", deserialize_with = "jitter")]
    pub jitter: Duration,
    /// Items per page to ask for (capped at the vendor's maximum).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// How far back the first poll of a new source reaches. At most
    /// [`MAX_LOOKBACK`].
    #[serde(default = "default_lookback", deserialize_with = "lookback")]
    pub initial_lookback: Duration,
    /// How far before the watermark each poll starts again, to catch items
    /// the vendor indexed late; items seen in this window are not re-sent.
    /// At most [`MAX_LOOKBACK`].
    #[serde(default = "default_overlap", deserialize_with = "lookback")]
    pub overlap: Duration,
    /// How far behind now a time window closes, so items still being
    /// written on the vendor's side are picked up by the next poll.
    /// At most [`MAX_LAG`].
    #[serde(default = "default_lag", deserialize_with = "lag")]
    pub lag: Duration,
    /// The most pages one poll may walk (a guard against vendor loops).
    #[serde(default = "default_max_pages")]
    pub max_pages: u64,
    /// Rate limits to stay inside, e.g. `["10/s", "20/min"]`; default: the
    /// vendor's documented limits. `[]` turns pacing off.
    #[serde(default)]
    pub rate_limits: Option<Vec<crate::throttle::RateLimit>>,
    /// Retries of a failed request (connection error, timeout, 5xx, 429)
    /// before the poll gives up until its next scheduled start.
    #[serde(default = "default_retries")]
    pub retries: usize,
    /// Per-request timeout. More than 0, at most [`MAX_TIMEOUT`].
    #[serde(default = "default_timeout", deserialize_with = "timeout")]
    pub timeout: Duration,
    /// The largest response body read from the vendor, in bytes (default
    /// 32 MiB, at most 1 GiB): a longer one is dropped while it streams
    /// and the poll fails, so an endpoint that never stops sending cannot
    /// exhaust the daemon's memory.
    #[serde(default = "default_max_response_bytes", deserialize_with = "response_bytes")]
    pub max_response_bytes: u64,
    /// `false` keeps the entry but does not poll it.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Vendor-specific settings (`[source.options]`).
    #[serde(default)]
    pub options: Option<Spanned<toml::Table>>,
    /// The API description of a `vendor = "http"` source
    /// (`[source.http]`, docs/vendors/http.md); checked by that vendor.
    #[serde(default)]
    pub http: Option<Spanned<toml::Table>>,
    /// How long before its API key expires to start warning (keys that are
    /// JWTs with an `exp` claim, e.g. Catchpoint's). Default 14 days, at
    /// most [`MAX_EXPIRY_WARNING`].
    #[serde(default = "default_expiry_warning", deserialize_with = "expiry_warning")]
    pub credential_expiry_warning: Duration,
    /// Revisit recent history for in-place changes (`revisit = { window =
    /// "7d", every = "1h" }`, or `revisit = { enabled = false }`); absent:
    /// the vendor's default (docs/vendors/*.md). See docs/revisit.md.
    #[serde(default)]
    pub revisit: Option<RevisitConfig>,
}

/// A source's `revisit` table: what it sets of the vendor's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevisitConfig {
    /// `false` turns the revisit off; default: on if the table is given.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// How far back a revisit walks (`[now − window, now − overlap]`). At
    /// most [`MAX_LOOKBACK`].
    #[serde(default, deserialize_with = "defaults::opt_lookback")]
    pub window: Option<Duration>,
    /// How often a revisit starts. More than 0, at most [`MAX_LOOKBACK`].
    #[serde(default, deserialize_with = "defaults::opt_every")]
    pub every: Option<Duration>,
}

impl SourceConfig {
    /// The vendor key.
    pub fn vendor(&self) -> &str {
        self.vendor.get_ref()
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }
}
