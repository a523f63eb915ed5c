//! alertd: polls security vendors' alert APIs, normalizes every item into one
//! event schema, publishes the events to NATS JetStream (deduplicated by
//! message id) and checkpoints each source's cursor (in SQLite, or in a
//! JetStream KV bucket shared by several instances) only after NATS
//! acknowledged the events.
//!
//! # Layout
//! - [`config`]: TOML → typed settings, errors with file:line; API keys.
//! - [`event`]: the normalized event (schema v1) and its deterministic id.
//! - [`paginate`]: the five pagination schemes and the one page loop.
//! - [`ocsf`]: the OCSF 1.8.0 Detection Finding of an event (an optional output format).
//! - [`incremental`]: time-window planning shared by timestamp-filtered APIs.
//! - [`vendors`]: one folder per vendor (requests, page parsing, normalize) and the registry.
//! - [`http`]: requests, retries and the classification of what came back.
//! - [`throttle`]: per-source rate limits (governor) and `RateLimit-*` pacing.
//! - [`checkpoint`]: the cursor store: SQLite (the only code that touches SQL) or a KV bucket.
//! - [`cluster`]: several instances sharing the sources through leases in a KV bucket.
//! - [`publish`]: JetStream and stdout sinks.
//! - [`poller`]: one source's cycle: walk → normalize → publish → acks → commit.
//! - [`revisit`]: re-reading recent history for items changed in place (no change feed).
//! - [`schedule`]: per-source timing, jitter, shutdown.
//! - [`reload`]: what a configuration reload (SIGHUP) changes.
//! - [`daemon`]: wiring it together: `run(config, sink, mode, shutdown)`; reloads.
//! - [`sim`]: simulators of the vendor APIs (tests, demo, benchmarks).
//! - [`tail`]: `alertd tail`: the stream's events as they arrive.
//! - [`demo`]: `alertd demo`.
//! - [`check`]: `alertd check`: config, credentials, NATS.
//! - [`internal_events`]: one struct per log line and metric.
//! - [`telemetry`]: Prometheus metrics and per-source health.
//! - [`service`]: the `/metrics` + `/healthz` listener and systemd notifications.
//! - [`text`]: redaction of secrets in shown text, terminal-safe vendor text.
//!
//! See `ARCHITECTURE.md` for the data's path and the invariants.

#![warn(missing_docs)]

pub mod check;
pub mod checkpoint;
pub mod cluster;
pub mod config;
pub mod cursors;
pub mod daemon;
pub mod demo;
pub mod event;
pub mod hostile;
pub mod http;
pub mod incremental;
pub mod init;
pub mod internal_events;
pub mod ocsf;
pub mod paginate;
pub mod poller;
pub mod preview;
pub mod publish;
pub mod registry;
pub mod reload;
pub mod revisit;
pub mod schedule;
pub mod service;
pub mod sim;
pub mod tail;
pub mod telemetry;
pub mod text;
pub mod throttle;
pub mod vendors;
