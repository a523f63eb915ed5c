//! `vendor = "http"`: any paginated list API described in configuration.
//!
//! A source's `[source.http]` table (docs/vendors/http.md) says how to ask
//! for a page (method, path, query, headers, JSON body, with the walk's
//! variables), where the key goes, which of the five schemes of
//! [`crate::paginate`] chains the pages and where it reads its markers,
//! whether the source is incremental by a time window or by an increasing
//! id, where the items are and how each event field is computed from an
//! item. [`definition`] checks all of it when the configuration is loaded;
//! this file is the [`Vendor`] the poller drives like any other, so rate
//! limits, retries, dead letters, OCSF, metrics and leases apply unchanged.

mod definition;
mod location;
mod normalize;
mod template;

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use reqwest::{Client, RequestBuilder};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::config::{Credential, SourceConfig};
use crate::event::Kind;
use crate::http::FetchError;
use crate::incremental::{TimeWindow, WindowSettings, earlier, format_time, parse_time};
use crate::paginate::{
    Continuation, Page, Position, Scheme, cursor::CursorScheme, has_more::HasMore, index_pages::IndexPages,
    link_next::LinkNext, page_total::PageTotal,
};

use super::{Finish, NormalizeContext, NormalizeError, Normalized, PageError, Vendor};
use definition::{AuthSpec, BodyTemplate, IncrementalSpec, NextFrom, PaginationSpec, Spec};
use location::text_of;
use template::{Var, Vars};

/// A declarative source.
#[derive(Debug)]
pub struct HttpSource {
    spec: Spec,
    base_url: Url,
    url: Url,
    page_size: u32,
    window: WindowSettings,
    initial_lookback: Duration,
    product: crate::ocsf::Product,
    throttle_statuses: &'static [u16],
}

/// `[source.options]` of an `http` source: none (the definition is
/// `[source.http]`); unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {}

/// What a walk must remember: its window, or the id it starts after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum HttpPlan {
    /// A time window.
    Time(TimeWindow),
    /// After `since` (the highest id delivered); a new source also bounds
    /// the first walk by `newer_than` (`{window.start}`).
    Id {
        /// `{since_id}`.
        since: i64,
        /// `{window.start}` of a source with no id yet.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        newer_than: Option<DateTime<Utc>>,
        /// When the walk was planned, to prune seen ids.
        planned_at: DateTime<Utc>,
    },
}

/// [`intern`] for a definition's throttle statuses, which the HTTP layer
/// takes as `&'static [u16]`: each distinct list is kept once.
fn intern_statuses(statuses: &[u16]) -> &'static [u16] {
    static LISTS: OnceLock<Mutex<std::collections::HashSet<&'static [u16]>>> = OnceLock::new();
    if statuses.is_empty() {
        return &[];
    }
    let lists = LISTS.get_or_init(Default::default);
    let mut lists = lists.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = lists.get(statuses) {
        return known;
    }
    let leaked: &'static [u16] = Box::leak(statuses.to_vec().into_boxed_slice());
    lists.insert(leaked);
    leaked
}

/// OCSF product and vendor names come from configuration but a
/// [`crate::ocsf::Product`] holds `&'static str`: each distinct name is
/// kept once for the life of the process (a reload that keeps the name
/// adds nothing).
fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<std::collections::HashSet<&'static str>>> = OnceLock::new();
    let names = NAMES.get_or_init(Default::default);
    let mut names = names.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

impl Vendor for HttpSource {
    const KEY: &'static str = "http";
    /// A small page/limit definition to start from; docs/vendors/http.md has
    /// every key and `config/http/` five complete definitions.
    const CONFIG_EXAMPLE: &'static str = r#"
base_url = "https://api.example.com"   # the API's origin (https; a next link must stay on it)
# rate_limits = ["10/s"]                # the API's documented limits: an http source has none by default

[source.http]
kind = "alert"
product = "Example API"                # the product OCSF findings name
vendor_name = "Example"

[source.http.request]
method = "GET"
path = "/api/v1/alerts"
query = { page = "{page}", limit = "{page_size}", since = "{window.start}" }

[source.http.auth]
type = "bearer"                        # or "header", "query", "basic"

[source.http.pagination]
scheme = "page_total"                  # or link_next, cursor, index_pages, has_more
total = "/meta/total"

[source.http.incremental]
by = "time"
field = "/created_at"

[source.http.items]
path = "/data"

[source.http.fields]
id = "/id"
revision = { constant = "1" }
created = "/created_at"
title = "{/title|Untitled alert}"
"#;
    const NAME: &'static str = "HTTP (declarative)";
    const DEFAULT_BASE_URL: Option<&'static str> = None;
    /// The definition's `max_page_size` caps the page size; this bound
    /// only sizes the poller's "far more items than asked" guard.
    const MAX_PAGE_SIZE: u32 = 10_000;
    /// Overridden per source by [`Vendor::ocsf`].
    const OCSF: crate::ocsf::Product = crate::ocsf::Product {
        name: "HTTP source",
        vendor_name: "Unknown",
        is_first_revision: crate::ocsf::not_yet_updated,
    };

    type Options = Options;
    type Plan = HttpPlan;

    fn new(source: &SourceConfig, base_url: Url, _options: Options) -> Result<Self, String> {
        let Some(table) = &source.http else {
            return Err("http: vendor \"http\" needs a [source.http] table describing the API".into());
        };
        let spec = definition::parse(table.get_ref()).map_err(|e| e.to_string())?;
        let page_size = source.page_size.clamp(1, spec.max_page_size);
        let spec_statuses = spec.throttle_statuses.clone();
        let product = crate::ocsf::Product {
            name: intern(&spec.product),
            vendor_name: intern(&spec.vendor_name),
            is_first_revision: crate::ocsf::not_yet_updated,
        };
        Ok(HttpSource {
            url: super::endpoint(&base_url, &spec.request.path),
            base_url,
            spec,
            page_size,
            window: WindowSettings::of(source),
            initial_lookback: source.initial_lookback,
            throttle_statuses: intern_statuses(&spec_statuses),
            product,
        })
    }

    fn kind(&self) -> Kind {
        self.spec.kind
    }

    fn ocsf(&self) -> crate::ocsf::Product {
        self.product
    }

    fn throttle_statuses(&self) -> &'static [u16] {
        self.throttle_statuses
    }

    fn scheme(&self) -> Scheme {
        match &self.spec.pagination {
            PaginationSpec::LinkNext { .. } => Scheme::LinkNext(LinkNext::new(self.base_url.clone())),
            PaginationSpec::Cursor { .. } => Scheme::Cursor(CursorScheme),
            PaginationSpec::PageTotal { .. } => Scheme::PageTotal(PageTotal),
            PaginationSpec::IndexPages { .. } => Scheme::IndexPages(IndexPages),
            PaginationSpec::HasMore { .. } => Scheme::HasMore(HasMore),
        }
    }

    fn plan(&self, watermark: Option<&str>, now: DateTime<Utc>) -> Result<HttpPlan, PageError> {
        match &self.spec.incremental {
            IncrementalSpec::Time { whole_seconds, .. } => {
                let w = TimeWindow::plan(watermark, now, self.window)
                    .map_err(|e| PageError::State(e.to_string()))?;
                Ok(HttpPlan::Time(if *whole_seconds {
                    TimeWindow { after: w.after.trunc_subsecs(0), before: w.before.trunc_subsecs(0), ..w }
                } else {
                    w
                }))
            }
            IncrementalSpec::Id { .. } => {
                let (since, newer_than) = match watermark.map(str::trim) {
                    None => (0, Some(earlier(now, self.initial_lookback))),
                    Some(text) => match text.parse::<i64>() {
                        Ok(id) => (id, None),
                        Err(_) => match parse_time(text) {
                            Some(t) => (0, Some(t)),
                            None => {
                                return Err(PageError::State(format!(
                                    "stored watermark `{text}` is neither an id nor an RFC 3339 time; reset the cursor with `alertd cursors reset`"
                                )));
                            }
                        },
                    },
                };
                Ok(HttpPlan::Id { since, newer_than, planned_at: now })
            }
        }
    }

    fn request(&self, client: &Client, plan: &HttpPlan, at: &Position, key: &Credential) -> RequestBuilder {
        if let Position::Link(link) = at {
            let request =
                if self.spec.request.post { client.post(link.as_str()) } else { client.get(link.as_str()) };
            let request = self.with_headers(request, plan, at);
            // The scheme refused foreign links; a stored walk state is
            // checked again, so the key only goes to the configured origin.
            return match Url::parse(link) {
                Ok(url) if url.origin() == self.base_url.origin() => self.authenticate(request, key),
                _ => request,
            };
        }
        let vars = WalkVars { plan, at, page_size: self.page_size, first: self.scheme().first() };
        let query_spec = match (&self.spec.request.next_query, at) {
            (Some(next), Position::Page(_) | Position::Cursor(_)) if *at != vars.first => next,
            _ => &self.spec.request.query,
        };
        let query: Vec<(&str, String)> =
            query_spec.iter().filter_map(|(k, t)| t.render(&vars).map(|v| (k.as_str(), v))).collect();
        let mut request =
            if self.spec.request.post { client.post(self.url.clone()) } else { client.get(self.url.clone()) };
        request = request.query(&query);
        if let Some(body) = &self.spec.request.body {
            request = request.json(&render_body(body, &vars).unwrap_or(Value::Null));
        }
        let request = self.with_headers(request, plan, at);
        self.authenticate(request, key)
    }

    fn parse_page(&self, body: &[u8]) -> Result<Page, PageError> {
        self.parse_answer(body, None)
    }

    fn parse_answer(&self, body: &[u8], next_link: Option<&str>) -> Result<Page, PageError> {
        let envelope: Value = serde_json::from_slice(body).map_err(|e| PageError::Json(e.to_string()))?;
        let items_spec = &self.spec.items;
        if let Some(error) = items_spec.error.as_ref().and_then(|l| l.get(&envelope)).filter(|v| truthy(v)) {
            let message = items_spec
                .error_message
                .as_ref()
                .and_then(|l| l.get(&envelope))
                .map(describe)
                .unwrap_or_else(|| describe(error));
            return Err(PageError::vendor(&message));
        }
        let items = match items_spec.at.get(&envelope) {
            Some(Value::Array(items)) => items.clone(),
            None if items_spec.allow_missing => Vec::new(),
            None => {
                return Err(PageError::Shape(format!(
                    "`{}` is missing (items.path)",
                    items_spec.at.as_str()
                )));
            }
            Some(_) => {
                return Err(PageError::Shape(format!(
                    "`{}` is not an array (items.path)",
                    items_spec.at.as_str()
                )));
            }
        };
        let number = |l: &Option<location::Location>| -> Result<Option<u64>, PageError> {
            match l.as_ref().map(|l| (l, l.get(&envelope))) {
                None | Some((_, None)) => Ok(None),
                Some((l, Some(v))) => v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .map(Some)
                    .ok_or_else(|| PageError::Shape(format!("`{}` is not a count", l.as_str()))),
            }
        };
        let continuation = match &self.spec.pagination {
            PaginationSpec::LinkNext { next, total_items } => {
                let next = match next {
                    NextFrom::Body(l) => l.get(&envelope).and_then(href),
                    NextFrom::LinkHeader => next_link.map(str::to_owned),
                };
                Continuation::Link {
                    next,
                    page: None,
                    per_page: Some(u64::from(self.page_size)),
                    total_items: number(total_items)?,
                }
            }
            PaginationSpec::Cursor { cursor } => Continuation::Cursor(match cursor.get(&envelope) {
                None => None,
                Some(v) => Some(text_of(v).ok_or_else(|| {
                    PageError::Shape(format!("`{}` is not a cursor string", cursor.as_str()))
                })?),
            }),
            PaginationSpec::PageTotal { total, total_pages, limit } => {
                let limit = number(limit)?.unwrap_or(u64::from(self.page_size));
                let total = match (number(total)?, number(total_pages)?) {
                    (Some(t), _) => t,
                    (None, Some(pages)) => pages.saturating_mul(limit),
                    (None, None) => {
                        return Err(PageError::Shape(
                            "the page's total (pagination.total/total_pages) is missing".into(),
                        ));
                    }
                };
                Continuation::PageTotal { total, limit }
            }
            PaginationSpec::IndexPages { is_last, total_pages, total } => {
                let is_last = match is_last.as_ref().and_then(|l| l.get(&envelope)) {
                    None => None,
                    Some(v) => Some(v.as_bool().ok_or_else(|| {
                        PageError::Shape("the last-page flag (pagination.is_last) is not a boolean".into())
                    })?),
                };
                let total_pages = match number(total_pages)? {
                    Some(p) => Some(p),
                    None => number(total)?.map(|t| t.div_ceil(u64::from(self.page_size.max(1)))),
                };
                if is_last.is_none() && total_pages.is_none() {
                    return Err(PageError::Shape("the page has neither a last-page flag nor a total".into()));
                }
                Continuation::IndexPages { total_pages, is_last }
            }
            PaginationSpec::HasMore { has_more } => Continuation::HasMore(match has_more.get(&envelope) {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(PageError::Shape(format!("`{}` is not a boolean", has_more.as_str())));
                }
            }),
        };
        let page = Page::new(items, continuation);
        Ok(if self.spec.end_on_repeated_page {
            page.with_keys(|item| normalize::native_id(&self.spec.fields, item))
        } else {
            page
        })
    }

    fn empty_page_for(&self, at: &Position, error: &FetchError) -> Option<Page> {
        let empty = self.spec.empty_answer.as_ref()?;
        let first = *at == self.scheme().first();
        match error {
            FetchError::Client { status, detail }
                if first
                    && *status == empty.status
                    && detail.to_ascii_lowercase().contains(&empty.body_contains) =>
            {
                let continuation = match self.scheme() {
                    Scheme::PageTotal(_) => Continuation::PageTotal { total: 0, limit: 1 },
                    Scheme::LinkNext(_) => {
                        Continuation::Link { next: None, page: None, per_page: None, total_items: None }
                    }
                    Scheme::Cursor(_) => Continuation::Cursor(None),
                    Scheme::IndexPages(_) => {
                        Continuation::IndexPages { total_pages: Some(0), is_last: Some(true) }
                    }
                    Scheme::HasMore(_) => Continuation::HasMore(false),
                };
                Some(Page::new(Vec::new(), continuation))
            }
            _ => None,
        }
    }

    fn normalize(&self, item: &Value, ctx: &NormalizeContext<'_>) -> Result<Normalized, NormalizeError> {
        normalize::normalize(&self.spec, item, ctx)
    }

    fn finish(&self, plan: &HttpPlan, max_mark: Option<i64>) -> Finish {
        match plan {
            HttpPlan::Time(w) => Finish { watermark: w.watermark(), prune_before: Some(w.prune_before()) },
            HttpPlan::Id { since, newer_than, planned_at } => {
                let watermark = match (max_mark, newer_than) {
                    (Some(mark), _) => mark.max(*since).to_string(),
                    (None, Some(t)) if *since == 0 => format_time(*t),
                    (None, _) => since.to_string(),
                };
                Finish { watermark, prune_before: Some(earlier(*planned_at, self.window.overlap)) }
            }
        }
    }
}

impl HttpSource {
    fn authenticate(&self, request: RequestBuilder, key: &Credential) -> RequestBuilder {
        match &self.spec.auth {
            AuthSpec::Bearer => key.bearer(request),
            AuthSpec::Header { name, prefix } => key.header_named(request, name.clone(), prefix),
            AuthSpec::Query { name } => key.query_named(request, name),
            AuthSpec::Basic { username } => key.basic(request, username),
        }
    }

    fn with_headers(&self, mut request: RequestBuilder, plan: &HttpPlan, at: &Position) -> RequestBuilder {
        let vars = WalkVars { plan, at, page_size: self.page_size, first: self.scheme().first() };
        for (name, template) in &self.spec.request.headers {
            if let Some(value) = template.render(&vars) {
                request = request.header(name.clone(), value);
            }
        }
        request
    }
}

/// The walk's variables at one position.
struct WalkVars<'a> {
    plan: &'a HttpPlan,
    at: &'a Position,
    page_size: u32,
    first: Position,
}

impl Vars for WalkVars<'_> {
    fn number(&self, var: Var) -> Option<u64> {
        let page = match self.at {
            Position::Page(n) => Some(*n),
            Position::Start => match self.first {
                Position::Page(n) => Some(n),
                _ => Some(1),
            },
            _ => None,
        };
        match var {
            Var::Page | Var::Index => page,
            Var::PageSize => Some(u64::from(self.page_size)),
            Var::SinceId => match self.plan {
                HttpPlan::Id { since, .. } => u64::try_from(*since).ok(),
                HttpPlan::Time(_) => None,
            },
            _ => None,
        }
    }

    fn text(&self, var: Var) -> Option<String> {
        match (var, self.at) {
            (Var::Cursor, Position::Cursor(c)) => Some(c.clone()),
            _ => None,
        }
    }

    fn time(&self, var: Var) -> Option<DateTime<Utc>> {
        match (self.plan, var) {
            (HttpPlan::Time(w), Var::WindowStart) => Some(w.after),
            (HttpPlan::Time(w), Var::WindowEnd) => Some(w.before),
            (HttpPlan::Id { newer_than, .. }, Var::WindowStart) => *newer_than,
            (HttpPlan::Id { newer_than: Some(_), planned_at, .. }, Var::WindowEnd) => Some(*planned_at),
            _ => None,
        }
    }
}

fn render_body(body: &BodyTemplate, vars: &dyn Vars) -> Option<Value> {
    match body {
        BodyTemplate::Object(fields) => Some(Value::Object(
            fields.iter().filter_map(|(k, v)| render_body(v, vars).map(|v| (k.clone(), v))).collect(),
        )),
        BodyTemplate::Array(list) => {
            Some(Value::Array(list.iter().filter_map(|v| render_body(v, vars)).collect()))
        }
        BodyTemplate::Text(t) => t.render_json(vars),
        BodyTemplate::Other(v) => Some(v.clone()),
    }
}

/// A next link: a URL string, or `{"href": URL}`.
fn href(link: &Value) -> Option<String> {
    let text = match link {
        Value::String(s) => s,
        Value::Object(o) => o.get("href")?.as_str()?,
        _ => return None,
    };
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// Whether an error marker says there was an error: present, not `false`,
/// not empty.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => false,
        Value::String(s) => !s.trim().is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// A vendor error's text: a string, or a compact JSON rendering.
fn describe(v: &Value) -> String {
    text_of(v).unwrap_or_else(|| v.to_string())
}

#[cfg(test)]
mod tests;
