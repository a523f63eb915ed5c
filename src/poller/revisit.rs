//! The poller's side of a revisit (issue 19, `crate::revisit`): its
//! requests, encoding and sink, handed over through `revisit::Access`.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::Store;
use crate::config::Credential;
use crate::event::Event;
use crate::internal_events::{RevisitFailed, RevisitRan};
use crate::paginate::{Page, PageHandler, Position};
use crate::publish::{Message, Sink};
use crate::revisit::{self, Access, Budget, Failure};
use crate::telemetry::Telemetry;
use crate::throttle::Throttle;
use crate::vendors::Vendor;

use super::walk::Handler;
use super::{PollError, Poller, WalkState};

/// A revisit's view of a poller, with the key it was started with.
struct RevisitAccess<'a, V: Vendor> {
    poller: &'a Poller<V>,
    key: Credential,
    shutdown: &'a CancellationToken,
}

fn failure(error: &PollError) -> Failure {
    Failure { code: error.code(), message: error.to_string() }
}

impl<V: Vendor> Access<V> for RevisitAccess<'_, V> {
    fn source(&self) -> &str {
        &self.poller.name
    }

    fn vendor(&self) -> &V {
        &self.poller.vendor
    }

    fn store(&self) -> &Store {
        &self.poller.deps.store
    }

    fn sink(&self) -> &Sink {
        &self.poller.deps.sink
    }

    fn telemetry(&self) -> &Telemetry {
        &self.poller.deps.telemetry
    }

    fn throttle(&self) -> &Throttle {
        &self.poller.throttle
    }

    fn max_pages(&self) -> u64 {
        self.poller.max_pages
    }

    fn fetch<'a>(
        &'a self,
        plan: &'a V::Plan,
        at: &'a Position,
    ) -> BoxFuture<'a, Result<Option<Page>, Failure>> {
        Box::pin(async move {
            let walk = WalkState { plan: plan.clone(), next: at.clone(), max_mark: None };
            let mut handler = Handler::new(self.poller, self.key.clone(), walk, self.shutdown);
            handler.fetch(at).await.map_err(|e| failure(&e))
        })
    }

    fn encode(&self, plan: &V::Plan, event: &Event) -> Result<Vec<Message>, Failure> {
        let walk = WalkState { plan: plan.clone(), next: Position::Start, max_mark: None };
        let handler = Handler::new(self.poller, self.key.clone(), walk, self.shutdown);
        let mut messages = Vec::new();
        handler
            .encode(&Position::Start, event, &event.id.to_string(), &mut messages)
            .map_err(|e| failure(&e))?;
        Ok(messages)
    }
}

impl<V: Vendor> Poller<V> {
    /// Run the source's revisit if it has one and one is due or unfinished;
    /// failures are logged and the next run continues.
    pub(super) async fn revisit_run(&self, budget: Budget, shutdown: &CancellationToken) {
        let Some(settings) = self.revisit else { return };
        let started = Instant::now();
        let key = match crate::config::Credential::resolve(&self.credential) {
            Ok(key) => key,
            Err(error) => {
                let error = PollError::Credential { vendor: V::KEY, source_name: self.name.clone(), error };
                RevisitFailed { source: &self.name, vendor: V::KEY, error: &error, code: error.code() }
                    .emit();
                return;
            }
        };
        let access = RevisitAccess { poller: self, key, shutdown };
        let result = AssertUnwindSafe(revisit::run(&access, &settings, budget, shutdown))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                let error = self.panicked(panic.as_ref());
                Err(revisit::RevisitError::Failed(failure(&error)))
            });
        match result {
            Ok(None) => {}
            Ok(Some(counts)) => {
                let remembered = if counts.complete {
                    self.deps.store.revision_count(&self.name).await.ok()
                } else {
                    None
                };
                RevisitRan {
                    source: &self.name,
                    vendor: V::KEY,
                    counts,
                    remembered,
                    elapsed: started.elapsed(),
                }
                .emit(&self.deps.telemetry);
            }
            Err(error) => {
                RevisitFailed { source: &self.name, vendor: V::KEY, error: &error, code: error.code() }
                    .emit();
            }
        }
    }
}
