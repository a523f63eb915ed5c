//! Faults of every kind, key rotation, and keys kept out of every log line.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use alertd::daemon::{self, Mode};
use alertd::sim::{CANARYGUARD_DEMO_KEY, Fault};
use tokio_util::sync::CancellationToken;

use common::{NatsServer, alertd_bin, stream_messages};

/// Every fault the simulator can inject, in one backfill, polled until the
/// walk completes: the stream ends up holding every alert exactly once, and
/// the broken item as a dead letter.
#[tokio::test]
async fn a_backfill_through_every_fault_delivers_every_alert_exactly_once() {
    let nats = NatsServer::start();
    let sim = common::canaryguard(60).await;
    let faults = [
        (Fault::RateLimited { retry_after_secs: 1 }, 1),
        (Fault::Unavailable, 3),
        (Fault::HtmlError, 1),
        (Fault::Slow(Duration::from_millis(300)), 1),
        (Fault::TruncatedJson, 1),
        (Fault::MalformedItem, 1),
        (Fault::Unauthorized, 1),
    ];
    for (fault, times) in &faults {
        sim.inject(fault.clone(), *times);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::canaryguard_config(dir.path(), Some(&nats.url()), &sim, "page_size = 6");
    cfg.sources[0].retries = 4;
    let mut polls = 0;
    let mut errors = Vec::new();
    loop {
        polls += 1;
        let mut results = daemon::run(&cfg, None, Mode::Once, CancellationToken::new()).await.unwrap();
        match results.remove(0).1 {
            Ok(report) if report.complete => break,
            Ok(_) => {}
            Err(e) => errors.push(e.code().to_owned()),
        }
        assert!(polls < 10, "the backfill never completed: {errors:?}");
    }
    // The first page meets 429, three 503s and an HTML 500 in a row: five
    // transient failures exhaust its 4 retries. Truncated JSON and a refused
    // key are not retried at all. Each failed poll leaves the cursor at the
    // last committed page, and the next one resumes there.
    assert_eq!(errors, ["html_page", "invalid_json", "auth"], "poll failures");

    let messages = stream_messages(&nats.url(), "ALERTD").await;
    let dead = messages.iter().filter(|m| m.subject.contains(".deadletter.")).count();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for m in messages.iter().filter(|m| !m.subject.contains(".deadletter.")) {
        *counts.entry(m.payload["native_id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let truth: Vec<String> =
        sim.ground_truth().iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect();
    let missing: Vec<_> = truth.iter().filter(|id| !counts.contains_key(*id)).collect();
    assert!(counts.values().all(|n| *n == 1), "duplicates: {counts:?}");
    assert_eq!(dead, 1, "the malformed item is a dead letter");
    // The malformed copy had no id; the real item behind it is the one missing.
    assert_eq!(missing.len(), 1, "only the dead-lettered alert is missing: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_file_is_used_by_the_next_poll_without_a_restart() {
    let sim = common::canaryguard(4).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "cg_live_expired00000000000000000000000000000000\n").unwrap();
    let config_path = dir.path().join("alertd.toml");
    std::fs::write(
        &config_path,
        format!(
            "[state]\npath = \"{}\"\n[service]\nlisten = \"off\"\n[[source]]\nvendor = \"canaryguard\"\nname = \"acme\"\n\
             base_url = \"{}\"\ncredential = {{ file = \"{}\" }}\nschedule = \"every 1s\"\njitter = \"0s\"\nretries = 0\n\
             initial_lookback = \"72h\"\n",
            dir.path().join("s.sqlite").display(),
            sim.base_url(),
            key_file.display()
        ),
    )
    .unwrap();
    let child = Command::new(alertd_bin())
        .args(["run", "-c"])
        .arg(&config_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(sim.requests().iter().all(|r| r.status == 401), "the old key is refused");
    std::fs::write(&key_file, format!("{CANARYGUARD_DEMO_KEY}\n")).unwrap();
    // A reload signal must not stop the daemon.
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "still running after SIGHUP, and stopped cleanly by SIGTERM");
    assert!(sim.requests().iter().any(|r| r.status == 200), "the new key was used");
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 4, "all alerts delivered");
}

/// At trace level, with failures and successes, no API key appears in any
/// log line or error: not in headers, not in URLs, not in Debug output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_appears_in_trace_logs_or_errors() {
    let nats = NatsServer::start();
    let sim = common::canaryguard(8).await;
    sim.inject(Fault::Unauthorized, 1);
    sim.inject(Fault::HtmlError, 1);
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("alertd.toml");
    std::fs::write(
        &config_path,
        format!(
            "[nats]\nurl = \"{}\"\ntoken = {{ env = \"NATS_TOKEN\" }}\n[state]\npath = \"{}\"\n[service]\nlisten = \"off\"\n\
             [[source]]\nvendor = \"canaryguard\"\nname = \"acme\"\nbase_url = \"{}\"\n\
             credential = {{ env = \"CG_KEY\" }}\nretries = 1\n",
            nats.url(),
            dir.path().join("s.sqlite").display(),
            sim.base_url()
        ),
    )
    .unwrap();
    let mut outputs = Vec::new();
    for _ in 0..2 {
        outputs.push(
            Command::new(alertd_bin())
                .args(["--log", "trace", "--log-format", "json", "run", "--once", "-c"])
                .arg(&config_path)
                .env("CG_KEY", CANARYGUARD_DEMO_KEY)
                .env("NATS_TOKEN", "nats-secret-token-4242")
                .output()
                .unwrap(),
        );
    }
    let all: String = outputs
        .iter()
        .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
        .collect();
    assert!(all.lines().count() > 50, "trace logging produced output");
    assert!(all.contains("HTTP 401"), "the auth failure was logged");
    let secret_part = &CANARYGUARD_DEMO_KEY[8..];
    assert!(!all.contains(secret_part), "the API key leaked into logs");
    assert!(!all.contains("nats-secret-token-4242"), "the NATS token leaked into logs");
}
