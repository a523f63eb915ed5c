//! The configuration file: TOML into typed settings, with errors that name the
//! file, the line and the field.
//!
//! Everything a value can be wrong about is checked while deserializing, so
//! the TOML parser's span points at the offending line; the few checks across
//! entries (duplicate source names, vendor options) keep the span of the
//! value they refer to. `alertd check-config FILE` runs exactly this.

mod credentials;
mod schedule;

pub use credentials::{Credential, CredentialError, CredentialSource, UrlLogin};
pub use schedule::Schedule;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
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
    /// How long before its API key expires to start warning (keys that are
    /// JWTs with an `exp` claim, e.g. Catchpoint's). Default 14 days, at
    /// most [`MAX_EXPIRY_WARNING`].
    #[serde(default = "default_expiry_warning", deserialize_with = "expiry_warning")]
    pub credential_expiry_warning: Duration,
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

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read it")]
    Read {
        /// The file.
        file: String,
        /// Why (shown by the error chain, once).
        #[source]
        source: std::io::Error,
    },
    /// A value is wrong; `line`/`column` are 1-based.
    #[error("{file}:{line}:{column}: {message}\n  | {snippet}")]
    Invalid {
        /// The file.
        file: String,
        /// Line of the offending value.
        line: usize,
        /// Column of the offending value.
        column: usize,
        /// What is wrong, naming the field.
        message: String,
        /// The offending line, for context.
        snippet: String,
    },
}

/// What config cannot judge by itself: whether a source's vendor exists and
/// its vendor-specific settings hold. The caller hands it down (the
/// registry's `check_source`), so config knows no vendor.
pub type VendorCheck<'a> = &'a dyn Fn(&SourceConfig) -> Result<(), VendorProblem>;

/// Why a [`VendorCheck`] refused a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VendorProblem {
    /// No vendor has this key.
    Unknown {
        /// The key given.
        key: String,
        /// The keys there are, comma-separated.
        known: String,
    },
    /// The vendor refused the source's settings (options, base URL).
    Settings(String),
}

impl Config {
    /// Read and check the file at `path`, each source with `vendors`.
    pub fn from_file(path: &Path, vendors: VendorCheck<'_>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { file: path.display().to_string(), source })?;
        Config::from_toml(&text, &path.display().to_string(), vendors)
    }

    /// Parse and check `text` (`file` names it in errors), each source
    /// with `vendors`.
    pub fn from_toml(text: &str, file: &str, vendors: VendorCheck<'_>) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text)
            .map_err(|e| invalid(text, file, e.span().unwrap_or(0..0), e.message().trim().to_owned()))?;
        config.check(text, file, vendors)?;
        Ok(config)
    }

    /// Checks across entries, and each source's vendor.
    fn check(&self, text: &str, file: &str, vendors: VendorCheck<'_>) -> Result<(), ConfigError> {
        if *self.state.backend.get_ref() == StateBackend::NatsKv && self.nats.is_none() {
            return Err(invalid(
                text,
                file,
                self.state.backend.span(),
                "state.backend: \"nats-kv\" keeps cursors on the NATS servers; add a [nats] section"
                    .to_owned(),
            ));
        }
        if self.cluster.is_enabled() {
            if *self.state.backend.get_ref() != StateBackend::NatsKv {
                return Err(invalid(
                    text,
                    file,
                    self.cluster.enabled.span(),
                    "cluster.enabled: instances must share their cursors; set [state] backend = \"nats-kv\""
                        .to_owned(),
                ));
            }
            if self.cluster.lease_ttl < Duration::from_secs(1) {
                return Err(invalid(
                    text,
                    file,
                    self.cluster.enabled.span(),
                    "cluster.lease_ttl: must be at least 1s".to_owned(),
                ));
            }
        }
        let mut names: HashMap<&str, Range<usize>> = HashMap::new();
        for source in &self.sources {
            let name = source.name();
            if let Err(why) = check_source_name(name) {
                return Err(invalid(text, file, source.name.span(), format!("source.name: {why}")));
            }
            if let Some(first) = names.insert(name, source.name.span()) {
                let (line, _) = line_col(text, first.start);
                return Err(invalid(
                    text,
                    file,
                    source.name.span(),
                    format!(
                        "source.name: `{name}` is already used by the source on line {line}; names must be unique"
                    ),
                ));
            }
            if let Some(url) = &source.base_url
                && let Err(why) = check_transport(url.get_ref(), source.allow_insecure_http)
            {
                return Err(invalid(text, file, url.span(), format!("source `{name}`: base_url: {why}")));
            }
            if source.page_size == 0 {
                return Err(invalid(
                    text,
                    file,
                    source.name.span(),
                    format!("source `{name}`: page_size must be at least 1"),
                ));
            }
            match vendors(source) {
                Ok(()) => {}
                Err(VendorProblem::Unknown { key, known }) => {
                    return Err(invalid(
                        text,
                        file,
                        source.vendor.span(),
                        format!("unknown vendor `{key}`; known vendors: {known}"),
                    ));
                }
                Err(VendorProblem::Settings(why)) => {
                    let span = source.options.as_ref().map(Spanned::span).unwrap_or(source.name.span());
                    return Err(invalid(text, file, span, format!("source `{name}`: {why}")));
                }
            }
        }
        Ok(())
    }

    /// The enabled sources.
    pub fn enabled_sources(&self) -> impl Iterator<Item = &SourceConfig> {
        self.sources.iter().filter(|s| s.enabled)
    }
}

/// Whether an API key may be sent to `url`: over `https://`, or over
/// `http://` to a loopback host (127.0.0.0/8, ::1, `localhost`: the key
/// does not leave the host; simulators, the demo and tests live there), or
/// when the source says `allow_insecure_http = true`. Checked at load for
/// the configured URL, and again for the URL a vendor computes (Rapid7's
/// region) when the source is built.
pub fn check_transport(url: &Url, allow_insecure_http: bool) -> Result<(), String> {
    if url.scheme() != "http" || allow_insecure_http || is_loopback(url) {
        return Ok(());
    }
    Err(format!(
        "`{}` is cleartext HTTP to a host that is not loopback: the API key would cross the network unencrypted; use https://, or set allow_insecure_http = true for this source",
        url.origin().ascii_serialization()
    ))
}

/// 127.0.0.0/8, ::1, or the name `localhost`.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Source names become NATS subject tokens and log fields: keep them plain.
fn check_source_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(format!("`{name}` may only hold letters, digits, `-` and `_`"));
    }
    Ok(())
}

fn invalid(text: &str, file: &str, span: Range<usize>, message: String) -> ConfigError {
    let (line, column) = line_col(text, span.start);
    let snippet = text.lines().nth(line.saturating_sub(1)).unwrap_or("").trim_end().to_owned();
    // Name the field even when the error comes from a value's own parser,
    // which knows nothing of the key it was read for.
    let key = snippet.split_once('=').map(|(k, _)| k.trim()).filter(|k| {
        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    });
    let (snippet, message) = redact_line(&snippet, key, &message);
    let message = match key {
        Some(key) if !message.contains(key) => format!("field `{key}`: {message}"),
        _ => message,
    };
    ConfigError::Invalid { file: file.to_owned(), line, column, message, snippet }
}

/// Keys whose value is a secret, or most likely one when the line is wrong
/// (`credential = "cg_live_…"` is the key itself, pasted where its source
/// belongs; `api_key = …` is an unknown field holding a key).
fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
    if last.ends_with("_file") {
        return false; // a path, e.g. `credentials_file`
    }
    ["token", "password", "passwd", "secret", "credential", "apikey", "api_key"]
        .iter()
        .any(|s| last.contains(s))
        || matches!(last.as_str(), "key" | "pass")
}

/// The offending line and the parser's message, without secrets: the TOML
/// parser quotes the line, and sometimes the value, of whatever it refuses.
/// On a secret key's line the whole value is replaced (the line may be
/// broken, e.g. an unterminated string, so no parsing is attempted) and
/// every word of it is taken out of the message; on any line, URLs lose
/// their `user:password@`.
fn redact_line(snippet: &str, key: Option<&str>, message: &str) -> (String, String) {
    use crate::text::{REDACTED, redact_url, redact_urls_in};
    let Some((before, value)) = snippet.split_once('=') else {
        return (redact_urls_in(snippet), redact_urls_in(message));
    };
    let mut message = message.to_owned();
    let snippet = if key.is_some_and(is_secret_key) {
        let mut words = secret_words(value);
        words.sort_by_key(|w| std::cmp::Reverse(w.len()));
        for word in words {
            message = message.replace(word, REDACTED);
        }
        format!("{} = {REDACTED}", before.trim_end())
    } else {
        // Scheme-less `user:pw@host` only counts in a URL setting; in free
        // text an `@` is more often an e-mail address.
        let mut snippet = snippet.to_owned();
        if key.is_some_and(|k| k.rsplit('.').next().is_some_and(|l| l == "url" || l.ends_with("_url"))) {
            // Each string of the value (or the bare value of a broken line).
            for content in value.split(['"', '\'', '[', ']']).map(str::trim).filter(|c| c.contains('@')) {
                let redacted = redact_url(content);
                snippet = snippet.replace(content, &redacted);
                message = message.replace(content, &redacted);
            }
        }
        snippet
    };
    (redact_urls_in(&snippet), redact_urls_in(&message))
}

/// The words of a TOML value that could be (part of) a secret: runs of
/// characters between quotes, brackets, braces, commas and blanks, other
/// than the keys of an inline table (`env` in `{ env = "X" }`) and words
/// too short to be found in a message without garbling it.
fn secret_words(value: &str) -> Vec<&str> {
    let is_delimiter = |c: char| c.is_whitespace() || "\"'{}[],=".contains(c);
    let mut words = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find(|c: char| !is_delimiter(c)) {
        let tail = &rest[start..];
        let end = tail.find(is_delimiter).unwrap_or(tail.len());
        let word = &tail[..end];
        let is_table_key = tail[end..].trim_start().starts_with('=');
        if !is_table_key && word.chars().count() >= 3 {
            words.push(word);
        }
        rest = &tail[end..];
    }
    words
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn subject_prefix<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
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

fn formats<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Format>, D::Error> {
    let mut formats = Vec::<Format>::deserialize(d)?;
    if formats.is_empty() {
        return Err(serde::de::Error::custom("formats must name at least one of `alertd`, `ocsf`"));
    }
    let mut seen = std::collections::HashSet::new();
    formats.retain(|f| seen.insert(*f));
    Ok(formats)
}

fn default_listen() -> Option<std::net::SocketAddr> {
    Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9464)))
}

fn listen_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<std::net::SocketAddr>, D::Error> {
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
const YEAR: Duration = Duration::from_secs(31_557_600);

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
fn bounded_duration<'de, D: serde::Deserializer<'de>>(
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

fn lookback<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    bounded_duration(d, MAX_LOOKBACK, false)
}
fn lag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    bounded_duration(d, MAX_LAG, false)
}
fn jitter<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    bounded_duration(d, MAX_JITTER, false)
}
fn timeout<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    bounded_duration(d, MAX_TIMEOUT, true)
}
fn expiry_warning<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    bounded_duration(d, MAX_EXPIRY_WARNING, false)
}
fn duplicate_window<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    bounded_duration(d, MAX_DUPLICATE_WINDOW, false)
}
fn lease_ttl<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    bounded_duration(d, MAX_LEASE_TTL, false)
}

fn default_expiry_warning() -> Duration {
    Duration::from_secs(14 * 24 * 3600)
}

fn default_stream() -> String {
    "ALERTD".into()
}
fn default_prefix() -> String {
    "alertd".into()
}
fn default_duplicate_window() -> Duration {
    Duration::from_secs(2 * 3600)
}
fn default_ack_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_state_path() -> PathBuf {
    match std::env::var_os("STATE_DIRECTORY") {
        // systemd may pass several directories separated by ':'; the first is ours.
        Some(dirs) => {
            let dirs = dirs.to_string_lossy().into_owned();
            PathBuf::from(dirs.split(':').next().unwrap_or(".")).join("alertd.sqlite")
        }
        None => PathBuf::from("alertd.sqlite"),
    }
}
fn default_backend() -> Spanned<StateBackend> {
    Spanned::new(0..0, StateBackend::default())
}
fn default_disabled() -> Spanned<bool> {
    Spanned::new(0..0, false)
}
fn bucket_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
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
fn default_cursor_bucket() -> String {
    "alertd_cursors".to_owned()
}
fn default_lease_bucket() -> String {
    "alertd_leases".to_owned()
}
fn default_lease_ttl() -> Duration {
    Duration::from_secs(15)
}
fn default_jitter() -> Duration {
    Duration::from_secs(5)
}
fn default_page_size() -> u32 {
    100
}
fn default_lookback() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_overlap() -> Duration {
    Duration::from_secs(10 * 60)
}
fn default_lag() -> Duration {
    Duration::from_secs(30)
}
fn default_max_pages() -> u64 {
    10_000
}
fn default_retries() -> usize {
    4
}
/// The default of a source's `max_response_bytes`: 32 MiB, far above the
/// largest page any supported vendor serves (a few MiB at their maximum
/// page sizes) and small enough that every source of a daemon can hold one.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

/// The largest `max_response_bytes` a config may set (1 GiB): one body is
/// held in memory whole, and parsed into a tree several times its size.
pub const MAX_RESPONSE_BYTES_LIMIT: u64 = 1024 * 1024 * 1024;

fn default_max_response_bytes() -> u64 {
    DEFAULT_MAX_RESPONSE_BYTES
}
fn response_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let limit = MAX_RESPONSE_BYTES_LIMIT;
    match u64::deserialize(d) {
        Ok(n) if (1..=limit).contains(&n) => Ok(n),
        _ => Err(serde::de::Error::custom(format!(
            "max_response_bytes must be a number of bytes from 1 to {limit} (1 GiB); the default is {} (32 MiB)",
            DEFAULT_MAX_RESPONSE_BYTES
        ))),
    }
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[nats]
url = "nats://127.0.0.1:4222"

[[source]]
vendor = "canaryguard"
name = "acme"
credential = { env = "CG_KEY" }
schedule = "*/5 * * * *"
"#;

    fn error_of(text: &str) -> (usize, String) {
        match crate::registry::parse(text, "test.toml").unwrap_err() {
            ConfigError::Invalid { line, message, .. } => (line, message),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn a_good_file_loads_with_defaults() {
        let c = crate::registry::parse(GOOD, "test.toml").unwrap();
        let nats = c.nats.unwrap();
        assert_eq!(nats.stream, "ALERTD");
        assert_eq!(nats.subject_prefix, "alertd");
        assert_eq!(c.sources.len(), 1);
        assert_eq!(c.sources[0].page_size, 100);
        assert!(matches!(c.sources[0].schedule, Schedule::Cron(_)));
    }

    #[test]
    fn a_cluster_needs_shared_cursors_and_says_where() {
        let c = crate::registry::parse(GOOD, "test.toml").unwrap();
        assert!(!c.cluster.is_enabled());
        assert_eq!(*c.state.backend.get_ref(), StateBackend::Sqlite);

        let clustered = format!("{GOOD}\n[cluster]\nenabled = true\n");
        let (line, message) = error_of(&clustered);
        assert_eq!(line, 12);
        assert!(message.contains("backend = \"nats-kv\""), "{message}");

        let shared = clustered.replace("[nats]", "[state]\nbackend = \"nats-kv\"\n\n[nats]");
        let c = crate::registry::parse(&shared, "test.toml").unwrap();
        assert!(c.cluster.is_enabled());
        assert_eq!(c.cluster.lease_ttl, Duration::from_secs(15));
        assert_eq!((c.state.bucket.as_str(), c.cluster.bucket.as_str()), ("alertd_cursors", "alertd_leases"));

        // nats-kv without [nats] points at the backend line.
        let no_nats = "[state]\nbackend = \"nats-kv\"\n";
        let (line, message) = error_of(no_nats);
        assert_eq!(line, 2);
        assert!(message.contains("add a [nats] section"), "{message}");

        let (line, message) =
            error_of(&shared.replace("enabled = true", "enabled = true\nlease_ttl = \"200ms\""));
        assert_eq!(line, 15);
        assert!(message.contains("lease_ttl"), "{message}");
        let (_, message) = error_of(&shared.replace("enabled = true", "enabled = true\nbucket = \"a.b\""));
        assert!(message.contains("bucket `a.b`"), "{message}");
        let (_, message) = error_of(&shared.replace("nats-kv", "etcd"));
        assert!(message.contains("etcd"), "{message}");
    }

    #[test]
    fn instance_names_are_safe_kv_tokens() {
        let mut c = ClusterConfig { instance: Some("host.example.com:2".into()), ..ClusterConfig::default() };
        assert_eq!(c.instance_name(), "host_example_com_2");
        c.instance = Some(String::new());
        assert_eq!(c.instance_name(), "alertd");
        c.instance = None;
        assert!(!c.instance_name().is_empty());
    }

    #[test]
    fn an_unknown_field_names_its_line_and_field() {
        let text = GOOD.replace("schedule =", "schedul =");
        let (line, message) = error_of(&text);
        assert_eq!(line, 9);
        assert!(message.contains("schedul"), "{message}");
    }

    #[test]
    fn a_bad_schedule_names_its_line() {
        let text = GOOD.replace("*/5 * * * *", "every week or so");
        let (line, message) = error_of(&text);
        assert_eq!(line, 9);
        assert!(message.contains("`schedule`") && message.contains("week or so"), "{message}");
    }

    #[test]
    fn an_unknown_vendor_lists_the_known_ones() {
        let text = GOOD.replace("\"canaryguard\"", "\"canary_gaurd\"");
        let (line, message) = error_of(&text);
        assert_eq!(line, 6);
        assert!(message.contains("canaryguard"), "{message}");
    }

    #[test]
    fn a_duplicate_source_name_points_at_both() {
        let text = format!(
            "{GOOD}\n[[source]]\nvendor = \"canaryguard\"\nname = \"acme\"\ncredential = {{ env = \"X\" }}\n"
        );
        let (line, message) = error_of(&text);
        assert_eq!(line, 13);
        assert!(message.contains("line 7"), "{message}");
    }

    #[test]
    fn a_source_name_with_a_dot_is_refused() {
        let text = GOOD.replace("\"acme\"", "\"acme.prod\"");
        let (line, _) = error_of(&text);
        assert_eq!(line, 7);
    }

    #[test]
    fn a_wildcard_subject_prefix_is_refused() {
        let text = GOOD.replace("[nats]\n", "[nats]\nsubject_prefix = \"alerts.>\"\n");
        let (line, message) = error_of(&text);
        assert_eq!(line, 3);
        assert!(message.contains("subject_prefix"), "{message}");
    }

    #[test]
    fn an_inline_key_in_the_file_is_refused() {
        let text = GOOD.replace("{ env = \"CG_KEY\" }", "{ inline = \"cg_live_x\" }");
        let (_, message) = error_of(&text);
        assert!(message.contains("inline"), "{message}");
    }

    #[test]
    fn a_bad_duration_names_its_line() {
        let text = GOOD.replace("schedule =", "overlap = \"ten minutes\"\nschedule =");
        let (line, _) = error_of(&text);
        assert_eq!(line, 9);
    }

    fn with_base_url(url: &str, extra: &str) -> String {
        GOOD.replace("schedule =", &format!("base_url = \"{url}\"\n{extra}schedule ="))
    }

    #[test]
    fn cleartext_http_off_loopback_is_refused_at_its_line() {
        let (line, message) = error_of(&with_base_url("http://10.1.2.3/", ""));
        assert_eq!(line, 9);
        assert!(message.contains("source `acme`") && message.contains("base_url"), "{message}");
        assert!(message.contains("allow_insecure_http"), "{message}");
        let err =
            crate::registry::parse(&with_base_url("http://alerts.example.com:8080/api?k=v", ""), "a.toml")
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("a.toml:9:"), "{err}");

        let allowed =
            crate::registry::parse(&with_base_url("http://10.1.2.3/", "allow_insecure_http = true\n"), "t")
                .unwrap();
        assert!(allowed.sources[0].allow_insecure_http);
        for ok in [
            "http://127.0.0.1:9/",
            "http://127.8.9.10/",
            "http://[::1]:8080/",
            "http://localhost:1/x",
            "http://LOCALHOST/",
            "https://10.1.2.3/",
            "https://canaryguard.app",
        ] {
            let c = crate::registry::parse(&with_base_url(ok, ""), "t.toml");
            assert!(c.is_ok(), "{ok}: {:?}", c.err());
        }
        // A name that merely starts like loopback is not loopback.
        assert!(crate::registry::parse(&with_base_url("http://localhost.example.com/", ""), "t").is_err());
        assert!(crate::registry::parse(&with_base_url("http://[::ffff:10.0.0.1]/", ""), "t").is_err());
    }

    #[test]
    fn a_vendors_computed_url_is_checked_too() {
        let mut c = crate::registry::parse(GOOD, "t.toml").unwrap();
        let source = &mut c.sources[0];
        source.base_url = Some(Spanned::new(0..0, Url::parse("http://10.9.9.9/").unwrap()));
        let Err(VendorProblem::Settings(err)) = crate::registry::check_source(source) else {
            panic!("a cleartext computed URL is refused")
        };
        assert!(err.contains("cleartext"), "{err}");
        source.allow_insecure_http = true;
        assert!(crate::registry::check_source(source).is_ok());
    }

    #[test]
    fn durations_are_bounded_at_their_line() {
        for (setting, value) in [
            ("initial_lookback", "300000years"),
            ("overlap", "11years"),
            ("lag", "2days"),
            ("jitter", "61m"),
            ("timeout", "2h"),
            ("credential_expiry_warning", "3years"),
        ] {
            let text = GOOD.replace("schedule =", &format!("{setting} = \"{value}\"\nschedule ="));
            let (line, message) = error_of(&text);
            assert_eq!(line, 9, "{setting}");
            assert!(message.contains(setting) && message.contains("maximum"), "{setting}: {message}");
        }
        let (line, message) = error_of(&GOOD.replace("schedule =", "timeout = \"0s\"\nschedule ="));
        assert_eq!(line, 9);
        assert!(message.contains("timeout") && message.contains("more than 0"), "{message}");
        for (setting, value) in [("duplicate_window", "31d"), ("ack_timeout", "2h"), ("ack_timeout", "0s")] {
            let text = GOOD.replace("[nats]\n", &format!("[nats]\n{setting} = \"{value}\"\n"));
            let (line, message) = error_of(&text);
            assert_eq!(line, 3, "{setting}");
            assert!(message.contains(setting), "{message}");
        }
        let (line, message) = error_of(&format!("{GOOD}\n[cluster]\nlease_ttl = \"2h\"\n"));
        assert_eq!(line, 12);
        assert!(message.contains("lease_ttl"), "{message}");
        let (line, message) = error_of(&GOOD.replace("*/5 * * * *", "every 300000years"));
        assert_eq!(line, 9);
        assert!(message.contains("schedule") && message.contains("maximum"), "{message}");

        // The bounds themselves are accepted.
        let at_bounds = GOOD.replace(
            "schedule =",
            "initial_lookback = \"10years\"\noverlap = \"10years\"\nlag = \"1day\"\njitter = \"1h\"\n\
             timeout = \"1h\"\ncredential_expiry_warning = \"2years\"\nschedule =",
        );
        let c = crate::registry::parse(&at_bounds, "t.toml").unwrap();
        assert_eq!(c.sources[0].initial_lookback, MAX_LOOKBACK);
    }

    #[test]
    fn the_longest_lookback_plans_without_panicking() {
        let text = GOOD.replace("schedule =", "initial_lookback = \"10years\"\nschedule =");
        let source = crate::registry::parse(&text, "t.toml").unwrap().sources.remove(0);
        let settings = crate::incremental::WindowSettings::of(&source);
        let window = crate::incremental::TimeWindow::plan(None, chrono::Utc::now(), settings).unwrap();
        assert!(window.after.timestamp() > 0 && window.after < window.before);
    }

    const NATS_SECRET: &str = "s3cr3t-pw";

    fn assert_hidden(err: &ConfigError, secrets: &[&str]) {
        let shown = format!("{err} {err:?}");
        for secret in secrets {
            assert!(!shown.contains(secret), "{secret} shown in: {shown}");
        }
    }

    #[test]
    fn the_nats_url_displays_without_its_userinfo() {
        let text = GOOD.replace("nats://127.0.0.1:4222", &format!("nats://alice:{NATS_SECRET}@127.0.0.1:1"));
        let c = crate::registry::parse(&text, "t.toml").unwrap();
        let nats = c.nats.as_ref().unwrap();
        let shown = format!("{} {:?} {c:?}", nats.url, nats.url);
        assert!(!shown.contains(NATS_SECRET) && !shown.contains("alice"), "{shown}");
        assert!(shown.contains("nats://***@127.0.0.1:1"), "{shown}");
        assert_eq!(nats.url.expose(), format!("nats://alice:{NATS_SECRET}@127.0.0.1:1"));
    }

    #[test]
    fn errors_on_a_secret_line_do_not_repeat_the_secret() {
        // A wrong type on the URL line: the parser quotes the line.
        let text = GOOD.replace(
            "url = \"nats://127.0.0.1:4222\"",
            &format!("url = \"nats://alice:{NATS_SECRET}@127.0.0.1:1\"\nstream = 5"),
        );
        let err = crate::registry::parse(&text, "t.toml").unwrap_err();
        assert_hidden(&err, &[NATS_SECRET]);
        let text =
            GOOD.replace("\"nats://127.0.0.1:4222\"", &format!("[\"nats://alice:{NATS_SECRET}@h:1\"]"));
        let err = crate::registry::parse(&text, "t.toml").unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { line: 3, snippet, .. } if snippet.contains("***@h:1")),
            "{err}"
        );
        assert_hidden(&err, &[NATS_SECRET, "alice"]);
        // Scheme-less, as NATS clients accept it.
        let text = GOOD.replace("\"nats://127.0.0.1:4222\"", &format!("[\"alice:{NATS_SECRET}@h:1\"]"));
        assert_hidden(&crate::registry::parse(&text, "t.toml").unwrap_err(), &[NATS_SECRET]);

        // Broken lines holding a token, a password, a key pasted as the credential.
        for broken in [
            "token = \"tok-0123456789abcdef",
            "token = tok-0123456789abcdef",
            "password = { inline = \"tok-0123456789abcdef\" }",
            "api_key = \"tok-0123456789abcdef\"",
        ] {
            let text = GOOD.replace("[nats]\n", &format!("[nats]\n{broken}\n"));
            let err = crate::registry::parse(&text, "t.toml").unwrap_err();
            assert!(matches!(&err, ConfigError::Invalid { line: 3, .. }), "{broken}: {err}");
            assert_hidden(&err, &["0123456789abcdef"]);
            assert!(err.to_string().contains("***"), "{err}");
        }
        let text = GOOD.replace("{ env = \"CG_KEY\" }", "\"cg_live_0123456789abcdef\"");
        let (line, message) = error_of(&text);
        assert_eq!(line, 8);
        assert!(message.contains("credential"), "{message}");
        assert_hidden(&crate::registry::parse(&text, "t.toml").unwrap_err(), &["0123456789abcdef"]);
    }

    #[test]
    fn redaction_keeps_ordinary_errors_whole() {
        // Not a secret line: the value stays in the message and the snippet.
        let text = GOOD.replace("\"canaryguard\"", "\"canary_gaurd\"");
        let err = crate::registry::parse(&text, "t.toml").unwrap_err();
        assert!(err.to_string().contains("canary_gaurd"), "{err}");
        // A credential's source (not a secret) keeps the field named.
        let text = GOOD.replace("{ env = \"CG_KEY\" }", "{ envv = \"CG_KEY\" }");
        let err = crate::registry::parse(&text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("envv") && err.contains("credential"), "{err}");
    }

    #[test]
    fn max_response_bytes_defaults_to_32_mib_and_is_bounded() {
        let c = crate::registry::parse(GOOD, "test.toml").unwrap();
        assert_eq!(c.sources[0].max_response_bytes, 32 * 1024 * 1024);
        let set = GOOD.replace("schedule =", "max_response_bytes = 1048576\nschedule =");
        assert_eq!(crate::registry::parse(&set, "test.toml").unwrap().sources[0].max_response_bytes, 1 << 20);
        for bad in ["0", "1073741825", "-1", "\"32MiB\"", "1.5"] {
            let text = GOOD.replace("schedule =", &format!("max_response_bytes = {bad}\nschedule ="));
            let (line, message) = error_of(&text);
            assert_eq!(line, 9, "{bad}");
            assert!(message.contains("max_response_bytes") && message.contains("1 GiB"), "{bad}: {message}");
        }
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
