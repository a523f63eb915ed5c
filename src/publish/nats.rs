//! The JetStream sink.
//!
//! On start it creates the stream if missing (subjects `<prefix>.>`, the
//! configured duplicate window) or checks the existing one. Publishing sends
//! the whole batch with `Nats-Msg-Id` = event id, then awaits every PubAck:
//! the pipelining keeps a page to one round trip's latency, and a timed-out
//! ack is an error (the page is re-published later under the same ids, which
//! JetStream acknowledges as duplicates if the first attempt did land).

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};

use crate::config::{Credential, NatsConfig, StorageKind};

use super::{Format, Message, PublishError, PublishReport};

/// A connected JetStream publisher.
#[derive(Clone)]
pub struct NatsSink {
    pub(super) js: jetstream::Context,
    prefix: String,
    formats: Vec<Format>,
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
        let client = options.connect(config.url.as_str()).await.map_err(|e| setup(&e))?;
        let js = jetstream::ContextBuilder::new().timeout(config.ack_timeout).build(client);
        Ok(NatsSink { js, prefix: config.subject_prefix.clone(), formats: config.formats.clone() })
    }

    /// Create the stream, or check the one that exists. Returns a warning
    /// for an existing stream whose settings weaken alertd's guarantees.
    pub async fn ensure_stream(&self, config: &NatsConfig) -> Result<Option<String>, PublishError> {
        let subjects = format!("{}.>", self.prefix);
        match self.js.get_stream(&config.stream).await {
            Ok(mut existing) => {
                let info = existing.info().await.map_err(|e| PublishError::Setup(e.to_string()))?;
                let mut warnings = Vec::new();
                if info.config.duplicate_window < config.duplicate_window {
                    warnings.push(format!(
                        "stream {} has a duplicate window of {}, shorter than the configured {}: events re-published after a longer outage are stored twice",
                        config.stream,
                        humantime::format_duration(info.config.duplicate_window),
                        humantime::format_duration(config.duplicate_window)
                    ));
                }
                if !info.config.subjects.iter().any(|s| s == &subjects || s == ">") {
                    warnings.push(format!(
                        "stream {} does not list the subjects {subjects}; publishes may not be stored",
                        config.stream
                    ));
                }
                Ok((!warnings.is_empty()).then(|| warnings.join("; ")))
            }
            Err(_) => {
                let stream_config = stream::Config {
                    name: config.stream.clone(),
                    subjects: vec![subjects],
                    duplicate_window: config.duplicate_window,
                    storage: match config.storage {
                        StorageKind::File => stream::StorageType::File,
                        StorageKind::Memory => stream::StorageType::Memory,
                    },
                    num_replicas: config.replicas,
                    ..Default::default()
                };
                self.js
                    .get_or_create_stream(stream_config)
                    .await
                    .map_err(|e| PublishError::Setup(format!("creating stream {}: {e}", config.stream)))?;
                Ok(None)
            }
        }
    }

    /// "stream NAME: N messages, duplicate window W", or an error if the
    /// stream does not exist (yet).
    pub async fn stream_summary(&self, name: &str) -> Result<String, PublishError> {
        let mut stream =
            self.js.get_stream(name).await.map_err(|e| {
                PublishError::Setup(format!("stream {name}: {e} (alertd creates it on start)"))
            })?;
        let info = stream.info().await.map_err(|e| PublishError::Setup(e.to_string()))?;
        Ok(format!(
            "stream {name}: {} messages, duplicate window {}",
            info.state.messages,
            humantime::format_duration(info.config.duplicate_window)
        ))
    }

    pub(super) fn formats(&self) -> &[Format] {
        &self.formats
    }

    pub(super) fn subject_prefix(&self) -> &str {
        &self.prefix
    }

    pub(super) async fn publish(&self, batch: Vec<Message>) -> Result<PublishReport, PublishError> {
        let mut pending = Vec::with_capacity(batch.len());
        for m in batch {
            let publish = PublishMessage::build().payload(m.payload).message_id(&m.id);
            let ack =
                self.js.send_publish(m.subject.clone(), publish).await.map_err(|e| {
                    PublishError::Publish { subject: m.subject.clone(), reason: e.to_string() }
                })?;
            pending.push((m.subject, ack));
        }
        let mut report = PublishReport::default();
        for (subject, ack) in pending {
            let ack = ack.await.map_err(|e| PublishError::Publish { subject, reason: e.to_string() })?;
            if ack.duplicate {
                report.duplicates += 1;
            } else {
                report.stored += 1;
            }
        }
        Ok(report)
    }
}
