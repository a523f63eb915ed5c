//! Catchpoint simulator: synthetic-test alerts served from
//! `/api/v2/tests/alerts`, newest first, paged by `pageNumber`/`pageSize`
//! with `data.hasMore`, in Catchpoint's REST API v2 envelope.
//!
//! No real Catchpoint answer is public, so every alert carries exactly the
//! properties of `AlertApiModel` in the vendor's OpenAPI document, with
//! enums as `{id, name}` pairs taken from its enum lists. Where the
//! document leaves behaviour open, the simulator picks one and says so:
//! `startTimeUtc` is inclusive and `endTimeUtc` exclusive; a query that
//! matches no alert is a 404 (as Catchpoint's docs describe); a page holding
//! exactly one alert is served as the bare object, the way the document
//! types the list; `usageLimits` counts calls but is not enforced (inject
//! [`super::Fault::RateLimited`] for a 429); no `Retry-After` is sent, since
//! Catchpoint documents none.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Extension, RawQuery, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeDelta, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

use super::state::{Item, Routes, Shared, VendorApi};

/// A JWT-shaped bearer key (the OpenAPI document says `bearerFormat: JWT`)
/// for demos and tests; it signs nothing.
pub const CATCHPOINT_DEMO_KEY: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGVydGQtZGVtbyIsImlzcyI6ImNhdGNocG9pbnQtc2ltdWxhdG9yIn0.bm90LWEtcmVhbC1zaWduYXR1cmU";

const ALERTS_PATH: &str = "/api/v2/tests/alerts";
const MAX_PAGE_SIZE: u64 = 100;
/// Catchpoint's default per-consumer limits per minute, hour and day.
const LIMITS: [u64; 3] = [20, 500, 2000];

/// An `{id, name}` pair from one of the document's enum lists.
type Enum = (i64, &'static str);

/// `NotificationLevel`, with how often each level occurs.
const LEVELS: &[(Enum, u32)] =
    &[((0, "Warning"), 40), ((1, "Critical"), 30), ((2, "Information"), 5), ((3, "Improved"), 25)];

/// Coherent alert conditions, one per row: `ReportAlertType`,
/// `ReportAlertSubtype`, `AlertTriggerType` and `OperatorType` pairs, then
/// the (warning, critical) thresholds.
type Condition = (Enum, Enum, Enum, Enum, Option<(f64, f64)>);

#[rustfmt::skip]
const CONDITIONS: &[Condition] = &[
    ((15, "Availability"), (9, "Test Failure"), (1, "SpecificValue"), (4, "LessThan"), Some((99.0, 95.0))),
    ((7, "ResponseTime"), (59, "Test Time"), (2, "TrailingValue"), (2, "GreaterThan"), Some((2000.0, 5000.0))),
    ((7, "ResponseTime"), (55, "TTFB"), (1, "SpecificValue"), (2, "GreaterThan"), Some((500.0, 1500.0))),
    ((3, "ContentMatch"), (10, "Regular Expression"), (0, "None"), (0, "NotEquals"), None),
    ((17, "Dns"), (21, "DNS"), (0, "None"), (1, "Equals"), None),
    ((12, "Ping"), (101, "Ping Packet Loss"), (2, "TrailingValue"), (2, "GreaterThan"), Some((5.0, 20.0))),
    ((2, "ByteLength"), (1, "Byte Length"), (3, "TrendShift"), (2, "GreaterThan"), Some((10.0, 25.0))),
    ((4, "HostFailure"), (20, "Any"), (0, "None"), (1, "Equals"), None),
];

/// Tests: name, `DisplayTestType`, folder path, and the conditions that fit.
const TESTS: &[(&str, Enum, &[&str], &[usize])] = &[
    ("Checkout API", (9, "Api"), &["Payments", "APIs"], &[0, 1, 3]),
    ("Homepage", (0, "Web"), &["Storefront"], &[0, 2, 6, 7]),
    ("Login Transaction", (27, "Transaction"), &["Storefront", "Journeys"], &[0, 1]),
    ("api.acme.example DNS", (5, "Dns"), &["Infrastructure", "DNS"], &[4]),
    ("Edge PoP Ping", (6, "Ping"), &["Infrastructure", "Network"], &[5]),
    ("Search API", (9, "Api"), &["Storefront", "APIs"], &[1, 2, 3]),
    ("Payments SSL", (18, "Ssl"), &["Payments"], &[0]),
];

/// Monitoring nodes (vantage points).
const NODES: &[(i64, &str)] = &[
    (1871, "New York - Level3"),
    (2044, "London - Cogent"),
    (2318, "Frankfurt - Telia"),
    (2790, "Tokyo - NTT"),
    (3012, "Singapore - AWS"),
    (3177, "Sydney - Telstra"),
    (3345, "Sao Paulo - Vivo"),
    (3581, "Chicago - Zayo"),
];

const CONTACTS: &[(i64, &str)] = &[(52, "Dana Ops"), (77, "Lee Network")];

const LABELS: &[(&str, &str, &[&str])] =
    &[("#1f77b4", "env", &["prod", "staging"]), ("#ff7f0e", "team", &["payments", "storefront", "infra"])];

/// One seeded test of the account.
struct Test {
    id: i64,
    name: &'static str,
    test_type: Enum,
    path: Vec<&'static str>,
    conditions: &'static [usize],
}

/// Catchpoint's vendor hooks, its seeded tests and its call counter.
pub(crate) struct Catchpoint {
    tests: Vec<Test>,
    usage: Arc<Mutex<Calls>>,
}

/// When data calls were made, for `usageLimits.runs`.
#[derive(Default)]
struct Calls(VecDeque<DateTime<Utc>>);

impl Calls {
    fn record(&mut self, now: DateTime<Utc>) -> [u64; 3] {
        self.0.push_back(now);
        while self.0.front().is_some_and(|t| now - *t >= TimeDelta::days(1)) {
            self.0.pop_front();
        }
        let count = |span: TimeDelta| self.0.iter().filter(|t| now - **t < span).count() as u64;
        [count(TimeDelta::minutes(1)), count(TimeDelta::hours(1)), self.0.len() as u64]
    }
}

impl Catchpoint {
    /// Draws the account's test ids.
    pub(crate) fn new(rng: &mut StdRng) -> Self {
        let tests = TESTS
            .iter()
            .map(|(name, test_type, folders, conditions)| {
                let mut path = vec!["Acme"];
                path.extend_from_slice(folders);
                path.push(name);
                Test {
                    id: rng.random_range(100_000..1_000_000),
                    name,
                    test_type: *test_type,
                    path,
                    conditions,
                }
            })
            .collect();
        Self { tests, usage: Arc::default() }
    }
}

fn pair((id, name): Enum) -> Value {
    json!({ "id": id, "name": name })
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl VendorApi for Catchpoint {
    fn generate(&self, rng: &mut StdRng, at: DateTime<Utc>) -> Item {
        let test = pick(rng, &self.tests);
        let (alert_type, subtype, trigger, operation, thresholds) = CONDITIONS[*pick(rng, test.conditions)];
        let roll = rng.random_range(0..100);
        let mut level = LEVELS[0].0;
        let mut bound = 0;
        for (candidate, weight) in LEVELS {
            bound += weight;
            if roll < bound {
                level = *candidate;
                break;
            }
        }
        let id = rng.random_range(1_000_000_000_000_u64..10_000_000_000_000).to_string();
        let duration: i64 = *pick(rng, &[60, 300, 600, 900]);
        let node = *pick(rng, NODES);
        let portal = "https://portal.catchpoint.com/ui/Symphony";
        let mut alert = Map::new();
        alert.insert("id".into(), json!(id));
        alert.insert("reportTime".into(), json!(stamp(at)));
        alert.insert(
            "processingTimestamp".into(),
            json!(stamp(at + TimeDelta::seconds(rng.random_range(1..20)))),
        );
        alert.insert("startTime".into(), json!(stamp(at - TimeDelta::seconds(duration))));
        alert.insert("level".into(), pair(level));
        alert.insert("test".into(), json!({ "id": test.id, "name": test.name }));
        alert.insert("testPath".into(), json!(test.path));
        alert.insert("testPathStyled".into(), json!(test.path.join(" > ")));
        alert.insert("testUrl".into(), json!(format!("{portal}/Tests/Test/{}/Properties", test.id)));
        for (field, view) in [
            ("testSmartboardUrl", "Smartboard"),
            ("testPerformanceUrl", "Performance"),
            ("testStatisticalUrl", "Statistical"),
            ("testScatterplotUrl", "Scatterplot"),
            ("testRecordUrl", "Records"),
        ] {
            alert.insert(field.into(), json!(format!("{portal}/{view}?testId={}", test.id)));
        }
        alert.insert("testType".into(), pair(test.test_type));
        alert.insert("alertType".into(), pair(alert_type));
        alert.insert("alertSubtype".into(), pair(subtype));
        alert.insert("triggerType".into(), pair(trigger));
        alert.insert("operationType".into(), pair(operation));
        let (warning, critical) = thresholds.unzip();
        alert.insert("warningTrigger".into(), json!(warning));
        alert.insert("criticalTrigger".into(), json!(critical));
        alert.insert("durationInSecond".into(), json!(duration));
        alert.insert("node".into(), json!({ "id": node.0, "name": node.1 }));
        let acknowledged = rng.random_bool(0.15).then(|| {
            let (id, name) = *pick(rng, CONTACTS);
            json!({ "id": id, "name": name })
        });
        alert.insert("acknowledgedBy".into(), json!(acknowledged));
        let labels = rng.random_bool(0.6).then(|| {
            let (color, name, values) = *pick(rng, LABELS);
            let id = if name == "env" { 3 } else { 4 };
            json!([{ "color": color, "id": id, "name": name, "values": [*pick(rng, values)] }])
        });
        alert.insert("labels".into(), json!(labels));
        Item::new(at, id, Value::Object(alert))
    }

    /// An operator acknowledges an alert (once): `acknowledgedBy` is the
    /// only field of an alert that changes after it was reported.
    fn update(&self, rng: &mut StdRng, item: &mut Item, _at: DateTime<Utc>) -> bool {
        if !item.json["acknowledgedBy"].is_null() {
            return false;
        }
        let (id, name) = *pick(rng, CONTACTS);
        item.json["acknowledgedBy"] = json!({ "id": id, "name": name });
        true
    }

    fn rate_limited(&self, _retry_after_secs: u64) -> Response {
        let mut body = envelope_error("429", "API rate limit exceeded. Try again later.");
        body["usageLimits"] = usage_limits([LIMITS[0], 0, 0], Some("Minute limit exceeded."));
        (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response()
    }

    fn unauthorized(&self) -> Response {
        unauthorized()
    }

    fn error_in_200(&self) -> Response {
        error(StatusCode::OK, "500", "An error occurred while processing the request.")
    }

    fn malform(&self, body: &mut Value) {
        let alert = match body.pointer_mut("/data/alerts") {
            Some(Value::Array(alerts)) => {
                let middle = alerts.len() / 2;
                alerts.get_mut(middle)
            }
            Some(alert @ Value::Object(_)) => Some(alert),
            _ => None,
        };
        if let Some(Value::Object(alert)) = alert {
            alert.remove("id");
            alert.insert("reportTime".into(), json!("not a date"));
        }
    }

    fn routes(&self) -> Routes {
        Routes {
            open: Router::new().fallback(not_found),
            data: Router::new().route(ALERTS_PATH, get(alerts)).layer(Extension(self.usage.clone())),
        }
    }
}

/// A query Catchpoint refuses with 400, naming the parameter.
#[derive(Debug, thiserror::Error)]
enum QueryError {
    #[error("Invalid '{0}': expected a UTC time as YYYY-MM-DDThh:mm:ss.")]
    Time(&'static str),
    #[error("Specify both startTimeUtc and endTimeUtc, or neither.")]
    HalfWindow,
    #[error("Invalid 'pageNumber': must be an integer of at least 1.")]
    PageNumber,
    #[error("Invalid 'pageSize': must be an integer between 1 and {MAX_PAGE_SIZE}.")]
    PageSize,
    #[error("Invalid 'testIds': expected a comma-separated list of test ids.")]
    TestIds,
}

struct AlertQuery {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    page: u64,
    size: u64,
    test_ids: Option<Vec<i64>>,
}

impl AlertQuery {
    fn parse(raw: Option<&str>, now: DateTime<Utc>) -> Result<Self, QueryError> {
        let (mut start, mut end) = (None, None);
        let mut query = AlertQuery {
            start: now - TimeDelta::hours(24),
            end: now,
            page: 1,
            size: MAX_PAGE_SIZE,
            test_ids: None,
        };
        for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "startTimeUtc" => start = Some(utc(&value, "startTimeUtc")?),
                "endTimeUtc" => end = Some(utc(&value, "endTimeUtc")?),
                "pageNumber" => {
                    query.page = value.parse().ok().filter(|p| *p >= 1).ok_or(QueryError::PageNumber)?;
                }
                "pageSize" => {
                    query.size = value
                        .parse()
                        .ok()
                        .filter(|s| (1..=MAX_PAGE_SIZE).contains(s))
                        .ok_or(QueryError::PageSize)?;
                }
                "testIds" => {
                    let ids: Result<Vec<i64>, _> = value.split(',').map(|s| s.trim().parse()).collect();
                    query.test_ids = Some(ids.map_err(|_| QueryError::TestIds)?);
                }
                _ => {}
            }
        }
        match (start, end) {
            (Some(s), Some(e)) => (query.start, query.end) = (s, e),
            (None, None) => {}
            _ => return Err(QueryError::HalfWindow),
        }
        Ok(query)
    }

    fn matches(&self, item: &Item) -> bool {
        let test_id = item.json.pointer("/test/id").and_then(Value::as_i64);
        item.at >= self.start
            && item.at < self.end
            && self.test_ids.as_ref().is_none_or(|ids| test_id.is_some_and(|t| ids.contains(&t)))
    }
}

fn utc(value: &str, name: &'static str) -> Result<DateTime<Utc>, QueryError> {
    NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S")
        .map(|t| t.and_utc())
        .map_err(|_| QueryError::Time(name))
}

/// Serves one page, newest first, after checking the key and parameters.
async fn alerts(
    State(shared): State<Arc<Shared>>,
    Extension(usage): Extension<Arc<Mutex<Calls>>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let expected = format!("Bearer {}", shared.api_key());
    if headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return unauthorized();
    }
    let now = super::state::now();
    let runs = usage.lock().unwrap_or_else(PoisonError::into_inner).record(now);
    let query = match AlertQuery::parse(raw.as_deref(), now) {
        Ok(query) => query,
        Err(e) => return error(StatusCode::BAD_REQUEST, "400", &e.to_string()),
    };
    let skip = usize::try_from((query.page - 1).saturating_mul(query.size)).unwrap_or(usize::MAX);
    let take = usize::try_from(query.size).unwrap_or(usize::MAX);
    let (page, total) = shared.with_items(|items| {
        let matching = || items.iter().rev().filter(|i| query.matches(i));
        let page: Vec<Value> = matching().skip(skip).take(take).map(|i| i.json.clone()).collect();
        (page, matching().count())
    });
    if total == 0 {
        let mut body = envelope_error("404", "No alerts found for the specified filters.");
        body["usageLimits"] = usage_limits(runs, None);
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    }
    let has_more = skip.saturating_add(page.len()) < total;
    let alerts = match <[Value; 1]>::try_from(page) {
        Ok([one]) => one,
        Err(page) => Value::Array(page),
    };
    Json(json!({
        "data": { "alerts": alerts, "hasMore": has_more, "next": null, "previous": null },
        "messages": null,
        "errors": null,
        "completed": true,
        "traceId": trace_id(now, runs),
        "usageLimits": usage_limits(runs, None),
    }))
    .into_response()
}

fn usage_limits(runs: [u64; 3], exceeded: Option<&str>) -> Value {
    json!({
        "clientId": 90417,
        "lastRequestTimestamp": stamp(super::state::now()),
        "limits": { "minute": LIMITS[0], "hour": LIMITS[1], "day": LIMITS[2] },
        "runs": { "minute": runs[0], "hour": runs[1], "day": runs[2] },
        "exceededMessage": exceeded,
        "divisionUsageStatistics": null,
    })
}

/// A trace id that differs per call without drawing on the data RNG.
fn trace_id(now: DateTime<Utc>, runs: [u64; 3]) -> String {
    format!("{:016x}{:016x}", now.timestamp(), runs[2])
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "404", "The requested resource was not found.")
}

fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, "401", "Authorization has been denied for this request.")
}

/// Catchpoint's error envelope: `errors[]` and `completed: false`.
fn envelope_error(id: &str, message: &str) -> Value {
    json!({
        "data": null,
        "messages": null,
        "errors": [{ "id": id, "message": message }],
        "completed": false,
        "traceId": null,
    })
}

fn error(status: StatusCode, id: &str, message: &str) -> Response {
    (status, Json(envelope_error(id, message))).into_response()
}
