//! What a poll did, and why one stopped.

use crate::checkpoint::StoreError;
use crate::config::CredentialError;
use crate::http::FetchError;
use crate::internal_events::PollCounts;
use crate::paginate::PaginateError;
use crate::publish::PublishError;
use crate::vendors::PageError;

/// What a poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Pages fetched and committed.
    pub pages: u64,
    /// Items on those pages.
    pub items: u64,
    /// Events sent: items normalized and not already delivered. Each is
    /// one message per configured format.
    pub events: u64,
    /// Messages newly stored by the sink (one per event and configured
    /// format, plus dead letters).
    pub published: u64,
    /// Messages the sink already had (acked as duplicates).
    pub duplicates: u64,
    /// Events skipped because the checkpoint store had them as delivered.
    pub skipped_seen: u64,
    /// Items sent to the dead-letter subject.
    pub dead_letters: u64,
    /// Whether the walk reached its end; else its source stopped it
    /// (shutdown, or a lease handed over) and it resumes at the next poll.
    pub complete: bool,
    /// The watermark the completed walk left (`None` if it did not complete).
    pub watermark: Option<String>,
}

impl PollReport {
    /// The figures of the poll's summary line.
    pub fn counts(&self) -> PollCounts<'_> {
        PollCounts {
            pages: self.pages,
            items: self.items,
            events: self.events,
            published: self.published,
            duplicates: self.duplicates,
            skipped_seen: self.skipped_seen,
            dead_letters: self.dead_letters,
            complete: self.complete,
            watermark: self.watermark.as_deref(),
        }
    }

    /// The poll in a few words, events and messages counted apart:
    /// `3 pages, 50 items, 50 events, 100 messages (alertd, ocsf), 0
    /// duplicates, 0 already delivered, 0 dead letters`. `formats` are the
    /// sink's: each event is one message per format, and dead letters are
    /// messages too.
    pub fn summary(&self, formats: &[crate::publish::Format]) -> String {
        let formats: Vec<&str> = formats.iter().map(|f| f.as_str()).collect();
        format!(
            "{} pages, {} items, {} events, {} messages ({}), {} duplicates, {} already delivered, {} dead letters",
            self.pages,
            self.items,
            self.events,
            self.published,
            formats.join(", "),
            self.duplicates,
            self.skipped_seen,
            self.dead_letters
        )
    }
}

/// Why a poll stopped. The cursor is where the last committed page left it.
// Every variant carries the vendor and the source (its message starts with
// them) and, where there is one, the underlying `error`; those fields say
// what they hold, so only the others are documented.
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The API key could not be read.
    #[error("{vendor} source {source_name}: {error}")]
    Credential { vendor: &'static str, source_name: String, error: CredentialError },
    /// A request failed (after retries, for transient failures).
    #[error("{vendor} source {source_name}: {at}: {error}")]
    Fetch {
        vendor: &'static str,
        source_name: String,
        /// Where in the walk.
        at: String,
        error: FetchError,
    },
    /// A body was not a page.
    #[error("{vendor} source {source_name}: {at}: {error}")]
    Page {
        vendor: &'static str,
        source_name: String,
        /// Where in the walk.
        at: String,
        error: PageError,
    },
    /// Pagination stopped early.
    #[error("{vendor} source {source_name}: {error}")]
    Paginate { vendor: &'static str, source_name: String, error: PaginateError },
    /// Events were not acknowledged.
    #[error("{vendor} source {source_name}: {error}; the cursor was not moved")]
    Publish { vendor: &'static str, source_name: String, error: PublishError },
    /// The checkpoint store failed.
    #[error("{vendor} source {source_name}: {error}")]
    Store { vendor: &'static str, source_name: String, error: Box<StoreError> },
    /// The poll panicked (a bug, in alertd or in what a vendor's bytes
    /// reached). Caught at the source's boundary: nothing was committed past
    /// the last acknowledged page, and no other source noticed.
    #[error("{vendor} source {source_name}: the poll panicked ({message}); the cursor was not moved")]
    Panicked {
        vendor: &'static str,
        source_name: String,
        /// The panic's message, clipped.
        message: String,
    },
    /// The stored cursor belongs to another vendor.
    #[error(
        "source {source_name}: its stored cursor was written for vendor {stored}, not {vendor}; run `alertd cursors reset {source_name}`"
    )]
    ForeignCursor {
        vendor: &'static str,
        source_name: String,
        /// The vendor in the store.
        stored: String,
    },
}

impl PollError {
    /// A bounded label for metrics and structured logs.
    pub fn code(&self) -> &'static str {
        match self {
            PollError::Credential { .. } => "credential",
            PollError::Fetch { error, .. } => error.code(),
            PollError::Page { error, .. } => error.code(),
            PollError::Paginate { .. } => "pagination",
            PollError::Publish { .. } => "publish",
            PollError::Store { error, .. } => error.code(),
            PollError::ForeignCursor { .. } => "foreign_cursor",
            PollError::Panicked { .. } => "panic",
        }
    }
}

impl From<PaginateError> for PollError {
    /// Pagination errors reach the walker's caller without source context;
    /// [`Poller::poll`] adds it.
    fn from(error: PaginateError) -> Self {
        PollError::Paginate { vendor: "", source_name: String::new(), error }
    }
}
