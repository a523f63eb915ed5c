//! The vendors: one folder each, registered by one line in
//! `crate::registry::VENDORS`.
//!
//! A vendor knows its API and nothing else: how to build a request for a
//! position in a walk, how to parse a page into items and a continuation, how
//! to map an item to an [`Event`]. It never talks to NATS or SQLite, and it
//! never loops over pages: `paginate` walks, the poller delivers and
//! commits.
//!
//! Adding a vendor: a folder with a type implementing [`Vendor`], and one
//! `entry::<newvendor::NewVendor>()` line in the registry.

pub mod bounded;
pub mod canaryguard;
pub mod catchpoint;
pub mod envelope;
pub mod fields;
pub mod http;
pub mod keep;
#[cfg(test)]
mod proptests;
pub mod rapid7;
pub mod red_canary;
pub mod thinkst_canary;

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use reqwest::{Client, RequestBuilder};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::{Credential, SourceConfig};
use crate::event::{Event, Kind, SourceRef, event_id};
use crate::http::FetchError;
use crate::paginate::{Page, Position, Scheme};
use crate::throttle::RateLimit;

/// One vendor's API, as alertd uses it.
pub trait Vendor: Sized + Send + Sync + 'static {
    /// Config key (`vendor = "…"`), event `source.vendor` and subject token.
    const KEY: &'static str;
    /// Human name for messages.
    const NAME: &'static str;
    /// The public API endpoint, when there is one for every customer.
    const DEFAULT_BASE_URL: Option<&'static str>;
    /// The largest page the API serves.
    const MAX_PAGE_SIZE: u32;
    /// The vendor's documented rate limits, enforced unless the source's
    /// `rate_limits` overrides them.
    const RATE_LIMITS: &'static [RateLimit] = &[];
    /// Statuses the vendor throttles with besides 429.
    const THROTTLE_STATUSES: &'static [u16] = &[];
    /// The product an OCSF finding names, and how to tell an item's first
    /// revision (Create) from later ones (Update).
    const OCSF: crate::ocsf::Product;
    /// The vendor's lines of a commented `[[source]]` for `alertd init`:
    /// `base_url` (set when the vendor has no public endpoint, else
    /// commented), then its `[source.options]`, each with a comment saying
    /// what it does. What `init` prints must pass `alertd check-config`
    /// (tests/cli.rs runs it for every registered vendor). Default: none.
    const CONFIG_EXAMPLE: &'static str = "";

    /// The default revisit (issue 19, docs/revisit.md): `(window, every)`
    /// for a vendor whose items change in place without a change feed;
    /// `None` (the default): off unless the source asks for one.
    const REVISIT: Option<(std::time::Duration, std::time::Duration)> = None;

    /// The part of an item [`Vendor::normalize`] (and the page's item keys)
    /// read, so that `parse_page` can build only that ([`keep`]): every
    /// field read must be listed, or it reads as absent; the property
    /// `*_reads_normalize_as_the_whole_item` compares. Default: all of it.
    const READS: keep::Keep = keep::Keep::All;

    /// Vendor settings from `[source.options]`.
    type Options: DeserializeOwned + Default + Send + Sync;
    /// What a walk must remember to resume after a restart (its window or
    /// starting id), stored as JSON with the walk's position.
    type Plan: Serialize + DeserializeOwned + Clone + Debug + Send + Sync;

    /// The base URL of a source that sets none. Vendors whose endpoint
    /// depends on a setting (Rapid7's region) compute it from their options;
    /// `Err` says which setting is missing. Default: [`Vendor::DEFAULT_BASE_URL`].
    fn default_base_url(options: &Self::Options) -> Result<Option<String>, String> {
        let _ = options;
        Ok(Self::DEFAULT_BASE_URL.map(str::to_owned))
    }

    /// Build from a source's settings.
    fn new(source: &SourceConfig, base_url: Url, options: Self::Options) -> Result<Self, String>;

    /// What its items are.
    fn kind(&self) -> Kind;

    /// How its pages chain.
    fn scheme(&self) -> Scheme;

    /// Plan a new walk after `watermark` (what the last complete walk left).
    fn plan(&self, watermark: Option<&str>, now: DateTime<Utc>) -> Result<Self::Plan, PageError>;

    /// The request for the page at `at`, authenticated with `key`.
    fn request(&self, client: &Client, plan: &Self::Plan, at: &Position, key: &Credential) -> RequestBuilder;

    /// Parse a 2xx body into a page.
    fn parse_page(&self, body: &[u8]) -> Result<Page, PageError>;

    /// Parse a 2xx answer into a page: its body, and the `rel="next"`
    /// target of its `Link` header. Default: [`Vendor::parse_page`] of the
    /// body (only the declarative `http` vendor pages by the header).
    fn parse_answer(&self, body: &[u8], next_link: Option<&str>) -> Result<Page, PageError> {
        let _ = next_link;
        self.parse_page(body)
    }

    /// The page an error answer at `at` stands for, when the vendor answers
    /// an empty result with an error status (Catchpoint: 404 and "No alerts
    /// found" for a time window without alerts). The poller delivers that
    /// page like any other, so the walk ends normally and the watermark
    /// moves: a vendor must recognise its answer narrowly (by its body, and
    /// only where an empty result can occur), or a proxy's error would skip
    /// alerts. `alertd check` counts such an answer as a working key.
    /// Default: every error is an error.
    fn empty_page_for(&self, at: &Position, error: &FetchError) -> Option<Page> {
        let _ = (at, error);
        None
    }

    /// Whether an answer's body says the vendor throttled, whatever its
    /// status (Catchpoint answers a spent quota with "quota exceeded"). Such
    /// an answer is retried with backoff and counted as throttled time, like
    /// a 429. Default: no body does.
    fn throttled_answer(body: &[u8]) -> bool {
        let _ = body;
        false
    }

    /// A cheap request that only checks the key (Rapid7's `GET /validate`),
    /// for a credential check before the first poll. Default: none.
    fn validate_request(&self, client: &Client, key: &Credential) -> Option<RequestBuilder> {
        let _ = (client, key);
        None
    }

    /// The plan of a revisit walk over the items whose filtered time lies in
    /// `(after, before)`, walked with the same scheme and requests as a
    /// regular walk; `None` (the default): the vendor cannot revisit (a
    /// change feed, or no time filter).
    fn revisit_plan(&self, after: DateTime<Utc>, before: DateTime<Utc>) -> Option<Self::Plan> {
        let _ = (after, before);
        None
    }

    /// The statuses this source's vendor throttles with besides 429.
    /// Default [`Vendor::THROTTLE_STATUSES`]; the declarative `http`
    /// vendor takes them from the source's definition.
    fn throttle_statuses(&self) -> &'static [u16] {
        Self::THROTTLE_STATUSES
    }

    /// The product this source's OCSF findings name. Default
    /// [`Vendor::OCSF`]; the declarative `http` vendor takes it from the
    /// source's definition.
    fn ocsf(&self) -> crate::ocsf::Product {
        Self::OCSF
    }

    /// Map one item to an event.
    fn normalize(
        &self,
        item: &serde_json::Value,
        ctx: &NormalizeContext<'_>,
    ) -> Result<Normalized, NormalizeError>;

    /// What a fully delivered walk leaves behind: the next watermark, and
    /// the time before which seen ids can be forgotten. `max_mark` is the
    /// largest [`Normalized::mark`] of the walk.
    ///
    /// `prune_before` must follow from the plan alone (not from
    /// `max_mark`): the walk asks for it before its first page (see
    /// [`Vendor::forget_before`]).
    fn finish(&self, plan: &Self::Plan, max_mark: Option<i64>) -> Finish;

    /// The time before which the seen ids of this walk would be pruned at
    /// its end. The walk does not store them at all: a walk's window is
    /// fixed, so its pages do not shift under it, and no later walk asks
    /// for an item that old (JetStream's duplicate window still drops a
    /// vendor's repeat of one within the walk). In a backfill that is
    /// almost every item, and the store's writes shrink to the overlap.
    fn forget_before(&self, plan: &Self::Plan) -> Option<DateTime<Utc>> {
        self.finish(plan, None).prune_before
    }

    /// A cheap authenticated request for `alertd check`, whose 2xx body
    /// [`Vendor::parse_page`] accepts. The default asks for the first page
    /// of a window that ends now and reaches back only the overlap.
    fn probe(
        &self,
        client: &Client,
        key: &Credential,
        now: DateTime<Utc>,
    ) -> Result<RequestBuilder, PageError> {
        let plan = self.plan(Some(&crate::incremental::format_time(now)), now)?;
        Ok(self.request(client, &plan, &self.scheme().first(), key))
    }
}

/// The end of a complete walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    /// The watermark the next walk starts from.
    pub watermark: String,
    /// Seen ids of items older than this are dropped.
    pub prune_before: Option<DateTime<Utc>>,
}

/// What normalizing needs to know beyond the item.
#[derive(Debug, Clone)]
pub struct NormalizeContext<'a> {
    /// The configured source's name (the tenant).
    pub source: &'a str,
    /// When the page was fetched.
    pub ingested_at: DateTime<Utc>,
    /// The item's JSON text as the vendor sent it, when the page kept it
    /// (see [`NormalizeContext::raw`]).
    pub text: Option<&'a crate::event::Raw>,
}

impl<'a> NormalizeContext<'a> {
    /// The context of the items of a page of `source` fetched at
    /// `ingested_at`.
    pub fn new(source: &'a str, ingested_at: DateTime<Utc>) -> Self {
        NormalizeContext { source, ingested_at, text: None }
    }

    /// This context for one item whose text the page kept (or `None`).
    #[must_use]
    pub fn with_text(&self, text: Option<&'a crate::event::Raw>) -> Self {
        NormalizeContext { text, ..self.clone() }
    }

    /// The event's `raw`: the item's own text when the page kept it,
    /// otherwise `item` serialized.
    pub fn raw(&self, item: &serde_json::Value) -> crate::event::Raw {
        match self.text {
            Some(text) => crate::event::Raw::from_text(text),
            None => crate::event::Raw::new(item),
        }
    }
}

impl NormalizeContext<'_> {
    /// The `source` block of an event of vendor `V`.
    pub fn source_ref<V: Vendor>(&self, kind: Kind) -> SourceRef {
        SourceRef { vendor: V::KEY.to_owned(), name: self.source.to_owned(), kind }
    }

    /// The deterministic id of `native_id` at `revision` from vendor `V`.
    pub fn id<V: Vendor>(&self, native_id: &str, revision: &str) -> uuid::Uuid {
        event_id(V::KEY, self.source, native_id, revision)
    }
}

/// A normalized item.
#[derive(Debug, Clone)]
pub struct Normalized {
    /// The event.
    pub event: Event,
    /// The time the vendor's incremental filter compares (for pruning seen ids).
    pub item_time: DateTime<Utc>,
    /// A monotonic position for id-based checkpoints (Thinkst's `updated_id`).
    pub mark: Option<i64>,
}

/// Why a body is not a page.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PageError {
    /// Not JSON (truncated, garbled).
    #[error("response is not valid JSON ({0})")]
    Json(String),
    /// JSON, but not the documented envelope.
    #[error("response is not the documented page envelope: {0}")]
    Shape(String),
    /// The vendor answered 2xx with an error envelope.
    #[error("vendor reported an error: {0}")]
    Vendor(String),
    /// The stored state cannot seed a walk.
    #[error("{0}")]
    State(String),
    /// Far more items than the request asked for: a vendor (or whatever
    /// answers at `base_url`) that ignores the page size.
    #[error(
        "the page holds {items} items, far more than the {asked} asked for (at most {limit} are accepted); the endpoint ignores the page size"
    )]
    TooManyItems {
        /// Items on the page.
        items: usize,
        /// The page size requested.
        asked: u32,
        /// The most a page may hold.
        limit: usize,
    },
}

impl PageError {
    /// The vendor's own error text, cut to a bounded length with control
    /// characters blanked: it is the vendor's choice of bytes, and it ends
    /// up in log lines and `alertd check`'s table.
    pub fn vendor(text: &str) -> PageError {
        PageError::Vendor(crate::text::clip(text, 2 * crate::http::MAX_DETAIL_CHARS))
    }

    /// A bounded label for metrics and structured logs.
    pub fn code(&self) -> &'static str {
        match self {
            PageError::Json(_) => "invalid_json",
            PageError::Shape(_) => "invalid_envelope",
            PageError::Vendor(_) => "vendor_error",
            PageError::State(_) => "bad_state",
            PageError::TooManyItems { .. } => "too_many_items",
        }
    }
}

/// Why one item could not be normalized; the item goes to the dead-letter subject.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct NormalizeError(pub String);

/// Build `V` for `source`: options parsed, base URL defaulted and checked.
pub fn instantiate<V: Vendor>(source: &SourceConfig) -> Result<V, String> {
    if source.http.is_some() && V::KEY != http::HttpSource::KEY {
        return Err(format!(
            "http: a [source.http] definition is only read by vendor = \"{}\", not by {}",
            http::HttpSource::KEY,
            V::NAME
        ));
    }
    let options: V::Options = match &source.options {
        Some(table) => table
            .get_ref()
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| format!("options: {}", e.message().trim()))?,
        None => V::Options::default(),
    };
    let default = match &source.base_url {
        Some(_) => None,
        None => V::default_base_url(&options)?,
    };
    let base_url = match (&source.base_url, default) {
        (Some(url), _) => url.get_ref().clone(),
        (None, Some(default)) => Url::parse(&default).map_err(|e| format!("default base_url: {e}"))?,
        (None, None) => {
            return Err(format!("base_url is required for {} (each tenant has its own)", V::NAME));
        }
    };
    if !matches!(base_url.scheme(), "http" | "https") || base_url.host().is_none() {
        return Err(format!("base_url `{base_url}` must be an http(s) URL with a host"));
    }
    // Again here, for the URL a vendor computed and for sources built in
    // code: the key goes over TLS unless it stays on this host.
    crate::config::check_transport(&base_url, source.allow_insecure_http)
        .map_err(|why| format!("base_url: {why}"))?;
    V::new(source, base_url, options)
}

/// The page size to ask for: the configured one, capped at the vendor's maximum.
pub fn page_size<V: Vendor>(source: &SourceConfig) -> u32 {
    source.page_size.clamp(1, V::MAX_PAGE_SIZE)
}

/// Append `path` to `base`, keeping any path prefix the base URL has (for
/// on-prem installs and simulators under a sub-path).
pub fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path.trim_start_matches('/'));
    url.set_path(&joined);
    url.set_query(None);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keeps_a_base_path_prefix() {
        let base = Url::parse("https://h.example/proxy/").unwrap();
        assert_eq!(endpoint(&base, "/api/v1/alerts").as_str(), "https://h.example/proxy/api/v1/alerts");
        let bare = Url::parse("https://h.example").unwrap();
        assert_eq!(endpoint(&bare, "api/v1/alerts").as_str(), "https://h.example/api/v1/alerts");
    }
}
