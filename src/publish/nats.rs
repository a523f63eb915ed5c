//! The JetStream sink.
//!
//! On start it creates the stream if missing (subjects `<prefix>.>`, the
//! configured duplicate window) or checks the existing one. Publishing sends
//! a batch with `Nats-Msg-Id` = event id and awaits every PubAck; a
//! timed-out ack is an error (the page is re-published later under the same
//! ids, which JetStream acknowledges as duplicates if the first attempt did
//! land).
//!
//! Acks are pipelined in a bounded window. The client holds at most
//! [`CLIENT_ACKS_IN_FLIGHT`] unacknowledged publishes and makes the next
//! send wait for a free slot; a slot frees only when its ack future is
//! awaited. A batch sent whole before any ack is awaited therefore hangs
//! forever once it is larger than that (a vendor ignoring `per_page`), and
//! sources blocked that way hold every slot, the KV cursor and lease writes
//! on the same connection included. So one walk ([`NatsPipeline`]: its
//! pages one after another, sent while earlier pages' acks are still
//! outstanding) keeps at most [`SOURCE_ACKS_IN_FLIGHT`] acks outstanding,
//! and all sources together at most [`SHARED_ACKS_IN_FLIGHT`] (a fair FIFO
//! semaphore), which leaves the client's remaining slots to the KV buckets.
//! A walk that cannot get a shared slot awaits its own oldest ack first, so
//! no walk ever waits while holding slots it does not drive; a walk that is
//! fetching its next page keeps settling its acks meanwhile.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use async_nats::jetstream::context::PublishError as JsPublishError;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, message::PublishMessage, stream};
use futures::{FutureExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::{Credential, NatsConfig, StorageKind, UrlLogin};

use super::{Format, Message, PublishError, PublishReport};

/// The servers of a `url` setting: one URL, or several separated by commas
/// (the nodes of a cluster; the client fails over between them), without
/// their userinfo, which is returned apart. async-nats does not log in with
/// a URL's userinfo (only with `ConnectOptions`), and its debug log lines
/// print the server addresses: the userinfo must not reach it. Errors show
/// the URL without it.
fn server_addrs(url: &str) -> Result<(Vec<async_nats::ServerAddr>, Option<UrlLogin>), PublishError> {
    let mut servers = Vec::new();
    let mut login: Option<UrlLogin> = None;
    for u in url.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let shown = crate::text::redact_url(u);
        let addr = u
            .parse::<async_nats::ServerAddr>()
            .map_err(|e| PublishError::Setup(format!("NATS server URL `{shown}`: {e}")))?;
        let mut inner = addr.into_inner();
        if let Some(found) = UrlLogin::take_from(&mut inner) {
            if login.as_ref().is_some_and(|l| *l != found) {
                return Err(PublishError::Setup(
                    "the NATS server URLs carry different credentials; one connection has one login".into(),
                ));
            }
            login = Some(found);
        }
        let addr = async_nats::ServerAddr::from_url(inner)
            .map_err(|e| PublishError::Setup(format!("NATS server URL `{shown}`: {e}")))?;
        servers.push(addr);
    }
    if servers.is_empty() {
        return Err(PublishError::Setup("no NATS server URL given".to_owned()));
    }
    Ok((servers, login))
}

/// Unacknowledged publishes the client allows on one connection (its
/// default, set explicitly so the numbers below stay below it).
pub const CLIENT_ACKS_IN_FLIGHT: usize = 5_000;

/// Unacknowledged event publishes of all sources together.
pub const SHARED_ACKS_IN_FLIGHT: usize = 4_096;

/// Unacknowledged publishes of one source's walk (its pages in flight
/// together): a page of any size goes through in windows of this many.
pub const SOURCE_ACKS_IN_FLIGHT: usize = 1_024;

/// A connected JetStream publisher.
#[derive(Clone)]
pub struct NatsSink {
    pub(super) js: jetstream::Context,
    prefix: String,
    formats: Vec<Format>,
    /// Slots for unacknowledged event publishes, shared by every source.
    in_flight: Arc<Semaphore>,
}

impl std::fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSink").field("prefix", &self.prefix).finish()
    }
}

impl NatsSink {
    /// Connect to `config.url`. The client keeps reconnecting in the
    /// background after an outage; publishes during one fail and are retried
    /// by the next poll.
    pub async fn connect(config: &NatsConfig, client_name: &str) -> Result<NatsSink, PublishError> {
        let setup = |e: &dyn std::fmt::Display| PublishError::Setup(e.to_string());
        let mut options = async_nats::ConnectOptions::new()
            .name(client_name)
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect();
        if let Some(path) = &config.credentials_file {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| PublishError::Setup(format!("credentials_file {}: {e}", path.display())))?;
        }
        if let Some(ca) = &config.tls_ca_file {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some(token) = &config.token {
            let token = Credential::resolve(token).map_err(|e| setup(&e))?;
            options = token.nats_token(options);
        }
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            let password = Credential::resolve(password).map_err(|e| setup(&e))?;
            options = password.nats_password(options, user.clone());
        }
        let (servers, url_login) = server_addrs(config.url.expose())?;
        // Explicit `token`/`user` settings win over credentials in the URL.
        if let Some(login) = url_login.filter(|_| config.token.is_none() && config.user.is_none()) {
            options = login.apply(options);
        }
        let client = options.connect(servers).await.map_err(|e| setup(&e))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(config.ack_timeout)
            .max_ack_inflight(CLIENT_ACKS_IN_FLIGHT)
            .build(client);
        Ok(NatsSink {
            js,
            prefix: config.subject_prefix.clone(),
            formats: config.formats.clone(),
            in_flight: Arc::new(Semaphore::new(SHARED_ACKS_IN_FLIGHT)),
        })
    }

    /// The JetStream context, for the KV buckets on the same connection.
    pub fn jetstream(&self) -> jetstream::Context {
        self.js.clone()
    }

    /// Create the stream, or check the one that exists. Returns a warning
    /// for an existing stream whose settings weaken alertd's guarantees.
    pub async fn ensure_stream(&self, config: &NatsConfig) -> Result<Option<String>, PublishError> {
        let subjects = format!("{}.>", self.prefix);
        match self.js.get_stream(&config.stream).await {
            Ok(mut existing) => {
                let info = existing.info().await.map_err(|e| PublishError::Setup(e.to_string()))?;
                let differences = differences(&info.config, config, &subjects);
                Ok((!differences.is_empty()).then(|| differences.join("; ")))
            }
            Err(_) => {
                self.js
                    .get_or_create_stream(stream_config(config, subjects))
                    .await
                    .map_err(|e| PublishError::Setup(format!("creating stream {}: {e}", config.stream)))?;
                Ok(None)
            }
        }
    }

    /// What `run` would find and do about the stream, without changing
    /// anything: the account must have JetStream, and a missing stream must
    /// be one the account may create (its limits, no other stream holding
    /// the subjects). An existing stream is compared with the configuration.
    pub async fn plan_stream(&self, config: &NatsConfig) -> Result<StreamPlan, PublishError> {
        let account = self.js.query_account().await.map_err(|e| {
            use async_nats::jetstream::context::AccountErrorKind;
            use async_nats::jetstream::ErrorCode;
            let disabled = "JetStream is not enabled for this account: alertd cannot create or use the stream";
            PublishError::Setup(match e.kind() {
                AccountErrorKind::JetStreamUnavailable => format!("{disabled} (no answer on $JS.API.INFO)"),
                AccountErrorKind::JetStream(js)
                    if [ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT, ErrorCode::JETSTREAM_NOT_ENABLED]
                        .contains(&js.error_code()) =>
                {
                    format!("{disabled} ({js})")
                }
                AccountErrorKind::TimedOut => format!(
                    "no answer to a JetStream request within {} (is the server reachable, with JetStream on?)",
                    humantime::format_duration(config.ack_timeout)
                ),
                _ => format!("JetStream account info: {e}"),
            })
        })?;
        let subjects = format!("{}.>", self.prefix);
        let name = &config.stream;
        match self.js.get_stream(name).await {
            Ok(mut existing) => {
                let info = existing.info().await.map_err(|e| PublishError::Setup(e.to_string()))?;
                if !info.config.subjects.iter().any(|s| covers(s, &subjects)) {
                    return Err(PublishError::Setup(format!(
                        "stream {name} exists with subjects [{}], which do not take {subjects}: every publish would fail",
                        info.config.subjects.join(", ")
                    )));
                }
                let summary = format!(
                    "stream {name}: {} messages, subjects [{}], duplicate window {}",
                    info.state.messages,
                    info.config.subjects.join(", "),
                    humantime::format_duration(info.config.duplicate_window)
                );
                let differences = differences(&info.config, config, &subjects);
                Ok(if differences.is_empty() {
                    StreamPlan::Ready(summary)
                } else {
                    StreamPlan::Differs { summary, differences }
                })
            }
            Err(e) if is_not_found(&e) => {
                let replicas = format!("R{}", config.replicas);
                let limits = account.tiers.get(&replicas).map_or(account.limits, |t| t.limits);
                let streams = account.tiers.get(&replicas).map_or(account.streams, |t| t.streams);
                let cannot = |why: String| PublishError::Setup(format!("stream {name} is missing and {why}"));
                if let Some(max) = limits.max_streams.filter(|max| streams as i64 >= *max) {
                    return Err(cannot(format!(
                        "the account may not create it: it has {streams} of at most {max} streams"
                    )));
                }
                let (quota, kind) = match config.storage {
                    StorageKind::File => (limits.max_storage, "file"),
                    StorageKind::Memory => (limits.max_memory, "memory"),
                };
                if quota == Some(0) {
                    return Err(cannot(format!(
                        "the account may not create it: its JetStream {kind} storage limit is 0"
                    )));
                }
                if limits.max_bytes_required {
                    return Err(cannot(
                        "the account requires max_bytes on every stream, which alertd does not set: create the stream yourself".to_owned(),
                    ));
                }
                let mut others = self.js.streams();
                while let Some(other) = others.next().await {
                    let other = other.map_err(|e| PublishError::Setup(format!("listing streams: {e}")))?;
                    if let Some(s) = other.config.subjects.iter().find(|s| overlap(s, &subjects)) {
                        return Err(cannot(format!(
                            "creating it would fail: stream {} already takes {s}, which overlaps {subjects}",
                            other.config.name
                        )));
                    }
                }
                self.may_create_streams(name, config.ack_timeout).await.map_err(cannot)?;
                Ok(StreamPlan::Create(format!(
                    "stream {name} will be created on start: subjects {subjects}, duplicate window {}, {kind} storage, {} replica{}",
                    humantime::format_duration(config.duplicate_window),
                    config.replicas,
                    if config.replicas == 1 { "" } else { "s" }
                )))
            }
            Err(e) => Err(PublishError::Setup(format!("stream {name}: {e}"))),
        }
    }

    /// Whether this connection's user may create stream `name`, without
    /// creating anything: a create request whose body names another stream
    /// is refused by JetStream itself ("stream name in subject does not
    /// match request") once the request got through, while a user without
    /// permission to publish on `$JS.API.STREAM.CREATE.<name>` gets no
    /// answer at all.
    async fn may_create_streams(&self, name: &str, wait: Duration) -> Result<(), String> {
        const NAME_MISMATCH: u64 = 10056;
        let subject = format!("$JS.API.STREAM.CREATE.{name}");
        let body = serde_json::json!({ "name": format!("{name}_ALERTD_CHECK") }).to_string();
        let client = self.js.client();
        let asked = client.request(subject.clone(), body.into());
        let refused = |why: String| format!("the account's user may not create it ({why})");
        let answer = match tokio::time::timeout(wait, asked).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(refused(format!("{subject}: {e}"))),
            Err(_) => {
                return Err(refused(format!(
                    "no answer on {subject} within {}: is publishing there permitted?",
                    humantime::format_duration(wait)
                )));
            }
        };
        let reply: serde_json::Value = serde_json::from_slice(&answer.payload).unwrap_or_default();
        match reply.pointer("/error/err_code").and_then(serde_json::Value::as_u64) {
            Some(NAME_MISMATCH) => Ok(()),
            _ => Err(refused(format!("{subject} answered {}", crate::text::clip(&reply.to_string(), 200)))),
        }
    }

    pub(super) fn formats(&self) -> &[Format] {
        &self.formats
    }

    pub(super) fn subject_prefix(&self) -> &str {
        &self.prefix
    }

    /// The largest message the server accepts (its `max_payload`), as the
    /// connection last heard it.
    pub(super) fn max_payload(&self) -> usize {
        self.js.client().max_payload()
    }

    /// A pipeline of batches for one walk (see [`NatsPipeline`]).
    pub(super) fn pipeline(&self) -> NatsPipeline {
        NatsPipeline { sink: self.clone(), acks: VecDeque::new(), batches: VecDeque::new(), failed: None }
    }
}

/// One walk's publishes: batches (pages) sent in order, each message as
/// soon as it is encoded, while the acks of earlier batches are still
/// outstanding. At most [`SOURCE_ACKS_IN_FLIGHT`] acks are outstanding (and
/// all sources together at most [`SHARED_ACKS_IN_FLIGHT`]); a send that
/// finds the window full first awaits the oldest ack. Acks are settled in
/// the order their messages were sent, so batches complete in order.
/// After one failure every later call fails (batches done before it are
/// still reported): the caller commits nothing after the failed batch.
pub struct NatsPipeline {
    sink: NatsSink,
    acks: VecDeque<InFlight>,
    /// Batches sent and not yet taken, oldest first: acks still awaited,
    /// and what the settled ones said.
    batches: VecDeque<Batch>,
    failed: Option<String>,
}

/// A batch sent: how many of its acks are still awaited.
#[derive(Default)]
struct Batch {
    awaited: usize,
    report: PublishReport,
}

impl NatsPipeline {
    /// Send every message of `batch` (not waiting for their acks, except
    /// to free window slots).
    pub(super) async fn send(&mut self, batch: Vec<Message>) -> Result<(), PublishError> {
        self.check()?;
        self.batches.push_back(Batch { awaited: batch.len(), report: PublishReport::default() });
        for m in batch {
            let slot = loop {
                if self.acks.len() < SOURCE_ACKS_IN_FLIGHT {
                    match Arc::clone(&self.sink.in_flight).try_acquire_owned() {
                        Ok(slot) => break slot,
                        Err(_) if self.acks.is_empty() => {
                            // Holding nothing, this walk may wait its turn.
                            let slot =
                                Arc::clone(&self.sink.in_flight).acquire_owned().await.map_err(|e| {
                                    self.fail(PublishError::Publish {
                                        subject: m.subject.clone(),
                                        reason: e.to_string(),
                                    })
                                })?;
                            break slot;
                        }
                        Err(_) => {}
                    }
                }
                self.settle_oldest().await?;
            };
            let publish = PublishMessage::build().payload(m.payload).message_id(&m.id);
            let ack = match self.sink.js.send_publish(m.subject.clone(), publish).await {
                Ok(ack) => ack,
                Err(e) => {
                    return Err(
                        self.fail(PublishError::Publish { subject: m.subject, reason: e.to_string() })
                    );
                }
            };
            self.acks.push_back(InFlight { subject: m.subject, ack: ack.into_future(), _slot: slot });
        }
        Ok(())
    }

    /// The oldest batch's report if every one of its acks has arrived,
    /// without waiting.
    pub(super) fn try_done(&mut self) -> Result<Option<PublishReport>, PublishError> {
        if let Some(report) = self.take_done() {
            return Ok(Some(report));
        }
        self.check()?;
        while self.batches.front().is_some_and(|b| b.awaited > 0) {
            let Some(oldest) = self.acks.front_mut() else { break };
            let Some(result) = (&mut oldest.ack).now_or_never() else { break };
            self.record(result)?;
        }
        Ok(self.take_done())
    }

    /// Whether acks are outstanding.
    pub(super) fn awaiting(&self) -> bool {
        !self.acks.is_empty()
    }

    /// Wait for the oldest outstanding ack and count it. Cancel-safe: the
    /// ack stays in the window until it arrived.
    pub(super) async fn settle_one(&mut self) -> Result<(), PublishError> {
        self.check()?;
        self.settle_oldest().await
    }

    /// The oldest batch's report, once every one of its acks has arrived.
    pub(super) async fn done(&mut self) -> Result<Option<PublishReport>, PublishError> {
        if let Some(report) = self.take_done() {
            return Ok(Some(report));
        }
        self.check()?;
        while self.batches.front().is_some_and(|b| b.awaited > 0) {
            self.settle_oldest().await?;
        }
        Ok(self.take_done())
    }

    fn take_done(&mut self) -> Option<PublishReport> {
        if self.batches.front().is_some_and(|b| b.awaited == 0) {
            return self.batches.pop_front().map(|b| b.report);
        }
        None
    }

    async fn settle_oldest(&mut self) -> Result<(), PublishError> {
        let Some(oldest) = self.acks.front_mut() else {
            return Err(self.fail(PublishError::Publish {
                subject: String::new(),
                reason: "an ack was awaited that was never requested".into(),
            }));
        };
        let result = (&mut oldest.ack).await;
        self.record(result)
    }

    /// Count the oldest ack's `result` into its batch.
    fn record(&mut self, result: Result<PublishAck, JsPublishError>) -> Result<(), PublishError> {
        let Some(oldest) = self.acks.pop_front() else { return Ok(()) };
        let ack = result.map_err(|e| {
            self.fail(PublishError::Publish { subject: oldest.subject, reason: e.to_string() })
        })?;
        // The oldest ack belongs to the oldest batch still awaiting any.
        if let Some(batch) = self.batches.iter_mut().find(|b| b.awaited > 0) {
            batch.awaited -= 1;
            if ack.duplicate {
                batch.report.duplicates += 1;
            } else {
                batch.report.stored += 1;
            }
        }
        Ok(())
    }

    fn check(&self) -> Result<(), PublishError> {
        match &self.failed {
            Some(reason) => {
                Err(PublishError::Setup(format!("an earlier publish of this walk failed: {reason}")))
            }
            None => Ok(()),
        }
    }

    fn fail(&mut self, error: PublishError) -> PublishError {
        self.failed = Some(error.to_string());
        self.acks.clear();
        error
    }
}

/// What `run` would do about the stream ([`NatsSink::plan_stream`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamPlan {
    /// It exists as configured: its summary.
    Ready(String),
    /// It exists with other settings that still take alertd's subjects.
    Differs {
        /// Its summary.
        summary: String,
        /// What differs from the configuration, one sentence each.
        differences: Vec<String>,
    },
    /// It is missing and will be created on start, with these settings.
    Create(String),
}

/// The stream alertd creates.
fn stream_config(config: &NatsConfig, subjects: String) -> stream::Config {
    stream::Config {
        name: config.stream.clone(),
        subjects: vec![subjects],
        duplicate_window: config.duplicate_window,
        storage: match config.storage {
            StorageKind::File => stream::StorageType::File,
            StorageKind::Memory => stream::StorageType::Memory,
        },
        num_replicas: config.replicas,
        ..Default::default()
    }
}

/// How an existing stream differs from what alertd would create, in ways
/// that matter: other subjects, a shorter duplicate window.
fn differences(existing: &stream::Config, config: &NatsConfig, subjects: &str) -> Vec<String> {
    let mut differences = Vec::new();
    if existing.subjects != [subjects] {
        differences.push(format!(
            "stream {} takes the subjects [{}], not [{subjects}]{}",
            config.stream,
            existing.subjects.join(", "),
            if existing.subjects.iter().any(|s| covers(s, subjects)) {
                ""
            } else {
                "; publishes may not be stored"
            }
        ));
    }
    if existing.duplicate_window < config.duplicate_window {
        differences.push(format!(
            "stream {} has a duplicate window of {}, shorter than the configured {}: events re-published after a longer outage are stored twice",
            config.stream,
            humantime::format_duration(existing.duplicate_window),
            humantime::format_duration(config.duplicate_window)
        ));
    }
    differences
}

/// Whether the server said the stream does not exist.
fn is_not_found(e: &async_nats::jetstream::context::GetStreamError) -> bool {
    use async_nats::jetstream::{ErrorCode, context::GetStreamErrorKind};
    matches!(e.kind(), GetStreamErrorKind::JetStream(js) if js.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

/// Whether every subject `subject` (a pattern) matches is taken by `filter`.
fn covers(filter: &str, subject: &str) -> bool {
    let mut subject = subject.split('.');
    for f in filter.split('.') {
        match (f, subject.next()) {
            (">", Some(_)) => return true,
            (_, None) | ("*", Some(">")) => return false,
            ("*", Some(_)) => {}
            (f, Some(s)) if f == s => {}
            _ => return false,
        }
    }
    subject.next().is_none()
}

/// Whether some subject matches both patterns.
fn overlap(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for (x, y) in a.iter().zip(&b) {
        match (*x, *y) {
            (">", _) | (_, ">") => return true,
            ("*", _) | (_, "*") => {}
            (x, y) if x == y => {}
            _ => return false,
        }
    }
    a.len() == b.len()
}

/// A publish awaiting its ack, holding its shared slot until then.
struct InFlight {
    subject: String,
    ack: Pin<Box<dyn Future<Output = Result<PublishAck, JsPublishError>> + Send>>,
    _slot: OwnedSemaphorePermit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_patterns_cover_and_overlap_token_by_token() {
        assert!(covers("alertd.>", "alertd.>") && covers(">", "alertd.>") && covers("*.>", "alertd.>"));
        assert!(
            !covers("alertd.*", "alertd.>")
                && !covers("alertd.x.>", "alertd.>")
                && !covers("other.>", "alertd.>")
        );
        assert!(covers("alertd.*.b", "alertd.a.b") && !covers("alertd", "alertd.>"));
        assert!(
            overlap("alertd.x.>", "alertd.>") && overlap("*", "alertd") && overlap("alertd.*", "alertd.>")
        );
        assert!(!overlap("other.>", "alertd.>") && !overlap("alertd", "alertd.>") && !overlap("a.b", "a.c"));
    }

    #[test]
    fn a_comma_separated_url_names_every_node() {
        let (servers, auth) =
            server_addrs("nats://127.0.0.1:4222, nats://127.0.0.1:4223,tls://h:4224").unwrap();
        let ports: Vec<u16> = servers.iter().map(async_nats::ServerAddr::port).collect();
        assert_eq!(ports, [4222, 4223, 4224]);
        assert!(auth.is_none());
        assert!(server_addrs(" , ").is_err());
        assert!(server_addrs("nats://127.0.0.1:notaport").unwrap_err().to_string().contains("notaport"));
    }

    #[test]
    fn userinfo_is_taken_out_of_the_addresses_and_kept_out_of_errors() {
        let (servers, auth) =
            server_addrs("nats://alice:s3cr%40t@127.0.0.1:4222,nats://alice:s3cr%40t@h:1").unwrap();
        for s in &servers {
            assert!(!format!("{s:?}").contains("s3cr") && !s.as_url_str().contains("alice"), "{s:?}");
        }
        let auth = auth.unwrap();
        assert!(auth.is("alice", Some("s3cr@t")));
        assert!(!format!("{auth:?}").contains("alice"));
        let (_, token) = server_addrs("tls://tok3n@h:4222").unwrap();
        assert!(token.unwrap().is("tok3n", None));

        let err = server_addrs("nats://alice:s3cr3t@127.0.0.1:notaport").unwrap_err().to_string();
        assert!(err.contains("notaport") && !err.contains("s3cr3t") && !err.contains("alice"), "{err}");
        let err = server_addrs("nats://a:b@h:1,nats://c:d@h:2").unwrap_err().to_string();
        assert!(err.contains("different credentials"), "{err}");
    }
}
