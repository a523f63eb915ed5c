//! API keys: where they come from and the only code that sees their bytes.
//!
//! A key is resolved again at the start of every poll, so replacing the file
//! (or the systemd credential) rotates it without a restart. The key lives in
//! a [`secrecy::SecretString`]; it leaves this module only inside a request
//! header or query value marked sensitive, so neither `Debug` output, logs
//! nor errors can carry it. Errors name where a key was looked for, never
//! what was found.

use std::path::{Path, PathBuf};

use reqwest::RequestBuilder;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Where a source's API key comes from (`credential = { env = "…" }` in TOML).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum CredentialSource {
    /// An environment variable of the daemon.
    Env(String),
    /// A file holding only the key (surrounding whitespace is ignored).
    File(PathBuf),
    /// A systemd credential (`LoadCredential=NAME:…`), read from
    /// `$CREDENTIALS_DIRECTORY/NAME`.
    Systemd(String),
    /// A key handed over in code (the demo and tests); not accepted in TOML,
    /// because keys do not belong in config files.
    #[serde(skip)]
    Inline(SecretString),
}

impl std::fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialSource::Env(name) => write!(f, "environment variable {name}"),
            CredentialSource::File(path) => write!(f, "file {}", path.display()),
            CredentialSource::Systemd(name) => write!(f, "systemd credential {name}"),
            CredentialSource::Inline(_) => f.write_str("built-in key"),
        }
    }
}

/// Why a key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The variable is not set (or not Unicode).
    #[error("API key not found: environment variable {0} is not set")]
    MissingEnv(String),
    /// The file could not be read.
    #[error("API key not readable from {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The operating system's reason (missing, unreadable, a directory).
        #[source]
        source: std::io::Error,
    },
    /// A systemd credential was named but systemd passed none.
    #[error(
        "API key not found: systemd credential {0} was named but $CREDENTIALS_DIRECTORY is not set (add LoadCredential= to the unit)"
    )]
    NoCredentialsDirectory(String),
    /// The key is empty.
    #[error("API key from {0} is empty")]
    Empty(String),
    /// The key has bytes no HTTP header can carry.
    #[error("API key from {0} contains characters that cannot be sent in an HTTP header")]
    NotHeaderSafe(String),
}

/// A resolved API key. Its `Debug` prints no part of it.
#[derive(Clone)]
pub struct Credential(SecretString);

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

impl Credential {
    /// Read the key from where `source` says.
    pub fn resolve(source: &CredentialSource) -> Result<Credential, CredentialError> {
        let text = match source {
            CredentialSource::Env(name) => {
                std::env::var(name).map_err(|_| CredentialError::MissingEnv(name.clone()))?
            }
            CredentialSource::File(path) => read_key_file(path)?,
            CredentialSource::Systemd(name) => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
                    .ok_or_else(|| CredentialError::NoCredentialsDirectory(name.clone()))?;
                read_key_file(&Path::new(&dir).join(name))?
            }
            CredentialSource::Inline(secret) => secret.expose_secret().to_owned(),
        };
        let key = text.trim();
        if key.is_empty() {
            return Err(CredentialError::Empty(source.to_string()));
        }
        if HeaderValue::from_str(key).is_err() {
            return Err(CredentialError::NotHeaderSafe(source.to_string()));
        }
        Ok(Credential(SecretString::from(key.to_owned())))
    }

    /// A key given in code (demo, tests).
    pub fn from_secret(secret: SecretString) -> Credential {
        Credential(secret)
    }

    /// Send the key as `Authorization: Bearer KEY` (marked sensitive).
    pub fn bearer(&self, req: RequestBuilder) -> RequestBuilder {
        req.bearer_auth(self.0.expose_secret())
    }

    /// Send the key in header `name` (marked sensitive).
    pub fn header(&self, req: RequestBuilder, name: &'static str) -> RequestBuilder {
        match HeaderValue::from_str(self.0.expose_secret()) {
            Ok(mut value) => {
                value.set_sensitive(true);
                req.header(name, value)
            }
            // `resolve` refused such keys, so this cannot happen; sending no
            // key gives the vendor's clear 401 rather than a panic.
            Err(_) => req,
        }
    }

    /// Send the key as the query parameter `name`. Only for vendors that
    /// accept nothing else: URLs end up in proxies' logs. Every error and log
    /// line in alertd prints URLs without their query for this reason.
    pub fn query(&self, req: RequestBuilder, name: &'static str) -> RequestBuilder {
        req.query(&[(name, self.0.expose_secret())])
    }

    /// Send the key in a header named in configuration (the declarative
    /// `http` source), after `prefix` (e.g. `Token `), marked sensitive.
    pub fn header_named(
        &self,
        req: RequestBuilder,
        name: reqwest::header::HeaderName,
        prefix: &str,
    ) -> RequestBuilder {
        match HeaderValue::from_str(&format!("{prefix}{}", self.0.expose_secret())) {
            Ok(mut value) => {
                value.set_sensitive(true);
                req.header(name, value)
            }
            // A prefix or key no header can carry: no key, the vendor's 401.
            Err(_) => req,
        }
    }

    /// Send the key as the query parameter `name` named in configuration
    /// (see [`Credential::query`] on why URLs are never printed).
    pub fn query_named(&self, req: RequestBuilder, name: &str) -> RequestBuilder {
        req.query(&[(name, self.0.expose_secret())])
    }

    /// Send HTTP basic authentication: `username` and the key as password
    /// (reqwest marks the header sensitive).
    pub fn basic(&self, req: RequestBuilder, username: &str) -> RequestBuilder {
        req.basic_auth(username, Some(self.0.expose_secret()))
    }

    /// Authenticate a NATS connection with this token.
    pub fn nats_token(&self, options: async_nats::ConnectOptions) -> async_nats::ConnectOptions {
        options.token(self.0.expose_secret().to_owned())
    }

    /// Authenticate a NATS connection as `user` with this password.
    pub fn nats_password(
        &self,
        options: async_nats::ConnectOptions,
        user: String,
    ) -> async_nats::ConnectOptions {
        options.user_and_password(user, self.0.expose_secret().to_owned())
    }

    /// When the key expires, if it is a JWT with an `exp` claim (Catchpoint's
    /// keys are; they expire after at most two years), so alertd can warn
    /// before polling starts failing. The token is decoded, not verified:
    /// only the vendor can verify it, and the date is all alertd needs.
    /// Opaque keys (every other vendor's) have no expiry: `None`.
    pub fn jwt_expiry(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        use base64::Engine;
        let mut parts = self.0.expose_secret().split('.');
        let (Some(_header), Some(claims), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let bytes =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims.trim_end_matches('=')).ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let exp = claims.get("exp")?;
        let seconds = exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64))?;
        chrono::DateTime::from_timestamp(seconds, 0)
    }

    /// Whether `candidate` is this key; simulators use it to check requests.
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.expose_secret() == candidate
    }
}

/// A login written into a NATS server URL: `nats://user:password@host` or
/// `nats://token@host`. Taken out of the URL here, like every other secret
/// alertd reads, so the address handed to the NATS client (whose debug
/// logs print it) carries none. `Debug` shows no part of it.
#[derive(Clone)]
pub struct UrlLogin {
    user: SecretString,
    password: Option<SecretString>,
}

impl std::fmt::Debug for UrlLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The user may be the token itself: neither part is shown.
        f.write_str("UrlLogin(<redacted>)")
    }
}

impl PartialEq for UrlLogin {
    fn eq(&self, other: &Self) -> bool {
        self.user.expose_secret() == other.user.expose_secret()
            && self.password.as_ref().map(ExposeSecret::expose_secret)
                == other.password.as_ref().map(ExposeSecret::expose_secret)
    }
}

impl UrlLogin {
    /// Remove the userinfo from `url` and return it (percent-decoded), if
    /// it had any.
    pub fn take_from(url: &mut url::Url) -> Option<UrlLogin> {
        if url.username().is_empty() && url.password().is_none() {
            return None;
        }
        let decode = |s: &str| -> SecretString {
            percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned().into()
        };
        let login = UrlLogin { user: decode(url.username()), password: url.password().map(decode) };
        // These only fail for URLs that cannot have userinfo; this one had.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Some(login)
    }

    /// Authenticate a NATS connection with this login: user and password,
    /// or the lone user part as a token.
    pub fn apply(self, options: async_nats::ConnectOptions) -> async_nats::ConnectOptions {
        match self.password {
            Some(password) => options
                .user_and_password(self.user.expose_secret().to_owned(), password.expose_secret().to_owned()),
            None => options.token(self.user.expose_secret().to_owned()),
        }
    }

    /// Whether this is `user` with `password` (tests).
    pub fn is(&self, user: &str, password: Option<&str>) -> bool {
        self.user.expose_secret() == user
            && self.password.as_ref().map(ExposeSecret::expose_secret) == password
    }
}

fn read_key_file(path: &Path) -> Result<String, CredentialError> {
    std::fs::read_to_string(path).map_err(|source| CredentialError::File { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "cg_live_0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn debug_output_never_shows_the_key() {
        let c = Credential::resolve(&CredentialSource::Inline(KEY.into())).unwrap();
        let shown = format!("{c:?} {:?}", CredentialSource::Inline(KEY.into()));
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }

    #[test]
    fn a_key_file_is_trimmed_and_errors_name_the_file_not_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, format!("  {KEY}\n")).unwrap();
        let c = Credential::resolve(&CredentialSource::File(path.clone())).unwrap();
        assert!(c.matches(KEY));

        let missing = dir.path().join("absent");
        let err = Credential::resolve(&CredentialSource::File(missing)).unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
    }

    #[test]
    fn an_empty_key_is_refused_with_its_origin() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, "\n").unwrap();
        let err = Credential::resolve(&CredentialSource::File(path)).unwrap_err();
        assert!(matches!(err, CredentialError::Empty(_)), "{err}");
    }

    #[test]
    fn a_key_with_a_newline_inside_is_refused() {
        let err = Credential::resolve(&CredentialSource::Inline("a\nb".into())).unwrap_err();
        assert!(matches!(err, CredentialError::NotHeaderSafe(_)));
    }

    fn jwt(claims: &str) -> Credential {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = format!("{}.{}.{}", b64(r#"{"alg":"RS256","typ":"JWT"}"#), b64(claims), b64("sig"));
        Credential::resolve(&CredentialSource::Inline(token.into())).unwrap()
    }

    #[test]
    fn a_jwt_key_reports_its_exp_claim() {
        let c = jwt(r#"{"sub":"api","exp":1893456000,"iat":1700000000}"#);
        assert_eq!(c.jwt_expiry().map(|t| t.to_rfc3339()), Some("2030-01-01T00:00:00+00:00".into()));
        let fractional = jwt(r#"{"exp":1893456000.5}"#);
        assert_eq!(fractional.jwt_expiry().map(|t| t.timestamp()), Some(1_893_456_000));
    }

    #[test]
    fn opaque_keys_and_jwts_without_exp_report_no_expiry() {
        let opaque = Credential::resolve(&CredentialSource::Inline(KEY.into())).unwrap();
        assert_eq!(opaque.jwt_expiry(), None);
        assert_eq!(jwt(r#"{"sub":"api"}"#).jwt_expiry(), None);
        let dotted = Credential::resolve(&CredentialSource::Inline("a.b.c".into())).unwrap();
        assert_eq!(dotted.jwt_expiry(), None, "three parts that are not base64 JSON");
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err =
            Credential::resolve(&CredentialSource::Env("ALERTD_TEST_SURELY_UNSET_VAR".into())).unwrap_err();
        assert!(err.to_string().contains("ALERTD_TEST_SURELY_UNSET_VAR"));
    }
}
