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
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{Seen, Store, StoreError};
use crate::config::{Credential, CredentialError, CredentialSource, SourceConfig};
use crate::http::{FetchContext, FetchError, FetchObserver, RetryPolicy, ThrottleSignals};
use crate::internal_events::{
    ApiUsageReported, CredentialExpiry, DeadLettered, ErrorAnsweredAsEmpty, HttpAnswered, Paced,
    PageDelivered, PollFailed, PollFinished, RetryScheduled, WalkEndedByRule,
};
use crate::ocsf;
use crate::paginate::{self, Page, PageHandler, PaginateError, Position};
use crate::publish::{Format, Message, PublishError, Sink, dead_letter_subject, event_subject};
use crate::telemetry::Telemetry;
use crate::throttle::Throttle;
use crate::vendors::{NormalizeContext, PageError, Vendor, instantiate};

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
        error: StoreError,
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
            self.deps.telemetry.health.progress(&self.name);
            let result = self.poll(shutdown).await;
            match &result {
                Ok(report) => {
                    PollFinished { source: &self.name, vendor: V::KEY, report, elapsed: started.elapsed() }
                        .emit(&self.deps.telemetry)
                }
                Err(error) => {
                    PollFailed { source: &self.name, vendor: V::KEY, error, elapsed: started.elapsed() }
                        .emit(&self.deps.telemetry)
                }
            }
            result
        })
    }

    fn probe(&self) -> BoxFuture<'_, Result<Option<usize>, PollError>> {
        Box::pin(self.probe_once())
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
        let max = self.max_response_bytes;
        let answer = crate::http::fetch_once(request.timeout(self.timeout), throttling::<V>(), max)
            .await
            .map_err(|error| PollError::Fetch {
                vendor: V::KEY,
                source_name: self.name.clone(),
                at: "the check request".into(),
                error,
            })?;
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
        let mut handler = Handler { poller: self, key, walk, shutdown, report: PollReport::default() };
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
        Some(format!("{} (instance {instance}; lease {lease})", crate::daemon::client_name()))
    }

    fn store_err(&self, error: StoreError) -> PollError {
        PollError::Store { vendor: V::KEY, source_name: self.name.clone(), error }
    }

    fn page_err(&self, at: &Position, error: PageError) -> PollError {
        PollError::Page { vendor: V::KEY, source_name: self.name.clone(), at: at.to_string(), error }
    }
}

impl<V: Vendor> FetchObserver for Poller<V> {
    fn answered(&self, status: &str) {
        self.deps.telemetry.health.progress(&self.name);
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
                if let Some(page) = p.vendor.empty_page_for(&error) {
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
        let prefix = p.deps.sink.subject_prefix().to_owned();
        let ctx = NormalizeContext { source: &p.name, ingested_at: Utc::now() };
        let items = page.items.len();

        let mut events = Vec::with_capacity(items);
        let mut dead = Vec::new();
        for item in &page.items {
            match p.vendor.normalize(item, &ctx) {
                Ok(n) => events.push(n),
                Err(error) => {
                    DeadLettered { source: &p.name, vendor: V::KEY, error: &error }.emit(&p.deps.telemetry);
                    dead.push(dead_letter(&prefix, V::KEY, &p.name, &error.0, item));
                }
            }
        }
        let max_mark = events.iter().filter_map(|n| n.mark).max();
        self.walk.max_mark = self.walk.max_mark.max(max_mark);

        let ids: Vec<String> = events.iter().map(|n| n.event.id.to_string()).collect();
        let already = p.deps.store.seen(&p.name, ids).await.map_err(|e| p.store_err(e))?;
        let mut in_page = HashSet::new();
        let mut messages = Vec::with_capacity(events.len() + dead.len());
        let mut seen = Vec::with_capacity(events.len());
        let mut skipped = 0;
        for n in &events {
            let id = n.event.id.to_string();
            if already.contains(&id) || !in_page.insert(id.clone()) {
                skipped += 1;
                continue;
            }
            let unserializable = |e: serde_json::Error| {
                p.page_err(at, PageError::Shape(format!("event could not be serialized: {e}")))
            };
            for format in p.deps.sink.formats() {
                match format {
                    Format::Alertd => {
                        let payload =
                            serde_json::to_vec(&n.event).map(Bytes::from).map_err(unserializable)?;
                        let subject = event_subject(&prefix, V::KEY, &p.name, n.event.source.kind.as_str());
                        messages.push(Message { subject, id: id.clone(), payload });
                    }
                    Format::Ocsf => messages.push(ocsf::message(&prefix, &n.event).map_err(unserializable)?),
                }
            }
            seen.push(Seen { event_id: id, item_time: n.item_time });
        }
        let dead_count = dead.len() as u64;
        messages.extend(dead);

        let sent = Instant::now();

        let published = p.deps.sink.publish(messages).await.map_err(|error| PollError::Publish {
            vendor: V::KEY,
            source_name: p.name.clone(),
            error,
        })?;
        let ack_latency = sent.elapsed();

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

        self.report.pages += 1;
        self.report.items += items as u64;
        self.report.published += published.stored as u64;
        self.report.duplicates += published.duplicates as u64;
        self.report.dead_letters += dead_count;
        self.report.skipped_seen += skipped;
        PageDelivered {
            source: &p.name,
            vendor: V::KEY,
            at,
            items,
            published: &published,
            skipped,
            ack_latency,
        }
        .emit(&p.deps.telemetry);
        Ok(!self.shutdown.is_cancelled())
    }
}

/// A dead letter: the item verbatim with the source and the reason. Its id
/// is derived from the item's bytes so a re-fetched bad item is stored once.
/// How `V` says "slow down" besides 429.
fn throttling<V: Vendor>() -> ThrottleSignals {
    ThrottleSignals { statuses: V::THROTTLE_STATUSES, body: V::throttled_answer }
}

fn dead_letter(
    prefix: &str,
    vendor: &'static str,
    source: &str,
    error: &str,
    item: &serde_json::Value,
) -> Message {
    let raw = item.to_string();
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{vendor}\0{source}\0{raw}").as_bytes());
    let payload = serde_json::json!({
        "schema_version": "alertd.deadletter.v1",
        "id": id,
        "vendor": vendor,
        "source": source,
        "error": error,
        "ingested_at": Utc::now(),
        "raw": item,
    });
    Message {
        subject: dead_letter_subject(prefix, vendor),
        id: id.to_string(),
        payload: Bytes::from(payload.to_string()),
    }
}

/// Build the pollers of every enabled source.
pub fn build_all(sources: &[SourceConfig], deps: &PollerDeps) -> Result<Vec<Arc<dyn Poll>>, String> {
    sources
        .iter()
        .filter(|s| s.enabled)
        .map(|s| {
            let entry =
                crate::vendors::lookup(&s.vendor).ok_or_else(|| format!("unknown vendor `{}`", s.vendor))?;
            (entry.build)(s, deps.clone()).map(Arc::from).map_err(|e| format!("source {}: {e}", s.name()))
        })
        .collect()
}
