//! Red Canary (REST API v3): MDR detections.
//!
//! `GET {base}/openapi/v3/detections?page&per_page&since` with the key in
//! `X-API-Key`; pages of `{"meta":{"total_items"},"links":{"next"},"data":[…]}`
//! walked by [`crate::paginate::link_next`], which follows `links.next` only
//! on the configured origin (the key must never travel elsewhere) and falls
//! back to `page + 1` while `page * per_page < total_items`. Past its end the
//! API has been seen to repeat its last page or pad with hollow items, so
//! pages carry their detection ids ([`Page::with_keys`]) and the walk ends on
//! either.
//!
//! Incremental by `since` on `confirmed_at` (when Red Canary published the
//! detection; `time_of_occurrence` can be years older). The window's end is
//! fixed when the walk is planned and becomes the watermark only when the
//! walk completes, so a newest-first listing never skips older items. The API
//! has no `before`: detections confirmed during a walk may show up in it;
//! they are delivered and, re-read by the next window's overlap, dropped as
//! seen. See `docs/vendors/red-canary.md`.

mod normalize;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{Client, RequestBuilder};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::config::{Credential, SourceConfig};
use crate::event::Kind;
use crate::incremental::{TimeWindow, WindowSettings};
use crate::paginate::{Continuation, Page, Position, Scheme, link_next::LinkNext};
use crate::throttle::RateLimit;

use super::{Finish, NormalizeContext, NormalizeError, Normalized, PageError, Vendor};

/// A Red Canary tenant (`https://<subdomain>.my.redcanary.co`).
#[derive(Debug)]
pub struct RedCanary {
    base_url: Url,
    detections_url: Url,
    page_size: u32,
    window: WindowSettings,
}

/// `[source.options]` for Red Canary: none yet; unknown keys are refused so
/// a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {}

impl Vendor for RedCanary {
    const KEY: &'static str = "red_canary";
    const NAME: &'static str = "Red Canary";
    const DEFAULT_BASE_URL: Option<&'static str> = None;
    const CONFIG_EXAMPLE: &'static str = r#"
# REQUIRED: each tenant has its own subdomain.
base_url = "https://acme.my.redcanary.co"
# Red Canary allows 10 requests a second and 20 a minute; alertd paces itself.
# (Red Canary has no [source.options].)
"#;
    /// The maximum is undocumented; 50 is what every public client uses.
    const MAX_PAGE_SIZE: u32 = 50;
    /// Its revisions are change times: an item is new until it is updated.
    const OCSF: crate::ocsf::Product = crate::ocsf::Product {
        name: "Red Canary MDR",
        vendor_name: "Red Canary",
        is_first_revision: crate::ocsf::not_yet_updated,
    };
    /// Red Canary's guide: "429 (Too Many Requests) or 406 (Not Accepted)".
    const THROTTLE_STATUSES: &'static [u16] = &[406];
    /// The documented limits: 10 requests per second and 20 per minute.
    const RATE_LIMITS: &'static [RateLimit] =
        &[RateLimit::new(10, Duration::from_secs(1)), RateLimit::new(20, Duration::from_secs(60))];

    type Options = Options;
    /// Items change in place (docs/vendors/red_canary.md, "Revisits").
    const REVISIT: Option<(Duration, Duration)> =
        Some((Duration::from_secs(7 * 86_400), Duration::from_secs(3600)));
    type Plan = TimeWindow;

    const READS: super::keep::Keep = normalize::READS;

    fn new(source: &SourceConfig, base_url: Url, _options: Options) -> Result<Self, String> {
        Ok(RedCanary {
            detections_url: super::endpoint(&base_url, "/openapi/v3/detections"),
            base_url,
            page_size: super::page_size::<Self>(source),
            window: WindowSettings::of(source),
        })
    }

    fn kind(&self) -> Kind {
        Kind::Detection
    }

    fn scheme(&self) -> Scheme {
        Scheme::LinkNext(LinkNext::new(self.base_url.clone()))
    }

    fn plan(&self, watermark: Option<&str>, now: DateTime<Utc>) -> Result<TimeWindow, PageError> {
        TimeWindow::plan(watermark, now, self.window).map_err(|e| PageError::State(e.to_string()))
    }

    /// A revisit walks the same requests over a window of its own.
    fn revisit_plan(&self, after: DateTime<Utc>, before: DateTime<Utc>) -> Option<TimeWindow> {
        Some(TimeWindow { after, before, overlap: self.window.overlap })
    }

    fn request(&self, client: &Client, plan: &TimeWindow, at: &Position, key: &Credential) -> RequestBuilder {
        let page = match at {
            Position::Link(link) => {
                let request = client.get(link.as_str());
                // LinkNext refused foreign links before they became a
                // position; a stored walk state is checked again here, so
                // the key can only ever go to the configured origin.
                return match Url::parse(link) {
                    Ok(url) if url.origin() == self.base_url.origin() => key.header(request, "X-API-Key"),
                    _ => request,
                };
            }
            Position::Page(n) => *n,
            Position::Start | Position::Cursor(_) => 1,
        };
        let query = [
            ("page", page.to_string()),
            ("per_page", self.page_size.to_string()),
            // Whole seconds, rounded down: a `since` a little early only
            // re-reads what the seen ids drop.
            ("since", plan.after.to_rfc3339_opts(SecondsFormat::Secs, true)),
        ];
        key.header(client.get(self.detections_url.clone()).query(&query), "X-API-Key")
    }

    fn parse_page(&self, body: &[u8]) -> Result<Page, PageError> {
        let parsed = super::envelope::parse(body, &["data"], &Self::READS)?;
        let envelope = parsed.rest;
        let items = match parsed.items {
            Some(items) => items,
            None => {
                if let Some(errors) = envelope.get("errors").or_else(|| envelope.get("error")) {
                    return Err(PageError::vendor(&error_text(errors)));
                }
                return Err(PageError::Shape("`data` is missing or not an array".into()));
            }
        };
        let self_link =
            envelope.pointer("/links/self").and_then(href).and_then(|l| self.base_url.join(&l).ok());
        let param = |name: &str| {
            self_link.as_ref().and_then(|u| {
                u.query_pairs().find(|(k, _)| k == name).and_then(|(_, v)| v.parse::<u64>().ok())
            })
        };
        let continuation = Continuation::Link {
            next: envelope.pointer("/links/next").and_then(href),
            page: param("page"),
            per_page: param("per_page").or(Some(u64::from(self.page_size))),
            total_items: envelope.pointer("/meta/total_items").and_then(Value::as_u64),
        };
        Ok(items.into_page(continuation).with_keys(detection_key))
    }

    fn normalize(&self, item: &Value, ctx: &NormalizeContext<'_>) -> Result<Normalized, NormalizeError> {
        normalize::normalize(item, ctx)
    }

    fn finish(&self, plan: &TimeWindow, _max_mark: Option<i64>) -> Finish {
        Finish { watermark: plan.watermark(), prune_before: Some(plan.prune_before()) }
    }
}

/// A link as Red Canary writes it: a URL string (collection links) or
/// `{"href": URL}` (item links, and some collection links).
fn href(link: &Value) -> Option<String> {
    let text = match link {
        Value::String(s) => s,
        Value::Object(o) => o.get("href")?.as_str()?,
        _ => return None,
    };
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// A detection's id, or `None` for a hollow item (no id or no attributes),
/// which is what Red Canary pads pages past its end with.
pub(super) fn detection_key(item: &Value) -> Option<String> {
    let has_attributes = item.get("attributes").and_then(Value::as_object).is_some_and(|a| !a.is_empty());
    if !has_attributes {
        return None;
    }
    super::fields::text(item, "/id")
}

/// The text of an `errors`/`error` value: a string, a list of strings, or
/// objects with `detail`/`title`/`message`.
fn error_text(errors: &Value) -> String {
    let one = |e: &Value| match e {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => ["detail", "title", "message"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_str).map(str::to_owned)),
        _ => None,
    };
    let texts: Vec<String> = match errors {
        Value::Array(list) => list.iter().filter_map(one).collect(),
        other => one(other).into_iter().collect(),
    };
    if texts.is_empty() { "unspecified error".to_owned() } else { texts.join("; ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vendor() -> RedCanary {
        let config = crate::registry::parse(
            "[[source]]\nvendor = \"red_canary\"\nname = \"t\"\nbase_url = \"https://acme.my.redcanary.co\"\n\
             credential = { env = \"X\" }\npage_size = 500\n",
            "t.toml",
        )
        .unwrap();
        super::super::instantiate::<RedCanary>(&config.sources[0]).unwrap()
    }

    fn detection(id: u64) -> Value {
        serde_json::json!({"type": "Detection", "id": id, "attributes": {"headline": "x"}})
    }

    /// A pretty-printed page: `raw` is one line, and still the whole
    /// detection, not the part of it alertd reads.
    #[test]
    fn raw_of_a_pretty_page_is_the_whole_detection_on_one_line() {
        let item = serde_json::json!({
            "type": "Detection", "id": 7,
            "attributes": {"headline": "x", "confirmed_at": "2026-03-27T08:15:42Z", "unread": [1, {"k": "v"}]},
            "relationships": {"related": {"data": null}}
        });
        let body = serde_json::to_string_pretty(&serde_json::json!({"data": [item]})).unwrap();
        let page = vendor().parse_page(body.as_bytes()).unwrap();
        assert!(page.partial);
        let ctx = crate::vendors::NormalizeContext::new("t", chrono::Utc::now());
        let event = vendor().normalize(&page.items[0], &ctx.with_text(page.text(0))).unwrap().event;
        assert!(!event.raw.get().contains('\n'), "{}", event.raw.get());
        assert_eq!(event.raw.to_value(), item);
    }

    #[test]
    fn a_detection_whose_attributes_alertd_does_not_read_is_not_hollow() {
        // Items are parsed into the fields alertd reads (`READS`); the
        // hollow check must still see these attributes as there.
        let body = br#"{"data": [{"id": 1, "attributes": {"unread": true}}, {"id": 2, "attributes": {}},
            {"id": 3, "attributes": {"headline": "x"}}, {"id": null, "attributes": null}]}"#;
        let page = vendor().parse_page(body).unwrap();
        assert!(page.partial);
        assert_eq!(page.keys, Some(vec![Some("1".to_owned()), None, Some("3".to_owned()), None]));
        assert_eq!(
            page.whole(0).unwrap().into_owned(),
            serde_json::json!({"id": 1, "attributes": {"unread": true}})
        );
    }

    #[test]
    fn base_url_is_required_and_the_page_size_is_capped() {
        let err = crate::registry::parse(
            "[[source]]\nvendor = \"red_canary\"\nname = \"t\"\ncredential = { env = \"X\" }\n",
            "t.toml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("base_url is required"), "{err}");
        assert_eq!(vendor().page_size, 50);
    }

    #[test]
    fn next_links_are_read_as_strings_and_as_href_objects() {
        for links in [
            r#"{"next":"https://acme.my.redcanary.co/openapi/v3/detections?page=2"}"#,
            r#"{"next":{"href":"https://acme.my.redcanary.co/openapi/v3/detections?page=2"}}"#,
        ] {
            let body = format!(
                r#"{{"meta":{{"api_version":"v3.0","total_items":3}},"links":{links},"data":[{}]}}"#,
                detection(1)
            );
            let page = vendor().parse_page(body.as_bytes()).unwrap();
            let Continuation::Link { next, .. } = page.continuation else {
                panic!("not a link continuation");
            };
            assert_eq!(
                next.as_deref(),
                Some("https://acme.my.redcanary.co/openapi/v3/detections?page=2"),
                "{links}"
            );
        }
    }

    #[test]
    fn the_page_counters_come_from_meta_and_the_self_link() {
        let body = format!(
            r#"{{"meta":{{"total_items":120}},"links":{{"self":"https://acme.my.redcanary.co/openapi/v3/detections?page=3&per_page=20"}},"data":[{}]}}"#,
            detection(1)
        );
        let page = vendor().parse_page(body.as_bytes()).unwrap();
        assert_eq!(
            page.continuation,
            Continuation::Link { next: None, page: Some(3), per_page: Some(20), total_items: Some(120) }
        );
        // Without links at all (the XSOAR sample), per_page is what was asked.
        let page = vendor().parse_page(br#"{"meta":{"total_items":1},"data":[]}"#).unwrap();
        assert_eq!(
            page.continuation,
            Continuation::Link { next: None, page: None, per_page: Some(50), total_items: Some(1) }
        );
    }

    #[test]
    fn hollow_items_have_no_key() {
        let body = format!(
            r#"{{"data":[{},{{"type":null,"id":null,"attributes":null,"relationships":{{}},"links":{{}}}},{{"relationships":{{}},"links":{{}}}},{{"id":5,"attributes":{{}}}}]}}"#,
            detection(447)
        );
        let page = vendor().parse_page(body.as_bytes()).unwrap();
        assert_eq!(page.keys, Some(vec![Some("447".into()), None, None, None]));
    }

    #[test]
    fn an_errors_body_is_a_vendor_error_and_a_bad_envelope_a_shape_error() {
        assert_eq!(
            vendor().parse_page(br#"{"errors":[{"detail":"per_page must be at most 50"}]}"#).unwrap_err(),
            PageError::Vendor("per_page must be at most 50".into())
        );
        assert!(matches!(vendor().parse_page(br#"{"meta":{}}"#), Err(PageError::Shape(_))));
        assert!(matches!(vendor().parse_page(br#"{"data":[{"id":"#), Err(PageError::Json(_))));
    }

    fn query_of(req: RequestBuilder) -> (String, Option<String>, bool) {
        let req = req.build().unwrap();
        (
            req.url().path().to_owned(),
            req.url().query().map(str::to_owned),
            req.headers().contains_key("x-api-key"),
        )
    }

    #[test]
    fn the_first_request_asks_since_the_window_start_with_the_key_header() {
        let v = vendor();
        let plan = TimeWindow {
            after: DateTime::parse_from_rfc3339("2026-03-01T10:50:00.750Z").unwrap().with_timezone(&Utc),
            before: Utc::now(),
            overlap: std::time::Duration::from_secs(600),
        };
        let key = Credential::from_secret("k".into());
        let (path, query, has_key) = query_of(v.request(&Client::new(), &plan, &Position::Start, &key));
        assert_eq!(path, "/openapi/v3/detections");
        assert_eq!(query.as_deref(), Some("page=1&per_page=50&since=2026-03-01T10%3A50%3A00Z"));
        assert!(has_key);
    }

    #[test]
    fn a_stored_link_to_another_origin_never_gets_the_key() {
        let v = vendor();
        let plan = TimeWindow { after: Utc::now(), before: Utc::now(), overlap: std::time::Duration::ZERO };
        let key = Credential::from_secret("k".into());
        let own = Position::Link("https://acme.my.redcanary.co/openapi/v3/detections?page=2".into());
        let foreign = Position::Link("https://evil.example/openapi/v3/detections?page=2".into());
        assert!(query_of(v.request(&Client::new(), &plan, &own, &key)).2);
        assert!(!query_of(v.request(&Client::new(), &plan, &foreign, &key)).2);
    }
}
