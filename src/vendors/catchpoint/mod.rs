//! Catchpoint (REST API v2): synthetic-monitoring test alerts.
//!
//! `GET {base}/api/v2/tests/alerts?startTimeUtc&endTimeUtc&pageNumber&pageSize`,
//! `Authorization: Bearer <key>`, envelope
//! `{"data":{"alerts","hasMore","next","previous"},"completed","errors","traceId","usageLimits"}`
//! walked by [`crate::paginate::has_more`]. Incremental by closed time
//! window ([`crate::incremental`]) in whole seconds, because the API takes
//! `YYYY-MM-DDTHH:MM:SS` and nothing finer; the watermark moves only when a
//! window is fully delivered. Alert ids are random strings, so items are
//! deduplicated by id, never ordered by it. A window without alerts is
//! answered with 404, which [`Catchpoint`] declares an empty page
//! ([`Vendor::empty_page_for`]). See `docs/vendors/catchpoint.md`.

mod normalize;

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use reqwest::header::ACCEPT;
use reqwest::{Client, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::config::{Credential, SourceConfig};
use crate::event::Kind;
use crate::http::FetchError;
use crate::incremental::{TimeWindow, WindowSettings};
use crate::paginate::{ApiUsage, Continuation, Page, Position, Scheme, has_more::HasMore};
use crate::throttle::RateLimit;

use super::{Finish, NormalizeContext, NormalizeError, Normalized, PageError, Vendor};

/// The only time format the API accepts: UTC, whole seconds, no offset.
const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// A Catchpoint account (client or division, as the key's scope says).
#[derive(Debug)]
pub struct Catchpoint {
    alerts_url: Url,
    page_size: u32,
    window: WindowSettings,
    source: String,
    test_ids: Option<String>,
}

/// `[source.options]` for Catchpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Only alerts of these tests (`testIds`); default all tests the key sees.
    #[serde(default)]
    pub test_ids: Vec<u64>,
}

/// Calls per period, as Catchpoint counts them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerPeriod {
    /// In the current minute.
    pub minute: Option<u64>,
    /// In the current hour.
    pub hour: Option<u64>,
    /// In the current day (reset at 00:00 UTC).
    pub day: Option<u64>,
}

/// The `usageLimits` block every Catchpoint answer carries: what the
/// consumer may call and has called. It becomes the page's [`ApiUsage`],
/// which the poller exports as `alertd_vendor_quota_*` gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageLimits {
    /// Calls allowed per period (`limits`).
    pub limits: PerPeriod,
    /// Calls made in the current period (`runs`).
    pub runs: PerPeriod,
    /// Set when a limit was exceeded (`exceededMessage`).
    pub exceeded_message: Option<String>,
}

/// A parsed answer: the page, and the usage counters beside it.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The alerts and whether more pages follow.
    pub page: Page,
    /// `usageLimits`, if the answer had it.
    pub usage: Option<UsageLimits>,
}

impl Vendor for Catchpoint {
    const KEY: &'static str = "catchpoint";
    const NAME: &'static str = "Catchpoint";
    const DEFAULT_BASE_URL: Option<&'static str> = Some("https://io.catchpoint.com");
    const CONFIG_EXAMPLE: &'static str = r#"
# The key is a REST API v2 bearer key (a JWT): `alertd check` shows its expiry.
# Catchpoint allows 20 requests a minute and 2,000 a day; alertd paces itself.
# base_url = "https://io.catchpoint.com"   # the default: Catchpoint's public API
# [source.options]
# test_ids = [184233, 184240]              # only the alerts of these tests; default: every test the key sees
"#;
    const MAX_PAGE_SIZE: u32 = 100;
    /// Its items' revisions count up from 1.
    const OCSF: crate::ocsf::Product = crate::ocsf::Product {
        name: "Catchpoint",
        vendor_name: "Catchpoint",
        is_first_revision: crate::ocsf::revision_is_one,
    };
    /// The documented limits: 7/s, 20/min, 500/h, 2000/day.
    const RATE_LIMITS: &'static [RateLimit] = &[
        RateLimit::new(7, Duration::from_secs(1)),
        RateLimit::new(20, Duration::from_secs(60)),
        RateLimit::new(500, Duration::from_secs(3600)),
        RateLimit::new(2000, Duration::from_secs(86_400)),
    ];

    type Options = Options;
    /// Items change in place (docs/vendors/catchpoint.md, "Revisits").
    const REVISIT: Option<(Duration, Duration)> =
        Some((Duration::from_secs(86_400), Duration::from_secs(3600)));
    type Plan = TimeWindow;

    fn new(source: &SourceConfig, base_url: Url, options: Options) -> Result<Self, String> {
        let test_ids = (!options.test_ids.is_empty())
            .then(|| options.test_ids.iter().map(u64::to_string).collect::<Vec<_>>().join(","));
        Ok(Catchpoint {
            alerts_url: super::endpoint(&base_url, "/api/v2/tests/alerts"),
            page_size: super::page_size::<Self>(source),
            window: WindowSettings::of(source),
            source: source.name().to_owned(),
            test_ids,
        })
    }

    fn kind(&self) -> Kind {
        Kind::Alert
    }

    fn scheme(&self) -> Scheme {
        Scheme::HasMore(HasMore)
    }

    /// The window in whole seconds, so that what is sent is exactly what is
    /// stored as the next watermark and consecutive windows tile.
    fn plan(&self, watermark: Option<&str>, now: DateTime<Utc>) -> Result<TimeWindow, PageError> {
        let window =
            TimeWindow::plan(watermark, now, self.window).map_err(|e| PageError::State(e.to_string()))?;
        Ok(TimeWindow {
            after: window.after.trunc_subsecs(0),
            before: window.before.trunc_subsecs(0),
            overlap: window.overlap,
        })
    }

    /// A revisit walks the same requests over a window of its own.
    fn revisit_plan(&self, after: DateTime<Utc>, before: DateTime<Utc>) -> Option<TimeWindow> {
        Some(TimeWindow {
            after: after.trunc_subsecs(0),
            before: before.trunc_subsecs(0),
            overlap: self.window.overlap,
        })
    }

    fn request(&self, client: &Client, plan: &TimeWindow, at: &Position, key: &Credential) -> RequestBuilder {
        let page = match at {
            Position::Page(n) => *n,
            _ => 1,
        };
        let mut query = vec![
            ("startTimeUtc", plan.after.format(TIME_FORMAT).to_string()),
            ("endTimeUtc", plan.before.format(TIME_FORMAT).to_string()),
            ("pageNumber", page.to_string()),
            ("pageSize", self.page_size.to_string()),
        ];
        if let Some(ids) = &self.test_ids {
            query.push(("testIds", ids.clone()));
        }
        key.bearer(client.get(self.alerts_url.clone()).query(&query).header(ACCEPT, "application/json"))
    }

    fn parse_page(&self, body: &[u8]) -> Result<Page, PageError> {
        let parsed = parse(body)?;
        let mut page = parsed.page;
        if let Some(usage) = &parsed.usage {
            if let Some(message) = &usage.exceeded_message {
                let exceeded = crate::text::clip(message, crate::http::MAX_DETAIL_CHARS);
                tracing::warn!(message = "Catchpoint reports an exceeded API limit.", source = %self.source, %exceeded);
            }
            page.usage = [
                ("minute", usage.limits.minute, usage.runs.minute),
                ("hour", usage.limits.hour, usage.runs.hour),
                ("day", usage.limits.day, usage.runs.day),
            ]
            .into_iter()
            .filter(|(_, limit, used)| limit.is_some() || used.is_some())
            .map(|(period, limit, used)| ApiUsage { period, limit, used })
            .collect();
        }
        Ok(page)
    }

    /// Catchpoint answers a query that matches no alert with 404 and its
    /// error envelope ("No alerts found for the specified filters."). That
    /// is an empty window only on a window's first page: after `hasMore`
    /// promised more, a 404 (a proxy's, a backend's) is an error that keeps
    /// the walk where it is, or the pages after it would be skipped.
    fn empty_page_for(&self, at: &Position, error: &FetchError) -> Option<Page> {
        let first = *at == self.scheme().first();
        match error {
            FetchError::Client { status, detail }
                if first && *status == StatusCode::NOT_FOUND.as_u16() && says_no_alerts(detail) =>
            {
                Some(Page::new(Vec::new(), Continuation::HasMore(false)))
            }
            _ => None,
        }
    }

    fn throttled_answer(body: &[u8]) -> bool {
        quota_exceeded(body)
    }

    fn normalize(&self, item: &Value, ctx: &NormalizeContext<'_>) -> Result<Normalized, NormalizeError> {
        normalize::normalize(item, ctx)
    }

    fn finish(&self, plan: &TimeWindow, _max_mark: Option<i64>) -> Finish {
        Finish { watermark: plan.watermark(), prune_before: Some(plan.prune_before()) }
    }
}

/// Whether a vendor message is Catchpoint's "nothing matched" ("No alerts
/// found.", "No alerts found for the specified filters.").
fn says_no_alerts(message: &str) -> bool {
    message.trim_start().to_ascii_lowercase().starts_with("no alerts found")
}

/// Parse an answer body: the alerts (an array, or the single object the
/// OpenAPI document types the list as), `hasMore`, and `usageLimits`. An
/// answer with `completed: false` is the vendor's error, with its messages.
pub fn parse(body: &[u8]) -> Result<Parsed, PageError> {
    let parsed = super::envelope::parse(body, &["data", "alerts"], &<Catchpoint as super::Vendor>::READS)?;
    let envelope = parsed.rest;
    if !envelope.is_object() {
        return Err(PageError::Shape("the answer is not a JSON object".into()));
    }
    if envelope.get("completed").and_then(Value::as_bool) == Some(false) {
        return Err(PageError::vendor(&error_messages(&envelope)));
    }
    let data = match envelope.get("data") {
        Some(data @ Value::Object(_)) => data,
        _ => {
            return Err(PageError::Shape("`data` is missing or not an object".into()));
        }
    };
    let items = match (parsed.items, data.get("alerts")) {
        (Some(alerts), _) => alerts,
        (None, None | Some(Value::Null)) => super::envelope::Items::default(),
        (None, Some(alert @ Value::Object(_))) => {
            super::envelope::Items { values: vec![alert.clone()], texts: Vec::new(), partial: false }
        }
        (None, Some(_)) => {
            return Err(PageError::Shape("`data.alerts` is neither a list nor an alert object".into()));
        }
    };
    let has_more = match data.get("hasMore") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(more)) => *more,
        Some(_) => return Err(PageError::Shape("`data.hasMore` is not a boolean".into())),
    };
    Ok(Parsed {
        page: items.into_page(Continuation::HasMore(has_more)),
        usage: envelope.get("usageLimits").and_then(usage_limits),
    })
}

/// Whether an answer is Catchpoint's "quota exceeded": an answer that did
/// not complete (any status) whose errors, message or
/// `usageLimits.exceededMessage` say a limit was exceeded. The documents
/// name the error but not its status or envelope, so the text decides. A
/// completed answer is data, whatever its alerts are called.
pub fn quota_exceeded(body: &[u8]) -> bool {
    let mentions = |text: &str| {
        let text = text.to_ascii_lowercase();
        text.contains("exceeded") && (text.contains("quota") || text.contains("limit"))
    };
    // Cheap first: most answers are pages that name no limit at all.
    if !body.windows(8).any(|w| w.eq_ignore_ascii_case(b"exceeded")) {
        return false;
    }
    let Ok(envelope) = serde_json::from_slice::<Value>(body) else {
        return mentions(&String::from_utf8_lossy(body));
    };
    if envelope.get("completed").and_then(Value::as_bool) == Some(true) {
        return false;
    }
    let exceeded = super::fields::text(&envelope, "/usageLimits/exceededMessage").is_some();
    let said = ["/message", "/Message", "/error"]
        .iter()
        .filter_map(|p| super::fields::text(&envelope, p))
        .chain(std::iter::once(error_messages(&envelope)))
        .any(|m| mentions(&m));
    exceeded || said
}

/// The messages of `errors[]`, joined; a fixed text when there are none.
fn error_messages(envelope: &Value) -> String {
    let messages: Vec<String> = envelope
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| super::fields::text(e, "/message"))
        .collect();
    if messages.is_empty() {
        "the request was not completed (no error message given)".into()
    } else {
        messages.join("; ")
    }
}

fn usage_limits(value: &Value) -> Option<UsageLimits> {
    if !value.is_object() {
        return None;
    }
    let period = |name: &str| PerPeriod {
        minute: value.pointer(&format!("/{name}/minute")).and_then(Value::as_u64),
        hour: value.pointer(&format!("/{name}/hour")).and_then(Value::as_u64),
        day: value.pointer(&format!("/{name}/day")).and_then(Value::as_u64),
    };
    Some(UsageLimits {
        limits: period("limits"),
        runs: period("runs"),
        exceeded_message: super::fields::text(value, "/exceededMessage"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn vendor(extra: &str) -> Catchpoint {
        let config = crate::registry::parse(
            &format!(
                "[[source]]\nvendor = \"catchpoint\"\nname = \"t\"\ncredential = {{ env = \"X\" }}\npage_size = 500\noverlap = \"10m\"\nlag = \"30s\"\n{extra}"
            ),
            "t.toml",
        )
        .unwrap();
        super::super::instantiate::<Catchpoint>(&config.sources[0]).unwrap()
    }

    fn query_of(request: RequestBuilder) -> Vec<(String, String)> {
        let request = request.build().unwrap();
        request.url().query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    }

    #[test]
    fn requests_carry_the_window_in_whole_utc_seconds_and_the_capped_page_size() {
        let v = vendor("[source.options]\ntest_ids = [11, 12]\n");
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap() + chrono::Duration::milliseconds(750);
        let plan = v.plan(Some("2026-03-01T11:00:00.250000Z"), now).unwrap();
        assert_eq!(plan.watermark(), "2026-03-01T11:59:30.000000Z");
        let key = Credential::from_secret("k".to_owned().into());
        let request = v.request(&Client::new(), &plan, &Position::Page(3), &key);
        let built = request.try_clone().unwrap().build().unwrap();
        assert_eq!(built.url().path(), "/api/v2/tests/alerts", "default base URL io.catchpoint.com");
        assert_eq!(built.url().host_str(), Some("io.catchpoint.com"));
        assert_eq!(built.headers()["authorization"], "Bearer k");
        assert_eq!(
            query_of(request),
            [
                ("startTimeUtc", "2026-03-01T10:50:00"),
                ("endTimeUtc", "2026-03-01T11:59:30"),
                ("pageNumber", "3"),
                ("pageSize", "100"),
                ("testIds", "11,12"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn a_list_a_single_object_and_null_alerts_all_parse() {
        let list = br#"{"data":{"alerts":[{"id":"a"},{"id":"b"}],"hasMore":true},"completed":true}"#;
        let page = parse(list).unwrap().page;
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.continuation, Continuation::HasMore(true));

        let single = br#"{"data":{"alerts":{"id":"a"},"hasMore":null},"completed":true}"#;
        let page = parse(single).unwrap().page;
        assert_eq!(page.items, vec![serde_json::json!({"id": "a"})]);
        assert_eq!(page.continuation, Continuation::HasMore(false));

        let none =
            br#"{"data":{"alerts":null,"hasMore":false,"next":null,"previous":null},"completed":true}"#;
        assert!(parse(none).unwrap().page.items.is_empty());
    }

    #[test]
    fn usage_limits_are_read_from_the_body() {
        let body = br#"{"data":{"alerts":[]},"completed":true,"traceId":"t",
            "usageLimits":{"clientId":9,"limits":{"minute":20,"hour":500,"day":2000},
            "runs":{"minute":3,"hour":41,"day":310},"exceededMessage":null}}"#;
        let usage = parse(body).unwrap().usage.unwrap();
        assert_eq!(
            usage,
            UsageLimits {
                limits: PerPeriod { minute: Some(20), hour: Some(500), day: Some(2000) },
                runs: PerPeriod { minute: Some(3), hour: Some(41), day: Some(310) },
                exceeded_message: None,
            }
        );
    }

    #[test]
    fn usage_limits_travel_with_the_page_for_the_metrics() {
        let config = crate::registry::parse(
            "[[source]]\nvendor = \"catchpoint\"\nname = \"t\"\ncredential = { env = \"X\" }\n",
            "t.toml",
        )
        .unwrap();
        let vendor = crate::vendors::instantiate::<Catchpoint>(&config.sources[0]).unwrap();
        let body = br#"{"data":{"alerts":[]},"completed":true,
            "usageLimits":{"limits":{"minute":20,"hour":500,"day":2000},"runs":{"minute":3,"hour":41}}}"#;
        let page = vendor.parse_page(body).unwrap();
        assert_eq!(
            page.usage,
            vec![
                ApiUsage { period: "minute", limit: Some(20), used: Some(3) },
                ApiUsage { period: "hour", limit: Some(500), used: Some(41) },
                ApiUsage { period: "day", limit: Some(2000), used: None },
            ]
        );
    }

    #[test]
    fn an_uncompleted_answer_is_a_vendor_error_with_its_messages() {
        let body = br#"{"data":null,"completed":false,"errors":[{"id":"1","message":"Invalid startTimeUtc."},{"id":"2","message":"Specify an End time."}]}"#;
        assert_eq!(
            parse(body).unwrap_err(),
            PageError::Vendor("Invalid startTimeUtc.; Specify an End time.".into())
        );
        assert!(matches!(
            parse(br#"{"completed":false}"#),
            Err(PageError::Vendor(m)) if m.contains("not completed")
        ));
    }

    #[test]
    fn garbled_and_foreign_bodies_are_clear_errors() {
        assert!(matches!(parse(br#"{"data":{"al"#), Err(PageError::Json(_))));
        assert!(matches!(parse(br#"[]"#), Err(PageError::Shape(_))));
        assert!(matches!(parse(br#"{"completed":true}"#), Err(PageError::Shape(_))));
        assert!(matches!(parse(br#"{"data":{"alerts":"x"}}"#), Err(PageError::Shape(_))));
        assert!(matches!(parse(br#"{"data":{"alerts":[],"hasMore":"yes"}}"#), Err(PageError::Shape(_))));
    }

    #[test]
    fn quota_exceeded_is_recognised_in_any_envelope_and_only_there() {
        for throttled in [
            &br#"{"data":null,"completed":false,"errors":[{"id":"1","message":"Quota exceeded."}]}"#[..],
            br#"{"completed":false,"errors":[],"usageLimits":{"exceededMessage":"Daily limit exceeded"}}"#,
            br#"{"Message":"API quota exceeded for consumer 17"}"#,
            b"Quota Exceeded",
        ] {
            assert!(quota_exceeded(throttled), "{}", String::from_utf8_lossy(throttled));
        }
        for other in [
            &br#"{"data":{"alerts":[{"id":"a","alertType":{"name":"Limit exceeded"}}]},"completed":true}"#[..],
            br#"{"completed":false,"errors":[{"message":"No alerts found."}]}"#,
            br#"{"completed":false,"errors":[{"message":"Timeout exceeded while reading the test."}]}"#,
            br#"{"data":{"alerts":[]},"completed":true,"usageLimits":{"exceededMessage":null}}"#,
            b"",
        ] {
            assert!(!quota_exceeded(other), "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn only_catchpoints_no_alerts_404_on_a_first_page_is_an_empty_page() {
        let v = vendor("");
        let first = v.scheme().first();
        for detail in ["No alerts found.", "No alerts found for the specified filters."] {
            let not_found = FetchError::Client { status: 404, detail: detail.into() };
            let page = v.empty_page_for(&first, &not_found).unwrap();
            assert!(page.items.is_empty());
            assert_eq!(Scheme::HasMore(HasMore).next(&first, &page), Ok(None));
            assert!(
                v.empty_page_for(&Position::Page(3), &not_found).is_none(),
                "a 404 after hasMore is an error, not the end of the window"
            );
        }
        for other in [
            FetchError::Client { status: 404, detail: "(empty body)".into() },
            FetchError::Client { status: 404, detail: "Not Found".into() },
            FetchError::Client { status: 400, detail: "No alerts found.".into() },
            FetchError::Auth { status: 401, detail: String::new() },
            FetchError::Html { status: 404, title: String::new() },
        ] {
            assert!(v.empty_page_for(&first, &other).is_none(), "{other}");
        }
    }
}
