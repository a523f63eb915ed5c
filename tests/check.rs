//! `alertd check` judges what `run` would do, against a real nats-server
//! and every vendor simulator: a fresh server and empty windows pass, a
//! wrong key fails naming its source, a stream that differs is a warning,
//! and an account that could not create the stream fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use alertd::sim::{SIMULATORS, SimConfig, Simulator};
use async_nats::jetstream::stream;
use futures::StreamExt;

use common::{NatsServer, alertd_bin};

/// The environment variable holding the key of `vendor`'s source.
fn key_var(vendor: &str) -> String {
    format!("ALERTD_TEST_KEY_{}", vendor.to_uppercase())
}

/// One simulator per registered vendor, with `items` alerts spread over
/// the last `history`.
async fn every_simulator(items: usize, history: Duration) -> Vec<(&'static str, &'static str, Simulator)> {
    let mut sims = Vec::new();
    for entry in SIMULATORS {
        let config = SimConfig { initial_items: items, history, ..SimConfig::for_vendor(entry.vendor) };
        let sim = Simulator::start(entry.vendor, config).await.expect("simulator starts");
        sims.push((entry.key, entry.api_key, sim));
    }
    sims
}

/// A config publishing to `nats_url` with one source per simulator, each
/// reading its key from [`key_var`].
fn write_config(dir: &Path, nats_url: &str, sims: &[(&str, &str, Simulator)], nats_extra: &str) -> PathBuf {
    let mut text = format!(
        "[nats]\nurl = \"{nats_url}\"\nack_timeout = \"3s\"\n{nats_extra}\n\n[state]\npath = \"{}\"\n\n\
         [service]\nlisten = \"off\"\n",
        dir.join("state.sqlite").display()
    );
    for (key, _, sim) in sims {
        text.push_str(&format!(
            "\n[[source]]\nvendor = \"{key}\"\nname = \"{name}-test\"\nbase_url = \"{url}\"\n\
             credential = {{ env = \"{var}\" }}\nretries = 0\n",
            name = key.replace('_', "-"),
            url = sim.base_url(),
            var = key_var(key),
        ));
    }
    let path = dir.join("alertd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `alertd check -c path` at the default log level, each source's key
/// from `keys`: (exit code, stdout and stderr).
fn check(path: &Path, keys: &[(String, String)]) -> (Option<i32>, String) {
    let mut command = Command::new(alertd_bin());
    command.args(["check", "-c"]).arg(path).env_remove("RUST_LOG").env_remove("ALERTD_LOG");
    for (var, key) in keys {
        command.env(var, key);
    }
    let out = command.output().unwrap();
    let shown = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), shown)
}

fn right_keys(sims: &[(&str, &str, Simulator)]) -> Vec<(String, String)> {
    sims.iter().map(|(key, api_key, _)| (key_var(key), (*api_key).to_owned())).collect()
}

/// The row that starts with `what`.
fn row<'a>(shown: &'a str, what: &str) -> &'a str {
    shown.lines().find(|l| l.starts_with(what)).unwrap_or_else(|| panic!("no `{what}` row:\n{shown}"))
}

async fn jetstream(url: &str) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(url).await.expect("connect to NATS"))
}

/// JetStream as `user` (async-nats ignores a URL's login).
async fn jetstream_as(port: u16, user: &str) -> async_nats::jetstream::Context {
    let client = async_nats::ConnectOptions::with_user_and_password(user.into(), "pw".into())
        .connect(format!("127.0.0.1:{port}"))
        .await
        .expect("connect to NATS");
    async_nats::jetstream::new(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_server_and_empty_windows_pass_without_creating_anything() {
    let nats = NatsServer::start();
    let sims = every_simulator(0, Duration::from_secs(3600)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &nats.url(), &sims, "");
    let (code, shown) = check(&path, &right_keys(&sims));
    assert_eq!(code, Some(0), "{shown}");
    assert!(!shown.contains("FAIL") && !shown.contains("WARN"), "{shown}");
    let nats_row = row(&shown, "nats");
    for part in [
        "stream ALERTD will be created on start",
        "subjects alertd.>",
        "duplicate window 2h",
        "file storage",
        "1 replica",
    ] {
        assert!(nats_row.contains(part), "`{part}` in {nats_row}");
    }
    for (key, _, _) in &sims {
        let source = row(&shown, &format!("source {}-test ({key})", key.replace('_', "-")));
        assert!(source.contains(" ok "), "{source}");
    }
    // Catchpoint answers an empty window with its documented 404.
    assert!(row(&shown, "source catchpoint-test").contains("authenticated; 0 items"), "{shown}");
    assert!(!shown.contains("async_nats"), "no library log lines at the default level:\n{shown}");
    // `check` created nothing: the stream is still missing.
    assert!(jetstream(&nats.url()).await.get_stream("ALERTD").await.is_err(), "check created the stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_in_the_window_pass_and_a_wrong_key_fails_naming_its_source() {
    let nats = NatsServer::start();
    // Every alert within the probe's window (the last overlap, 10 min).
    let sims = every_simulator(6, Duration::from_secs(240)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &nats.url(), &sims, "");
    let keys = right_keys(&sims);
    let (code, shown) = check(&path, &keys);
    assert_eq!(code, Some(0), "{shown}");
    assert!(!shown.contains("FAIL"), "{shown}");
    let counted: Vec<&str> = shown.lines().filter(|l| l.contains("authenticated; ")).collect();
    assert!(
        counted.iter().any(|l| !l.contains("authenticated; 0 items")),
        "some source saw the recent alerts:\n{shown}"
    );

    let wrong: Vec<(String, String)> = keys
        .iter()
        .map(|(var, key)| {
            if var == &key_var("red_canary") {
                (var.clone(), "not-the-key".to_owned())
            } else {
                (var.clone(), key.clone())
            }
        })
        .collect();
    let (code, shown) = check(&path, &wrong);
    assert_eq!(code, Some(1), "{shown}");
    let failed: Vec<&str> = shown.lines().filter(|l| l.contains("FAIL")).collect();
    assert_eq!(failed.len(), 1, "{shown}");
    assert!(failed[0].starts_with("source red-canary-test (red_canary)"), "{shown}");
    assert!(!shown.contains("not-the-key"), "{shown}");

    // Disabled, the same source is only a warning: `run` does not poll it.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("name = \"red-canary-test\"", "name = \"red-canary-test\"\nenabled = false"),
    )
    .unwrap();
    let (code, shown) = check(&path, &wrong);
    assert_eq!(code, Some(0), "{shown}");
    let source = row(&shown, "source red-canary-test");
    assert!(source.contains("WARN") && source.contains("disabled: `run` does not poll it"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_stream_is_compared_with_the_configuration() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &nats.url(), &[], "");
    let js = jetstream(&nats.url()).await;
    let mut made = stream::Config {
        name: "ALERTD".into(),
        subjects: vec!["alertd.>".into()],
        duplicate_window: Duration::from_secs(7200),
        ..Default::default()
    };
    js.create_stream(made.clone()).await.unwrap();
    let (code, shown) = check(&path, &[]);
    assert_eq!(code, Some(0), "{shown}");
    let nats_row = row(&shown, "nats");
    assert!(nats_row.contains(" ok ") && nats_row.contains("stream ALERTD: 0 messages"), "{shown}");

    // Other subjects that still take alertd's, and a shorter window: a warning.
    made.subjects = vec!["alertd.>".into(), "legacy.>".into()];
    made.duplicate_window = Duration::from_secs(60);
    js.update_stream(made.clone()).await.unwrap();
    let (code, shown) = check(&path, &[]);
    assert_eq!(code, Some(0), "a warning is no failure: {shown}");
    let nats_row = row(&shown, "nats");
    assert!(nats_row.contains("WARN"), "{shown}");
    assert!(nats_row.contains("takes the subjects [alertd.>, legacy.>], not [alertd.>]"), "{nats_row}");
    assert!(nats_row.contains("duplicate window of 1m, shorter than the configured 2h"), "{nats_row}");

    // Subjects that leave alertd's out: every publish would fail.
    made.subjects = vec!["legacy.>".into()];
    js.update_stream(made).await.unwrap();
    let (code, shown) = check(&path, &[]);
    assert_eq!(code, Some(1), "{shown}");
    let nats_row = row(&shown, "nats");
    assert!(nats_row.contains("FAIL") && nats_row.contains("do not take alertd.>"), "{nats_row}");
}

/// A nats-server run with a config file (its JetStream store in a
/// temporary directory that lives as long as it), killed when dropped.
struct Server(std::process::Child, u16, #[allow(dead_code)] tempfile::TempDir);

impl Server {
    fn start(config: Option<&str>) -> Server {
        let port = common::free_port();
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(common::nats_server_bin());
        command.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
        if let Some(text) = config {
            let file = dir.path().join("server.conf");
            let text = text.replace("STORE", &dir.path().join("js").display().to_string());
            std::fs::write(&file, text).unwrap();
            command.arg("-c").arg(file);
        }
        let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        common::wait_listening(port, "nats-server");
        Server(child, port, dir)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_that_could_not_create_the_stream_fails() {
    // No JetStream at all.
    let plain = Server::start(None);
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &format!("nats://127.0.0.1:{}", plain.1), &[], "");
    let (code, shown) = check(&path, &[]);
    assert_eq!(code, Some(1), "{shown}");
    assert!(row(&shown, "nats").contains("JetStream is not enabled for this account"), "{shown}");
    drop(plain);

    // Accounts with limits: `full` may hold one stream (and has one),
    // `nomem` may not store in memory, `nojs` has no JetStream, `limited`
    // may not publish stream creation requests.
    let server = Server::start(Some(
        "jetstream { store_dir: \"STORE\" }\naccounts {\n\
         full: { jetstream: { max_mem: 1MB, max_file: 1MB, max_streams: 1 }, users: [ {user: full, password: pw} ] }\n\
         nomem: { jetstream: { max_mem: 0, max_file: 1MB }, users: [ {user: nomem, password: pw} ] }\n\
         nojs: { users: [ {user: nojs, password: pw} ] }\n\
         limited: { jetstream: { max_mem: 1MB, max_file: 1MB }, users: [ {user: limited, password: pw, \
         permissions: { publish: { deny: [\"$JS.API.STREAM.CREATE.>\"] } } } ] }\n}\n",
    ));
    let url = |user: &str| format!("nats://{user}:pw@127.0.0.1:{}", server.1);
    jetstream_as(server.1, "full")
        .await
        .create_stream(stream::Config {
            name: "OTHER".into(),
            subjects: vec!["other.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    for (user, extra, expected) in [
        ("full", "", "the account may not create it: it has 1 of at most 1 streams"),
        ("nomem", "storage = \"memory\"", "its JetStream memory storage limit is 0"),
        ("nojs", "", "JetStream is not enabled for this account"),
        (
            "limited",
            "",
            "the account's user may not create it (no answer on $JS.API.STREAM.CREATE.ALERTD within 3s",
        ),
    ] {
        let path = write_config(dir.path(), &url(user), &[], extra);
        let (code, shown) = check(&path, &[]);
        assert_eq!(code, Some(1), "{user}: {shown}");
        let nats_row = row(&shown, "nats");
        assert!(nats_row.contains("FAIL") && nats_row.contains(expected), "{user}: {nats_row}");
        assert!(!shown.contains(":pw@"), "{shown}");
    }
    // `nomem` may create a file stream.
    let path = write_config(dir.path(), &url("nomem"), &[], "");
    let (code, shown) = check(&path, &[]);
    assert_eq!(code, Some(0), "{shown}");
    let js = jetstream_as(server.1, "nomem").await;
    assert_eq!(js.stream_names().count().await, 0, "check created no stream");

    // Another stream already takes some of alertd's subjects.
    let nats = NatsServer::start();
    jetstream(&nats.url())
        .await
        .create_stream(stream::Config {
            name: "LEGACY".into(),
            subjects: vec!["alertd.canaryguard.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let path = write_config(dir.path(), &nats.url(), &[], "");
    let (code, shown) = check(&path, &[]);
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        row(&shown, "nats")
            .contains("stream LEGACY already takes alertd.canaryguard.>, which overlaps alertd.>"),
        "{shown}"
    );
}
