//! Vendor API simulators: real HTTP servers on loopback that play a security
//! vendor's paginated alert API, so alertd's integration tests, `alertd demo`
//! and benchmarks exercise the same code paths as production without network
//! access or vendor accounts.
//!
//! A simulator serves a data set that is a pure function of
//! [`SimConfig::seed`] (and the start instant), lets new alerts arrive while
//! it runs, checks the API key, answers with the vendor's documented error
//! envelopes, and can be told to misbehave ([`Fault`]) so retry and
//! resilience logic is testable.
//!
//! # Adding a vendor
//!
//! The framework in this module and its private submodules owns everything
//! that is not vendor-specific: the alert store (kept oldest first), the
//! seeded RNG, the clock, the fault queue, the request log, the arrival task
//! and the server lifecycle. A vendor is one file next to `canaryguard.rs`
//! that implements the crate-private `VendorApi` trait:
//!
//! - `generate` makes one alert at a given time from the shared RNG (the
//!   vendor is built knowing the simulator's base URL, for the absolute links
//!   some APIs put in their items);
//! - `rate_limited` / `unauthorized` / `error_in_200` render the vendor's
//!   error envelopes, used when the matching [`Fault`] is injected;
//! - `malform` breaks one item of a list body for [`Fault::MalformedItem`];
//! - `update` (optional) changes an existing alert for
//!   [`Simulator::update_items`], for vendors whose items have revisions;
//! - `routes` returns its `open` routes (health, fallback) and its `data`
//!   routes; handlers get the shared state, read the store through
//!   `Shared::with_items` and do their own auth, filtering and paging;
//! - optionally `update` (how an existing alert changes), `stamp` (a
//!   store-wide change counter such as Thinkst's `updated_id`), `hollow` and
//!   `link_to` (for [`Fault::HollowItems`] and [`Fault::NextLinkTo`]).
//!
//! Then add a [`SimVendor`] variant, one arm in `vendor_api` and its demo
//! key in [`SimVendor::default_api_key`]. The framework
//! wraps the data routes in fault injection and every route in the request
//! log. Its tests go in `tests/<vendor>.rs`, reusing the helpers in
//! `tests/mod.rs`.

pub mod canaryguard;
pub mod catchpoint;
mod layers;
pub mod rapid7;
pub mod red_canary;
mod state;
#[cfg(test)]
mod tests;
pub mod thinkst_canary;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::middleware::from_fn_with_state;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use canaryguard::CANARYGUARD_DEMO_KEY;
pub use catchpoint::CATCHPOINT_DEMO_KEY;
pub use rapid7::RAPID7_DEMO_KEY;
pub use red_canary::RED_CANARY_DEMO_KEY;
pub use thinkst_canary::THINKST_CANARY_DEMO_KEY;

use state::{Seeding, Shared, VendorApi};

use crate::throttle::RateLimit;

/// Which vendor API a simulator plays, so one framework can stand in for
/// every integration alertd supports.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimVendor {
    /// CanaryGuard's `/api/v1/alerts`, served newest first.
    CanaryGuard,
    /// Catchpoint's `/api/v2/tests/alerts`, `hasMore` paged, 404 when a
    /// query matches nothing.
    Catchpoint,
    /// Rapid7 InsightIDR's alerts search and v2 investigations, index paged,
    /// with `RateLimit-*` headers and alerts that change version.
    Rapid7,
    /// Red Canary's `/openapi/v3/detections`, newest first, `links.next`.
    RedCanary,
    /// Thinkst Canary's `/api/v1/incidents/all`, by `updated_id`, cursors.
    ThinkstCanary,
}

/// Every simulator, one line each: which vendor's source polls it, the key
/// it accepts by default and how its vendor hooks are built. The demo's and
/// the tests' lists of vendors come from here.
pub static SIMULATORS: &[SimEntry] = &[
    SimEntry {
        vendor: SimVendor::CanaryGuard,
        key: "canaryguard",
        api_key: CANARYGUARD_DEMO_KEY,
        build: |rng, _, _| Box::new(canaryguard::CanaryGuard::new(rng)),
    },
    SimEntry {
        vendor: SimVendor::Catchpoint,
        key: "catchpoint",
        api_key: CATCHPOINT_DEMO_KEY,
        build: |rng, _, _| Box::new(catchpoint::Catchpoint::new(rng)),
    },
    SimEntry {
        vendor: SimVendor::Rapid7,
        key: "rapid7",
        api_key: RAPID7_DEMO_KEY,
        build: |rng, _, budget| Box::new(rapid7::Rapid7::new(rng, budget)),
    },
    SimEntry {
        vendor: SimVendor::RedCanary,
        key: "red_canary",
        api_key: RED_CANARY_DEMO_KEY,
        build: |rng, base_url, _| Box::new(red_canary::RedCanary::new(rng, base_url)),
    },
    SimEntry {
        vendor: SimVendor::ThinkstCanary,
        key: "thinkst_canary",
        api_key: THINKST_CANARY_DEMO_KEY,
        build: |rng, _, _| Box::new(thinkst_canary::ThinkstCanary::new(rng)),
    },
];

/// Builds a simulator's vendor hooks, drawing its fixed pool (tokens,
/// sensors, ...) from the seeded RNG before the alerts; the base URL is
/// where it is served.
type BuildApi = fn(&mut StdRng, &str, Option<CallBudget>) -> Box<dyn VendorApi>;

/// One simulator of [`SIMULATORS`].
pub struct SimEntry {
    /// Which API it plays.
    pub vendor: SimVendor,
    /// The vendor key (`vendor = "…"`) of the sources that poll it.
    pub key: &'static str,
    /// The key it accepts by default.
    pub api_key: &'static str,
    build: BuildApi,
}

impl SimVendor {
    fn entry(self) -> &'static SimEntry {
        SIMULATORS
            .iter()
            .find(|e| e.vendor == self)
            .unwrap_or_else(|| unreachable!("every SimVendor has a line in SIMULATORS"))
    }

    /// The key this simulator accepts by default, well-formed for the
    /// vendor, so demos and tests need no account.
    #[must_use]
    pub fn default_api_key(self) -> &'static str {
        self.entry().api_key
    }

    /// The vendor key of the sources that poll it.
    #[must_use]
    pub fn key(self) -> &'static str {
        self.entry().key
    }
}

/// Settings of a simulator; defaults give a realistic demo data set.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Makes runs reproducible: the data set is a pure function of the seed
    /// and the start instant.
    pub seed: u64,
    /// Alerts that already exist at start, so a first poll has a backlog.
    pub initial_items: usize,
    /// How far before start the initial alerts are spread.
    pub history: Duration,
    /// Lets a new alert arrive every interval while running, to exercise
    /// incremental polling; `None` keeps the data set static.
    pub arrival_every: Option<Duration>,
    /// Lets an existing alert change every interval while running (for
    /// vendors whose alerts change), to exercise revisions; `None` never.
    pub update_every: Option<Duration>,
    /// The only key accepted, so auth handling is tested for real.
    pub api_key: String,
    /// The call budget of a simulator that announces one in `RateLimit-*`
    /// headers and answers 429 once it is spent (Rapid7); `None` keeps the
    /// vendor's documented budget. Tests shrink it to see pacing within
    /// seconds instead of a 15-minute window.
    pub call_budget: Option<CallBudget>,
    /// Plays a vendor that enforces a rate limit on its data endpoints:
    /// a request that would make more than `requests` in any window of
    /// `period` (counting only requests that were served) gets the vendor's
    /// 429 envelope, with `Retry-After` saying when the window frees up.
    /// [`Simulator::rate_limited_count`] counts those answers, so the
    /// rate-budget benchmark can prove a throttled backfill got none.
    /// `None` (the default) serves every request.
    pub enforce_limit: Option<RateLimit>,
}

/// `calls` per `window`, counted in fixed windows from the first call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallBudget {
    /// Calls allowed per window.
    pub calls: u64,
    /// How long a window lasts.
    pub window: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            initial_items: 250,
            history: Duration::from_secs(48 * 3600),
            arrival_every: None,
            update_every: None,
            api_key: CANARYGUARD_DEMO_KEY.to_owned(),
            call_budget: None,
            enforce_limit: None,
        }
    }
}

impl SimConfig {
    /// The defaults, with `vendor`'s own demo key.
    #[must_use]
    pub fn for_vendor(vendor: SimVendor) -> Self {
        Self { api_key: vendor.default_api_key().to_owned(), ..Self::default() }
    }
}

/// A misbehaviour the next data request(s) get instead of a normal answer,
/// modelled on failures seen from real vendors and the proxies before them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 with the vendor's RATE_LIMITED envelope and `Retry-After`.
    RateLimited {
        /// Value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// 503 with a short plain-text body.
    Unavailable,
    /// 500 with an HTML proxy error page (text/html).
    HtmlError,
    /// 200 whose JSON body is cut in half.
    TruncatedJson,
    /// The normal answer, after this delay.
    Slow(Duration),
    /// 200 with a normal page in which one item is broken.
    MalformedItem,
    /// The vendor's auth failure (401; Red Canary's is 403) even though the
    /// key is right.
    Unauthorized,
    /// 200 whose body is the vendor's error envelope, as APIs that report
    /// errors only in the body do (Thinkst's `"result": "error"`).
    ErrorIn200,
    /// 200 with the previous successful data answer again, as APIs that
    /// answer past their end with their last page do.
    RepeatPreviousPage,
    /// 200 with the page's items replaced by the hollow records some APIs
    /// pad pages past their end with (Red Canary).
    HollowItems,
    /// The normal answer with its next-page link pointing at this origin
    /// (`http://host:port`), to check a poller never follows it with the key.
    NextLinkTo(String),
    /// A JSON 404 that is not the vendor's "nothing found" (a proxy's or a
    /// backend's), e.g. in the middle of a walk.
    NotFound,
    /// The normal page with its first item copied until the page holds this
    /// many items, as an endpoint ignoring the page size would answer.
    PageOf(usize),
    /// The normal page with its first item carrying an extra field of this
    /// many bytes (an alert with a huge raw body).
    BigItem(usize),
    /// The normal page plus this many items that no vendor can normalize.
    BrokenItems(usize),
    /// 307 to the same URL on this simulator with
    /// [`SAME_ORIGIN_REDIRECT_MARKER`] added to its query, as a load
    /// balancer moving a request along its own origin does; a client that
    /// follows it gets the normal answer.
    SameOriginRedirect,
}

/// The query parameter [`Fault::SameOriginRedirect`] adds to the URL it
/// redirects to, so a test can see the redirect was followed.
pub const SAME_ORIGIN_REDIRECT_MARKER: &str = "alertd_redirected=1";

/// One request the simulator answered, so tests can check what the poller
/// sent and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Path without the query, e.g. `/api/v1/alerts`.
    pub path: String,
    /// Raw (still percent-encoded) query string, if any.
    pub query: Option<String>,
    /// The `User-Agent` header, if sent and valid UTF-8.
    pub user_agent: Option<String>,
    /// Status the simulator answered with, after any fault.
    pub status: u16,
    /// Wall-clock time the request arrived.
    pub at: DateTime<Utc>,
    /// Monotonic arrival time, for measuring spacing between retries.
    pub received: Instant,
}

/// Reasons a [`SimConfig`] cannot be served.
#[derive(Debug, thiserror::Error)]
enum ConfigError {
    #[error("arrival_every and update_every must be longer than zero")]
    ZeroArrival,
    #[error("history is too long to represent as a date")]
    History,
}

/// A running simulator; dropping it or calling [`Simulator::shutdown`] stops
/// the server and the arrival task.
pub struct Simulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    stop: DropGuard,
}

impl Simulator {
    /// Starts serving on `127.0.0.1` at a free port, with the initial data set
    /// laid out before the current time.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the config cannot be served (zero arrival interval,
    /// history beyond the calendar), or the bind error if loopback is unusable.
    pub async fn start(vendor: SimVendor, config: SimConfig) -> std::io::Result<Simulator> {
        Self::start_at(vendor, config, Utc::now()).await
    }

    /// Like [`Simulator::start`], but lays the initial data set out before
    /// `anchor` instead of now, so two runs can produce identical data.
    ///
    /// # Errors
    ///
    /// As [`Simulator::start`].
    pub async fn start_at(
        vendor: SimVendor,
        config: SimConfig,
        anchor: DateTime<Utc>,
    ) -> std::io::Result<Simulator> {
        let invalid = |e: ConfigError| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        if config.arrival_every == Some(Duration::ZERO) || config.update_every == Some(Duration::ZERO) {
            return Err(invalid(ConfigError::ZeroArrival));
        }
        let history = TimeDelta::from_std(config.history)
            .ok()
            .filter(|h| anchor.checked_sub_signed(*h).is_some())
            .ok_or_else(|| invalid(ConfigError::History))?;

        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let mut rng = StdRng::seed_from_u64(config.seed);
        let api = vendor_api(vendor, &mut rng, &format!("http://{addr}"), config.call_budget);
        let routes = api.routes();
        let seeding =
            Seeding { initial_items: config.initial_items, history, anchor: anchor.trunc_subsecs(0) };
        let token = CancellationToken::new();
        let shared =
            Arc::new(Shared::new(api, rng, config.api_key, seeding, token.clone(), config.enforce_limit));

        let app = routes
            .open
            .merge(routes.data.route_layer(from_fn_with_state(shared.clone(), layers::inject_fault)))
            .layer(from_fn_with_state(shared.clone(), layers::record))
            .with_state(shared.clone());
        let serve_stop = token.clone();
        let mut tasks = vec![tokio::spawn(async move {
            let served =
                axum::serve(listener, app).with_graceful_shutdown(serve_stop.cancelled_owned()).await;
            if let Err(error) = served {
                tracing::warn!(%error, "simulator server failed");
            }
        })];
        if let Some(every) = config.arrival_every {
            tasks.push(tokio::spawn(every_so_often(shared.clone(), every, token.clone(), |s| {
                s.add_items(1, state::now())
            })));
        }
        if let Some(every) = config.update_every {
            tasks.push(tokio::spawn(every_so_often(shared.clone(), every, token.clone(), |s| {
                drop(s.update_items(1, Utc::now()))
            })));
        }
        Ok(Simulator { shared, addr, tasks, stop: token.drop_guard() })
    }

    /// Where clients point their vendor base URL (no trailing slash, no API
    /// prefix), as an operator would configure it.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues `fault` for the next `times` data requests, first in first out
    /// after anything already queued.
    pub fn inject(&self, fault: Fault, times: usize) {
        self.shared.inject(fault, times);
    }

    /// Makes `n` alerts arrive now, for tests that need new data on demand.
    pub fn add_items(&self, n: usize) {
        self.shared.add_items(n, state::now());
    }

    /// Changes up to `n` existing alerts now, newest first (for vendors
    /// whose alerts change); returns them as changed. Changes are stamped
    /// with the full clock (vendors write milliseconds), since they move no
    /// alert in the store's order.
    pub fn update_items(&self, n: usize) -> Vec<serde_json::Value> {
        self.shared.update_items(n, Utc::now())
    }

    /// Changes up to `n` existing alerts dated before `before` (the time the
    /// vendor's filter compares), newest first: an analyst triaging alerts
    /// that have left a poller's overlap. Returns them as changed.
    pub fn update_items_before(&self, n: usize, before: DateTime<Utc>) -> Vec<serde_json::Value> {
        self.shared.update_items_before(n, before, Utc::now())
    }

    /// Every alert that exists, oldest first and exactly as served, to
    /// compare against what alertd ingested.
    #[must_use]
    pub fn ground_truth(&self) -> Vec<serde_json::Value> {
        self.shared.ground_truth()
    }

    /// How many data requests got a 429 because they broke
    /// [`SimConfig::enforce_limit`] (injected [`Fault::RateLimited`]
    /// answers are not counted).
    #[must_use]
    pub fn rate_limited_count(&self) -> u64 {
        self.shared.rate_limited_count()
    }

    /// Every request answered so far, in the order answers were sent.
    #[must_use]
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests()
    }

    /// Stops the simulator and waits for its server and arrival task, so the
    /// port is released when this returns.
    pub async fn shutdown(self) {
        let Simulator { tasks, stop, .. } = self;
        stop.disarm().cancel();
        for task in tasks {
            if let Err(error) = task.await {
                tracing::warn!(%error, "simulator task failed");
            }
        }
    }
}

/// The vendor hooks of `vendor`'s simulator (see [`BuildApi`]).
fn vendor_api(
    vendor: SimVendor,
    rng: &mut StdRng,
    base_url: &str,
    call_budget: Option<CallBudget>,
) -> Box<dyn VendorApi> {
    (vendor.entry().build)(rng, base_url, call_budget)
}

/// Runs `tick` (an arrival, an update) every `every` until the simulator stops.
async fn every_so_often(
    shared: Arc<Shared>,
    every: Duration,
    stop: CancellationToken,
    tick: impl Fn(&Shared) + Send + 'static,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => tick(&shared),
        }
    }
}
