//! One source's poll: walk pages → normalize → publish → await acks → commit.
//!
//! [`Poller`] is generic over the [`Vendor`] and erased behind [`Poll`] for
//! the scheduler. Per page it normalizes every item (items that fail go to
//! the dead-letter subject with their raw JSON), drops events already
//! delivered in the overlap window, publishes the rest and the dead letters,
//! and only when the sink confirms them all commits the page's seen ids and
//! the walk's next position in one transaction. A failure anywhere leaves
//! the cursor where it was; the next poll resumes from it.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{Seen, Store, StoreError};
use crate::config::{Credential, CredentialError, CredentialSource, SourceConfig};
use crate::http::{FetchContext, FetchError, FetchObserver, RetryPolicy, ThrottleSignals};
use crate::internal_events::{
    ApiUsageReported, CredentialExpiry, DeadLettered, DeadLettersCapped, ErrorAnsweredAsEmpty, HttpAnswered,
    OversizedDeadLettered, Paced, PageDelivered, PollCounts, PollFailed, PollFinished, PollProgressed,
    RetryScheduled, WalkEndedByRule,
};
use crate::ocsf;
use crate::paginate::{self, Page, PageHandler, PaginateError, Position};
use crate::publish::{Format, Message, PublishError, Sink, dead_letter, event_subject};
use crate::telemetry::Telemetry;
use crate::throttle::Throttle;
use crate::vendors::{NormalizeContext, NormalizeError, PageError, Vendor, instantiate};

/// What every poller shares.
#[derive(Clone, Debug)]
pub struct PollerDeps {
    /// The checkpoint store.
    pub store: Store,
    /// Where events go.
    pub sink: Sink,
    /// The HTTP client (connection pool, user agent).
    pub client: reqwest::Client,
    /// Retry policy for vendor requests.
    pub retry: RetryPolicy,
    /// Metrics and health.
    pub telemetry: Arc<Telemetry>,
    /// This instance's name under `[cluster]`: requests then say who sent
    /// them and under which lease, in their User-Agent.
    pub instance: Option<Arc<str>>,
}

/// A source the scheduler can poll, whatever its vendor.
pub trait Poll: Send + Sync {
    /// The source's name.
    fn name(&self) -> &str;
    /// The vendor key.
    fn vendor(&self) -> &'static str;
    /// Poll once: walk from the stored cursor to the end (or until
    /// `shutdown`, after finishing and committing the page in flight).
    fn poll_once<'a>(
        &'a self,
        shutdown: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<PollReport, PollError>>;
    /// One cheap authenticated request (no retries, nothing published or
    /// committed), for `alertd check`: how many items its page held, if it
    /// was a page.
    fn probe(&self) -> BoxFuture<'_, Result<Option<usize>, PollError>>;
    /// The lease epoch this instance polls the source under (`[cluster]`),
    /// named in every request's User-Agent; `None` when it holds none.
    fn set_lease(&self, _epoch: Option<u64>) {}
}

/// What a poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Pages fetched and committed.
    pub pages: u64,
    /// Items on those pages.
    pub items: u64,
    /// Messages newly stored by the sink (one per event and configured
    /// format, plus dead letters).
    pub published: u64,
    /// Events the sink already had (acked as duplicates).
    pub duplicates: u64,
    /// Events skipped because the checkpoint store had them as delivered.
    pub skipped_seen: u64,
    /// Items sent to the dead-letter subject.
    pub dead_letters: u64,
    /// Whether the walk reached its end (else it resumes next poll).
    pub complete: bool,
    /// The watermark the completed walk left (`None` if it did not complete).
    pub watermark: Option<String>,
}

impl PollReport {
    /// The figures of the poll's summary line.
    pub fn counts(&self) -> PollCounts<'_> {
        PollCounts {
            pages: self.pages,
            items: self.items,
            published: self.published,
            duplicates: self.duplicates,
            skipped_seen: self.skipped_seen,
            dead_letters: self.dead_letters,
            complete: self.complete,
            watermark: self.watermark.as_deref(),
        }
    }
}

/// Why a poll stopped. The cursor is where the last committed page left it.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The API key could not be read.
    #[error("{vendor} source {source_name}: {error}")]
    Credential {
        /// Vendor key.
        vendor: &'static str,
        /// Source name.
        source_name: String,
        /// Why.
        error: CredentialError,
    },
    /// A request failed (after retries, for transient failures).
    #[error("{vendor} source {source_name}: {at}: {error}")]
    Fetch {
        /// Vendor key.
        vendor: &'static str,
        /// Source name.
        source_name: String,
        /// Where in the walk.
        at: String,
        /// Why.
        error: FetchError,
    },
    /// A body was not a page.
    #[error("{vendor} source {source_name}: {at}: {error}")]
    Page {
        /// Vendor key.
        vendor: &'static str,
        /// Source name.
        source_name: String,
        /// Where in the walk.
        at: String,
        /// Why.
        error: PageError,
    },
    /// Pagination stopped early.
    #[error("{vendor} source {source_name}: {error}")]
    Paginate {
        /// Vendor key.
        vendor: &'static str,
        /// Source name.
        source_name: String,
        /// Why.
        error: PaginateError,
    },
    /// Events were not acknowledged.
    #[error("{vendor} source {source_name}: {error}; the cursor was not moved")]
    Publish {
        /// Vendor key.
        vendor: &'static str,
        /// Source name.
        source_name: String,
        /// Why.
        error: PublishError,
    },
    /// The checkpoint store failed.
    #[error("{vendor} source {source_name}: {error}")]
    Store {
        /// Vendor key.
        vendor: &'static str,
        /// Source name.
        source_name: String,
        /// Why.
        error: Box<StoreError>,
    },
    /// The poll panicked (a bug, in alertd or in what a vendor's bytes
    /// reached). Caught at the source's boundary: nothing was committed past
    /// the last acknowledged page, and no other source noticed.
    #[error("{vendor} source {source_name}: the poll panicked ({message}); the cursor was not moved")]
    Panicked {
        /// Vendor key.
        vendor: &'static str,
        /// Source name.
        source_name: String,
        /// The panic's message, clipped.
        message: String,
    },
    /// The stored cursor belongs to another vendor.
    #[error(
        "source {source_name}: its stored cursor was written for vendor {stored}, not {vendor}; run `alertd cursors reset {source_name}`"
    )]
    ForeignCursor {
        /// Vendor key.
        vendor: &'static str,
        /// Source name.
        source_name: String,
        /// The vendor in the store.
        stored: String,
    },
}

impl PollError {
    /// A bounded label for metrics and structured logs.
    pub fn code(&self) -> &'static str {
        match self {
            PollError::Credential { .. } => "credential",
            PollError::Fetch { error, .. } => error.code(),
            PollError::Page { error, .. } => error.code(),
            PollError::Paginate { .. } => "pagination",
            PollError::Publish { .. } => "publish",
            PollError::Store { error, .. } => error.code(),
            PollError::ForeignCursor { .. } => "foreign_cursor",
            PollError::Panicked { .. } => "panic",
        }
    }
}

impl From<PaginateError> for PollError {
    /// Pagination errors reach the walker's caller without source context;
    /// [`Poller::poll`] adds it.
    fn from(error: PaginateError) -> Self {
        PollError::Paginate { vendor: "", source_name: String::new(), error }
    }
}

/// The state of an unfinished walk, stored as JSON so a restart resumes it.
#[derive(Debug, Serialize, Deserialize)]
struct WalkState<P> {
    plan: P,
    next: Position,
    #[serde(default)]
    max_mark: Option<i64>,
}

/// A source of vendor `V`.
pub struct Poller<V: Vendor> {
    vendor: V,
    name: String,
    credential: CredentialSource,
    max_pages: u64,
    /// The page size asked for; a page far larger is refused.
    page_size: u32,
    timeout: Duration,
    max_response_bytes: u64,
    retry: RetryPolicy,
    throttle: Throttle,
    expiry_warning: Duration,
    /// Unix seconds of the last credential-expiry warning (one a day at most).
    expiry_warned_at: std::sync::atomic::AtomicI64,
    /// The lease epoch under which requests are sent (0: none).
    lease: std::sync::atomic::AtomicU64,
    deps: PollerDeps,
}

/// Build a [`Poller`] for `source` (the registry's constructor).
pub fn build<V: Vendor>(source: &SourceConfig, deps: PollerDeps) -> Result<Box<dyn Poll>, String> {
    let vendor = instantiate::<V>(source)?;
    Ok(Box::new(Poller {
        vendor,
        name: source.name().to_owned(),
        credential: source.credential.clone(),
        max_pages: source.max_pages,
        page_size: crate::vendors::page_size::<V>(source),
        timeout: source.timeout,
        max_response_bytes: source.max_response_bytes,
        retry: RetryPolicy { retries: source.retries, ..deps.retry },
        throttle: Throttle::new(source.rate_limits.as_deref().unwrap_or(V::RATE_LIMITS)),
        expiry_warning: source.credential_expiry_warning,
        expiry_warned_at: std::sync::atomic::AtomicI64::new(i64::MIN),
        lease: std::sync::atomic::AtomicU64::new(0),
        deps,
    }))
}

impl<V: Vendor> Poll for Poller<V> {
    fn name(&self) -> &str {
        &self.name
    }

    fn vendor(&self) -> &'static str {
        V::KEY
    }

    fn poll_once<'a>(
        &'a self,
        shutdown: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<PollReport, PollError>> {
        Box::pin(async move {
            let started = Instant::now();
            PollProgressed { source: &self.name }.emit(&self.deps.telemetry);
            // A panic stays inside this source: it fails this poll like any
            // error (the cursor only ever moves after acknowledged pages),
            // and the source polls again at its next start.
            let result = AssertUnwindSafe(self.poll(shutdown))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(self.panicked(panic.as_ref())));
            match &result {
                Ok(report) => PollFinished {
                    source: &self.name,
                    vendor: V::KEY,
                    report: report.counts(),
                    elapsed: started.elapsed(),
                }
                .emit(&self.deps.telemetry),
                Err(error) => PollFailed {
                    source: &self.name,
                    vendor: V::KEY,
                    error,
                    code: error.code(),
                    elapsed: started.elapsed(),
                }
                .emit(&self.deps.telemetry),
            }
            result
        })
    }

    fn probe(&self) -> BoxFuture<'_, Result<Option<usize>, PollError>> {
        Box::pin(async move {
            AssertUnwindSafe(self.probe_once())
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(self.panicked(panic.as_ref())))
        })
    }

    fn set_lease(&self, epoch: Option<u64>) {
        self.lease.store(epoch.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
    }
}

impl<V: Vendor> Poller<V> {
    /// The check behind `alertd check`: the vendor's own credential check
    /// if it has one (`None` items), else the first page of a short window.
    async fn probe_once(&self) -> Result<Option<usize>, PollError> {
        let key = Credential::resolve(&self.credential).map_err(|error| PollError::Credential {
            vendor: V::KEY,
            source_name: self.name.clone(),
            error,
        })?;
        let at = Position::Start;
        let (request, is_page) = match self.vendor.validate_request(&self.deps.client, &key) {
            Some(request) => (request, false),
            None => (
                self.vendor.probe(&self.deps.client, &key, Utc::now()).map_err(|e| self.page_err(&at, e))?,
                true,
            ),
        };
        let answer = match crate::http::fetch_once(
            request.timeout(self.timeout),
            throttling::<V>(),
            self.max_response_bytes,
        )
        .await
        {
            Ok(answer) => answer,
            // The vendor's documented "nothing found" proves the key works.
            Err(error) if is_page && self.vendor.empty_page_for(&at, &error).is_some() => return Ok(Some(0)),
            Err(error) => {
                return Err(PollError::Fetch {
                    vendor: V::KEY,
                    source_name: self.name.clone(),
                    at: "the check request".into(),
                    error,
                });
            }
        };
        if !is_page {
            return Ok(None);
        }
        let page = self.vendor.parse_page(&answer.body).map_err(|error| self.page_err(&at, error))?;
        Ok(Some(page.items.len()))
    }

    async fn poll(&self, shutdown: &CancellationToken) -> Result<PollReport, PollError> {
        let key = Credential::resolve(&self.credential).map_err(|error| PollError::Credential {
            vendor: V::KEY,
            source_name: self.name.clone(),
            error,
        })?;
        self.watch_expiry(&key);
        let state = self.deps.store.load(&self.name).await.map_err(|e| self.store_err(e))?;
        if let Some(stored) = state.vendor.filter(|v| v != V::KEY) {
            return Err(PollError::ForeignCursor { vendor: V::KEY, source_name: self.name.clone(), stored });
        }
        let resumed = state.walk.as_deref().and_then(|text| match serde_json::from_str::<WalkState<V::Plan>>(text) {
            Ok(walk) => Some(walk),
            Err(error) => {
                tracing::warn!(message = "Stored walk state is unreadable; starting a new walk.", source = %self.name, %error);
                None
            }
        });
        let walk = match resumed {
            Some(walk) => walk,
            None => {
                let plan = self
                    .vendor
                    .plan(state.watermark.as_deref(), Utc::now())
                    .map_err(|error| self.page_err(&Position::Start, error))?;
                WalkState { plan, next: self.vendor.scheme().first(), max_mark: None }
            }
        };
        let start = walk.next.clone();
        let mut handler = Handler {
            poller: self,
            key,
            walk,
            shutdown,
            report: PollReport::default(),
            dead_budget: DEAD_LETTERS_PER_POLL,
        };
        let scheme = self.vendor.scheme();
        let outcome =
            paginate::walk(&scheme, start, self.max_pages, &mut handler).await.map_err(|e| match e {
                PollError::Paginate { error, .. } => {
                    PollError::Paginate { vendor: V::KEY, source_name: self.name.clone(), error }
                }
                other => other,
            })?;
        if let Some(rule) = outcome.ended_by {
            WalkEndedByRule { source: &self.name, vendor: V::KEY, rule, pages: outcome.pages }.emit();
        }
        let mut report = handler.report;
        report.complete = outcome.complete;
        Ok(report)
    }

    /// Export the key's expiry, if it has one, and warn (once a day) when
    /// it is near.
    fn watch_expiry(&self, key: &Credential) {
        use std::sync::atomic::Ordering;
        let Some(expires_at) = key.jwt_expiry() else { return };
        let now = Utc::now();
        let near =
            chrono::TimeDelta::from_std(self.expiry_warning).is_ok_and(|warning| expires_at - now <= warning);
        let last = self.expiry_warned_at.load(Ordering::Relaxed);
        let warn = near && now.timestamp().saturating_sub(last) >= 24 * 3600;
        if warn {
            self.expiry_warned_at.store(now.timestamp(), Ordering::Relaxed);
        }
        CredentialExpiry { source: &self.name, vendor: V::KEY, expires_at, warn }.emit(&self.deps.telemetry);
    }

    /// `alertd/<version> (instance <name>; lease <epoch>)` under
    /// `[cluster]`, so the vendor side (and our simulators) can tell which
    /// instance sent a request under which tenure.
    fn user_agent(&self) -> Option<String> {
        let instance = self.deps.instance.as_deref()?;
        let lease = self.lease.load(std::sync::atomic::Ordering::Relaxed);
        Some(format!("{} (instance {instance}; lease {lease})", crate::http::client_name()))
    }

    fn panicked(&self, panic: &(dyn std::any::Any + Send)) -> PollError {
        let text = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        let message: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(200).collect();
        PollError::Panicked { vendor: V::KEY, source_name: self.name.clone(), message }
    }

    /// The most items a page may hold: ten times the page size asked for
    /// (at least 1,000). Vendors that cap the size serve less; one that
    /// serves far more ignores the request, and its page would be held in
    /// memory and published as a whole.
    fn max_page_items(&self) -> usize {
        usize::try_from(self.page_size).unwrap_or(usize::MAX).saturating_mul(10).max(1_000)
    }

    fn store_err(&self, error: StoreError) -> PollError {
        PollError::Store { vendor: V::KEY, source_name: self.name.clone(), error: Box::new(error) }
    }

    fn page_err(&self, at: &Position, error: PageError) -> PollError {
        PollError::Page { vendor: V::KEY, source_name: self.name.clone(), at: at.to_string(), error }
    }
}

impl<V: Vendor> FetchObserver for Poller<V> {
    fn answered(&self, status: &str) {
        PollProgressed { source: &self.name }.emit(&self.deps.telemetry);
        HttpAnswered { source: &self.name, vendor: V::KEY, status }.emit(&self.deps.telemetry);
    }

    fn retrying(&self, error: &FetchError, delay: Duration) {
        RetryScheduled { source: &self.name, vendor: V::KEY, error, delay }.emit(&self.deps.telemetry);
    }

    fn paced(&self, delay: Duration) {
        Paced { source: &self.name, vendor: V::KEY, delay }.emit(&self.deps.telemetry);
    }
}

/// The poller's side of one walk.
struct Handler<'a, V: Vendor> {
    poller: &'a Poller<V>,
    key: Credential,
    walk: WalkState<V::Plan>,
    shutdown: &'a CancellationToken,
    report: PollReport,
    /// Dead letters this poll may still send one by one.
    dead_budget: usize,
}

/// Dead letters one poll sends item by item; the rest of a page's bad items
/// are counted in one overflow dead letter (see [`dead_letter::overflow`]).
pub const DEAD_LETTERS_PER_POLL: usize = 100;

/// How far in the future an item's time may lie before it is clamped, for
/// pruning its seen id: vendors' clocks drift by minutes, while an item
/// dated years ahead would otherwise be remembered for years.
const MAX_FUTURE_SKEW: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// A page made ready to publish.
struct Prepared {
    messages: Vec<Message>,
    seen: Vec<Seen>,
    skipped: u64,
    dead_letters: u64,
}

impl<V: Vendor> PageHandler for Handler<'_, V> {
    type Error = PollError;

    async fn fetch(&mut self, at: &Position) -> Result<Page, PollError> {
        let p = self.poller;
        let user_agent = p.user_agent();
        let make = || {
            let request = p.vendor.request(&p.deps.client, &self.walk.plan, at, &self.key).timeout(p.timeout);
            match &user_agent {
                Some(ua) => request.header(reqwest::header::USER_AGENT, ua.as_str()),
                None => request,
            }
        };
        let ctx = FetchContext {
            policy: p.retry,
            throttle: &p.throttle,
            observer: p,
            throttling: throttling::<V>(),
            max_response_bytes: p.max_response_bytes,
        };
        let body = match crate::http::fetch(make, &ctx).await {
            Ok(body) => body,
            Err(error) => {
                if let Some(page) = p.vendor.empty_page_for(at, &error) {
                    ErrorAnsweredAsEmpty { source: &p.name, vendor: V::KEY, at, error: &error }.emit();
                    return Ok(page);
                }
                return Err(PollError::Fetch {
                    vendor: V::KEY,
                    source_name: p.name.clone(),
                    at: at.to_string(),
                    error,
                });
            }
        };
        let page = p.vendor.parse_page(&body).map_err(|error| p.page_err(at, error))?;
        let limit = p.max_page_items();
        if page.items.len() > limit {
            let error = PageError::TooManyItems { items: page.items.len(), asked: p.page_size, limit };
            return Err(p.page_err(at, error));
        }
        if !page.usage.is_empty() {
            ApiUsageReported { source: &p.name, vendor: V::KEY, usage: &page.usage }.emit(&p.deps.telemetry);
        }
        Ok(page)
    }

    async fn deliver(
        &mut self,
        at: &Position,
        page: Page,
        next: Option<&Position>,
    ) -> Result<bool, PollError> {
        let p = self.poller;
        let items = page.items.len();
        let prepared = self.prepare(at, &page).await?;
        let sent = Instant::now();
        let published = p.deps.sink.publish(prepared.messages).await.map_err(|error| PollError::Publish {
            vendor: V::KEY,
            source_name: p.name.clone(),
            error,
        })?;
        let ack_latency = sent.elapsed();
        self.commit(at, next, prepared.seen).await?;

        self.report.pages += 1;
        self.report.items += items as u64;
        self.report.published += published.stored as u64;
        self.report.duplicates += published.duplicates as u64;
        self.report.dead_letters += prepared.dead_letters;
        self.report.skipped_seen += prepared.skipped;
        PageDelivered {
            source: &p.name,
            vendor: V::KEY,
            at,
            items,
            published: &published,
            skipped: prepared.skipped,
            ack_latency,
        }
        .emit(&p.deps.telemetry);
        Ok(!self.shutdown.is_cancelled())
    }
}

impl<V: Vendor> Handler<'_, V> {
    /// Normalize a page and encode what is new in it for every configured
    /// format. Events and dead letters the store has as delivered are
    /// skipped: a permanently broken item inside the overlap window is
    /// dead-lettered once, not at every poll.
    async fn prepare(&mut self, at: &Position, page: &Page) -> Result<Prepared, PollError> {
        let p = self.poller;
        let ingested_at = Utc::now();
        let origin = dead_letter::Origin {
            prefix: p.deps.sink.subject_prefix(),
            vendor: V::KEY,
            source: &p.name,
            ingested_at,
        };
        let ctx = NormalizeContext { source: &p.name, ingested_at };
        let latest = ingested_at + MAX_FUTURE_SKEW;

        let mut events = Vec::with_capacity(page.items.len());
        let mut dead = Vec::new();
        for item in &page.items {
            match p.vendor.normalize(item, &ctx) {
                Ok(n) => events.push(n),
                Err(error) => dead.push((error, item)),
            }
        }
        let max_mark = events.iter().filter_map(|n| n.mark).max();
        self.walk.max_mark = self.walk.max_mark.max(max_mark);

        let dead: Vec<(NormalizeError, &serde_json::Value, String)> = dead
            .into_iter()
            .map(|(error, item)| {
                let id = dead_letter::id(V::KEY, &p.name, item.to_string().as_bytes()).to_string();
                (error, item, id)
            })
            .collect();
        let ids: Vec<String> =
            events.iter().map(|n| n.event.id.to_string()).chain(dead.iter().map(|d| d.2.clone())).collect();
        let already = p.deps.store.seen(&p.name, ids).await.map_err(|e| p.store_err(e))?;

        let mut in_page = HashSet::new();
        let mut messages = Vec::with_capacity(events.len() + dead.len());
        let mut seen = Vec::with_capacity(events.len() + dead.len());
        let mut skipped = 0;
        for n in &events {
            let id = n.event.id.to_string();
            if already.contains(&id) || !in_page.insert(id.clone()) {
                skipped += 1;
                continue;
            }
            self.encode(at, &n.event, &id, &mut messages)?;
            seen.push(Seen { event_id: id, item_time: n.item_time.min(latest) });
        }

        let mut dead_letters = 0;
        let mut overflow: Option<(usize, String)> = None;
        for (error, item, id) in dead {
            if already.contains(&id) || !in_page.insert(id.clone()) {
                skipped += 1;
                continue;
            }
            if self.dead_budget > 0 {
                self.dead_budget -= 1;
                DeadLettered { source: &p.name, vendor: V::KEY, error: &error }.emit(&p.deps.telemetry);
                messages.push(dead_letter::item(origin, &error.0, item));
                dead_letters += 1;
            } else {
                let entry = overflow.get_or_insert_with(|| (0, error.0.clone()));
                entry.0 += 1;
            }
            seen.push(Seen { event_id: id, item_time: ingested_at });
        }
        if let Some((count, first_error)) = overflow {
            DeadLettersCapped { source: &p.name, vendor: V::KEY, count, limit: DEAD_LETTERS_PER_POLL }
                .emit(&p.deps.telemetry);
            messages.push(dead_letter::overflow(origin, &at.to_string(), count, &first_error));
            dead_letters += 1;
        }

        let oversized = p.deps.sink.fit(&mut messages, origin);
        if oversized > 0 {
            OversizedDeadLettered { source: &p.name, vendor: V::KEY, count: oversized, at }
                .emit(&p.deps.telemetry);
            dead_letters += oversized as u64;
        }
        Ok(Prepared { messages, seen, skipped, dead_letters })
    }

    /// The messages of one event, one per configured format.
    fn encode(
        &self,
        at: &Position,
        event: &crate::event::Event,
        id: &str,
        messages: &mut Vec<Message>,
    ) -> Result<(), PollError> {
        let p = self.poller;
        let prefix = p.deps.sink.subject_prefix();
        let unserializable = |e: serde_json::Error| {
            p.page_err(at, PageError::Shape(format!("event could not be serialized: {e}")))
        };
        for format in p.deps.sink.formats() {
            match format {
                Format::Alertd => {
                    let payload = serde_json::to_vec(event).map(Bytes::from).map_err(unserializable)?;
                    let subject = event_subject(prefix, V::KEY, &p.name, event.source.kind.as_str());
                    messages.push(Message { subject, id: id.to_owned(), payload });
                }
                Format::Ocsf => {
                    messages.push(ocsf::message(prefix, event, &V::OCSF).map_err(unserializable)?)
                }
            }
        }
        Ok(())
    }

    /// Commit a delivered page: the walk's next position, or for the last
    /// page the watermark, with the page's seen ids.
    async fn commit(
        &mut self,
        at: &Position,
        next: Option<&Position>,
        seen: Vec<Seen>,
    ) -> Result<(), PollError> {
        let p = self.poller;
        match next {
            Some(next) => {
                self.walk.next = next.clone();
                let text = serde_json::to_string(&self.walk)
                    .map_err(|e| p.page_err(at, PageError::State(format!("walk state: {e}"))))?;
                p.deps.store.commit_page(&p.name, V::KEY, text, seen).await.map_err(|e| p.store_err(e))?;
            }
            None => {
                let finish = p.vendor.finish(&self.walk.plan, self.walk.max_mark);
                p.deps
                    .store
                    .commit_last_page(&p.name, V::KEY, seen, finish.watermark.clone(), finish.prune_before)
                    .await
                    .map_err(|e| p.store_err(e))?;
                self.report.watermark = Some(finish.watermark);
            }
        }
        Ok(())
    }
}

/// How `V` says "slow down" besides 429.
fn throttling<V: Vendor>() -> ThrottleSignals {
    ThrottleSignals { statuses: V::THROTTLE_STATUSES, body: V::throttled_answer }
}
