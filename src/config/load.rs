//! Reading a configuration: parse, check across entries, and errors that
//! name the file, the line and the field without repeating a secret.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;
use url::Url;

use super::{Config, SourceConfig, StateBackend};

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
        for (index, source) in self.sources.iter().enumerate() {
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
                    // A message that starts with a dotted key of the source
                    // (`http.pagination.scheme: …`) points at that key's line.
                    let keyed = why
                        .split_once(": ")
                        .map(|(key, _)| key)
                        .filter(|k| k.starts_with("http") || k.starts_with("options"))
                        .and_then(|key| key_span(text, index, key));
                    let span = keyed
                        .or_else(|| source.options.as_ref().map(Spanned::span))
                        .unwrap_or(source.name.span());
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
pub(super) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Source names become NATS subject tokens and log fields: keep them plain.
pub(super) fn check_source_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(format!("`{name}` may only hold letters, digits, `-` and `_`"));
    }
    Ok(())
}

pub(super) fn invalid(text: &str, file: &str, span: Range<usize>, message: String) -> ConfigError {
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
pub(super) fn is_secret_key(key: &str) -> bool {
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
pub(super) fn redact_line(snippet: &str, key: Option<&str>, message: &str) -> (String, String) {
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
pub(super) fn secret_words(value: &str) -> Vec<&str> {
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

/// The span of the dotted `key` (`http.pagination.scheme`) of the
/// `index`-th `[[source]]` in `text`, or of the deepest part of it that
/// exists (a missing key is reported where its table is).
fn key_span(text: &str, index: usize, key: &str) -> Option<Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let sources = root.get_ref().get("source")?;
    let DeValue::Array(list) = sources.get_ref() else { return None };
    let mut at = list.get(index)?;
    let mut span = at.span();
    for part in key.split('.') {
        let DeValue::Table(table) = at.get_ref() else { break };
        match table.get(part) {
            Some(next) => {
                at = next;
                span = next.span();
            }
            None => break,
        }
    }
    Some(span)
}

/// 1-based line and column of byte `offset` in `text`.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
