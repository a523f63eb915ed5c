//! Rapid7 InsightIDR (Command Platform): alerts or investigations.
//!
//! One source polls one of two endpoints, chosen by `options.endpoint`:
//! - `alerts` (default): `POST {base}/idr/at/alerts/ops/search?index&size`,
//!   `Accept-version: strong-force-preview`, body
//!   `{"search":{"start_time","end_time"},"sorts":[{"field_id":"created_at","order":"ASCENDING_NULLS_LAST"}]}`;
//!   pages end on `metadata.is_last_index`.
//! - `investigations`: `GET {base}/idr/v2/investigations?start_time&end_time&index&size&sort=created_time,ASC`,
//!   `Accept-version: investigations-preview`; pages `index` 0 ..
//!   `metadata.total_pages` − 1.
//!
//! Both are walked by [`crate::paginate::index_pages`] over a closed time
//! window on creation time ([`crate::incremental`]) whose end is fixed for
//! the walk, sorted oldest first, so pages cannot shift under the walk. The
//! API's time bounds are exclusive, so the overlap plus the seen-id set
//! catch items on a boundary. Items change after creation; a new revision
//! (an alert's `version`) is a new event, found while the item is inside
//! the overlap. The key goes in `X-Api-Key`; the base URL follows from
//! `options.region` unless `base_url` is set. See `docs/vendors/rapid7.md`.

mod normalize;
mod rule;

use chrono::{DateTime, Utc};
use reqwest::{Client, RequestBuilder};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::config::{Credential, SourceConfig};
use crate::event::Kind;
use crate::incremental::{TimeWindow, WindowSettings};
use crate::paginate::{Continuation, Page, Position, Scheme, index_pages::IndexPages};

use super::envelope::Items;
use super::{Finish, NormalizeContext, NormalizeError, Normalized, PageError, Vendor};

/// The header that carries the key.
const API_KEY_HEADER: &str = "X-Api-Key";
/// The header that selects an API's version.
const VERSION_HEADER: &str = "Accept-version";

/// An InsightIDR organization.
#[derive(Debug)]
pub struct Rapid7 {
    base_url: Url,
    endpoint: Endpoint,
    page_size: u32,
    window: WindowSettings,
}

/// `[source.options]` for Rapid7 InsightIDR.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Which items this source polls.
    #[serde(default)]
    pub endpoint: Endpoint,
    /// The region hosting the organization's data; gives the base URL
    /// `https://<region>.api.insight.rapid7.com` when `base_url` is not set.
    #[serde(default)]
    pub region: Option<Region>,
}

/// The two lists InsightIDR offers a poller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// Detections as they fire, with rule, MITRE codes and the keys that
    /// matched: the signal a SIEM wants.
    #[default]
    Alerts,
    /// The triage containers analysts work in (status, assignee, disposition).
    Investigations,
}

/// Command Platform regions (the first label of the API host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// United States 1.
    Us,
    /// United States 2.
    Us2,
    /// United States 3.
    Us3,
    /// Europe.
    Eu,
    /// Canada.
    Ca,
    /// Australia.
    Au,
    /// Asia Pacific.
    Ap,
}

impl Region {
    /// The region code as it appears in the host name.
    pub fn code(self) -> &'static str {
        match self {
            Region::Us => "us",
            Region::Us2 => "us2",
            Region::Us3 => "us3",
            Region::Eu => "eu",
            Region::Ca => "ca",
            Region::Au => "au",
            Region::Ap => "ap",
        }
    }
}

impl Vendor for Rapid7 {
    const KEY: &'static str = "rapid7";
    const NAME: &'static str = "Rapid7 InsightIDR";
    const DEFAULT_BASE_URL: Option<&'static str> = None;
    const CONFIG_EXAMPLE: &'static str = r#"
# base_url = "https://eu.api.insight.rapid7.com"   # overrides region (proxies)
[source.options]
region = "us"            # REQUIRED: where the organization's data lives: us, us2, us3, eu, ca, au, ap
endpoint = "alerts"      # or "investigations" (the triage containers instead of the detections)
"#;
    const MAX_PAGE_SIZE: u32 = 100;
    /// Alerts count `version` up from 1; an investigation is new while untriaged.
    const OCSF: crate::ocsf::Product =
        crate::ocsf::Product { name: "InsightIDR", vendor_name: "Rapid7", is_first_revision: first_revision };

    type Options = Options;
    /// Items change in place (docs/vendors/rapid7.md, "Revisits").
    const REVISIT: Option<(std::time::Duration, std::time::Duration)> =
        Some((std::time::Duration::from_secs(7 * 86_400), std::time::Duration::from_secs(3600)));
    type Plan = TimeWindow;

    fn default_base_url(options: &Options) -> Result<Option<String>, String> {
        match options.region {
            Some(region) => Ok(Some(format!("https://{}.api.insight.rapid7.com", region.code()))),
            None => {
                Err("set `region` in [source.options] (us, us2, us3, eu, ca, au or ap) or `base_url`".into())
            }
        }
    }

    fn new(source: &SourceConfig, base_url: Url, options: Options) -> Result<Self, String> {
        Ok(Rapid7 {
            base_url,
            endpoint: options.endpoint,
            page_size: super::page_size::<Self>(source),
            window: WindowSettings::of(source),
        })
    }

    fn kind(&self) -> Kind {
        match self.endpoint {
            Endpoint::Alerts => Kind::Alert,
            Endpoint::Investigations => Kind::Investigation,
        }
    }

    fn scheme(&self) -> Scheme {
        Scheme::IndexPages(IndexPages)
    }

    fn plan(&self, watermark: Option<&str>, now: DateTime<Utc>) -> Result<TimeWindow, PageError> {
        TimeWindow::plan(watermark, now, self.window).map_err(|e| PageError::State(e.to_string()))
    }

    /// A revisit walks the same requests over a window of its own.
    fn revisit_plan(&self, after: DateTime<Utc>, before: DateTime<Utc>) -> Option<TimeWindow> {
        Some(TimeWindow { after, before, overlap: self.window.overlap })
    }

    fn request(&self, client: &Client, plan: &TimeWindow, at: &Position, key: &Credential) -> RequestBuilder {
        let index = match at {
            Position::Page(n) => *n,
            _ => 0,
        };
        let (start, end) = (api_time(plan.after), api_time(plan.before));
        let request = match self.endpoint {
            Endpoint::Alerts => client
                .post(super::endpoint(&self.base_url, "/idr/at/alerts/ops/search"))
                .query(&[("index", index.to_string()), ("size", self.page_size.to_string())])
                .header(VERSION_HEADER, "strong-force-preview")
                .json(&json!({
                    "search": { "start_time": start, "end_time": end },
                    "sorts": [{ "field_id": "created_at", "order": "ASCENDING_NULLS_LAST" }],
                })),
            Endpoint::Investigations => client
                .get(super::endpoint(&self.base_url, "/idr/v2/investigations"))
                .query(&[
                    ("start_time", start),
                    ("end_time", end),
                    ("index", index.to_string()),
                    ("size", self.page_size.to_string()),
                    ("sort", "created_time,ASC".to_owned()),
                ])
                .header(VERSION_HEADER, "investigations-preview"),
        };
        key.header(request, API_KEY_HEADER)
    }

    fn parse_page(&self, body: &[u8]) -> Result<Page, PageError> {
        let list = match self.endpoint {
            Endpoint::Alerts => "alerts",
            Endpoint::Investigations => "data",
        };
        let parsed = super::envelope::parse(body, &[list], &Self::READS)?;
        if !parsed.rest.is_object() {
            return Err(PageError::Shape("the answer is not a JSON object".into()));
        }
        match self.endpoint {
            Endpoint::Alerts => parse_alerts(&parsed.rest, parsed.items),
            Endpoint::Investigations => parse_investigations(&parsed.rest, parsed.items),
        }
    }

    fn normalize(&self, item: &Value, ctx: &NormalizeContext<'_>) -> Result<Normalized, NormalizeError> {
        match self.endpoint {
            Endpoint::Alerts => normalize::alert(item, ctx),
            Endpoint::Investigations => normalize::investigation(item, ctx),
        }
    }

    fn finish(&self, plan: &TimeWindow, _max_mark: Option<i64>) -> Finish {
        Finish { watermark: plan.watermark(), prune_before: Some(plan.prune_before()) }
    }

    /// `GET /validate`: 200 `{"message":"Authorized"}` for a good key.
    fn validate_request(&self, client: &Client, key: &Credential) -> Option<RequestBuilder> {
        Some(key.header(client.get(super::endpoint(&self.base_url, "/validate")), API_KEY_HEADER))
    }
}

/// ISO 8601 UTC with milliseconds, as Rapid7's own clients send.
fn api_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// An alerts-search page: `alerts[]` and `metadata.is_last_index`. A search
/// that failed in some regions is incomplete, so it is an error rather than
/// a page: committing it would skip the failed regions' alerts for good.
fn parse_alerts(envelope: &Value, items: Option<Items>) -> Result<Page, PageError> {
    if let Some(failures) =
        envelope.get("region_failures").and_then(Value::as_array).filter(|f| !f.is_empty())
    {
        let regions: Vec<String> = failures
            .iter()
            .map(|f| match f {
                Value::String(s) => s.clone(),
                other => super::fields::text(other, "/region").unwrap_or_else(|| other.to_string()),
            })
            .collect();
        return Err(PageError::vendor(&format!(
            "the alert search failed in region(s) {}; the page is incomplete",
            regions.join(", ")
        )));
    }
    let Some(items) = items else {
        return Err(PageError::Shape("`alerts` is missing or not a list".into()));
    };
    let meta = envelope.get("metadata").unwrap_or(&Value::Null);
    let is_last = meta.get("is_last_index").and_then(Value::as_bool);
    let total_pages = pages_from_totals(meta, "total_items");
    if is_last.is_none() && total_pages.is_none() {
        return Err(PageError::Shape("`metadata` has neither `is_last_index` nor `total_items`".into()));
    }
    Ok(items.into_page(Continuation::IndexPages { total_pages, is_last }))
}

/// An investigations page: `data[]` and `metadata.total_pages`.
fn parse_investigations(envelope: &Value, items: Option<Items>) -> Result<Page, PageError> {
    if let (None, None, Some(message)) =
        (&items, envelope.get("data"), super::fields::text(envelope, "/message"))
    {
        return Err(PageError::vendor(&message));
    }
    let Some(items) = items else {
        return Err(PageError::Shape("`data` is missing or not a list".into()));
    };
    let meta = envelope.get("metadata").unwrap_or(&Value::Null);
    let total_pages =
        meta.get("total_pages").and_then(Value::as_u64).or_else(|| pages_from_totals(meta, "total_data"));
    if total_pages.is_none() {
        return Err(PageError::Shape("`metadata` has neither `total_pages` nor `total_data`".into()));
    }
    Ok(items.into_page(Continuation::IndexPages { total_pages, is_last: None }))
}

/// Pages in all from an item total and the page size the server applied.
fn pages_from_totals(meta: &Value, total_field: &str) -> Option<u64> {
    let total = meta.get(total_field).and_then(Value::as_u64)?;
    let size = meta.get("size").and_then(Value::as_u64).filter(|s| *s > 0)?;
    Some(total.div_ceil(size))
}

/// Whether a Rapid7 event is its item's first revision: an alert's
/// `version` starts at 1; an investigation's revision is its triage state,
/// first while still new (open, nobody assigned).
fn first_revision(event: &crate::event::Event) -> bool {
    match event.source.kind {
        Kind::Investigation => event.status.state == crate::event::StatusState::New,
        _ => crate::ocsf::revision_is_one(event),
    }
}

#[cfg(test)]
mod tests;
