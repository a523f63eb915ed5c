//! alertd as a service: `/metrics`, `/healthz`, systemd notifications and
//! the unit file.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alertd::sim::{CANARYGUARD_DEMO_KEY, Fault, SimConfig, SimVendor, Simulator};

use common::{NatsServer, config, free_port};

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("listener answers");
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

/// The value of the sample line starting with `prefix` (metric name and labels).
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_healthz_report_what_the_pollers_did() {
    let nats = NatsServer::start();
    let sim = common::canaryguard(23).await;
    sim.inject(Fault::Unavailable, 1);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::canaryguard_config(dir.path(), Some(&nats.url()), &sim, "page_size = 10");
    cfg.sources[0].retries = 2;
    cfg.sources[0].schedule = "every 1h".parse().unwrap();
    let port = free_port();
    cfg.service.listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    let daemon = common::poll::RunningDaemon::start(&cfg);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        if let Ok(r) = reqwest::get(format!("{base}/metrics")).await {
            let text = r.text().await.unwrap_or_default();
            if text.contains("alertd_polls_total{") {
                break text;
            }
        }
        assert!(Instant::now() < deadline, "no poll was counted within 20s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let l = r#"source="test-canaryguard",vendor="canaryguard""#;
    assert_eq!(sample(&metrics, &format!("alertd_polls_total{{{l},result=\"ok\"}}")), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, &format!("alertd_pages_total{{{l}}}")), Some(3.0));
    assert_eq!(sample(&metrics, &format!("alertd_events_published_total{{{l}}}")), Some(23.0));
    assert_eq!(sample(&metrics, &format!("alertd_http_responses_total{{{l},status=\"503\"}}")), Some(1.0));
    assert_eq!(sample(&metrics, &format!("alertd_http_responses_total{{{l},status=\"200\"}}")), Some(3.0));
    assert_eq!(sample(&metrics, &format!("alertd_puback_latency_seconds_count{{{l}}}")), Some(3.0));
    let started = sample(&metrics, "alertd_schedule_drift_seconds_count").expect("drift histogram");
    assert!(started >= 1.0, "every scheduled start records its drift: {started}");
    let since = sample(&metrics, &format!("alertd_seconds_since_last_success{{{l}}}")).expect("gauge");
    assert!((0.0..10.0).contains(&since), "{since}");
    let lag = sample(&metrics, &format!("alertd_watermark_lag_seconds{{{l}}}")).expect("lag gauge");
    assert!((0.0..30.0).contains(&lag), "{lag}");

    let (status, body) = get(&format!("{base}/healthz")).await;
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["sources"]["test-canaryguard"]["healthy"], true);

    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_503_when_a_source_has_not_succeeded_within_its_interval() {
    let sim = Simulator::start(SimVendor::CanaryGuard, SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A wrong key: every poll fails. The schedule is 1s, so after ~62s the
    // source would be late; instead of waiting, check the per-source detail
    // and the failure counter, then the status once the gap has passed.
    let mut cfg = config(dir.path(), None, "canaryguard", &sim.base_url(), "cg_live_wrong", "");
    let port = free_port();
    cfg.service.listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    let daemon = common::poll::RunningDaemon::start(&cfg);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(75);
    loop {
        let (status, body) = match reqwest::get(format!("{base}/healthz")).await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        };
        if status == 503 {
            let health: serde_json::Value = serde_json::from_str(&body).unwrap();
            let source = &health["sources"]["test-canaryguard"];
            assert_eq!(source["healthy"], false);
            assert_eq!(source["last_error"], "auth", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "healthz never turned 503: {status} {body}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, metrics) = get(&format!("{base}/metrics")).await;
    let failed = sample(
        &metrics,
        r#"alertd_polls_total{source="test-canaryguard",vendor="canaryguard",result="auth"}"#,
    );
    assert!(failed.is_some_and(|n| n >= 2.0), "{metrics}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_gets_ready_watchdog_and_stopping_notifications() {
    let sim = common::canaryguard(3).await;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let config_path = dir.path().join("alertd.toml");
    std::fs::write(
        &config_path,
        format!(
            "[state]\npath = \"{}\"\n[service]\nlisten = \"off\"\n[[source]]\nvendor = \"canaryguard\"\n\
             name = \"acme\"\nbase_url = \"{}\"\ncredential = {{ env = \"CG_KEY\" }}\njitter = \"0s\"\n",
            dir.path().join("s.sqlite").display(),
            sim.base_url()
        ),
    )
    .unwrap();
    let mut child = Command::new(common::alertd_bin())
        .args(["run", "-c"])
        .arg(&config_path)
        .env("CG_KEY", CANARYGUARD_DEMO_KEY)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && received.iter().filter(|m: &&String| m.contains("WATCHDOG=1")).count() < 2
    {
        if let Ok(n) = socket.recv(&mut buf) {
            received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !received.iter().any(|m| m.contains("STOPPING=1")) {
        if let Ok(n) = socket.recv(&mut buf) {
            received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(child.wait().unwrap().success());
    let ready = received.iter().position(|m| m.contains("READY=1")).expect("READY=1 sent");
    let watchdog = received.iter().position(|m| m.contains("WATCHDOG=1")).expect("WATCHDOG=1 sent");
    let stopping = received.iter().position(|m| m.contains("STOPPING=1")).expect("STOPPING=1 sent");
    assert!(ready < watchdog && watchdog < stopping, "order: {received:?}");
}

/// Serve the listener in-process with `limits` on a free loopback port.
async fn listener_with(
    limits: alertd::service::Limits,
) -> (std::net::SocketAddr, tokio_util::sync::CancellationToken, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let telemetry = std::sync::Arc::new(alertd::telemetry::Telemetry::default());
    let task = tokio::spawn(alertd::service::serve_with(listener, telemetry, limits, shutdown.clone()));
    (addr, shutdown, task)
}

/// Read until the server closes the connection; `Err` if it is still open
/// after `within`. Returns what was read.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, within: Duration) -> Result<Vec<u8>, Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    if closed.is_ok() { Ok(seen) } else { Err(seen) }
}

/// A slowloris: a client that starts a request and never finishes its
/// headers is cut off after the header timeout (hyper disables that timeout
/// unless it is given a timer), and so is a kept-alive connection that
/// asks nothing more. The connection age limit is an hour here, so only
/// the header/idle timeout can close them within the test's minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::AsyncWriteExt;
    let limits = alertd::service::Limits {
        header_read_timeout: Duration::from_secs(1),
        max_connection_age: Duration::from_secs(3600),
        ..Default::default()
    };
    let (addr, shutdown, task) = listener_with(limits).await;

    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1").await.unwrap();
    let read = read_until_closed(&mut slow, Duration::from_secs(60)).await;
    assert!(read.is_ok(), "a partial header kept its connection open for 60s");
    assert!(
        !String::from_utf8_lossy(&read.unwrap()).contains("200 OK"),
        "the partial request was not served"
    );

    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let answer = read_until_closed(&mut idle, Duration::from_secs(60)).await;
    assert!(answer.is_ok(), "an idle kept-alive connection stayed open for 60s after its answer");
    let answer = String::from_utf8_lossy(&answer.unwrap_or_default()).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"status\":\"ok\""), "{answer}");

    // A whole request on a fresh connection is answered as usual.
    let (status, _) = get(&format!("http://{addr}/healthz")).await;
    assert_eq!(status, 200);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), task).await.expect("stops on shutdown").unwrap();
}

/// Open file descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(Iterator::count).unwrap_or(0)
}

/// More idle connections than the cap (64): the daemon accepts no more
/// than the cap (its open descriptors stay bounded), and once the idle
/// ones time out (10s), a fresh `/healthz` is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_beyond_the_cap_wait_and_do_not_starve_a_fresh_request() {
    const HELD: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config_path = dir.path().join("alertd.toml");
    // A source that fails at once (nothing listens on port 9) and
    // waits an hour: the daemon runs, idle but for the listener.
    std::fs::write(
        &config_path,
        format!(
            "[state]\npath = \"{}\"\n[service]\nlisten = \"127.0.0.1:{port}\"\n[[source]]\nvendor = \"canaryguard\"\n\
             name = \"acme\"\nbase_url = \"http://127.0.0.1:9\"\ncredential = {{ env = \"CG_KEY\" }}\n\
             schedule = \"every 1h\"\njitter = \"0s\"\nretries = 0\n",
            dir.path().join("s.sqlite").display()
        ),
    )
    .unwrap();
    let child = Command::new(common::alertd_bin())
        .args(["run", "-c"])
        .arg(&config_path)
        .env("CG_KEY", CANARYGUARD_DEMO_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed when the test ends, passed or not.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = KillOnDrop(child);
    let pid = child.0.id();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(Instant::now() < deadline, "the listener did not answer within 30s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the probe's connection close before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline = open_fds(pid);

    let mut held = Vec::new();
    for _ in 0..HELD {
        held.push(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = open_fds(pid);
    assert!(
        during <= baseline + 64 + 8,
        "{HELD} idle connections: {during} open fds (was {baseline}); the cap is 64"
    );
    assert!(during >= baseline + 32, "the daemon accepted connections at all: {during} fds (was {baseline})");

    // Served after the first waves of idle connections time out (10s each).
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
    let answered = client.get(format!("{base}/healthz")).send().await;
    assert!(answered.is_ok(), "a fresh /healthz behind {HELD} idle connections: {answered:?}");
    drop(held);
    drop(child);
}

/// The unit files (the single service and the per-instance template of
/// docs/scale-out.md) parse, their hardening scores 1.5 or lower on
/// `systemd-analyze security` (lower is better), and they bound the
/// process: no core dumps (keys), descriptors, memory and tasks.
#[test]
fn the_unit_files_verify_and_are_hardened() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "CI must have systemd-analyze");
        eprintln!("SKIP: systemd-analyze is not installed; the unit files were not checked");
        return;
    }
    // (file in systemd/, the unit name to check it as)
    for (file, unit) in [("alertd.service", "alertd.service"), ("alertd@.service", "alertd@a.service")] {
        // verify needs the ExecStart binary to exist: point it at the built one.
        let dir = tempfile::tempdir().unwrap();
        let path = format!("{}/systemd/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("/usr/bin/alertd", common::alertd_bin().to_str().unwrap());
        let copy = dir.path().join(unit);
        std::fs::write(&copy, &text).unwrap();

        let out =
            Command::new("systemd-analyze").args(["security", "--offline=true"]).arg(&copy).output().unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        let score: f64 = report
            .lines()
            .find_map(|l| l.split(&format!("Overall exposure level for {unit}:")).nth(1))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level for {unit} in: {report}"));
        assert!(score <= 1.5, "{unit}: exposure {score} > 1.5:\n{report}");
        // Resource limits systemd-analyze does not score.
        for setting in ["LimitCORE=0", "LimitNOFILE=", "MemoryHigh=", "MemoryMax=", "TasksMax="] {
            assert!(text.lines().any(|l| l.trim_start().starts_with(setting)), "{unit} lacks {setting}");
        }

        let out = Command::new("systemd-analyze").arg("verify").arg(&copy).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let problems: Vec<&str> = stderr.lines().filter(|l| l.contains(unit)).collect();
        assert!(out.status.success() && problems.is_empty(), "systemd-analyze verify {unit}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prints_what_works_and_what_does_not() {
    let nats = NatsServer::start();
    let sim = common::canaryguard(5).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alertd.toml");
    let source = |name: &str, var: &str| {
        format!(
            "[[source]]\nvendor = \"canaryguard\"\nname = \"{name}\"\nbase_url = \"{}\"\ncredential = {{ env = \"{var}\" }}\n",
            sim.base_url()
        )
    };
    std::fs::write(
        &path,
        format!(
            "[nats]\nurl = \"{}\"\n[state]\npath = \"{}\"\n{}{}",
            nats.url(),
            dir.path().join("s.sqlite").display(),
            source("good", "GOOD_KEY"),
            source("bad", "BAD_KEY")
        ),
    )
    .unwrap();
    let out = Command::new(common::alertd_bin())
        .args(["check", "-c"])
        .arg(&path)
        .env("GOOD_KEY", CANARYGUARD_DEMO_KEY)
        .env("BAD_KEY", "cg_live_0000000000000000000000000000000000000000")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a failing source fails the check:\n{table}");
    let line =
        |what: &str| table.lines().find(|l| l.starts_with(what)).unwrap_or_else(|| panic!("{what}: {table}"));
    assert!(line("config").contains(" ok "), "{table}");
    // The stream does not exist until the daemon first runs, which creates it: no failure.
    assert!(
        line("nats").contains(" ok ") && line("nats").contains("stream ALERTD will be created"),
        "{table}"
    );
    assert!(line("source good").contains(" ok "), "{table}");
    assert!(line("source bad").contains("FAIL") && line("source bad").contains("401"), "{table}");
    assert!(!table.contains("cg_live_0000"), "no key in the report");

    let only = Command::new(common::alertd_bin())
        .args(["check", "good", "-c"])
        .arg(&path)
        .env("GOOD_KEY", CANARYGUARD_DEMO_KEY)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&only.stdout);
    assert!(!table.contains("source bad"), "{table}");
    assert!(only.status.success(), "nothing fails without the bad source:\n{table}");
}
