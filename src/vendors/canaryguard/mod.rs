//! CanaryGuard (REST API v1): canary-token alerts.
//!
//! `GET {base}/api/v1/alerts?page&limit&after&before`, `Authorization: Bearer
//! cg_live_…`, pages of `{"data":[…],"meta":{"page","limit","total"}}`
//! walked by [`crate::paginate::page_total`]. Incremental by time window on
//! `triggered_at` ([`crate::incremental`]); the sort order is undocumented, so
//! the window end is fixed for the walk and the watermark moves only when the
//! walk completes. See `docs/vendors/canaryguard.md`.

mod normalize;

use chrono::{DateTime, Utc};
use reqwest::{Client, RequestBuilder};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::config::{Credential, SourceConfig};
use crate::event::Kind;
use crate::incremental::{TimeWindow, WindowSettings, format_time};
use crate::paginate::{Continuation, Page, Position, Scheme, page_total::PageTotal};

use super::{Finish, NormalizeContext, NormalizeError, Normalized, PageError, Vendor};

/// A CanaryGuard account.
#[derive(Debug)]
pub struct CanaryGuard {
    alerts_url: Url,
    page_size: u32,
    window: WindowSettings,
    token_id: Option<String>,
}

/// `[source.options]` for CanaryGuard.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Only alerts of this token (`tok_…`); default all tokens.
    #[serde(default)]
    pub token_id: Option<String>,
}

impl Vendor for CanaryGuard {
    const KEY: &'static str = "canaryguard";
    const NAME: &'static str = "CanaryGuard";
    const DEFAULT_BASE_URL: Option<&'static str> = Some("https://canaryguard.app");
    const CONFIG_EXAMPLE: &'static str = r#"
# base_url = "https://canaryguard.app"   # the default: CanaryGuard's public API
# [source.options]
# token_id = "tok_8f3a1b2c"               # only the alerts of this token; default: every token
"#;
    const MAX_PAGE_SIZE: u32 = 100;
    /// Its items' revisions count up from 1.
    const OCSF: crate::ocsf::Product = crate::ocsf::Product {
        name: "CanaryGuard",
        vendor_name: "CanaryGuard",
        is_first_revision: crate::ocsf::revision_is_one,
    };

    type Options = Options;
    type Plan = TimeWindow;

    fn new(source: &SourceConfig, base_url: Url, options: Options) -> Result<Self, String> {
        Ok(CanaryGuard {
            alerts_url: super::endpoint(&base_url, "/api/v1/alerts"),
            page_size: super::page_size::<Self>(source),
            window: WindowSettings::of(source),
            token_id: options.token_id,
        })
    }

    fn kind(&self) -> Kind {
        Kind::Alert
    }

    fn scheme(&self) -> Scheme {
        Scheme::PageTotal(PageTotal)
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
            Position::Page(n) => *n,
            _ => 1,
        };
        let mut query = vec![
            ("page", page.to_string()),
            ("limit", self.page_size.to_string()),
            ("after", format_time(plan.after)),
            ("before", format_time(plan.before)),
        ];
        if let Some(token) = &self.token_id {
            query.push(("token_id", token.clone()));
        }
        key.bearer(client.get(self.alerts_url.clone()).query(&query))
    }

    fn parse_page(&self, body: &[u8]) -> Result<Page, PageError> {
        let parsed = super::envelope::parse(body, &["data"], &Self::READS)?;
        let envelope = parsed.rest;
        if let Some(error) = envelope.get("error") {
            let code = error.get("code").and_then(Value::as_str).unwrap_or("UNKNOWN");
            let message = error.get("message").and_then(Value::as_str).unwrap_or("");
            return Err(PageError::vendor(&format!("{code}: {message}")));
        }
        let Some(items) = parsed.items else {
            return Err(PageError::Shape("`data` is missing or not an array".into()));
        };
        let total = envelope
            .pointer("/meta/total")
            .and_then(Value::as_u64)
            .ok_or_else(|| PageError::Shape("`meta.total` is missing or not a number".into()))?;
        let limit =
            envelope.pointer("/meta/limit").and_then(Value::as_u64).unwrap_or(u64::from(self.page_size));
        Ok(items.into_page(Continuation::PageTotal { total, limit }))
    }

    fn normalize(&self, item: &Value, ctx: &NormalizeContext<'_>) -> Result<Normalized, NormalizeError> {
        normalize::normalize(item, ctx)
    }

    fn finish(&self, plan: &TimeWindow, _max_mark: Option<i64>) -> Finish {
        Finish { watermark: plan.watermark(), prune_before: Some(plan.prune_before()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vendor() -> CanaryGuard {
        let config = crate::registry::parse(
            "[[source]]\nvendor = \"canaryguard\"\nname = \"t\"\ncredential = { env = \"X\" }\npage_size = 500\n",
            "t.toml",
        )
        .unwrap();
        super::super::instantiate::<CanaryGuard>(&config.sources[0]).unwrap()
    }

    #[test]
    fn the_page_size_is_capped_at_the_documented_maximum() {
        assert_eq!(vendor().page_size, 100);
    }

    #[test]
    fn a_documented_page_parses() {
        let body = br#"{"data":[{"id":"alt_1"}],"meta":{"page":1,"limit":10,"total":3}}"#;
        let page = vendor().parse_page(body).unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.continuation, Continuation::PageTotal { total: 3, limit: 10 });
    }

    /// An event's `raw` is the alert's text as the page carried it (not the
    /// alert parsed and serialized again), on one line.
    #[test]
    fn raw_is_the_vendors_own_text_of_the_item() {
        let ctx = crate::vendors::NormalizeContext::new("acme", chrono::Utc::now());
        let alert = r#"{"id": "alt_1",  "token_name": "caf\u00e9", "triggered_at": "2026-03-27T08:15:42Z", "n": 1.50}"#;
        let body = format!(r#"{{"data": [{alert}], "meta": {{"total": 1}}}}"#);
        let page = vendor().parse_page(body.as_bytes()).unwrap();
        let event = vendor().normalize(&page.items[0], &ctx.with_text(page.text(0))).unwrap().event;
        assert_eq!(event.raw.get(), alert);
        assert_eq!(event.raw, page.items[0]);
        // Without the text (a caller that has only the item), the item
        // serialized.
        let event = vendor().normalize(&page.items[0], &ctx).unwrap().event;
        assert_eq!(event.raw.get(), serde_json::to_string(&page.items[0]).unwrap());

        // A pretty-printed answer: `raw` stays one line.
        let pretty =
            serde_json::to_string_pretty(&serde_json::json!({"data": [page.items[0]], "meta": {"total": 1}}))
                .unwrap();
        let page = vendor().parse_page(pretty.as_bytes()).unwrap();
        assert!(page.text(0).unwrap().get().contains('\n'));
        let event = vendor().normalize(&page.items[0], &ctx.with_text(page.text(0))).unwrap().event;
        assert!(!event.raw.get().contains('\n'), "{}", event.raw.get());
        assert_eq!(event.raw, page.items[0]);
    }

    #[test]
    fn an_error_envelope_is_a_vendor_error_with_its_code() {
        let body = br#"{"error":{"code":"RATE_LIMITED","message":"Too many requests."}}"#;
        assert_eq!(
            vendor().parse_page(body).unwrap_err(),
            PageError::Vendor("RATE_LIMITED: Too many requests.".into())
        );
    }

    #[test]
    fn truncated_json_and_a_missing_total_are_clear_errors() {
        assert!(matches!(vendor().parse_page(br#"{"data":[{"id":"al"#), Err(PageError::Json(_))));
        assert!(matches!(vendor().parse_page(br#"{"data":[]}"#), Err(PageError::Shape(_))));
        assert!(matches!(vendor().parse_page(br#"{"data":{}}"#), Err(PageError::Shape(_))));
    }
}
