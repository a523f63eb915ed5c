//! What answers at a vendor's address is hostile input: real HTTP on
//! loopback against the real daemon (in-process, and the built binary).
//!
//! - A redirect to another origin (another port on 127.0.0.1) is not
//!   followed, for every vendor and every way it sends its key: the poll
//!   and `alertd check` fail naming the target's origin and `base_url`,
//!   and the other origin receives nothing at all.
//! - A redirect within the origin is still followed.
//! - A body that never ends stops at `max_response_bytes` with a clear
//!   error, and the process's peak memory stays small.
//! - A long non-ASCII HTML `<title>` is an error message, not a panic.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alertd::checkpoint::Store;
use alertd::http::{FetchError, RedirectStop};
use alertd::poller::PollError;
use alertd::sim::{Fault, SAME_ORIGIN_REDIRECT_MARKER, SimConfig, SimVendor, Simulator};
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::poll::run_once;

/// One request a [`Recorder`] received.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    /// Whether `secret` is anywhere in the request line or a header.
    fn mentions(&self, secret: &str) -> bool {
        self.target.contains(secret)
            || self.headers.iter().any(|(k, v)| k.contains(secret) || v.contains(secret))
    }
}

/// A loopback origin that records every request and answers it with `answer`.
struct Recorder {
    origin: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    async fn start(answer: impl Fn(&str) -> Response + Clone + Send + Sync + 'static) -> Recorder {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let target = request.uri().path_and_query().map_or("/".to_owned(), ToString::to_string);
            let headers = request
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            log.lock().unwrap().push(Seen { target: target.clone(), headers });
            let answer = answer.clone();
            async move { answer(&target) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Recorder { origin, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A poll and a check of `vendor` at an origin that answers every request
/// with `status` to the same path and query on another origin.
async fn a_foreign_redirect_is_refused(vendor: SimVendor, key_name: &str, extra: &str, status: u16) {
    let key = vendor.default_api_key();
    let foreign = Recorder::start(|_| "{}".into_response()).await;
    let elsewhere = foreign.origin.clone();
    let redirector = Recorder::start(move |target| {
        let status = StatusCode::from_u16(status).unwrap();
        // The query goes along: with a query key, following would send it.
        (status, [(header::LOCATION, format!("{elsewhere}{target}"))]).into_response()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let vendor_key = vendor_key(vendor);
    let cfg = common::config(dir.path(), None, vendor_key, &redirector.origin, key, extra);
    let source = format!("test-{vendor_key}");

    let err = run_once(&cfg).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, PollError::Fetch { error: FetchError::Redirect { status: s, target, stop: RedirectStop::OtherOrigin }, .. }
            if *s == status && *target == foreign.origin),
        "{err:?}"
    );
    assert!(text.contains(&format!("another origin, {};", foreign.origin)), "{text}");
    assert!(text.contains("fix base_url") && text.contains(&source), "{text}");
    assert!(!text.contains(key), "the key is in no error: {text}");
    assert_eq!(err.code(), "redirect");
    let state = Store::open(&cfg.state.path).unwrap().load(&source).await.unwrap();
    assert_eq!((state.watermark, state.walk), (None, None), "the cursor is untouched");

    let rows = alertd::check::run(&cfg, None).await;
    let row = rows.iter().find(|r| r.what.starts_with(&format!("source {source}"))).unwrap();
    assert!(
        row.result == alertd::check::Verdict::Fail
            && row.detail.contains(&foreign.origin)
            && row.detail.contains("base_url"),
        "{row:?}"
    );

    let sent = redirector.seen();
    assert_eq!(sent.len(), 2, "one poll request (not retried) and one check request: {sent:?}");
    assert!(
        sent.iter().all(|s| s.mentions(key)),
        "the configured origin got the key (in {key_name}), so its absence below means something"
    );
    let leaked = foreign.seen();
    assert!(leaked.iter().all(|s| !s.mentions(key)), "the key reached the other origin: {leaked:?}");
    assert!(leaked.is_empty(), "nothing at all reached the other origin: {leaked:?}");
}

fn vendor_key(vendor: SimVendor) -> &'static str {
    match vendor {
        SimVendor::CanaryGuard => "canaryguard",
        SimVendor::Catchpoint => "catchpoint",
        SimVendor::Rapid7 => "rapid7",
        SimVendor::RedCanary => "red_canary",
        SimVendor::ThinkstCanary => "thinkst_canary",
        _ => unreachable!("a vendor this test does not know"),
    }
}

#[tokio::test]
async fn canaryguard_refuses_a_redirect_to_another_origin() {
    a_foreign_redirect_is_refused(SimVendor::CanaryGuard, "Authorization", "", 302).await;
}

#[tokio::test]
async fn catchpoint_refuses_a_redirect_to_another_origin() {
    a_foreign_redirect_is_refused(SimVendor::Catchpoint, "Authorization", "", 301).await;
}

#[tokio::test]
async fn rapid7_refuses_a_redirect_to_another_origin() {
    // The alerts search is a POST: a 307 would repeat it, body and key.
    a_foreign_redirect_is_refused(SimVendor::Rapid7, "X-Api-Key", "", 307).await;
}

#[tokio::test]
async fn red_canary_refuses_a_redirect_to_another_origin() {
    a_foreign_redirect_is_refused(SimVendor::RedCanary, "X-API-Key", "", 302).await;
}

#[tokio::test]
async fn thinkst_canary_refuses_a_redirect_to_another_origin() {
    a_foreign_redirect_is_refused(SimVendor::ThinkstCanary, "X-Canary-Auth-Token", "", 308).await;
}

#[tokio::test]
async fn thinkst_canary_with_the_key_in_the_query_refuses_a_redirect_to_another_origin() {
    let extra = "[source.options]\nauth = \"query\"";
    a_foreign_redirect_is_refused(SimVendor::ThinkstCanary, "auth_token", extra, 302).await;
}

/// A poll of `vendor`'s simulator whose first data request is redirected
/// (307) within the origin delivers every item.
async fn a_same_origin_redirect_is_followed(vendor: SimVendor) {
    let config = SimConfig { seed: 3, initial_items: 12, ..SimConfig::for_vendor(vendor) };
    let sim = Simulator::start_at(vendor, config, chrono::Utc::now() - chrono::TimeDelta::minutes(5))
        .await
        .unwrap();
    sim.inject(Fault::SameOriginRedirect, 1);
    let dir = tempfile::tempdir().unwrap();
    let key = vendor.default_api_key();
    let cfg = common::config(dir.path(), None, vendor_key(vendor), &sim.base_url(), key, "page_size = 5");

    let report = run_once(&cfg).await.unwrap_or_else(|e| panic!("{}: {e}", vendor_key(vendor)));
    assert!(report.complete, "{report:?}");
    assert_eq!(report.items, 12, "{}: every item, {report:?}", vendor_key(vendor));
    let requests = sim.requests();
    let redirected = requests.iter().position(|r| r.status == 307).expect("the redirect was answered");
    let followed = &requests[redirected + 1];
    assert!(
        followed.query.as_deref().is_some_and(|q| q.ends_with(SAME_ORIGIN_REDIRECT_MARKER)),
        "the next request is the redirect's target: {followed:?}"
    );
    assert_eq!(followed.path, requests[redirected].path);
}

#[tokio::test]
async fn a_redirect_within_the_origin_is_followed_for_every_vendor() {
    for vendor in [
        SimVendor::CanaryGuard,
        SimVendor::Catchpoint,
        SimVendor::Rapid7,
        SimVendor::RedCanary,
        SimVendor::ThinkstCanary,
    ] {
        a_same_origin_redirect_is_followed(vendor).await;
    }
}

/// A server that answers every request 200 `application/json` with no
/// length and then `[` until the client hangs up; counts the bytes sent.
async fn endless_body() -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 8192];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'['; 64 * 1024];
                while socket.write_all(&chunk).await.is_ok() {
                    counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
            });
        }
    });
    (origin, sent)
}

/// `VmHWM` (peak resident set) of `pid` in KiB, while it runs.
fn peak_rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Run `alertd run --once` against an endless body with `limit` (`None`:
/// the default); its stderr, exit code and peak RSS in KiB (the kernel's
/// figure for the reaped child, and the largest `VmHWM` sampled).
async fn run_against_an_endless_body(dir: &Path, limit: Option<u64>) -> (String, i32, u64, u64, u64) {
    let (origin, sent) = endless_body().await;
    let setting = limit.map(|n| format!("max_response_bytes = {n}\n")).unwrap_or_default();
    let text = format!(
        "[state]\npath = \"{}\"\n\n[service]\nlisten = \"off\"\n\n[[source]]\nvendor = \"canaryguard\"\nname = \"acme\"\n\
         base_url = \"{origin}\"\ncredential = {{ env = \"ALERTD_TEST_KEY\" }}\nretries = 0\ntimeout = \"120s\"\n{setting}",
        dir.join("state.sqlite").display()
    );
    let config = dir.join("alertd.toml");
    std::fs::write(&config, text).unwrap();
    let stderr_path = dir.join("stderr.log");
    let child = Command::new(common::alertd_bin())
        .args(["run", "--once", "-c"])
        .arg(&config)
        .env("ALERTD_TEST_KEY", alertd::sim::CANARYGUARD_DEMO_KEY)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    let (code, kernel_peak, sampled_peak) = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut sampled = 0;
        loop {
            sampled = sampled.max(peak_rss_kib(pid).unwrap_or(0));
            let mut status = 0;
            // SAFETY: an all-zero rusage is a valid value of the plain C struct.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: `pid` is our own child, reaped only here; both pointers are valid.
            let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
            if reaped == pid {
                let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
                return (code, u64::try_from(usage.ru_maxrss).unwrap_or(0), sampled);
            }
            if Instant::now() > deadline {
                // SAFETY: sending a signal to our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("alertd did not stop within 180s (peak so far {sampled} KiB)");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    })
    .await
    .unwrap();
    drop(child);
    let mut stderr = String::new();
    std::fs::File::open(&stderr_path).unwrap().read_to_string(&mut stderr).unwrap();
    let sent = sent.load(Ordering::Relaxed);
    eprintln!(
        "limit {limit:?}: exit {code}, peak RSS {kernel_peak} KiB (sampled {sampled_peak} KiB), {sent} bytes sent"
    );
    (stderr, code, kernel_peak, sampled_peak, sent)
}

const PEAK_RSS_LIMIT_KIB: u64 = 100 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_body_stops_at_a_small_max_response_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (stderr, code, peak, sampled, sent) = run_against_an_endless_body(dir.path(), Some(1 << 20)).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("acme: FAILED"), "{stderr}");
    assert!(stderr.contains("larger than max_response_bytes (1048576 bytes)"), "{stderr}");
    assert!(sent >= 1 << 20, "the body was read up to the limit ({sent} bytes sent)");
    assert!(
        peak < PEAK_RSS_LIMIT_KIB && sampled < PEAK_RSS_LIMIT_KIB,
        "peak RSS {peak} KiB (sampled {sampled})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_body_stops_at_the_default_32_mib() {
    let dir = tempfile::tempdir().unwrap();
    let (stderr, code, peak, sampled, sent) = run_against_an_endless_body(dir.path(), None).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("larger than max_response_bytes (33554432 bytes)"), "{stderr}");
    assert!(sent >= 32 << 20, "the body was read up to the limit ({sent} bytes sent)");
    assert!(
        peak < PEAK_RSS_LIMIT_KIB && sampled < PEAK_RSS_LIMIT_KIB,
        "peak RSS {peak} KiB (sampled {sampled})"
    );
    assert!(peak > 32 * 1024, "the measure sees the 32 MiB read ({peak} KiB)");
}

/// A long non-ASCII `<title>`, not closed in the first 4 KiB (the cut that
/// panicked), through the whole response path; for an error status and 200.
#[tokio::test]
async fn a_long_non_ascii_html_title_is_an_error_message_not_a_panic() {
    for status in [502u16, 200] {
        let page = format!("<!DOCTYPE html><html><head><title>x{}</head>", "é".repeat(3000));
        let status_code = StatusCode::from_u16(status).unwrap();
        let err = canaryguard_poll_error(status_code, "text/html; charset=utf-8", page).await;
        let text = err.to_string();
        assert_eq!(err.code(), "html_page", "{text}");
        assert!(
            text.contains(&format!("HTTP {status}: the server answered with an HTML page (\"xéééé")),
            "{text}"
        );
        assert!(text.chars().count() < 500, "{text}");
    }
}

/// The error of one CanaryGuard poll (`run_once`) of a server that answers
/// every request with `status`, `content_type` and `body`.
async fn canaryguard_poll_error(status: StatusCode, content_type: &'static str, body: String) -> PollError {
    let server = Recorder::start(move |_| {
        (status, [(header::CONTENT_TYPE, content_type)], body.clone()).into_response()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key = alertd::sim::CANARYGUARD_DEMO_KEY;
    let cfg = common::config(dir.path(), None, "canaryguard", &server.origin, key, "");
    run_once(&cfg).await.unwrap_err()
}

/// Answers of 16 KiB or more are parsed on a blocking thread beside the
/// walk: one nested 200,000 levels deep (and one that is just long and
/// unfinished) is a clear JSON error of its source, and the poll returns
/// instead of overflowing the thread's stack or panicking.
#[tokio::test]
async fn a_large_endlessly_nested_answer_is_a_json_error_on_the_parse_thread() {
    for (name, body) in [
        ("nested", "[".repeat(200_000)),
        ("long", format!("{{\"data\": [{}", "{\"id\": \"x\"},".repeat(20_000))),
    ] {
        assert!(body.len() >= 16 * 1024, "{name}: large enough for the blocking-thread parse");
        let err = canaryguard_poll_error(StatusCode::OK, "application/json", body).await;
        let text = err.to_string();
        assert_eq!(err.code(), "invalid_json", "{name}: {text}");
        assert!(!text.contains("panicked"), "{name}: {text}");
        if name == "nested" {
            assert!(text.contains("recursion limit exceeded"), "{name}: {text}");
        }
    }
}
