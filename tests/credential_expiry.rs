//! Catchpoint keys are JWTs that expire: alertd exports the expiry as
//! `alertd_credential_expiry_timestamp_seconds`, warns ahead of it (14 days
//! by default, `credential_expiry_warning` per source) and shows it in
//! `alertd check`. The key here is a crafted JWT the simulator accepts.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use alertd::daemon::{self, Mode};
use alertd::sim::{SimConfig, SimVendor, Simulator};
use base64::Engine;
use chrono::{TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use common::{config, free_port};

fn jwt(exp: i64) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.{}",
        b64(r#"{"alg":"HS256","typ":"JWT"}"#),
        b64(&format!(r#"{{"sub":"alertd-test","exp":{exp}}}"#)),
        b64("not-a-real-signature")
    )
}

async fn catchpoint(key: &str) -> Simulator {
    let config = SimConfig {
        initial_items: 5,
        api_key: key.to_owned(),
        ..SimConfig::for_vendor(SimVendor::Catchpoint)
    };
    Simulator::start(SimVendor::Catchpoint, config).await.expect("simulator starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_is_a_metric() {
    let exp = (Utc::now() + TimeDelta::days(300)).timestamp();
    let key = jwt(exp);
    let sim = catchpoint(&key).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), None, "catchpoint", &sim.base_url(), &key, "");
    cfg.sources[0].schedule = "every 1h".parse().unwrap();
    let port = free_port();
    cfg.service.listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    let shutdown = CancellationToken::new();
    let sink = common::quiet_sink(&cfg);
    let daemon = tokio::spawn({
        let (cfg, shutdown) = (cfg.clone(), shutdown.clone());
        async move { daemon::run(&cfg, sink, Mode::Forever, shutdown).await }
    });
    let want = format!(
        "alertd_credential_expiry_timestamp_seconds{{source=\"test-catchpoint\",vendor=\"catchpoint\"}} {exp}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.lines().any(|l| l == want) {
            break;
        }
        assert!(Instant::now() < deadline, "no `{want}` within 20s:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    daemon.await.unwrap().unwrap();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_near_expiry_is_warned_about_and_shown_by_check() {
    let expires = Utc::now() + TimeDelta::days(3) + TimeDelta::hours(1);
    let key = jwt(expires.timestamp());
    let sim = catchpoint(&key).await;
    let dir = tempfile::tempdir().unwrap();
    let write = |extra: &str| {
        let path = dir.path().join("alertd.toml");
        std::fs::write(
            &path,
            format!(
                "[state]\npath = \"{}\"\n[service]\nlisten = \"off\"\n[[source]]\nvendor = \"catchpoint\"\nname = \"cp\"\n\
                 base_url = \"{}\"\ncredential = {{ env = \"CP_KEY\" }}\nrate_limits = []\nretries = 0\n{extra}\n",
                dir.path().join("s.sqlite").display(),
                sim.base_url()
            ),
        )
        .unwrap();
        path
    };
    let alertd = |args: &[&str], path: &std::path::Path| {
        Command::new(common::alertd_bin())
            .args(args)
            .arg("-c")
            .arg(path)
            .env("CP_KEY", &key)
            .env("ALERTD_LOG_FORMAT", "text")
            .output()
            .unwrap()
    };

    let path = write("");
    let run = alertd(&["run", "--once"], &path);
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{log}");
    assert!(log.contains("The API key expires soon") && log.contains("days_left=3"), "{log}");
    assert!(!log.contains(&key), "the key is never logged");

    let check = alertd(&["check"], &path);
    let table = String::from_utf8_lossy(&check.stdout);
    let date = expires.format("%Y-%m-%d").to_string();
    assert!(table.contains(&format!("key expires {date} (in 3 days)")), "{table}");

    let path = write("credential_expiry_warning = \"1d\"");
    let run = alertd(&["run", "--once"], &path);
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{log}");
    assert!(!log.contains("expires soon"), "outside the configured warning period: {log}");
    sim.shutdown().await;
}
