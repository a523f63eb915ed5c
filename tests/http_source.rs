//! The declarative `http` vendor against the built-in vendors' simulators:
//! each definition in `config/http/` yields the same (native id, revision)
//! set as the built-in vendor, exactly once across polls, restarts and the
//! simulator's faults, with a malformed item in the dead letters.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use alertd::config::{Config, CredentialSource};
use alertd::daemon::{self, Mode};
use alertd::sim::{Fault, SimConfig, SimVendor, Simulator};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use common::poll::run_once;
use common::{NatsServer, stream_messages};

/// One definition and the simulator it reproduces.
struct Case {
    definition: &'static str,
    vendor: SimVendor,
    /// `[[source]]` settings for both sources (page size, vendor options).
    extra: &'static str,
    /// Options only the built-in source takes.
    builtin_extra: &'static str,
}

fn definition_text(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/http").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn header(dir: &Path, nats: &str) -> String {
    format!(
        "[nats]\nurl = \"{nats}\"\nstream = \"ALERTD\"\nack_timeout = \"2s\"\n\n[state]\npath = \"{}\"\n\n[service]\nlisten = \"off\"\n\n",
        dir.join("state.sqlite").display()
    )
}

const COMMON: &str =
    "schedule = \"every 1s\"\njitter = \"0s\"\nlag = \"0s\"\ninitial_lookback = \"72h\"\nretries = 0\n";

fn finish(text: &str, api_key: &str) -> Config {
    let mut config = alertd::registry::parse(text, "test.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    config.sources[0].rate_limits = Some(Vec::new());
    config.sources[0].credential = CredentialSource::Inline(SecretString::from(api_key.to_owned()));
    config
}

/// The shipped definition's text at `sim`, with the test's settings and
/// `credential` as its credential line.
fn definition_at(case: &Case, sim: &Simulator, credential: &str, extra: &str) -> String {
    let mut text = String::new();
    let mut in_source = false;
    for line in definition_text(case.definition).lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        if line.starts_with('[') {
            in_source = line.trim() == "[[source]]";
        }
        if in_source && key == "base_url" {
            text.push_str(&format!("base_url = \"{}\"\n", sim.base_url()));
        } else if in_source && key == "credential" {
            text.push_str(&format!("{credential}\n{COMMON}{extra}\n"));
        } else if in_source && (key == "page_size" && extra.contains("page_size") || key == "rate_limits") {
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

/// The shipped definition at `sim`, with the test's settings.
fn http_config(dir: &Path, nats: &str, case: &Case, sim: &Simulator) -> Config {
    let text = header(dir, nats) + &definition_at(case, sim, "credential = { env = \"UNUSED\" }", case.extra);
    finish(&text, case.vendor.default_api_key())
}

/// The built-in vendor's source at `sim`.
fn builtin_config(dir: &Path, nats: &str, case: &Case, sim: &Simulator) -> Config {
    let text = format!(
        "{}[[source]]\nvendor = \"{key}\"\nname = \"builtin\"\nbase_url = \"{}\"\ncredential = {{ env = \"UNUSED\" }}\n{COMMON}{}\n{}\n",
        header(dir, nats),
        sim.base_url(),
        case.extra,
        case.builtin_extra,
        key = case.vendor.key(),
    );
    finish(&text, case.vendor.default_api_key())
}

/// (native id, revision) → how often, on subjects starting with `prefix`.
async fn revisions(nats: &str, prefix: &str) -> HashMap<(String, String), usize> {
    let mut out = HashMap::new();
    for m in stream_messages(nats, "ALERTD").await {
        if !m.subject.starts_with(prefix) {
            continue;
        }
        assert_eq!(m.msg_id.as_deref(), m.payload["id"].as_str(), "Nats-Msg-Id is the event id");
        let key = (
            m.payload["native_id"].as_str().expect("native_id").to_owned(),
            m.payload["revision"].as_str().expect("revision").to_owned(),
        );
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

fn once(counts: &HashMap<(String, String), usize>) -> HashSet<(String, String)> {
    let dupes: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dupes.is_empty(), "duplicates: {dupes:?}");
    counts.keys().cloned().collect()
}

async fn simulator(vendor: SimVendor, items: usize) -> Simulator {
    let config = SimConfig { seed: 23, initial_items: items, ..SimConfig::for_vendor(vendor) };
    Simulator::start(vendor, config).await.expect("simulator starts")
}

/// Poll until a walk completes (each poll a fresh daemon: a restart).
async fn until_complete(config: &Config) -> Vec<String> {
    let mut errors = Vec::new();
    for _ in 0..12 {
        let mut results = daemon::run(config, None, Mode::Once, CancellationToken::new()).await.unwrap();
        match results.remove(0).1 {
            Ok(report) if report.complete => return errors,
            Ok(_) => {}
            Err(e) => errors.push(e.code().to_owned()),
        }
    }
    panic!("the walk never completed: {errors:?}");
}

/// Built-in and declarative source over one simulator: the same set, each
/// once, across a second poll after new items and a third with nothing new.
async fn equivalence(case: Case) {
    let nats = NatsServer::start();
    let sim = simulator(case.vendor, 37).await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let builtin = builtin_config(a.path(), &nats.url(), &case, &sim);
    let http = http_config(b.path(), &nats.url(), &case, &sim);
    let builtin_prefix = format!("alertd.{}.builtin.", case.vendor.key());
    let http_prefix = format!("alertd.http.{}.", http.sources[0].name());

    let first = run_once(&http).await.expect("first declarative poll");
    assert!(first.complete && first.published > 0, "{first:?}");
    run_once(&builtin).await.expect("built-in poll");
    sim.add_items(5);
    sim.update_items(4);
    // Windows in whole seconds (Catchpoint) end at the second the poll
    // starts: items stamped in that same second belong to the next window.
    // Past the next second boundary, both sources' windows hold them.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    run_once(&http).await.expect("second declarative poll (a restart)");
    run_once(&builtin).await.expect("second built-in poll");
    let third = run_once(&http).await.expect("third declarative poll");
    assert_eq!(third.published, 0, "nothing new: nothing published ({third:?})");

    let builtin_set = once(&revisions(&nats.url(), &builtin_prefix).await);
    let http_set = once(&revisions(&nats.url(), &http_prefix).await);
    assert!(builtin_set.len() >= 37, "{} built-in events", builtin_set.len());
    let only_builtin: Vec<_> = builtin_set.difference(&http_set).collect();
    let only_http: Vec<_> = http_set.difference(&builtin_set).collect();
    assert!(
        only_builtin.is_empty() && only_http.is_empty(),
        "the sets differ: only built-in {only_builtin:?}, only declarative {only_http:?}"
    );
}

/// Faults on the declarative source's backfill: each failed poll resumes
/// where the last committed page left it; the malformed item is a dead
/// letter; every other item arrives once.
async fn faults(case: Case) {
    let nats = NatsServer::start();
    let sim = simulator(case.vendor, 30).await;
    let dir = tempfile::tempdir().unwrap();
    let mut http = http_config(dir.path(), &nats.url(), &case, &sim);
    http.sources[0].retries = 1;
    for (fault, times) in [
        (Fault::RateLimited { retry_after_secs: 1 }, 1),
        (Fault::Unavailable, 2),
        (Fault::HtmlError, 1),
        (Fault::TruncatedJson, 1),
        (Fault::MalformedItem, 1),
    ] {
        sim.inject(fault, times);
    }
    let errors = until_complete(&http).await;
    assert!(errors.contains(&"invalid_json".to_owned()), "truncated JSON fails a poll: {errors:?}");
    let prefix = format!("alertd.http.{}.", http.sources[0].name());
    let got = once(&revisions(&nats.url(), &prefix).await);
    let dead: Vec<_> = stream_messages(&nats.url(), "ALERTD")
        .await
        .into_iter()
        .filter(|m| m.subject.starts_with("alertd.deadletter."))
        .collect();
    assert_eq!(dead.len(), 1, "the malformed item is a dead letter");
    assert!(dead[0].subject.starts_with("alertd.deadletter.http"), "{}", dead[0].subject);
    // One item is missing: the one the simulator broke.
    assert_eq!(got.len(), sim.ground_truth().len() - 1, "every other item once");
}

fn canaryguard() -> Case {
    Case {
        definition: "canaryguard.toml",
        vendor: SimVendor::CanaryGuard,
        extra: "page_size = 6",
        builtin_extra: "",
    }
}

#[tokio::test]
async fn canaryguard_definition_matches_the_builtin_vendor() {
    equivalence(canaryguard()).await;
}

#[tokio::test]
async fn canaryguard_definition_survives_the_simulators_faults() {
    faults(canaryguard()).await;
}

/// The events a definition makes of a simulator's seeded items, reviewed
/// as golden files (`tests/golden/http/<definition>-<n>.json`). Not for Red
/// Canary (its items link to the simulator's random port) nor Rapid7 (its
/// seeded set is alerts; the definition reads investigations).
async fn golden(case: &Case, stem: &str) {
    use alertd::vendors::http::HttpSource;
    use alertd::vendors::{NormalizeContext, Vendor, instantiate};
    use chrono::TimeZone;
    let text: String = definition_text(case.definition);
    let config = alertd::registry::parse(&text, case.definition).expect("the shipped definition loads");
    let vendor = instantiate::<HttpSource>(&config.sources[0]).expect("vendor");
    let ctx = NormalizeContext::new("acme", chrono::Utc.with_ymd_and_hms(2026, 3, 28, 0, 0, 0).unwrap());
    let items = common::golden::simulated_items(case.vendor, 11, 6).await;
    let events: Vec<serde_json::Value> = items
        .iter()
        .map(|item| serde_json::to_value(vendor.normalize(item, &ctx).expect("normalizes").event).unwrap())
        .collect();
    common::golden::check("http", stem, &items, &events);
}

#[tokio::test]
async fn canaryguard_definition_golden_events() {
    golden(&canaryguard(), "canaryguard").await;
}

fn red_canary() -> Case {
    Case {
        definition: "red_canary.toml",
        vendor: SimVendor::RedCanary,
        extra: "page_size = 7",
        builtin_extra: "",
    }
}

fn thinkst_canary() -> Case {
    Case {
        definition: "thinkst_canary.toml",
        vendor: SimVendor::ThinkstCanary,
        extra: "page_size = 7",
        builtin_extra: "",
    }
}

fn catchpoint() -> Case {
    Case {
        definition: "catchpoint.toml",
        vendor: SimVendor::Catchpoint,
        extra: "page_size = 7",
        builtin_extra: "",
    }
}

fn rapid7() -> Case {
    Case {
        definition: "rapid7.toml",
        vendor: SimVendor::Rapid7,
        extra: "page_size = 7",
        builtin_extra: "[source.options]\nendpoint = \"investigations\"\n",
    }
}

#[tokio::test]
async fn red_canary_definition_matches_the_builtin_vendor() {
    equivalence(red_canary()).await;
}

#[tokio::test]
async fn red_canary_definition_survives_the_simulators_faults() {
    faults(red_canary()).await;
}

#[tokio::test]
async fn thinkst_canary_definition_matches_the_builtin_vendor() {
    equivalence(thinkst_canary()).await;
}

#[tokio::test]
async fn thinkst_canary_definition_survives_the_simulators_faults() {
    faults(thinkst_canary()).await;
}

#[tokio::test]
async fn catchpoint_definition_matches_the_builtin_vendor() {
    equivalence(catchpoint()).await;
}

#[tokio::test]
async fn catchpoint_definition_survives_the_simulators_faults() {
    faults(catchpoint()).await;
}

#[tokio::test]
async fn rapid7_definition_matches_the_builtin_vendor() {
    equivalence(rapid7()).await;
}

#[tokio::test]
async fn rapid7_definition_survives_the_simulators_faults() {
    faults(rapid7()).await;
}

#[tokio::test]
async fn thinkst_canary_definition_golden_events() {
    golden(&thinkst_canary(), "thinkst_canary").await;
}

#[tokio::test]
async fn catchpoint_definition_golden_events() {
    golden(&catchpoint(), "catchpoint").await;
}

/// `alertd preview`: pages fetched and normalized, the malformed item shown
/// with its reason, nothing published and no state written.
#[tokio::test]
async fn preview_prints_events_and_would_be_dead_letters_without_committing() {
    for case in [canaryguard(), red_canary(), thinkst_canary(), catchpoint(), rapid7()] {
        let sim = simulator(case.vendor, 30).await;
        let dir = tempfile::tempdir().unwrap();
        let config = http_config(dir.path(), "nats://127.0.0.1:1", &case, &sim);
        sim.inject(Fault::MalformedItem, 1);
        let (mut out, mut summary) = (Vec::new(), Vec::new());
        let name = config.sources[0].name().to_owned();
        let complete =
            alertd::preview::run(&config, &name, 2, &mut out, &mut summary).await.expect("preview");
        assert!(!complete, "{}: 30 items take more than 2 pages", case.definition);
        let lines: Vec<serde_json::Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let dead: Vec<_> = lines.iter().filter(|l| l.get("dead_letter").is_some()).collect();
        assert_eq!(dead.len(), 1, "{}: the malformed item, with its reason", case.definition);
        assert!(dead[0]["dead_letter"]["reason"].as_str().is_some_and(|r| !r.is_empty()));
        let per_page = config.sources[0].page_size as usize;
        assert_eq!(lines.len(), 2 * per_page, "{}: two full pages", case.definition);
        assert!(
            lines.iter().filter(|l| l.get("dead_letter").is_none()).all(|e| e["source"]["vendor"] == "http")
        );
        let summary = String::from_utf8(summary).unwrap();
        assert!(summary.contains("page 2") && summary.contains("nothing was published"), "{summary}");
        assert!(!dir.path().join("state.sqlite").exists(), "no state written");
        let stats = sim.requests().len();
        assert!(stats >= 2, "two pages asked for");
    }
}

/// `alertd check-config` on a broken definition: file, line and field.
#[test]
fn check_config_names_file_line_and_field_of_a_broken_definition() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    let text = definition_text("thinkst_canary.toml")
        .replace("cursor = \"/cursor/next\"", "cursor = \"cursor.next\"");
    std::fs::write(&path, &text).unwrap();
    let line = text.lines().position(|l| l.contains("cursor = \"cursor.next\"")).unwrap() + 1;
    let output = std::process::Command::new(common::alertd_bin())
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("alertd runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("broken.toml:{line}:")), "{stderr}");
    assert!(stderr.contains("http.pagination.cursor") && stderr.contains("JSON Pointer"), "{stderr}");

    let good = dir.path().join("good.toml");
    std::fs::write(&good, definition_text("thinkst_canary.toml")).unwrap();
    let output =
        std::process::Command::new(common::alertd_bin()).arg("check-config").arg(&good).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// SIGKILL of the real `alertd run` at seeded random points while two
/// declarative sources backfill (Thinkst's cursor walk by `updated_id`,
/// Red Canary's `links.next` walk), restarted each time: nothing missing,
/// nothing twice, no dead letters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_during_declarative_backfills_lose_nothing_and_duplicate_nothing() {
    use rand::{Rng, SeedableRng};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let seed: u64 = std::env::var("ALERTD_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let nats = NatsServer::start();
    let (tc_case, rc_case) = (thinkst_canary(), red_canary());
    let start = |vendor: SimVendor, seed: u64| {
        Simulator::start(vendor, SimConfig { seed, initial_items: 150, ..SimConfig::for_vendor(vendor) })
    };
    let thinkst = start(SimVendor::ThinkstCanary, 5).await.unwrap();
    let red = start(SimVendor::RedCanary, 11).await.unwrap();
    for sim in [&thinkst, &red] {
        sim.inject(Fault::Slow(Duration::from_millis(60)), 100_000);
    }
    let dir = tempfile::tempdir().unwrap();
    let text = header(dir.path(), &nats.url())
        + &definition_at(
            &tc_case,
            &thinkst,
            "credential = { env = \"TC_KEY\" }",
            "page_size = 3\nrate_limits = []",
        )
        + &definition_at(
            &rc_case,
            &red,
            "credential = { env = \"RC_KEY\" }",
            "page_size = 3\nrate_limits = []",
        );
    let config = dir.path().join("alertd.toml");
    std::fs::write(&config, &text).unwrap();
    alertd::registry::load(&config).expect("the config is valid");
    let daemon = |once: bool| {
        let mut command = Command::new(common::alertd_bin());
        command.arg("run");
        if once {
            command.arg("--once");
        }
        command
            .arg("-c")
            .arg(&config)
            .env("TC_KEY", SimVendor::ThinkstCanary.default_api_key())
            .env("RC_KEY", SimVendor::RedCanary.default_api_key())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    let state = dir.path().join("state.sqlite");
    let backfilled = || async {
        let Ok(store) = alertd::checkpoint::Store::open(&state) else { return false };
        for name in ["thinkst-http", "red-canary-http"] {
            let s = store.load(name).await.unwrap();
            if s.walk.is_some() || s.watermark.is_none() {
                return false;
            }
        }
        true
    };
    let (mut kills, mut mid_walk) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(40);
    while !backfilled().await && Instant::now() < deadline {
        let mut child = daemon(false).spawn().unwrap();
        tokio::time::sleep(Duration::from_millis(rng.random_range(60..500))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        if !backfilled().await {
            mid_walk += 1;
        }
    }
    let last = daemon(true).status().unwrap();
    assert!(last.success(), "the final run --once failed: {last:?}");
    assert!(backfilled().await, "both backfills complete");

    let tc = once(&revisions(&nats.url(), "alertd.http.thinkst-http.").await);
    let tc_truth: HashSet<(String, String)> = thinkst
        .ground_truth()
        .iter()
        .map(|i| (i["id"].as_str().unwrap().to_owned(), i["updated_id"].to_string()))
        .collect();
    assert_eq!(tc, tc_truth, "thinkst: every incident revision once, seed {seed}");
    let rc = once(&revisions(&nats.url(), "alertd.http.red-canary-http.").await);
    let rc_ids: HashSet<String> = rc.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(rc.len(), rc_ids.len(), "one revision per detection");
    let rc_truth: HashSet<String> = red.ground_truth().iter().map(|d| d["id"].to_string()).collect();
    assert_eq!(rc_ids, rc_truth, "red canary: every detection once, seed {seed}");
    let dead = stream_messages(&nats.url(), "ALERTD")
        .await
        .into_iter()
        .filter(|m| m.subject.starts_with("alertd.deadletter."))
        .count();
    assert_eq!(dead, 0, "no dead letters");
    eprintln!("seed {seed}: {kills} SIGKILLs, {mid_walk} with a backfill unfinished");
    assert!(mid_walk >= 5, "only {mid_walk} kills landed mid-backfill");
}

/// `alertd demo` runs one declarative source (the CanaryGuard definition)
/// beside the built-in ones, over the same simulator: the same alerts.
#[test]
fn the_demo_runs_a_declarative_source_beside_the_builtin_ones() {
    let output = std::process::Command::new(common::alertd_bin())
        .args(["demo", "--items", "8", "--seed", "4"])
        .output()
        .expect("demo runs");
    assert!(output.status.success(), "demo failed: {}", String::from_utf8_lossy(&output.stderr));
    let events: Vec<serde_json::Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ids = |vendor: &str| -> HashSet<String> {
        events
            .iter()
            .filter(|e| e["source"]["vendor"] == vendor)
            .map(|e| e["native_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let declarative = ids("http");
    assert_eq!(declarative.len(), 8, "the declarative source's alerts");
    assert_eq!(declarative, ids(SimVendor::CanaryGuard.key()), "the same alerts as the built-in source");
}

/// A GitHub-style API on loopback: `GET /items?since&per_page` (bearer
/// key), a bare JSON array per page, the next page in the `Link` header;
/// `/evil` links to another origin.
async fn link_header_api(items: usize) -> String {
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    let now = chrono::Utc::now();
    let data: Vec<serde_json::Value> = (0..items)
        .map(|i| {
            let t = now - chrono::Duration::minutes(i as i64 + 1);
            serde_json::json!({"id": format!("it-{i}"), "created_at": t.to_rfc3339(), "title": format!("item {i}")})
        })
        .collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    async fn list(
        State((data, base)): State<(std::sync::Arc<Vec<serde_json::Value>>, String)>,
        uri: axum::http::Uri,
        headers: HeaderMap,
        Query(q): Query<HashMap<String, String>>,
    ) -> axum::response::Response {
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer link-key") {
            return (StatusCode::UNAUTHORIZED, "{\"message\":\"bad key\"}").into_response();
        }
        let per_page: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(10);
        let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let since = q.get("since").and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
        let matching: Vec<_> = data
            .iter()
            .filter(|i| {
                let t = chrono::DateTime::parse_from_rfc3339(i["created_at"].as_str().unwrap()).unwrap();
                since.is_none_or(|s| t > s)
            })
            .cloned()
            .collect();
        let slice: Vec<_> = matching.iter().skip((page - 1) * per_page).take(per_page).cloned().collect();
        let mut response = axum::Json(slice).into_response();
        let origin = if uri.path() == "/evil" { "https://elsewhere.example".to_owned() } else { base };
        if page * per_page < matching.len() {
            let since = q.get("since").map(|s| s.replace('+', "%2B").replace(':', "%3A")).unwrap_or_default();
            let link = format!(
                "<{origin}{}?since={since}&per_page={per_page}&page={}>; rel=\"next\", <{origin}/items>; rel=\"first\"",
                uri.path(),
                page + 1
            );
            response.headers_mut().insert("link", link.parse().unwrap());
        }
        response
    }
    let app = axum::Router::new()
        .route("/items", axum::routing::get(list))
        .route("/evil", axum::routing::get(list))
        .with_state((std::sync::Arc::new(data), base.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn link_header_config(dir: &Path, base: &str, path: &str) -> Config {
    let text = format!(
        "[state]\npath = \"{}\"\n[service]\nlisten = \"off\"\n\n[[source]]\nvendor = \"http\"\nname = \"links\"\n\
         base_url = \"{base}\"\ncredential = {{ env = \"UNUSED\" }}\n{COMMON}page_size = 10\n\n\
         [source.http]\n[source.http.request]\npath = \"{path}\"\nquery = {{ since = \"{{window.start}}\", per_page = \"{{page_size}}\" }}\n\
         [source.http.auth]\ntype = \"bearer\"\n[source.http.pagination]\nscheme = \"link_next\"\nnext = \"link_header\"\n\
         [source.http.incremental]\nby = \"time\"\nfield = \"/created_at\"\n[source.http.items]\npath = \"\"\n\
         [source.http.fields]\nid = \"/id\"\ncreated = \"/created_at\"\ntitle = \"{{/title}}\"\n",
        dir.join("state.sqlite").display()
    );
    finish(&text, "link-key")
}

/// Pages chained by the `Link` header: followed on the configured origin
/// to the end, re-read pages skipped; a link to another origin refused.
#[tokio::test]
async fn link_header_pages_are_followed_on_the_origin_only() {
    let base = link_header_api(23).await;
    let dir = tempfile::tempdir().unwrap();
    let config = link_header_config(dir.path(), &base, "/items");
    let first = run_once(&config).await.expect("first poll");
    assert_eq!((first.published, first.pages, first.complete), (23, 3, true), "{first:?}");
    let second = run_once(&config).await.expect("second poll");
    assert_eq!(second.published, 0, "nothing new: {second:?}");

    let dir = tempfile::tempdir().unwrap();
    let evil = link_header_config(dir.path(), &base, "/evil");
    let err = run_once(&evil).await.expect_err("a foreign next link fails the poll");
    assert!(err.to_string().contains("another origin"), "{err}");
}
