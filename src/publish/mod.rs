//! Where events go: NATS JetStream, or JSON lines on stdout (the embedded
//! default). The only code that touches NATS.
//!
//! [`Sink::publish`] returns only when every message of the batch is stored:
//! for JetStream that means a PubAck for each (an ack marked duplicate counts,
//! since the stream already holds that id). The poller commits its cursor
//! after this returns, never before.

pub mod dead_letter;
mod nats;
mod stdout;
mod subscribe;

pub use nats::{NatsPipeline, NatsSink, SHARED_ACKS_IN_FLIGHT, SOURCE_ACKS_IN_FLIGHT, StreamPlan};
pub use stdout::StdoutSink;
pub use subscribe::{Received, TailStart};

use std::collections::VecDeque;

use bytes::Bytes;

pub use crate::config::{Format, default_formats};

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Message {
    /// Full subject.
    pub subject: String,
    /// Deduplication id (`Nats-Msg-Id`): the event id.
    pub id: String,
    /// JSON payload.
    pub payload: Bytes,
}

/// What a batch publish achieved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Newly stored.
    pub stored: usize,
    /// Acknowledged as duplicates of messages already stored.
    pub duplicates: usize,
}

/// Why a batch was not (entirely) stored. The caller must not commit.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Could not connect or set up the stream.
    #[error("NATS: {0}")]
    Setup(String),
    /// A publish or its ack failed (server down, timeout, no stream).
    #[error("NATS publish to {subject} failed: {reason}")]
    Publish {
        /// The subject.
        subject: String,
        /// The client's or the server's reason (no responders, ack timeout, …).
        reason: String,
    },
    /// Writing to stdout failed.
    #[error("writing events to stdout failed: {0}")]
    Stdout(#[from] std::io::Error),
}

/// An event destination.
#[derive(Debug, Clone)]
pub enum Sink {
    /// JetStream.
    Nats(Box<NatsSink>),
    /// JSON lines on stdout (or any writer, for tests).
    Stdout(StdoutSink),
}

impl Sink {
    /// Publish `batch`, returning once all of it is stored.
    pub async fn publish(&self, batch: Vec<Message>) -> Result<PublishReport, PublishError> {
        if batch.is_empty() {
            return Ok(PublishReport::default());
        }
        let mut pipeline = self.pipeline();
        pipeline.send(batch).await?;
        Ok(pipeline.done().await?.unwrap_or_default())
    }

    /// A pipeline for one walk's pages: each page is sent as a batch
    /// while earlier batches' acks are outstanding, and completes (all of
    /// it stored) in the order it was sent.
    pub fn pipeline(&self) -> Pipeline {
        match self {
            Sink::Nats(s) => Pipeline::Nats(Box::new(s.pipeline())),
            Sink::Stdout(s) => Pipeline::Stdout { sink: s.clone(), done: VecDeque::new(), failed: false },
        }
    }

    /// The largest message the destination stores (NATS `max_payload`);
    /// `None` for stdout, which takes any size.
    pub fn max_payload(&self) -> Option<usize> {
        match self {
            Sink::Nats(s) => Some(s.max_payload()),
            Sink::Stdout(_) => None,
        }
    }

    /// Replace every message of `batch` larger than the destination stores
    /// by a truncated dead letter ([`dead_letter::truncated`]), so that one
    /// huge item cannot fail its page at every poll. Returns how many were
    /// replaced.
    pub fn fit(&self, batch: &mut [Message], origin: dead_letter::Origin<'_>) -> usize {
        let Some(max) = self.max_payload() else { return 0 };
        let limit = max.saturating_sub(dead_letter::HEADROOM);
        let mut replaced = 0;
        for message in batch.iter_mut().filter(|m| m.payload.len() > limit) {
            *message = dead_letter::truncated(origin, message, max);
            replaced += 1;
        }
        replaced
    }

    /// What is published for each event.
    pub fn formats(&self) -> &[Format] {
        match self {
            Sink::Nats(s) => s.formats(),
            Sink::Stdout(s) => s.formats(),
        }
    }

    /// The first token of every subject.
    pub fn subject_prefix(&self) -> &str {
        match self {
            Sink::Nats(s) => s.subject_prefix(),
            Sink::Stdout(_) => "alertd",
        }
    }
}

/// One walk's batches in order (see [`Sink::pipeline`]). A batch is
/// *done* when every message of it is stored; batches are done in the
/// order they were sent. After a failure every later call fails too.
pub enum Pipeline {
    /// JetStream: acks pipelined across batches.
    Nats(Box<NatsPipeline>),
    /// Stdout: a batch is written (and done) when sent.
    Stdout {
        /// Where to.
        sink: StdoutSink,
        /// Reports of the batches written and not yet taken.
        done: VecDeque<PublishReport>,
        /// Whether a write failed.
        failed: bool,
    },
}

impl Pipeline {
    /// Send `batch` after the batches before it. Returns once every
    /// message is sent, not stored.
    pub async fn send(&mut self, batch: Vec<Message>) -> Result<(), PublishError> {
        match self {
            Pipeline::Nats(p) => p.send(batch).await,
            Pipeline::Stdout { sink, done, failed } => {
                if *failed {
                    return Err(stdout_failed());
                }
                let written =
                    if batch.is_empty() { Ok(PublishReport::default()) } else { sink.publish(batch).await };
                *failed = written.is_err();
                done.push_back(written?);
                Ok(())
            }
        }
    }

    /// The oldest batch's report if it is done, without waiting.
    pub fn try_done(&mut self) -> Result<Option<PublishReport>, PublishError> {
        match self {
            Pipeline::Nats(p) => p.try_done(),
            Pipeline::Stdout { done, failed, .. } => match done.pop_front() {
                None if *failed => Err(stdout_failed()),
                report => Ok(report),
            },
        }
    }

    /// The oldest batch's report once it is done (`None`: nothing sent).
    pub async fn done(&mut self) -> Result<Option<PublishReport>, PublishError> {
        match self {
            Pipeline::Nats(p) => p.done().await,
            Pipeline::Stdout { .. } => self.try_done(),
        }
    }

    /// Whether acks are outstanding.
    pub fn awaiting(&self) -> bool {
        match self {
            Pipeline::Nats(p) => p.awaiting(),
            Pipeline::Stdout { .. } => false,
        }
    }

    /// Wait for the oldest outstanding ack (cancel-safe), so that a walk
    /// busy fetching its next page frees its window slots as acks arrive.
    /// Pending forever when none is outstanding.
    pub async fn settle_one(&mut self) -> Result<(), PublishError> {
        match self {
            Pipeline::Nats(p) if p.awaiting() => p.settle_one().await,
            _ => std::future::pending().await,
        }
    }
}

fn stdout_failed() -> PublishError {
    PublishError::Stdout(std::io::Error::other("an earlier write of this walk failed"))
}

/// The subject of an event: `<prefix>.<vendor>.<source>.<kind>`.
pub fn event_subject(prefix: &str, vendor: &str, source: &str, kind: &str) -> String {
    format!("{prefix}.{}.{}.{}", token(vendor), token(source), token(kind))
}

/// The subject of an item that could not be normalized: `<prefix>.deadletter.<vendor>`.
pub fn dead_letter_subject(prefix: &str, vendor: &str) -> String {
    format!("{prefix}.deadletter.{}", token(vendor))
}

/// A string made safe as one subject token: `.`, `*`, `>` and whitespace
/// (which would split, wildcard or break the subject) become `_`.
pub fn token(s: &str) -> String {
    let t: String =
        s.chars()
            .map(|c| {
                if c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control() { '_' } else { c }
            })
            .collect();
    if t.is_empty() { "_".to_owned() } else { t }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_tokens_cannot_split_or_wildcard() {
        assert_eq!(token("acme.prod"), "acme_prod");
        assert_eq!(token("a*b>c d\te"), "a_b_c_d_e");
        assert_eq!(token(""), "_");
        assert_eq!(
            event_subject("alertd", "canaryguard", "ac me", "alert"),
            "alertd.canaryguard.ac_me.alert"
        );
        assert_eq!(dead_letter_subject("x.y", "red_canary"), "x.y.deadletter.red_canary");
    }
}
