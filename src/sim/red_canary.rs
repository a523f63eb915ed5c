//! Red Canary simulator: detections served from `/openapi/v3/detections`,
//! `page`/`per_page` paged newest first by `confirmed_at`, filtered by
//! `since`, in the JSON:API-flavoured envelope of the fixtures (`meta`,
//! string `links`, `data`), authenticated by `X-API-Key` (403 otherwise),
//! with the portal's HTML 404 page for any other path (what a wrong tenant
//! subdomain looks like).
//!
//! Every page with data carries `links.next` to the following page, the last
//! one included, as public clients found (they had to stop on past-the-end
//! pages themselves); the page past the end has no data, or what
//! [`Fault::HollowItems`] / [`Fault::RepeatPreviousPage`] make of it.
//! Detections change in place: [`Simulator::update_items`] acknowledges, then
//! remediates them.
//!
//! [`Fault::HollowItems`]: super::Fault::HollowItems
//! [`Fault::RepeatPreviousPage`]: super::Fault::RepeatPreviousPage
//! [`Simulator::update_items`]: super::Simulator::update_items

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use super::state::{Item, Routes, Shared, VendorApi, page_response, pick};

/// A well-formed key for demos and tests, so nobody needs a real account.
pub const RED_CANARY_DEMO_KEY: &str = "5c3a1e0f9b8d7c6a5e4f3a2b1c0d9e8f7a6b5c4d";

const DEFAULT_PER_PAGE: u64 = 25;
const MAX_PER_PAGE: u64 = 100;
const ENDPOINTS: usize = 8;
const PATH: &str = "/openapi/v3/detections";

/// What Red Canary's Rails portal shows for a path (or tenant) it does not know.
const NOT_FOUND_PAGE: &str = "<!DOCTYPE html>\n<html>\n<head>\n  <title>The page you were looking for doesn't exist (404)</title>\n</head>\n<body>\n  <div class=\"dialog\"><h1>The page you were looking for doesn't exist.</h1>\n  <p>You may have mistyped the address or the page may have moved.</p></div>\n</body>\n</html>\n";

/// (superclassification, subclassification, severity, summary).
const THREATS: &[(&str, &str, &str, &str)] = &[
    (
        "Malicious Software",
        "Trojan",
        "high",
        "A malicious binary masquerading as the Windows Service Host (`svchost.exe`) executed and attempted to remove itself from disk.",
    ),
    (
        "Malicious Software",
        "Post-Exploitation Tool",
        "high",
        "Windows PowerShell (`powershell.exe`) executed with an encoded command line and parameters that are indicative of malicious code execution.",
    ),
    (
        "Suspicious Activity",
        "",
        "medium",
        "An interactive Windows Command Processor (`cmd.exe`) session enumerated domain administrators and trusts.",
    ),
    (
        "Unwanted Software",
        "Riskware",
        "low",
        "Riskware was detected on this endpoint. Riskware may have legitimate uses, but does introduce unique risk.",
    ),
    (
        "Unwanted Software",
        "Adware",
        "low",
        "A browser extension injecting advertisements was installed for the current user.",
    ),
    (
        "Authorized Activity",
        "Testing",
        "medium",
        "The adversary emulation tool `AttackIQ FireDrill` launched multiple utilities to query information and interact with scheduled tasks.",
    ),
];

/// (platform, operating system, endpoint type, sensor group).
const PLATFORMS: &[(&str, &str, &str, &str)] = &[
    ("Windows", "Windows 11", "workstation", "ALL_WORKSTATIONS"),
    ("Windows", "Windows Server 2022", "server", "ALL_SERVERS"),
    ("MacOS", "macOS 14.4", "workstation", "MAC_WORKSTATIONS"),
    ("Linux", "Ubuntu 22.04", "server", "LINUX_SERVERS"),
];

const USERS: &[&str] = &["rem", "jsmith", "adm-kwong", "svc_backup", "mlopez"];
const ANALYSTS: &[(&str, &str)] =
    &[("Dana Analyst", "dana@example.com"), ("Lee Responder", "lee@example.com")];
const NOT_REMEDIATED: &[(&str, Option<&str>)] = &[
    ("not_remediated_false_positive", None),
    ("not_remediated_sanctioned_activity", None),
    ("not_remediated", Some("authorized_testing")),
];

/// One monitored endpoint; detections happen on these.
struct Endpoint {
    id: u64,
    hostname: String,
    platform: usize,
    addresses: Vec<String>,
    user_id: u64,
    user: &'static str,
}

/// Red Canary's vendor hooks: the tenant's endpoints and its id counter.
pub(crate) struct RedCanary {
    base_url: String,
    endpoints: Vec<Endpoint>,
    next_id: AtomicU64,
}

impl RedCanary {
    /// Draws the endpoints; detection ids count up from a random start.
    pub(crate) fn new(rng: &mut StdRng, base_url: &str) -> Self {
        let endpoints = (0..ENDPOINTS)
            .map(|i| {
                let platform = i % PLATFORMS.len();
                let prefix = if PLATFORMS[platform].2 == "server" { "srv" } else { "wks" };
                Endpoint {
                    id: 100_000_000_000_000 + rng.random_range(0..999_999_999),
                    hostname: format!("{prefix}-{:04}", rng.random_range(1..9999)),
                    platform,
                    addresses: vec![
                        format!(
                            "10.{}.{}.{}",
                            rng.random_range(0..255),
                            rng.random_range(0..255),
                            rng.random_range(1..255)
                        ),
                        format!("198.51.100.{}", rng.random_range(1..255)),
                    ],
                    user_id: 100_000_000_000_000 + rng.random_range(0..999_999_999),
                    user: USERS[rng.random_range(0..USERS.len())],
                }
            })
            .collect();
        Self {
            base_url: base_url.to_owned(),
            endpoints,
            next_id: AtomicU64::new(rng.random_range(100..1000)),
        }
    }

    fn api(&self, path: &str) -> String {
        format!("{}/openapi/v3/{path}", self.base_url)
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn portal_user(rng: &mut StdRng) -> Value {
    let (name, email) = *pick(rng, ANALYSTS);
    json!({"type": "PortalUser", "attributes": {
        "id": rng.random_range(1000..40000), "email": email, "name": name,
        "name_and_email": format!("{name} ({email})")}})
}

impl VendorApi for RedCanary {
    fn generate(&self, rng: &mut StdRng, at: DateTime<Utc>) -> Item {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let endpoint = pick(rng, &self.endpoints);
        let (superclass, subclass, severity, summary) = *pick(rng, THREATS);
        let (platform, os, kind, group) = PLATFORMS[endpoint.platform];
        let headline = if subclass.is_empty() {
            format!("[SIM-{id}] {superclass}")
        } else {
            format!("[SIM-{id}] {superclass} ({subclass})")
        };
        // Red Canary confirms after analysis: the activity began earlier,
        // and now and then long before (a dormant implant found years on).
        let occurred = if rng.random_bool(0.05) {
            at - TimeDelta::days(rng.random_range(200..1500))
        } else {
            at - TimeDelta::minutes(rng.random_range(5..180))
        };
        let last_activity = occurred + (at - occurred) / rng.random_range(2..5);
        let username = if rng.random_bool(0.3) {
            format!("{}$", endpoint.hostname)
        } else {
            format!("{}\\{}", endpoint.hostname, endpoint.user)
        };
        let json = json!({
            "type": "Detection",
            "id": id,
            "attributes": {
                "headline": headline,
                "confirmed_at": stamp(at),
                "summary": summary,
                "severity": severity,
                "last_activity_seen_at": stamp(last_activity),
                "classification": {
                    "superclassification": superclass,
                    "subclassification": if subclass.is_empty() { json!([]) } else { json!([subclass]) },
                },
                "time_of_occurrence": stamp(occurred),
                "last_acknowledged_at": null,
                "last_acknowledged_by": null,
                "associated_releasable_intelligence_profiles": [],
            },
            "hostname": endpoint.hostname,
            "username": username,
            "relationships": {
                "affected_endpoint": {
                    "links": {"related": self.api(&format!("endpoints/{}", endpoint.id))},
                    "data": {
                        "type": "endpoint",
                        "id": endpoint.id,
                        "reporting_tags": {
                            "endpoint_type": kind,
                            "endpoint_platform": platform,
                            "endpoint_sensor_group": group,
                            "endpoint_operating_system": os,
                        },
                        "network_addresses": endpoint.addresses,
                    },
                },
                "related_endpoint_user": {
                    "links": {"related": self.api(&format!("endpoint_users/{}", endpoint.user_id))},
                    "data": {
                        "type": "endpoint_user",
                        "id": endpoint.user_id,
                        "reporting_tags": {
                            "logon_domain": null,
                            "local_account": true,
                            "domain_account": false,
                            "system_account": username.ends_with('$'),
                        },
                        "endpoints_used": [],
                    },
                },
            },
            "links": {
                "self": {"href": self.api(&format!("detections/{id}"))},
                "activity_timeline": {"href": self.api(&format!("detections/{id}/timeline"))},
                "detectors": {"href": self.api(&format!("detections/{id}/detectors"))},
                "contributing_intel": {"href": self.api(&format!("detections/{id}/contributing_intel"))},
            },
        });
        Item::new(at, id.to_string(), json)
    }

    /// First an analyst acknowledges the detection, later marks its
    /// remediation; after that it does not change.
    fn update(&self, rng: &mut StdRng, item: &mut Item, at: DateTime<Utc>) -> bool {
        let Some(attributes) = item.json.get_mut("attributes").and_then(Value::as_object_mut) else {
            return false;
        };
        if attributes.get("last_acknowledged_at").is_none_or(Value::is_null) {
            attributes.insert("last_acknowledged_at".into(), json!(stamp(at)));
            attributes.insert("last_acknowledged_by".into(), portal_user(rng));
            return true;
        }
        if attributes.contains_key("last_remediated_status") {
            return false;
        }
        let (state, reason) =
            if rng.random_bool(0.6) { ("remediated", None) } else { *pick(rng, NOT_REMEDIATED) };
        attributes.insert(
            "last_remediated_status".into(),
            json!({"reason": reason, "remediation_state": state,
                   "marked_by": portal_user(rng), "marked_at": stamp(at)}),
        );
        true
    }

    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        let mut response = errors(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "Rate limit exceeded: at most 10 requests per second and 20 per minute.",
        );
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
        response
    }

    fn unauthorized(&self) -> Response {
        forbidden()
    }

    fn error_in_200(&self) -> Response {
        errors(
            StatusCode::OK,
            "Internal Server Error",
            "An unexpected error occurred while listing detections.",
        )
    }

    fn malform(&self, body: &mut Value) {
        let Some(items) = body.get_mut("data").and_then(Value::as_array_mut) else {
            return;
        };
        let middle = items.len() / 2;
        if let Some(Value::Object(detection)) = items.get_mut(middle) {
            detection.remove("id");
            if let Some(Value::Object(a)) = detection.get_mut("attributes") {
                a.insert("confirmed_at".into(), json!("not a date"));
            }
        }
    }

    /// The records InsightConnect found past the end: every field null or empty.
    fn hollow(&self, body: &mut Value) {
        let Some(items) = body.get_mut("data").and_then(Value::as_array_mut) else {
            return;
        };
        let n = items.len().max(3);
        *items =
            vec![json!({"type": null, "id": null, "attributes": null, "relationships": {}, "links": {}}); n];
    }

    fn link_to(&self, body: &mut Value, origin: &str) {
        if let Some(next) = body.pointer_mut("/links/next")
            && let Some(rest) = next.as_str().and_then(|n| n.strip_prefix(&self.base_url))
        {
            *next = json!(format!("{}{rest}", origin.trim_end_matches('/')));
        }
    }

    fn routes(&self) -> Routes {
        Routes {
            open: axum::Router::new().fallback(not_found),
            data: axum::Router::new()
                .route(PATH, get(detections))
                .route("/openapi/v3/detections/{id}", get(detection)),
        }
    }
}

/// A query parameter the API rejects with 400, named in the message.
#[derive(Debug, thiserror::Error)]
enum QueryError {
    #[error("page must be an integer greater than or equal to 1")]
    Page,
    #[error("per_page must be an integer between 1 and {MAX_PER_PAGE}")]
    PerPage,
    #[error("since must be an ISO 8601 time such as 2018-07-12T12:15:20Z")]
    Since,
}

/// The list parameters after validation.
struct ListQuery {
    page: u64,
    per_page: u64,
    since: Option<DateTime<Utc>>,
    since_text: Option<String>,
}

impl ListQuery {
    fn parse(raw: Option<&str>) -> Result<Self, QueryError> {
        let mut query = ListQuery { page: 1, per_page: DEFAULT_PER_PAGE, since: None, since_text: None };
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "page" => {
                    query.page = value.parse().ok().filter(|p| *p >= 1).ok_or(QueryError::Page)?;
                }
                "per_page" => {
                    query.per_page = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_PER_PAGE).contains(n))
                        .ok_or(QueryError::PerPage)?;
                }
                "since" => {
                    let t = DateTime::parse_from_rfc3339(&value).map_err(|_| QueryError::Since)?;
                    query.since = Some(t.with_timezone(&Utc));
                    query.since_text = Some(value.into_owned());
                }
                _ => {}
            }
        }
        Ok(query)
    }

    /// This query's URL at another `page`.
    fn link(&self, base: &str, page: u64) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("page", &page.to_string());
        q.append_pair("per_page", &self.per_page.to_string());
        if let Some(since) = &self.since_text {
            q.append_pair("since", since);
        }
        format!("{base}{PATH}?{}", q.finish())
    }
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(shared.api_key())
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
    format!("http://{host}")
}

async fn detections(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    if !authorized(&shared, &headers) {
        return forbidden();
    }
    let query = match ListQuery::parse(raw.as_deref()) {
        Ok(q) => q,
        Err(e) => return errors(StatusCode::BAD_REQUEST, "Bad Request", &e.to_string()),
    };
    let skip = usize::try_from((query.page - 1).saturating_mul(query.per_page)).unwrap_or(usize::MAX);
    let take = usize::try_from(query.per_page).unwrap_or(usize::MAX);
    let (data, total) = shared.with_items(|items| {
        // The store is sorted by time: `since` is a binary search and a page
        // costs O(page), not O(store) (the end-to-end benchmark pages
        // through 100,000 detections).
        let start = query.since.map_or(0, |since| items.partition_point(|i| i.at < since));
        let matching = items.get(start..).unwrap_or_default();
        let page: Vec<Arc<str>> =
            matching.iter().rev().skip(skip).take(take).map(|i| i.text.clone()).collect();
        (page, matching.len())
    });
    let base = base_url(&headers);
    let mut links = json!({
        "self": query.link(&base, query.page),
        "first": query.link(&base, 1),
        "count": format!("{}&count_mode=true", query.link(&base, query.page)),
    });
    if query.page > 1 {
        links["prev"] = json!(query.link(&base, query.page - 1));
    }
    if !data.is_empty() {
        links["next"] = json!(query.link(&base, query.page + 1));
    }
    page_response(
        json!({
            "meta": {"api_version": "v3.0", "total_items": total},
            "links": links,
            "data": [],
        }),
        "/data",
        &data,
    )
}

/// `GET /detections/{id}`: a one-element `data` array, as the real API does.
async fn detection(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&shared, &headers) {
        return forbidden();
    }
    let found = shared.with_items(|items| items.iter().find(|i| i.id == id).map(|i| i.json.clone()));
    match found {
        Some(json) => Json(json!({"data": [json]})).into_response(),
        None => errors(StatusCode::NOT_FOUND, "Not Found", "Detection not found."),
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Html(NOT_FOUND_PAGE)).into_response()
}

fn forbidden() -> Response {
    errors(
        StatusCode::FORBIDDEN,
        "Forbidden",
        "The X-API-Key header is missing, the token is invalid, or its user lacks the role for this request.",
    )
}

/// A JSON:API error document (the shape is not in Red Canary's public docs).
fn errors(status: StatusCode, title: &str, detail: &str) -> Response {
    (
        status,
        Json(json!({"errors": [{"status": status.as_u16().to_string(), "title": title, "detail": detail}]})),
    )
        .into_response()
}
