//! HTTP requests to vendors: one place that classifies what came back.
//!
//! Every answer is sorted into a body to parse or a [`FetchError`] that says
//! what went wrong in words an operator can act on (the key was refused, the
//! vendor throttled, the base URL serves an HTML page). Transient failures
//! (connection errors, timeouts, 5xx, 429) are retried with exponential
//! backoff and jitter by `backon`; a server's `Retry-After` replaces the
//! computed delay, capped so one source cannot sleep forever. Nothing here
//! prints a URL's query string: some vendors carry the key in it.
//!
//! A request stops as soon as its source does ([`FetchContext::stop`]:
//! shutdown, or under `[cluster]` the end of the source's tenure): a wait
//! for the throttle, a `Retry-After` or a backoff ends at once, and so does
//! an attempt whose answer has not come yet. [`fetch`] then returns
//! `Ok(None)`, which is no failure: nothing was answered, so there is
//! nothing to publish or commit, and the source's cursor still points at
//! this request.
//!
//! Whatever answers at a vendor's address is treated as hostile input:
//! redirects are followed only within the origin ([`redirect`]), bodies are
//! read up to a bound (`body.rs`), and [`classify`] (pure, fuzzed) reads
//! statuses, headers and bodies without panicking and keeps every text it
//! copies into an error short and printable.

mod body;
mod classify;
mod link;
pub mod redirect;

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use reqwest::{RequestBuilder, StatusCode};
use tokio_util::sync::CancellationToken;

use crate::throttle::Throttle;

/// `alertd/<version>`: the User-Agent of every vendor request, and the
/// name alertd's NATS connections give.
pub fn client_name() -> String {
    format!("alertd/{}", env!("CARGO_PKG_VERSION"))
}
pub use body::{DEFAULT_MAX_RESPONSE_BYTES, MAX_RESPONSE_BYTES_LIMIT};
pub use classify::{MAX_DETAIL_CHARS, classify, vendor_message};
pub use link::next_link;
pub use redirect::{MAX_REDIRECTS, RedirectStop};

/// How a source retries transient failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub retries: usize,
    /// First backoff delay.
    pub min_delay: Duration,
    /// Longest single wait, including a server's `Retry-After`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { retries: 4, min_delay: Duration::from_millis(500), max_delay: Duration::from_secs(60) }
    }
}

/// Why a request produced no usable body.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    /// 401/403: the key is wrong, expired or lacks permission.
    #[error("HTTP {status}: the API key was refused: {detail}")]
    Auth {
        /// 401 or 403.
        status: u16,
        /// The vendor's message.
        detail: String,
    },
    /// 429 (or a vendor's own throttling status): too many requests.
    #[error("HTTP {status}: throttled by the vendor{}", retry_after.map(|d| format!(" (Retry-After {}s)", d.as_secs())).unwrap_or_default())]
    Throttled {
        /// 429, or the vendor's throttling status.
        status: u16,
        /// What the server asked us to wait.
        retry_after: Option<Duration>,
    },
    /// 5xx with a JSON or empty body.
    #[error("HTTP {status}: vendor server error: {detail}")]
    Server {
        /// The status.
        status: u16,
        /// The vendor's message.
        detail: String,
    },
    /// An HTML page where JSON was expected: a proxy error page, a login
    /// page, or a wrong base URL (a 404 page: nothing serves the API there).
    #[error("HTTP {status}: {}", html_hint(*status, title))]
    Html {
        /// The status.
        status: u16,
        /// The page's `<title>`, if any, as ` ("…")`.
        title: String,
    },
    /// Another 4xx: the request was refused.
    #[error("HTTP {status}: request refused: {detail}")]
    Client {
        /// The status.
        status: u16,
        /// The vendor's message.
        detail: String,
    },
    /// A redirect that was not followed: to another origin, from https to
    /// http, one hop too many, or without a usable `Location`.
    #[error("HTTP {status}: {}", redirect::hint(*stop, target))]
    Redirect {
        /// The 3xx status.
        status: u16,
        /// Where it pointed, as `scheme://host:port` only (empty when it
        /// pointed nowhere usable).
        target: String,
        /// Why it was not followed.
        stop: RedirectStop,
    },
    /// The body passed the source's `max_response_bytes`; it was dropped
    /// unread past that point. Retrying would read it again.
    #[error(
        "the response body is larger than max_response_bytes ({limit} bytes); it was dropped: check base_url, or raise max_response_bytes (or lower page_size) if the vendor's pages really are this large"
    )]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// No answer within the configured timeout.
    #[error("no answer within the request timeout")]
    Timeout,
    /// The connection could not be made or broke.
    #[error("connection failed: {0}")]
    Connect(String),
}

impl FetchError {
    /// Whether retrying the same request may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            FetchError::Throttled { .. }
                | FetchError::Server { .. }
                | FetchError::Timeout
                | FetchError::Connect(_)
        ) || matches!(self, FetchError::Html { status, .. } if *status >= 500)
    }

    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            FetchError::Auth { status, .. }
            | FetchError::Throttled { status, .. }
            | FetchError::Server { status, .. }
            | FetchError::Html { status, .. }
            | FetchError::Redirect { status, .. }
            | FetchError::Client { status, .. } => Some(*status),
            FetchError::TooLarge { .. } | FetchError::Timeout | FetchError::Connect(_) => None,
        }
    }

    /// A bounded label for metrics and structured logs.
    pub fn code(&self) -> &'static str {
        match self {
            FetchError::Auth { .. } => "auth",
            FetchError::Throttled { .. } => "throttled",
            FetchError::Server { .. } => "http_5xx",
            FetchError::Html { .. } => "html_page",
            FetchError::Client { .. } => "http_4xx",
            FetchError::Redirect { .. } => "redirect",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::Timeout => "timeout",
            FetchError::Connect(_) => "connect",
        }
    }
}

/// Who wants to know about each attempt (the poller counts answers and
/// logs retries through it).
pub trait FetchObserver: Sync {
    /// An attempt ended with this status code, or failure kind.
    fn answered(&self, status: &str);
    /// A transient failure; the next attempt follows after `delay`.
    fn retrying(&self, error: &FetchError, delay: Duration);
    /// The vendor's budget is running low; the next request waits `delay`.
    fn paced(&self, delay: Duration);
}

/// How a vendor says "slow down" besides a plain 429.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleSignals {
    /// Statuses read like 429 (Red Canary: 406).
    pub statuses: &'static [u16],
    /// Whether an answer's body says the vendor throttled, whatever its
    /// status (Catchpoint's "quota exceeded").
    pub body: fn(&[u8]) -> bool,
}

impl ThrottleSignals {
    /// Only 429 means throttled.
    pub const NONE: ThrottleSignals = ThrottleSignals { statuses: &[], body: |_| false };

    /// Also `statuses`.
    pub const fn statuses(statuses: &'static [u16]) -> ThrottleSignals {
        ThrottleSignals { statuses, ..ThrottleSignals::NONE }
    }
}

/// Everything a source's requests share.
pub struct FetchContext<'a> {
    /// Retries.
    pub policy: RetryPolicy,
    /// The source's pacing; every attempt waits for it.
    pub throttle: &'a Throttle,
    /// Counts and logs attempts.
    pub observer: &'a dyn FetchObserver,
    /// How the vendor throttles besides 429.
    pub throttling: ThrottleSignals,
    /// The largest body read (the source's `max_response_bytes`).
    pub max_response_bytes: u64,
    /// Cancelled when the source stops: every wait (throttle, `Retry-After`,
    /// backoff) and an attempt not yet answered end at once.
    pub stop: &'a CancellationToken,
}

/// A 2xx answer.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The body.
    pub body: Bytes,
    /// How long to hold the next request, from `RateLimit-*` headers.
    pub pace: Option<Duration>,
    /// The `rel="next"` target of its `Link` header, if any.
    pub next_link: Option<String>,
}

/// Send the request built by `make` (called again for each attempt) and
/// return the body of a 2xx answer, retrying transient failures; `Ok(None)`
/// when `ctx.stop` was cancelled before an answer came (module doc).
///
/// The stop ends the whole retry loop wherever it waits: the throttle
/// ([`Throttle::acquire`] may be dropped mid-wait), the backoff's or a
/// `Retry-After`'s sleep, or the attempt itself (its connection is closed;
/// the vendor may have counted the request, which is one request of its
/// budget). An answer that is complete when the stop comes wins over it.
pub async fn fetch<F>(make: F, ctx: &FetchContext<'_>) -> Result<Option<Bytes>, FetchError>
where
    F: Fn() -> RequestBuilder,
{
    fetch_answer(make, ctx).await.map(|answer| answer.map(|answer| answer.body))
}

/// [`fetch`], returning the whole 2xx [`Answer`] (its `Link` header's next
/// target besides the body).
pub async fn fetch_answer<F>(make: F, ctx: &FetchContext<'_>) -> Result<Option<Answer>, FetchError>
where
    F: Fn() -> RequestBuilder,
{
    if ctx.stop.is_cancelled() {
        return Ok(None);
    }
    tokio::select! {
        biased;
        result = with_retries(make, ctx) => result.map(Some),
        () = ctx.stop.cancelled() => Ok(None),
    }
}

/// [`fetch_answer`] without the stop.
async fn with_retries<F>(make: F, ctx: &FetchContext<'_>) -> Result<Answer, FetchError>
where
    F: Fn() -> RequestBuilder,
{
    let policy = ctx.policy;
    let observer = ctx.observer;
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.retries)
        .with_jitter();
    let max = policy.max_delay;
    (|| async {
        let sent = ctx.throttle.acquire().await;
        let result = fetch_once(make(), ctx.throttling, ctx.max_response_bytes).await;
        // Only now: a request is counted against the limits until its answer.
        drop(sent);
        observer.answered(&match &result {
            Ok(answer) => answer.status.as_u16().to_string(),
            Err(e) => e.status().map_or_else(|| e.code().to_owned(), |s| s.to_string()),
        });
        let answer = result?;
        if let Some(pace) = answer.pace {
            let pace = pace.min(max);
            ctx.throttle.pause(pace);
            observer.paced(pace);
        }
        Ok(answer)
    })
    .retry(backoff)
    .when(FetchError::is_transient)
    // `delay` is `None` once the retries are used up; keep it so: a server's
    // Retry-After replaces the wait, never the retry budget.
    .adjust(move |err, delay| match (err, delay) {
        (FetchError::Throttled { retry_after: Some(wait), .. }, Some(_)) => Some((*wait).min(max)),
        (_, delay) => delay,
    })
    .notify(|err, delay| observer.retrying(err, delay))
    .await
}

/// One attempt: send, read at most `max_response_bytes` of the body, and
/// [`classify`] the answer. An answer `throttling` recognises is read like 429.
pub async fn fetch_once(
    req: RequestBuilder,
    throttling: ThrottleSignals,
    max_response_bytes: u64,
) -> Result<Answer, FetchError> {
    let response = req.send().await.map_err(classify_transport)?;
    let status = response.status();
    let headers = response.headers().clone();
    let url = response.url().clone();
    let body = if status.is_redirection() {
        // Not followed (see `redirect`); its body says nothing more.
        Bytes::new()
    } else {
        body::read_limited(response, max_response_bytes).await?
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    classify(status, &headers, &url, body, throttling, now)
}

/// What an HTML answer means: on a 404 nothing serves the vendor's API at
/// the configured address (for per-tenant vendors, usually a wrong
/// subdomain); otherwise a proxy or login page stands in front of it.
fn html_hint(status: u16, title: &str) -> String {
    if status == 404 {
        format!(
            "no vendor API at this address: the server answered with an HTML \"not found\" page{title}; check base_url (a wrong tenant subdomain or path looks like this)"
        )
    } else {
        format!("the server answered with an HTML page{title}, not the vendor's JSON API; check base_url")
    }
}

fn classify_transport(err: reqwest::Error) -> FetchError {
    // The URL may carry a key in its query: never keep it in the message.
    let err = err.without_url();
    if err.is_timeout() {
        FetchError::Timeout
    } else {
        let mut message = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(inner) = source {
            message.push_str(": ");
            message.push_str(&inner.to_string());
            source = inner.source();
        }
        FetchError::Connect(crate::text::clip(&message, 500))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A server that answers `status` to its first `failures` requests, then 200.
    async fn flaky(status: u16, failures: usize) -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    let code = if n < failures { status } else { 200 };
                    (axum::http::StatusCode::from_u16(code).unwrap(), "{\"message\":\"slow down\"}")
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, hits)
    }

    /// An observer that notes nothing.
    struct Quiet;
    impl FetchObserver for Quiet {
        fn answered(&self, _: &str) {}
        fn retrying(&self, _: &FetchError, _: Duration) {}
        fn paced(&self, _: Duration) {}
    }

    #[tokio::test]
    async fn a_vendor_throttle_status_is_retried_like_429() {
        let (url, hits) = flaky(406, 1).await;
        let client = reqwest::Client::new();
        let policy = RetryPolicy {
            retries: 2,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(10),
        };
        let throttle = Throttle::new(&[]);
        let ctx = FetchContext {
            policy,
            throttle: &throttle,
            observer: &Quiet,
            throttling: ThrottleSignals::statuses(&[406]),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            stop: &CancellationToken::new(),
        };
        let body = fetch(|| client.get(&url), &ctx).await.unwrap().expect("not stopped");
        assert_eq!(&body[..], b"{\"message\":\"slow down\"}");
        assert_eq!(hits.load(Ordering::SeqCst), 2, "retried once");

        let (url, _) = flaky(406, 1).await;
        let err = fetch_once(client.get(&url), ThrottleSignals::NONE, 1000).await.unwrap_err();
        assert_eq!(
            err,
            FetchError::Client { status: 406, detail: "slow down".into() },
            "without the vendor's word, 406 is a refused request"
        );
        let (url, _) = flaky(406, 1).await;
        let err = fetch_once(client.get(&url), ThrottleSignals::statuses(&[406]), 1000).await.unwrap_err();
        assert!(matches!(err, FetchError::Throttled { status: 406, .. }), "{err}");
    }

    #[test]
    fn an_html_404_says_the_base_url_serves_no_api() {
        let e = FetchError::Html {
            status: 404,
            title: " (\"The page you were looking for doesn't exist (404)\")".into(),
        };
        let text = e.to_string();
        assert!(text.starts_with("HTTP 404: no vendor API at this address"), "{text}");
        assert!(text.contains("check base_url") && text.contains("subdomain"), "{text}");
        let e = FetchError::Html { status: 502, title: String::new() };
        assert!(!e.to_string().contains("subdomain"), "{e}");
        assert!(e.to_string().contains("HTML page"), "{e}");
    }

    #[test]
    fn only_transient_errors_are_retried() {
        assert!(FetchError::Timeout.is_transient());
        assert!(FetchError::Server { status: 503, detail: String::new() }.is_transient());
        assert!(FetchError::Html { status: 502, title: String::new() }.is_transient());
        assert!(!FetchError::Html { status: 404, title: String::new() }.is_transient());
        assert!(!FetchError::Auth { status: 401, detail: String::new() }.is_transient());
        assert!(!FetchError::Client { status: 400, detail: String::new() }.is_transient());
        assert!(!FetchError::TooLarge { limit: 1 }.is_transient());
        let redirect =
            FetchError::Redirect { status: 302, target: String::new(), stop: RedirectStop::NoTarget };
        assert!(!redirect.is_transient());
    }

    /// Counts the requests it gets and answers each with `answer`.
    async fn listener(
        answer: impl Fn(&str) -> axum::response::Response + Clone + Send + Sync + 'static,
    ) -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            counter.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            async move { answer(uri.path()) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (origin, hits)
    }

    fn redirect_to(location: &str) -> axum::response::Response {
        use axum::response::IntoResponse;
        (axum::http::StatusCode::FOUND, [(axum::http::header::LOCATION, location.to_owned())], "")
            .into_response()
    }

    #[tokio::test]
    async fn the_shared_client_follows_redirects_only_within_the_origin() {
        let client = crate::daemon::http_client(None).unwrap();
        // `/hop/N` redirects to `/hop/N-1`; `/hop/0` answers.
        let (origin, hits) = listener(|path| {
            use axum::response::IntoResponse;
            match path.strip_prefix("/hop/").and_then(|n| n.parse::<u32>().ok()) {
                Some(0) | None => "{\"ok\":true}".into_response(),
                Some(n) => redirect_to(&format!("/hop/{}", n - 1)),
            }
        })
        .await;
        let get = |path: &str| client.get(format!("{origin}{path}")).header("X-API-Key", "k");
        let answer = fetch_once(get(&format!("/hop/{MAX_REDIRECTS}")), ThrottleSignals::NONE, 1000).await;
        assert_eq!(&answer.unwrap().body[..], b"{\"ok\":true}");
        assert_eq!(hits.load(Ordering::SeqCst), MAX_REDIRECTS + 1);
        let err = fetch_once(get(&format!("/hop/{}", MAX_REDIRECTS + 1)), ThrottleSignals::NONE, 1000)
            .await
            .unwrap_err();
        assert!(matches!(&err, FetchError::Redirect { stop: RedirectStop::TooMany, .. }), "{err}");

        let (foreign, foreign_hits) = listener(|_| redirect_to("/")).await;
        let to_foreign = format!("{foreign}/steal?auth_token=k");
        let (origin, _) = listener(move |_| redirect_to(&to_foreign)).await;
        let request = client.get(format!("{origin}/api?auth_token=k")).header("X-API-Key", "k");
        let err = fetch_once(request, ThrottleSignals::NONE, 1000).await.unwrap_err();
        assert_eq!(
            err,
            FetchError::Redirect { status: 302, target: foreign.clone(), stop: RedirectStop::OtherOrigin }
        );
        assert!(!err.to_string().contains("auth_token") && !err.to_string().contains("/steal"), "{err}");
        assert_eq!(foreign_hits.load(Ordering::SeqCst), 0, "nothing went to the other origin");
    }

    /// A `FetchContext` with `retries` and `throttle`, stopped by `stop`.
    fn stoppable<'a>(
        retries: usize,
        throttle: &'a Throttle,
        stop: &'a CancellationToken,
    ) -> FetchContext<'a> {
        FetchContext {
            policy: RetryPolicy { retries, ..RetryPolicy::default() },
            throttle,
            observer: &Quiet,
            throttling: ThrottleSignals::NONE,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            stop,
        }
    }

    /// Runs `fetch` of `url` under `ctx` in a task, cancels `stop` once
    /// `hits` reached `after` (and a moment later, so the fetch is waiting),
    /// and returns what the fetch returned: it must return long before
    /// the minute every wait in these tests would last.
    async fn stop_after_hits(
        url: String,
        ctx: impl for<'a> FnOnce(&'a Throttle, &'a CancellationToken) -> FetchContext<'a> + Send + 'static,
        throttle: Throttle,
        hits: Arc<AtomicUsize>,
        after: usize,
    ) -> Result<Option<Bytes>, FetchError> {
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let client = reqwest::Client::new();
                fetch(|| client.get(&url), &ctx(&throttle, &stop)).await
            }
        });
        while hits.load(Ordering::SeqCst) < after {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the stop ended the wait (it would have lasted a minute)")
            .expect("the fetch task did not panic")
    }

    #[tokio::test]
    async fn a_stop_ends_a_retry_after_wait_without_another_attempt() {
        let (origin, hits) = listener(|_| {
            use axum::response::IntoResponse;
            (axum::http::StatusCode::TOO_MANY_REQUESTS, [("retry-after", "600")], "").into_response()
        })
        .await;
        let result =
            stop_after_hits(origin, |t, s| stoppable(3, t, s), Throttle::new(&[]), hits.clone(), 1).await;
        assert_eq!(result, Ok(None), "a stop, not an error");
        assert_eq!(hits.load(Ordering::SeqCst), 1, "no attempt after the stop");
    }

    #[tokio::test]
    async fn a_stop_ends_a_backoff_wait() {
        // 0.5 s, 1 s, 2 s, 4 s…: after five 503s the backoff waits 8 s or more.
        let (url, hits) = flaky(503, 100).await;
        let result =
            stop_after_hits(url, |t, s| stoppable(10, t, s), Throttle::new(&[]), hits.clone(), 5).await;
        assert_eq!(result, Ok(None));
        assert_eq!(hits.load(Ordering::SeqCst), 5, "no attempt after the stop");
    }

    #[tokio::test]
    async fn a_stop_ends_a_throttle_wait_and_a_stopped_source_sends_nothing() {
        let (url, hits) = flaky(200, 0).await;
        let throttle = Throttle::new(&["1/min".parse().unwrap()]);
        let client = reqwest::Client::new();
        let stop = CancellationToken::new();
        let first = fetch(|| client.get(&url), &stoppable(0, &throttle, &stop)).await;
        assert!(matches!(first, Ok(Some(_))), "{first:?}");
        // The next request may only go a minute after the first.
        let result = stop_after_hits(url.clone(), |t, s| stoppable(0, t, s), throttle, hits.clone(), 1).await;
        assert_eq!(result, Ok(None));
        assert_eq!(hits.load(Ordering::SeqCst), 1);

        stop.cancel();
        let unpaced = Throttle::new(&[]);
        let result = fetch(|| client.get(&url), &stoppable(0, &unpaced, &stop)).await;
        assert_eq!(result, Ok(None));
        assert_eq!(hits.load(Ordering::SeqCst), 1, "nothing sent once stopped");
    }

    #[tokio::test]
    async fn a_stop_abandons_an_attempt_whose_answer_has_not_come() {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "{}"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let result =
            stop_after_hits(url, |t, s| stoppable(0, t, s), Throttle::new(&[]), hits.clone(), 1).await;
        assert_eq!(result, Ok(None));
    }
}
