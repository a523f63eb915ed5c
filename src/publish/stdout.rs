//! The embedded default sink: one JSON event per line on stdout, so alertd
//! runs on a machine with nothing else installed (and pipes into `jq`).

use std::io::Write;
use std::sync::{Arc, Mutex};

use super::{Format, Message, PublishError, PublishReport, default_formats};

/// Writes each message's payload as a line.
#[derive(Clone)]
pub struct StdoutSink {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
    formats: Arc<[Format]>,
}

impl std::fmt::Debug for StdoutSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StdoutSink")
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        StdoutSink::to_writer(Box::new(std::io::stdout()))
    }
}

impl StdoutSink {
    /// A sink writing to `out` instead of stdout (tests capture with it).
    pub fn to_writer(out: Box<dyn Write + Send>) -> Self {
        StdoutSink { out: Arc::new(Mutex::new(out)), formats: default_formats().into() }
    }

    /// The same sink printing `formats` for each event (each a line).
    #[must_use]
    pub fn with_formats(mut self, formats: &[Format]) -> Self {
        self.formats = formats.into();
        self
    }

    pub(super) fn formats(&self) -> &[Format] {
        &self.formats
    }

    pub(super) async fn publish(&self, batch: Vec<Message>) -> Result<PublishReport, PublishError> {
        let out = Arc::clone(&self.out);
        let n = batch.len();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut out = out.lock().map_err(|_| std::io::Error::other("stdout lock poisoned"))?;
            for m in &batch {
                out.write_all(&m.payload)?;
                out.write_all(b"\n")?;
            }
            out.flush()
        })
        .await
        .map_err(|e| PublishError::Stdout(std::io::Error::other(e.to_string())))??;
        Ok(PublishReport { stored: n, duplicates: 0 })
    }
}
