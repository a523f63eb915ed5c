//! `alertd preview SOURCE [--pages N]`: a source's first pages, fetched and
//! normalized as a poll would, printed instead of published; nothing is
//! committed (the poller runs on a throw-away store). Each event is one
//! JSON line on the output; an item that would be dead-lettered is a line
//! `{"dead_letter": {"reason": …, "item": …}}`; one summary line per page
//! goes to the second writer. For writing an `http` definition against a
//! live API step by step (docs/vendors/http.md), and for any source.

use std::io::Write;
use std::sync::Arc;

use crate::checkpoint::Store;
use crate::config::Config;
use crate::daemon::http_client;
use crate::http::RetryPolicy;
use crate::poller::{PollError, PollerDeps};
use crate::publish::{Sink, StdoutSink};
use crate::registry::build_all;
use crate::telemetry::Telemetry;

/// Why a preview could not run.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// No source has that name.
    #[error("no source named `{0}` in the configuration")]
    NoSuchSource(String),
    /// The throw-away store, the HTTP client or the poller could not be built.
    #[error("{0}")]
    Setup(String),
    /// A page could not be fetched or read.
    #[error(transparent)]
    Poll(#[from] PollError),
    /// The output could not be written.
    #[error("cannot write the preview: {0}")]
    Write(#[from] std::io::Error),
}

/// Preview `source` of `config`: at most `pages` pages. Returns whether
/// the walk ended within them.
pub async fn run(
    config: &Config,
    source: &str,
    pages: u64,
    out: &mut dyn Write,
    summary: &mut dyn Write,
) -> Result<bool, PreviewError> {
    let mut chosen = config
        .sources
        .iter()
        .find(|s| s.name() == source)
        .cloned()
        .ok_or_else(|| PreviewError::NoSuchSource(source.to_owned()))?;
    chosen.enabled = true;
    let dir = tempfile::tempdir().map_err(|e| PreviewError::Setup(e.to_string()))?;
    let store =
        Store::open(&dir.path().join("preview.sqlite")).map_err(|e| PreviewError::Setup(e.to_string()))?;
    let client = http_client(None).map_err(|e| PreviewError::Setup(e.to_string()))?;
    let deps = PollerDeps {
        store,
        sink: Sink::Stdout(StdoutSink::default()),
        client,
        retry: RetryPolicy::default(),
        telemetry: Arc::new(Telemetry::default()),
        instance: None,
    };
    let pollers = build_all(std::slice::from_ref(&chosen), &deps).map_err(PreviewError::Setup)?;
    let poller = pollers.first().ok_or_else(|| PreviewError::NoSuchSource(source.to_owned()))?;
    let preview = poller.preview(pages).await?;
    for (n, page) in preview.pages.iter().enumerate() {
        for event in &page.events {
            serde_json::to_writer(&mut *out, event).map_err(std::io::Error::other)?;
            writeln!(out)?;
        }
        for (item, reason) in &page.dead_letters {
            let line = serde_json::json!({ "dead_letter": { "reason": reason, "item": item } });
            serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::other)?;
            writeln!(out)?;
        }
        writeln!(
            summary,
            "page {} ({}): {} events, {} would be dead letters",
            n + 1,
            crate::text::printable(&page.at),
            page.events.len(),
            page.dead_letters.len()
        )?;
    }
    writeln!(
        summary,
        "{}; nothing was published or committed",
        if preview.complete { "the walk ended" } else { "more pages follow" }
    )?;
    Ok(preview.complete)
}
