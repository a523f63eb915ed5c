//! Reading the stream back, for `alertd tail`: an ordered (ephemeral,
//! flow-controlled, self-healing) consumer on a subject filter, so a tail
//! leaves nothing behind on the server and never holds up acks.

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};

use super::{NatsSink, PublishError};

/// Where a tail starts in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailStart {
    /// Only messages published from now on.
    New,
    /// Every message the stream holds.
    All,
    /// Messages stored at or after this time.
    Since(DateTime<Utc>),
}

/// One message read back: its subject and payload.
#[derive(Debug, Clone)]
pub struct Received {
    /// Full subject.
    pub subject: String,
    /// The payload (a JSON event).
    pub payload: bytes::Bytes,
}

impl NatsSink {
    /// Messages of `stream` matching `filter_subject`, from `start` on, as
    /// they arrive.
    pub async fn subscribe(
        &self,
        stream: &str,
        filter_subject: String,
        start: TailStart,
    ) -> Result<impl Stream<Item = Result<Received, PublishError>> + use<>, PublishError> {
        let setup = |e: &dyn std::fmt::Display| PublishError::Setup(e.to_string());
        let deliver_policy = match start {
            TailStart::New => DeliverPolicy::New,
            TailStart::All => DeliverPolicy::All,
            TailStart::Since(t) => DeliverPolicy::ByStartTime {
                start_time: time::OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos()),
                )
                .map_err(|e| setup(&e))?,
            },
        };
        let stream = self.js.get_stream(stream).await.map_err(|e| setup(&e))?;
        let consumer = stream
            .create_consumer(pull::OrderedConfig { filter_subject, deliver_policy, ..Default::default() })
            .await
            .map_err(|e| setup(&e))?;
        let messages = consumer.messages().await.map_err(|e| setup(&e))?;
        Ok(messages.map(|m| match m {
            Ok(m) => Ok(Received { subject: m.subject.to_string(), payload: m.payload.clone() }),
            Err(e) => Err(PublishError::Setup(e.to_string())),
        }))
    }
}
