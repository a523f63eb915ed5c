//! One source's poll: walk pages → normalize → publish → await acks → commit.
//!
//! [`Poller`] is generic over the [`Vendor`] and erased behind [`Poll`] for
//! the scheduler. Per page it normalizes every item (items that fail go to
//! the dead-letter subject with their raw JSON), drops events already
//! delivered in the overlap window, publishes the rest and the dead letters,
//! and only when the sink confirms them all (and all of every page before)
//! commits the page's seen ids and the walk's next position in one
//! transaction. Pages are pipelined: the next page is fetched while a
//! page's acks are outstanding (see `walk.rs`). A failure leaves the cursor
//! after the last page acknowledged with all pages before it; the next poll
//! resumes from there.
//!
//! The module's files: `report.rs` (what a poll did or why it failed),
//! `walk.rs` (one walk's pages: normalize, encode, publish, commit), and
//! this file (the poller itself, its requests and the `Poll` trait).

mod preview;
mod report;
mod revisit;
#[cfg(test)]
mod tests;
mod walk;

pub use preview::{Preview, PreviewPage};
pub use report::{PollError, PollReport};
pub use walk::DEAD_LETTERS_PER_POLL;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{Store, StoreError};
use crate::config::{Credential, CredentialSource, SourceConfig};
use crate::http::{FetchError, FetchObserver, RetryPolicy, ThrottleSignals};
use crate::internal_events::{
    CredentialExpiry, HttpAnswered, Paced, PollFailed, PollFinished, PollProgressed, PollStopped,
    RetryScheduled, WalkEndedByRule,
};
use crate::paginate::{self, Position};
use crate::publish::Sink;
use crate::telemetry::Telemetry;
use crate::throttle::Throttle;
use crate::vendors::{PageError, Vendor, instantiate};

use walk::Handler;

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
    /// Poll once: walk from the stored cursor to the end, or until
    /// `shutdown`: a page already answered is published and committed, a
    /// wait (throttle, `Retry-After`, backoff) or a request not yet answered
    /// ends at once, and the report says `complete: false`.
    fn poll_once<'a>(
        &'a self,
        shutdown: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<PollReport, PollError>>;
    /// One cheap authenticated request (no retries, nothing published or
    /// committed), for `alertd check`: how many items its page held, if it
    /// was a page.
    fn probe(&self) -> BoxFuture<'_, Result<Option<usize>, PollError>>;
    /// Fetch and normalize at most `pages` pages of a new walk without
    /// publishing or committing (`alertd preview`).
    fn preview(&self, pages: u64) -> BoxFuture<'_, Result<Preview, PollError>>;
    /// The lease epoch this instance polls the source under (`[cluster]`),
    /// named in every request's User-Agent; `None` when it holds none.
    fn set_lease(&self, _epoch: Option<u64>) {}
    /// Whether the source revisits recent history (`crate::revisit`).
    fn revisits(&self) -> bool {
        false
    }
    /// Run the source's revisit if one is due or unfinished, within
    /// `budget` (until the next poll); logs its own outcome.
    fn revisit<'a>(
        &'a self,
        _budget: crate::revisit::Budget,
        _shutdown: &'a CancellationToken,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async {})
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
    /// Shared with the blocking threads that parse its pages.
    vendor: Arc<V>,
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
    /// The source's revisit, if it has one.
    revisit: Option<crate::revisit::Settings>,
    deps: PollerDeps,
}

/// Build a [`Poller`] for `source` (the registry's constructor).
pub fn build<V: Vendor>(source: &SourceConfig, deps: PollerDeps) -> Result<Box<dyn Poll>, String> {
    Ok(Box::new(Poller::<V>::new(source, deps)?))
}

impl<V: Vendor> Poller<V> {
    fn new(source: &SourceConfig, deps: PollerDeps) -> Result<Poller<V>, String> {
        let vendor = instantiate::<V>(source)?;
        // A vendor that cannot revisit (a change feed) ignores the setting.
        let now = Utc::now();
        let revisit = crate::revisit::Settings::of::<V>(source)
            .filter(|_| vendor.revisit_plan(now - chrono::TimeDelta::hours(1), now).is_some());
        Ok(Poller {
            vendor: Arc::new(vendor),
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
            revisit,
            deps,
        })
    }
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
                // Only a stopping source ends a walk early.
                Ok(report) if !report.complete => PollStopped {
                    source: &self.name,
                    vendor: V::KEY,
                    report: report.counts(),
                    formats: self.deps.sink.formats(),
                    elapsed: started.elapsed(),
                }
                .emit(),
                Ok(report) => PollFinished {
                    source: &self.name,
                    vendor: V::KEY,
                    report: report.counts(),
                    formats: self.deps.sink.formats(),
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

    fn preview(&self, pages: u64) -> BoxFuture<'_, Result<Preview, PollError>> {
        Box::pin(async move {
            AssertUnwindSafe(self.preview_pages(pages))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(self.panicked(panic.as_ref())))
        })
    }

    fn set_lease(&self, epoch: Option<u64>) {
        self.lease.store(epoch.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
    }

    fn revisits(&self) -> bool {
        self.revisit.is_some()
    }

    fn revisit<'a>(
        &'a self,
        budget: crate::revisit::Budget,
        shutdown: &'a CancellationToken,
    ) -> BoxFuture<'a, ()> {
        Box::pin(self.revisit_run(budget, shutdown))
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
        // Where the probe's request stands in a walk: its first page (what
        // `empty_page_for` recognises a vendor's "nothing found" answer at).
        let at = self.vendor.scheme().first();
        let (request, is_page) = match self.vendor.validate_request(&self.deps.client, &key) {
            Some(request) => (request, false),
            None => (
                self.vendor.probe(&self.deps.client, &key, Utc::now()).map_err(|e| self.page_err(&at, e))?,
                true,
            ),
        };
        let answer = match crate::http::fetch_once(
            request.timeout(self.timeout),
            throttling(self.vendor.as_ref()),
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
        let page = self
            .vendor
            .parse_answer(&answer.body, answer.next_link.as_deref())
            .map_err(|error| self.page_err(&at, error))?;
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
        let mut handler = Handler::new(self, key, walk, shutdown);
        let scheme = self.vendor.scheme();
        let walked = paginate::walk(&scheme, start, self.max_pages, &mut handler).await;
        // Pages still in flight are awaited and committed however the walk
        // ended: a failure leaves the cursor after the last page that was
        // acknowledged with every page before it.
        let settled = handler.settle().await;
        let outcome = walked.map_err(|e| match e {
            PollError::Paginate { error, .. } => {
                PollError::Paginate { vendor: V::KEY, source_name: self.name.clone(), error }
            }
            other => other,
        })?;
        settled?;
        if let Some(rule) = outcome.ended_by {
            WalkEndedByRule { source: &self.name, vendor: V::KEY, rule, pages: outcome.pages }.emit();
        }
        let mut report = handler.into_report();
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

    /// The error of a blocking task of this poll (a page's parse) that did
    /// not return: it panicked, or the runtime is shutting down.
    fn joined_err(&self, error: tokio::task::JoinError) -> PollError {
        match error.try_into_panic() {
            Ok(panic) => self.panicked(panic.as_ref()),
            Err(_) => PollError::Panicked {
                vendor: V::KEY,
                source_name: self.name.clone(),
                message: "its task was cancelled (the runtime is shutting down)".to_owned(),
            },
        }
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

/// How `V` says "slow down" besides 429.
fn throttling<V: Vendor>(vendor: &V) -> ThrottleSignals {
    ThrottleSignals { statuses: vendor.throttle_statuses(), body: V::throttled_answer }
}
