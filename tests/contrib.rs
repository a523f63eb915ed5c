//! contrib/: the Prometheus alerting rules and the Grafana dashboard.
//!
//! The rules are checked and unit-tested with Prometheus' own `promtool`
//! (every alert has a firing and a non-firing case in
//! contrib/prometheus/alertd.rules.test.yml); `promtool check metrics` lints
//! a live `/metrics` from a daemon that polled a simulator into a real
//! nats-server; the dashboard is parsed as JSON and every metric its queries
//! (and the rules) name must be one the daemon exports.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{NatsServer, free_port};

fn contrib(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib").join(path)
}

/// `$PROMTOOL`, else `promtool` on PATH; `None` (the test skips, saying so)
/// when neither runs. scripts/test installs Debian's `prometheus` package,
/// which provides it.
fn promtool() -> Option<PathBuf> {
    let bin = std::env::var_os("PROMTOOL").map_or_else(|| PathBuf::from("promtool"), PathBuf::from);
    if Command::new(&bin).arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Some(bin);
    }
    assert!(std::env::var_os("CI").is_none(), "CI must have promtool (scripts/test installs it)");
    eprintln!(
        "SKIP: promtool is not installed (apt-get install prometheus, or set PROMTOOL); the rules were not checked"
    );
    None
}

fn run(bin: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(bin)
        .args(args)
        .current_dir(contrib("prometheus"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.unwrap_or_default().as_bytes()).expect("write stdin");
    drop(input);
    let out = child.wait_with_output().expect("promtool finishes");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The metric names in PromQL `text`: identifiers starting with `alertd_`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("alertd_") {
        let start = i + at;
        let boundary = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            names.insert(text[start..end].to_owned());
        }
        i = end;
    }
    names
}

/// The sample names in a `/metrics` text.
fn sample_names_in(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// `/metrics` of a daemon that polled a CanaryGuard simulator into NATS.
async fn live_metrics() -> String {
    let nats = NatsServer::start();
    let sim = common::canaryguard(12).await;
    // A 429 (throttled seconds) and a broken item (a dead letter), so those
    // families have series too.
    sim.inject(alertd::sim::Fault::RateLimited { retry_after_secs: 1 }, 1);
    sim.inject(alertd::sim::Fault::MalformedItem, 1);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::canaryguard_config(dir.path(), Some(&nats.url()), &sim, "page_size = 5");
    cfg.sources[0].schedule = "every 1h".parse().unwrap();
    cfg.sources[0].retries = 2;
    let port = free_port();
    cfg.service.listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    let daemon = common::poll::RunningDaemon::start(&cfg);
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            let text = r.text().await.unwrap_or_default();
            if text.contains("alertd_polls_total{") && text.contains("result=\"ok\"") {
                break text;
            }
        }
        assert!(Instant::now() < deadline, "no poll was counted within 30s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    daemon.stop().await;
    metrics
}

#[test]
fn the_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    let (ok, out) = run(&promtool, &["check", "rules", "alertd.rules.yml"], None);
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = run(&promtool, &["test", "rules", "alertd.rules.test.yml"], None);
    assert!(ok, "promtool test rules:\n{out}");

    // Every alert has a case where it fires and one where it does not, and
    // a summary, a description naming the source (or the instance, for
    // instance-wide alerts) and a runbook section that exists. (Read line
    // by line: both files keep one key per line, and promtool has parsed
    // them above.)
    let rules = std::fs::read_to_string(contrib("prometheus/alertd.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(contrib("prometheus/alertd.rules.test.yml")).unwrap();
    let operations =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"))
            .expect("docs/operations.md");
    let anchors: BTreeSet<String> = operations
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect();
    // (alertname, fires) for every case of the unit tests.
    let mut cases = Vec::new();
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(name) = line.strip_prefix("alertname: ") {
            let expect = lines[i + 1];
            assert!(expect.starts_with("exp_alerts:"), "{name}: alertname is followed by exp_alerts");
            cases.push((name.to_owned(), expect != "exp_alerts: []"));
        }
    }
    let mut alerts = 0;
    for block in rules.split("- alert: ").skip(1) {
        let name = block.lines().next().unwrap().trim();
        alerts += 1;
        let field = |key: &str| -> String {
            let mut out = String::new();
            let mut inside = false;
            for line in block.lines() {
                let t = line.trim();
                if t.starts_with(&format!("{key}:")) {
                    inside = true;
                    out.push_str(t[key.len() + 1..].trim().trim_start_matches(">-"));
                } else if inside
                    && t.split_once(':').is_some_and(|(k, _)| {
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    })
                {
                    break;
                } else if inside {
                    out.push(' ');
                    out.push_str(t);
                }
            }
            out.trim().to_owned()
        };
        assert!(!field("summary").is_empty(), "{name}: no summary");
        let description = field("description");
        assert!(
            description.contains("{{ $labels.source }}") || description.contains("{{ $labels.instance }}"),
            "{name}: the description names neither the source nor the instance: {description}"
        );
        let runbook = field("runbook");
        let anchor = runbook
            .strip_prefix("docs/operations.md#")
            .unwrap_or_else(|| panic!("{name}: runbook {runbook}"));
        assert_eq!(anchor, name.to_lowercase(), "{name}: the runbook anchor is the alert's name");
        assert!(anchors.contains(anchor), "{name}: docs/operations.md has no section #{anchor}");
        let fires = cases.iter().any(|(n, f)| n == name && *f);
        let quiet = cases.iter().any(|(n, f)| n == name && !*f);
        assert!(
            fires && quiet,
            "{name}: needs a firing and a non-firing case (fires {fires}, quiet {quiet})"
        );
    }
    assert_eq!(alerts, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_finds_no_problem_in_the_live_metrics() {
    let Some(promtool) = promtool() else { return };
    let metrics = live_metrics().await;
    let (ok, out) = run(&promtool, &["check", "metrics"], Some(&metrics));
    assert!(ok && out.trim().is_empty(), "promtool check metrics:\n{out}\n---\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_rules_name_only_exported_metrics() {
    // What alertd can export (its registry, whether or not a family has a
    // series yet), checked against what a live daemon does export.
    let exported: BTreeSet<String> =
        alertd::telemetry::Metrics::default().sample_names().into_iter().collect();
    let live = sample_names_in(&live_metrics().await);
    for name in [
        "alertd_polls_total",
        "alertd_puback_latency_seconds_bucket",
        "alertd_dead_letters_total",
        "alertd_throttled_seconds_total",
        "alertd_source_healthy",
    ] {
        assert!(live.contains(name), "the live /metrics lacks {name}: {live:?}");
    }
    let strays: Vec<_> = live.difference(&exported).collect();
    assert!(strays.is_empty(), "the live /metrics has samples the registry does not list: {strays:?}");

    let text = std::fs::read_to_string(contrib("grafana/alertd.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(dashboard["title"].as_str().is_some_and(|t| t.contains("alertd")));
    let mut exprs = Vec::new();
    let mut titles = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        if let Some(title) = panel["title"].as_str() {
            titles.insert(title.to_lowercase());
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().expect("every target has a PromQL expr").to_owned());
        }
    }
    for templating in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(query) = templating["query"].as_str() {
            exprs.push(query.to_owned());
        }
    }
    for want in ["freshness", "events", "throttl", "dead letters", "puback", "lease"] {
        assert!(titles.iter().any(|t| t.contains(want)), "no panel about {want}: {titles:?}");
    }
    let mut used = BTreeSet::new();
    for expr in &exprs {
        used.extend(metric_names(expr));
    }
    let rules = std::fs::read_to_string(contrib("prometheus/alertd.rules.yml")).unwrap();
    let in_rules: BTreeSet<String> = rules
        .lines()
        .filter(|l| {
            !l.trim_start().starts_with('#') && !l.contains("summary:") && !l.contains("description:")
        })
        .flat_map(metric_names)
        .collect();
    assert!(used.len() >= 10, "the dashboard queries few metrics: {used:?}");
    let unknown: Vec<_> = used.union(&in_rules).filter(|n| !exported.contains(*n)).collect();
    assert!(unknown.is_empty(), "not exported by alertd: {unknown:?}\nexported: {exported:?}");
}
