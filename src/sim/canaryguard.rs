//! CanaryGuard simulator: honeytoken alerts served from `/api/v1/alerts`,
//! page/limit paged and newest first, with CanaryGuard's error envelope.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

use super::state::{Item, Routes, Shared, VendorApi, hex, page_response, pick};

/// A well-formed key for demos and tests, so nobody needs a real account.
pub const CANARYGUARD_DEMO_KEY: &str = "cg_live_0a1b2c3d4e5f60718293a4b5c6d7e8f901234567";

const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 100;
const TOKEN_POOL: usize = 12;

/// Token types with plausible names, one entry per documented type.
const TOKEN_KINDS: &[(&str, &[&str])] = &[
    ("http", &["prod-server-config", "admin-portal-link"]),
    ("dns", &["internal-dns-beacon", "vpn-hostname"]),
    ("image", &["hr-team-photo", "brand-logo-png"]),
    ("email", &["ceo-inbox-alias", "finance-ap-mailbox"]),
    ("document_docx", &["q3-board-minutes", "merger-plan-draft"]),
    ("document_pdf", &["payroll-2026", "network-diagram"]),
    ("qr_code", &["lobby-wifi-qr", "badge-enrolment-qr"]),
    ("env_config", &["aws-prod-env", "ci-deploy-secrets"]),
    ("crypto_eth", &["treasury-eth-wallet", "eth-hot-wallet"]),
    ("crypto_sol", &["sol-staking-wallet", "sol-hot-wallet"]),
    ("crypto_seed", &["cold-storage-seed", "backup-seed-phrase"]),
];

/// (city, region, country, lat, lon) for geo enrichment.
const PLACES: &[(&str, &str, &str, f64, f64)] = &[
    ("Berlin", "Berlin", "DE", 52.52, 13.405),
    ("Frankfurt am Main", "Hesse", "DE", 50.1109, 8.6821),
    ("Amsterdam", "North Holland", "NL", 52.3676, 4.9041),
    ("London", "England", "GB", 51.5072, -0.1276),
    ("Ashburn", "Virginia", "US", 39.0438, -77.4874),
    ("San Jose", "California", "US", 37.3382, -121.8863),
    ("Singapore", "Singapore", "SG", 1.3521, 103.8198),
    ("Tokyo", "Tokyo", "JP", 35.6762, 139.6503),
    ("São Paulo", "São Paulo", "BR", -23.5558, -46.6396),
    ("Lagos", "Lagos", "NG", 6.5244, 3.3792),
];

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Microsoft Office Word 2014",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
];

const REFERERS: &[&str] = &[
    "https://example.com/internal",
    "https://intranet.example.org/wiki/Secrets",
    "https://mail.example.net/",
];

/// Documentation prefixes (RFC 5737) so simulated sources never hit real hosts.
const IPV4_PREFIXES: &[&str] = &["192.0.2", "198.51.100", "203.0.113"];

/// One seeded honeytoken; alerts are always tripped by one of these.
struct Token {
    id: String,
    name: String,
    kind: &'static str,
    /// Watched wallet for crypto tokens.
    address: Option<String>,
}

/// CanaryGuard's vendor hooks and its seeded token pool.
pub(crate) struct CanaryGuard {
    tokens: Vec<Token>,
}

impl CanaryGuard {
    /// Draws the token pool; every documented type appears at least once.
    pub(crate) fn new(rng: &mut StdRng) -> Self {
        let tokens = (0..TOKEN_POOL)
            .map(|i| {
                let (kind, names) =
                    if i < TOKEN_KINDS.len() { TOKEN_KINDS[i] } else { *pick(rng, TOKEN_KINDS) };
                let address = match kind {
                    "crypto_eth" | "crypto_seed" => Some(format!("0x{}", hex(rng, 40))),
                    "crypto_sol" => Some(base58(rng, 44)),
                    _ => None,
                };
                Token {
                    id: format!("tok_{}", hex(rng, 8)),
                    name: (*pick(rng, names)).to_owned(),
                    kind,
                    address,
                }
            })
            .collect();
        Self { tokens }
    }
}

impl VendorApi for CanaryGuard {
    fn generate(&self, rng: &mut StdRng, at: DateTime<Utc>) -> Item {
        let token = pick(rng, &self.tokens);
        let id = format!("alt_{}", hex(rng, 8));
        let mut alert = Map::new();
        alert.insert("id".into(), json!(id));
        alert.insert("token_id".into(), json!(token.id));
        alert.insert("token_name".into(), json!(token.name));
        alert.insert("token_type".into(), json!(token.kind));
        alert.insert("triggered_at".into(), json!(at.to_rfc3339_opts(SecondsFormat::Secs, true)));
        alert.insert("source_ip".into(), json!(source_ip(rng)));
        if let Some(geo) = geo(rng) {
            alert.insert("geo".into(), geo);
        }
        if token.kind != "dns" {
            alert.insert("user_agent".into(), json!(*pick(rng, USER_AGENTS)));
            if rng.random_bool(0.7) {
                alert.insert("headers".into(), headers(rng));
            }
        }
        if let Some(address) = &token.address {
            let path = if token.kind == "crypto_sol" {
                format!("m/44'/501'/{}'/0'", rng.random_range(0..4))
            } else {
                format!("m/44'/60'/0'/0/{}", rng.random_range(0..8))
            };
            alert.insert("metadata".into(), json!({"matched_address": address, "derivation_path": path}));
        }
        alert.insert("reviewed".into(), json!(rng.random_bool(0.2)));
        Item::new(at, id, Value::Object(alert))
    }

    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            &format!("Rate limit exceeded. Retry after {retry_after_secs} seconds."),
        );
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
        response
    }

    fn unauthorized(&self) -> Response {
        unauthorized()
    }

    fn error_in_200(&self) -> Response {
        error(StatusCode::OK, "INTERNAL_ERROR", "An unexpected error occurred while listing alerts.")
    }

    fn malform(&self, body: &mut Value) {
        let Some(items) = body.get_mut("data").and_then(Value::as_array_mut) else {
            return;
        };
        let middle = items.len() / 2;
        if let Some(Value::Object(alert)) = items.get_mut(middle) {
            alert.remove("id");
            alert.insert("triggered_at".into(), json!("not a date"));
        }
    }

    fn routes(&self) -> Routes {
        Routes {
            open: axum::Router::new().route("/api/v1/health", get(health)).fallback(not_found),
            data: axum::Router::new()
                .route("/api/v1/alerts", get(alerts))
                .route("/api/v1/tokens/{id}/alerts", get(token_alerts)),
        }
    }
}

/// A query parameter CanaryGuard rejects with 400, named in the message so
/// a poller's logs point at its bug.
#[derive(Debug, thiserror::Error)]
enum QueryError {
    #[error("Invalid 'page': must be an integer greater than or equal to 1.")]
    Page,
    #[error("Invalid 'limit': must be an integer between 1 and {MAX_LIMIT}.")]
    Limit,
    #[error("Invalid '{0}': must be an ISO 8601 timestamp such as 2026-03-27T08:15:42Z.")]
    Timestamp(&'static str),
}

/// The list parameters after validation.
struct ListQuery {
    page: u64,
    limit: u64,
    token_id: Option<String>,
    after: Option<DateTime<Utc>>,
    before: Option<DateTime<Utc>>,
}

impl ListQuery {
    fn parse(raw: Option<&str>) -> Result<Self, QueryError> {
        let mut query =
            ListQuery { page: 1, limit: DEFAULT_LIMIT, token_id: None, after: None, before: None };
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "page" => {
                    query.page = value.parse().ok().filter(|p| *p >= 1).ok_or(QueryError::Page)?;
                }
                "limit" => {
                    query.limit = value
                        .parse()
                        .ok()
                        .filter(|l| (1..=MAX_LIMIT).contains(l))
                        .ok_or(QueryError::Limit)?;
                }
                "token_id" if !value.is_empty() => query.token_id = Some(value.into_owned()),
                "after" => query.after = Some(timestamp(&value, "after")?),
                "before" => query.before = Some(timestamp(&value, "before")?),
                _ => {}
            }
        }
        Ok(query)
    }

    fn matches(&self, item: &Item, token: Option<&str>) -> bool {
        let token_id = item.json.get("token_id").and_then(Value::as_str);
        self.after.is_none_or(|after| item.at > after)
            && self.before.is_none_or(|before| item.at < before)
            && self.token_id.as_deref().is_none_or(|t| token_id == Some(t))
            && token.is_none_or(|t| token_id == Some(t))
    }
}

fn timestamp(value: &str, name: &'static str) -> Result<DateTime<Utc>, QueryError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| QueryError::Timestamp(name))
}

async fn health() -> Response {
    Json(json!({"data": {"status": "ok", "version": "1.0.0"}})).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "NOT_FOUND", "The requested resource was not found.")
}

async fn alerts(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    list(&shared, &headers, query.as_deref(), None)
}

async fn token_alerts(
    State(shared): State<Arc<Shared>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    list(&shared, &headers, query.as_deref(), Some(&token))
}

/// Serves one page, newest first, after checking the key and parameters.
fn list(shared: &Shared, headers: &HeaderMap, raw: Option<&str>, token: Option<&str>) -> Response {
    let expected = format!("Bearer {}", shared.api_key());
    if headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return unauthorized();
    }
    let query = match ListQuery::parse(raw) {
        Ok(query) => query,
        Err(e) => return error(StatusCode::BAD_REQUEST, "BAD_REQUEST", &e.to_string()),
    };
    let skip =
        usize::try_from(query.page.saturating_sub(1).saturating_mul(query.limit)).unwrap_or(usize::MAX);
    let take = usize::try_from(query.limit).unwrap_or(usize::MAX);
    let (data, total) = shared.with_items(|items| {
        // The store is sorted by time, so the time filters are a binary
        // search and an unfiltered page costs O(page), not O(store): the
        // end-to-end benchmark pages through 100,000 alerts.
        let start = query.after.map_or(0, |after| items.partition_point(|i| i.at <= after));
        let end = query.before.map_or(items.len(), |before| items.partition_point(|i| i.at < before));
        let window = items.get(start..end.max(start)).unwrap_or_default();
        if token.is_none() && query.token_id.is_none() {
            let page = window.iter().rev().skip(skip).take(take).map(|i| i.text.clone()).collect();
            return (page, window.len());
        }
        let matching = || window.iter().rev().filter(|i| query.matches(i, token));
        let page: Vec<Arc<str>> = matching().skip(skip).take(take).map(|i| i.text.clone()).collect();
        (page, matching().count())
    });
    page_response(
        json!({
            "data": [],
            "meta": {"page": query.page, "limit": query.limit, "total": total},
        }),
        "/data",
        &data,
    )
}

fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "Missing, invalid, or expired API key.")
}

/// CanaryGuard's error envelope, used for every non-2xx answer.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

fn base58(rng: &mut StdRng, len: usize) -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    (0..len).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect()
}

fn source_ip(rng: &mut StdRng) -> String {
    if rng.random_bool(0.1) {
        format!("2001:db8::{:x}", rng.random_range(1..0xffff_u32))
    } else {
        format!("{}.{}", pick(rng, IPV4_PREFIXES), rng.random_range(1..255))
    }
}

/// Geo enrichment is patchy in real data: sometimes absent, sometimes
/// without coordinates.
fn geo(rng: &mut StdRng) -> Option<Value> {
    let roll = rng.random_range(0..100);
    if roll < 15 {
        return None;
    }
    let (city, region, country, lat, lon) = *pick(rng, PLACES);
    let mut geo = json!({"city": city, "region": region, "country": country});
    if roll >= 25 {
        geo["lat"] = json!(lat);
        geo["lon"] = json!(lon);
    }
    Some(geo)
}

fn headers(rng: &mut StdRng) -> Value {
    let mut headers = Map::new();
    headers.insert("referer".into(), json!(*pick(rng, REFERERS)));
    if rng.random_bool(0.5) {
        headers.insert("accept-language".into(), json!("en-US,en;q=0.9"));
    }
    Value::Object(headers)
}
