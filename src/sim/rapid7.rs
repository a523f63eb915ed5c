//! Rapid7 InsightIDR simulator: the alerts search
//! (`POST /idr/at/alerts/ops/search`), the v2 investigations list
//! (`GET /idr/v2/investigations`) and the key check (`GET /validate`).
//!
//! Alerts look like the real capture in Rapid7's own InsightConnect plugin
//! (rrn, version, organization, rule with MITRE codes, rule keys). Each
//! alert opened its own investigation, so the investigations list is the
//! alerts seen through their investigation. Time bounds are exclusive, as
//! the API's are; without an explicit sort both lists are newest first, so
//! a poller that forgets to sort notices. Every data answer carries
//! `RateLimit-Limit/Remaining/Reset` for a 15-minute window of 1000 calls,
//! and a spent budget is a 429. [`super::Simulator::update_items`] moves
//! alerts through triage (`version` + 1, new `updated_at`, status).

use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use super::CallBudget;
use super::state::{Item, Routes, Shared, VendorApi};

/// An organization API key in Rapid7's UUID form, for demos and tests.
pub const RAPID7_DEMO_KEY: &str = "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a";

const SEARCH_PATH: &str = "/idr/at/alerts/ops/search";
const INVESTIGATIONS_PATH: &str = "/idr/v2/investigations";
const MAX_SIZE: u64 = 100;
/// The documented budget: 1000 calls per 15 minutes.
const BUDGET: CallBudget = CallBudget { calls: 1000, window: std::time::Duration::from_secs(15 * 60) };

/// Detections: title, MITRE codes as Rapid7 lists them (tactic names and
/// technique ids mixed), the keys of interest they carry, and priority.
#[rustfmt::skip]
const DETECTIONS: &[(&str, &[&str], &[&str], &str)] = &[
    ("Suspicious Authentication - Ingress from New Country", &["Initial Access", "T1078"],
        &["result", "account", "geoip_country_code", "source_ip"], "MEDIUM"),
    ("Brute Force - Against Domain Account", &["Credential Access", "T1110"],
        &["account", "source_ip"], "HIGH"),
    ("Attacker Technique - PowerShell Download Cradles", &["Execution", "T1059.001"],
        &["hostname", "account"], "CRITICAL"),
    ("Suspicious Process - Execution From Root of ProgramData",
        &["Execution", "Defense Evasion", "T1204", "T1036"], &["hostname", "account"], "HIGH"),
    ("Network Access for Threat - Known Malicious Domain", &[],
        &["hostname", "source_ip", "destination_ip"], "LOW"),
    ("MVD Verification", &[], &["result", "account", "geoip_country_code", "source_ip"], "LOW"),
];

const SOURCES: &[&str] = &["IDR ABA", "IDR UBA", "IDR"];
const ACCOUNTS: &[&str] = &["j.doe@acme.example", "svc-backup@acme.example", "a.admin@acme.example"];
const HOSTS: &[&str] = &["WS-FIN-0142", "SRV-DC-01", "LAPTOP-7Q2K", "SRV-WEB-03"];
const COUNTRIES: &[&str] = &["US", "DE", "NL", "BR", "SG"];
const ANALYSTS: &[(&str, &str)] = &[("Ana Analyst", "ana@acme.example"), ("Sam SOC", "sam@acme.example")];

/// The simulated organization and the call budget.
pub(crate) struct Rapid7 {
    org_id: String,
    customer_id: String,
    product_token: String,
    budget: Arc<Mutex<Budget>>,
}

/// Calls left in the current rate-limit window.
struct Budget {
    limit: u64,
    window: TimeDelta,
    resets_at: DateTime<Utc>,
    used: u64,
}

impl Budget {
    /// Counts a call; `None` when the budget is spent.
    fn spend(&mut self, now: DateTime<Utc>) -> Option<u64> {
        if now >= self.resets_at {
            self.resets_at = now + self.window;
            self.used = 0;
        }
        (self.used < self.limit).then(|| {
            self.used += 1;
            self.limit - self.used
        })
    }
}

impl Rapid7 {
    /// Draws the organization's ids; `budget` replaces the documented
    /// call budget.
    pub(crate) fn new(rng: &mut StdRng, budget: Option<CallBudget>) -> Self {
        let CallBudget { calls, window } = budget.unwrap_or(BUDGET);
        let budget = Budget {
            limit: calls,
            window: TimeDelta::from_std(window).unwrap_or(TimeDelta::MAX),
            resets_at: DateTime::<Utc>::MIN_UTC,
            used: 0,
        };
        Self {
            org_id: uuid(rng),
            customer_id: uuid(rng),
            product_token: hex(rng, 20).to_ascii_uppercase(),
            budget: Arc::new(Mutex::new(budget)),
        }
    }
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn hex(rng: &mut StdRng, len: usize) -> String {
    (0..len).map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)])).collect()
}

fn uuid(rng: &mut StdRng) -> String {
    format!("{}-{}-4{}-a{}-{}", hex(rng, 8), hex(rng, 4), hex(rng, 3), hex(rng, 3), hex(rng, 12))
}

fn upper_id(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    (0..12).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect()
}

/// A time with the variable fraction Rapid7 serves.
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn key_values(rng: &mut StdRng, key: &str) -> Value {
    let value = match key {
        "result" => "SUCCESS".to_owned(),
        "account" => (*pick(rng, ACCOUNTS)).to_owned(),
        "hostname" => (*pick(rng, HOSTS)).to_owned(),
        "geoip_country_code" => (*pick(rng, COUNTRIES)).to_owned(),
        "source_ip" => format!("203.0.113.{}", rng.random_range(1..255)),
        _ => format!("198.51.100.{}", rng.random_range(1..255)),
    };
    json!({ "key": key, "values": [value] })
}

impl VendorApi for Rapid7 {
    fn generate(&self, rng: &mut StdRng, at: DateTime<Utc>) -> Item {
        let (title, tcodes, keys, priority) = *pick(rng, DETECTIONS);
        let rrn = format!("rrn:alerts:us1:{}:alert:1:{}", self.org_id, hex(rng, 32));
        let micros = |rng: &mut StdRng, max: i64| TimeDelta::microseconds(rng.random_range(1..max));
        let alerted = at - micros(rng, 900_000);
        let ingested = at - micros(rng, 9_000);
        let updated = at + micros(rng, 900_000);
        let keys_of_interest: Vec<Value> = keys.iter().map(|k| key_values(rng, k)).collect();
        let alert = json!({
            "rrn": rrn,
            "version": rng.random_range(1..=6),
            "created_at": stamp(at),
            "updated_at": stamp(updated),
            "alerted_at": stamp(alerted),
            "ingested_at": stamp(ingested),
            "external_source": *pick(rng, SOURCES),
            "external_id": uuid(rng),
            "organization": {
                "id": self.org_id, "name": "Acme Corp", "region": "us1",
                "product_token": self.product_token, "customer_id": self.customer_id,
                "customer_name": "Acme Corp", "flags": []
            },
            "title": title,
            "type": title,
            "rule": {
                "rrn": format!("rrn:cba:::detection-rule:{}", upper_id(rng)),
                "mitre_tcodes": tcodes,
                "version_rrn": format!("rrn:cba:::detection-rule:version:{}", upper_id(rng)),
            },
            "rule_matching_keys": [
                { "key": "entryType", "values": ["ingress_auth"] },
                { "key": "orgId", "values": [self.org_id] }
            ],
            "rule_keys_of_interest": keys_of_interest,
            "responsibility": *pick(rng, &["MDR", "CUSTOMER"]),
            "priority": priority,
            "status": "OPEN",
            "disposition": "UNDECIDED",
            "investigation_rrn": format!("rrn:investigation:us:{}:investigation:{}", self.org_id, upper_id(rng)),
            "tags": [],
            "permissions": { "canEdit": false },
            "fields": []
        });
        Item::new(at, rrn, alert)
    }

    /// Triage moves an alert OPEN → INVESTIGATING → CLOSED; every change
    /// bumps `version` and `updated_at`, as Rapid7 does.
    fn update(&self, rng: &mut StdRng, item: &mut Item, at: DateTime<Utc>) -> bool {
        let alert = &mut item.json;
        let version = alert["version"].as_u64().unwrap_or(1);
        alert["version"] = json!(version + 1);
        alert["updated_at"] = json!(stamp(at.max(item.at)));
        match alert["status"].as_str() {
            Some("OPEN") => alert["status"] = json!("INVESTIGATING"),
            Some("INVESTIGATING") => {
                alert["status"] = json!("CLOSED");
                alert["disposition"] = json!(*pick(rng, &["BENIGN", "MALICIOUS", "FALSE_POSITIVE"]));
            }
            _ => {}
        }
        true
    }

    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        let reset =
            super::state::now() + TimeDelta::seconds(i64::try_from(retry_after_secs).unwrap_or(i64::MAX / 2));
        let limit = self.budget.lock().unwrap_or_else(PoisonError::into_inner).limit;
        let mut response = message(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
        rate_headers(response.headers_mut(), limit, 0, reset);
        response
    }

    fn unauthorized(&self) -> Response {
        message(StatusCode::UNAUTHORIZED, "Unauthorized")
    }

    fn error_in_200(&self) -> Response {
        message(StatusCode::OK, "Internal server error")
    }

    fn malform(&self, body: &mut Value) {
        let (list, time) =
            if body.get("alerts").is_some() { ("alerts", "created_at") } else { ("data", "created_time") };
        if let Some(items) = body.get_mut(list).and_then(Value::as_array_mut) {
            let middle = items.len() / 2;
            if let Some(Value::Object(item)) = items.get_mut(middle) {
                item.remove("rrn");
                item.insert(time.into(), json!("not a date"));
            }
        }
    }

    fn routes(&self) -> Routes {
        Routes {
            open: Router::new().route("/validate", get(validate)).fallback(not_found),
            data: Router::new()
                .route(SEARCH_PATH, post(search_alerts))
                .route(INVESTIGATIONS_PATH, get(investigations))
                .layer(Extension(self.budget.clone())),
        }
    }
}

/// Rapid7's error body: a message and a correlation id.
fn message(status: StatusCode, text: &str) -> Response {
    let correlation = format!("{:032x}", Utc::now().timestamp_nanos_opt().unwrap_or_default());
    (status, Json(json!({ "message": text, "correlation_id": correlation }))).into_response()
}

fn rate_headers(headers: &mut HeaderMap, limit: u64, remaining: u64, reset: DateTime<Utc>) {
    headers.insert("RateLimit-Limit", HeaderValue::from(limit));
    headers.insert("RateLimit-Remaining", HeaderValue::from(remaining));
    headers.insert("RateLimit-Reset", HeaderValue::from(reset.timestamp()));
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(shared.api_key())
}

async fn validate(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if authorized(&shared, &headers) {
        Json(json!({ "message": "Authorized" })).into_response()
    } else {
        message(StatusCode::UNAUTHORIZED, "Unauthorized")
    }
}

async fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Not Found")
}

/// Auth, `Accept-version` and the call budget, shared by both lists; the
/// budget, what remains of it and its reset time on success.
fn admit(
    shared: &Shared,
    budget: &Mutex<Budget>,
    headers: &HeaderMap,
    version: &str,
) -> Result<(u64, u64, DateTime<Utc>), Box<Response>> {
    if !authorized(shared, headers) {
        return Err(Box::new(message(StatusCode::UNAUTHORIZED, "Unauthorized")));
    }
    let now = super::state::now();
    let mut budget = budget.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(remaining) = budget.spend(now) else {
        let mut response = message(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
        rate_headers(response.headers_mut(), budget.limit, 0, budget.resets_at);
        return Err(Box::new(response));
    };
    if headers.get("accept-version").and_then(|v| v.to_str().ok()) != Some(version) {
        return Err(Box::new(message(
            StatusCode::BAD_REQUEST,
            &format!("Unsupported or missing Accept-version header; this API requires `{version}`."),
        )));
    }
    Ok((budget.limit, remaining, budget.resets_at))
}

/// `index` and `size` from the query string.
fn index_size(raw: Option<&str>) -> Result<(u64, u64), String> {
    let (mut index, mut size) = (0, 20);
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "index" => index = value.parse().map_err(|_| "index must be an integer >= 0".to_owned())?,
            "size" => {
                size = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=MAX_SIZE).contains(s))
                    .ok_or_else(|| format!("size must be an integer between 1 and {MAX_SIZE}"))?;
            }
            _ => {}
        }
    }
    Ok((index, size))
}

fn time_param(value: Option<&Value>, name: &str) -> Result<Option<DateTime<Utc>>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| format!("{name} must be an ISO 8601 date-time")),
        Some(_) => Err(format!("{name} must be an ISO 8601 date-time")),
    }
}

/// The matching items of one page, oldest or newest first, and the total.
fn window_page(
    shared: &Shared,
    (after, before): (DateTime<Utc>, DateTime<Utc>),
    ascending: bool,
    (index, size): (u64, u64),
) -> (Vec<Value>, usize) {
    let skip = usize::try_from(index.saturating_mul(size)).unwrap_or(usize::MAX);
    let take = usize::try_from(size).unwrap_or(usize::MAX);
    shared.with_items(|items| {
        let matching: Vec<&Item> = items.iter().filter(|i| i.at > after && i.at < before).collect();
        let ordered: Box<dyn Iterator<Item = &&Item>> =
            if ascending { Box::new(matching.iter()) } else { Box::new(matching.iter().rev()) };
        let page = ordered.skip(skip).take(take).map(|i| i.json.clone()).collect();
        (page, matching.len())
    })
}

async fn search_alerts(
    State(shared): State<Arc<Shared>>,
    Extension(budget): Extension<Arc<Mutex<Budget>>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let (limit, remaining, reset) = match admit(&shared, &budget, &headers, "strong-force-preview") {
        Ok(ok) => ok,
        Err(response) => return *response,
    };
    let parsed = (|| {
        let paging = index_size(raw.as_deref())?;
        let body: Value = serde_json::from_slice(&body).map_err(|e| format!("Malformed JSON body: {e}"))?;
        let start = time_param(body.pointer("/search/start_time"), "search.start_time")?
            .ok_or("search.start_time is required")?;
        let end = time_param(body.pointer("/search/end_time"), "search.end_time")?
            .unwrap_or_else(super::state::now);
        let ascending = body.pointer("/sorts/0/field_id").and_then(Value::as_str) == Some("created_at")
            && body
                .pointer("/sorts/0/order")
                .and_then(Value::as_str)
                .is_some_and(|o| o.starts_with("ASCENDING"));
        Ok::<_, String>((paging, (start, end), ascending))
    })();
    let (paging, window, ascending) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return message(StatusCode::BAD_REQUEST, &e),
    };
    let (alerts, total) = window_page(&shared, window, ascending, paging);
    let (index, size) = paging;
    let mut response = Json(json!({
        "rrns": [],
        "metadata": {
            "index": index,
            "size": size,
            "items_in_index": alerts.len(),
            "total_items": total,
            "is_last_index": (index + 1).saturating_mul(size) >= total as u64,
        },
        "alerts": alerts,
        "aggregates": [],
        "region_failures": [],
    }))
    .into_response();
    rate_headers(response.headers_mut(), limit, remaining, reset);
    response
}

async fn investigations(
    State(shared): State<Arc<Shared>>,
    Extension(budget): Extension<Arc<Mutex<Budget>>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let (limit, remaining, reset) = match admit(&shared, &budget, &headers, "investigations-preview") {
        Ok(ok) => ok,
        Err(response) => return *response,
    };
    let parsed = (|| {
        let paging = index_size(raw.as_deref())?;
        let (mut start, mut end, mut ascending) = (None, None, false);
        for (key, value) in url::form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes()) {
            let value = Value::String(value.into_owned());
            match key.as_ref() {
                "start_time" => start = time_param(Some(&value), "start_time")?,
                "end_time" => end = time_param(Some(&value), "end_time")?,
                "sort" => ascending = value.as_str() == Some("created_time,ASC"),
                _ => {}
            }
        }
        let window = (start.unwrap_or(DateTime::<Utc>::MIN_UTC), end.unwrap_or_else(super::state::now));
        Ok::<_, String>((paging, window, ascending))
    })();
    let (paging, window, ascending) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return message(StatusCode::BAD_REQUEST, &e),
    };
    let (alerts, total) = window_page(&shared, window, ascending, paging);
    let (index, size) = paging;
    let data: Vec<Value> = alerts.iter().map(investigation_of).collect();
    let mut response = Json(json!({
        "data": data,
        "metadata": {
            "index": index,
            "size": size,
            "total_pages": (total as u64).div_ceil(size),
            "total_data": total,
        },
    }))
    .into_response();
    rate_headers(response.headers_mut(), limit, remaining, reset);
    response
}

/// The investigation an alert opened, as the v2 list shows it.
fn investigation_of(alert: &Value) -> Value {
    let status = alert["status"].as_str().unwrap_or("OPEN");
    let assignee = match status {
        "OPEN" => Value::Null,
        _ => {
            let (name, email) = ANALYSTS[alert["version"].as_u64().unwrap_or(0) as usize % ANALYSTS.len()];
            json!({ "name": name, "email": email })
        }
    };
    json!({
        "rrn": alert["investigation_rrn"],
        "organization_id": alert["organization"]["id"],
        "title": alert["title"],
        "source": "ALERT",
        "status": status,
        "priority": alert["priority"],
        "last_accessed": alert["updated_at"],
        "created_time": alert["created_at"],
        "disposition": alert["disposition"],
        "assignee": assignee,
        "first_alert_time": alert["alerted_at"],
        "latest_alert_time": alert["alerted_at"],
        "responsibility": alert["responsibility"],
    })
}
