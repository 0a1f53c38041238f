//! The timer loop: every replica polls the store for due callout timers, claims a
//! batch atomically (each timer goes to exactly one replica, leased), and fires
//! them. A replica that dies mid-fire leaves a lease that expires; another replica
//! then fires the timer again, and the compare-and-set commit keeps that safe.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{Applied, Engine};
use crate::domain::{CallId, CalloutId, Timestamp};
use crate::telemetry::metrics as m;

/// How long a claimed timer is leased to this replica.
const TIMER_LEASE: Duration = Duration::from_secs(30);
/// Timers claimed per round; a full batch means "more are due: go again at once".
const BATCH: usize = 256;
/// Timers fired concurrently by one replica.
const MAX_CONCURRENT_FIRES: usize = 256;

impl Engine {
    /// Runs until `shutdown`. Claimed work in flight finishes on the task tracker.
    pub async fn run_timers(&self, shutdown: CancellationToken) {
        let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_FIRES));
        let poll = self.settings.timer_poll;
        while !shutdown.is_cancelled() {
            self.beat();
            let now = Timestamp::now();
            let batch = match self.store.claim_due(now, TIMER_LEASE, BATCH).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim due timers; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            let full = batch.len() == BATCH;
            for (id, due) in batch {
                metrics::histogram!(m::TIMER_LAG).record(now.since(due).as_secs_f64());
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                    break;
                };
                let engine = self.clone();
                self.tasks.spawn(async move {
                    engine.fire(id).await;
                    drop(permit);
                });
            }
            if !full {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(poll) => {}
                }
            }
        }
        tracing::info!(
            "timer loop stopped; claimed timers not yet fired go to other replicas when their lease ends"
        );
    }

    /// Fires whatever is due on one callout.
    #[tracing::instrument(name = "timer", skip_all, fields(callout_id = %id))]
    pub(crate) async fn fire(&self, id: CalloutId) {
        let timing = self.settings.timing;
        let result = self
            .update(id, |c, now| {
                (c.on_timer_with(now, &timing, &mut CallId::new), ())
            })
            .await;
        let outcome = match result {
            Ok(Applied::Unchanged {
                callout, version, ..
            }) => {
                // Nothing was due (an early or duplicate wake-up): put the timer back
                // where the document says, never in the past (no hot loop).
                let floor = Timestamp::now().plus(Duration::from_secs(1));
                let next = callout.next_due().map(|t| t.max(floor));
                self.store.release(id, version, next).await
            }
            Ok(Applied::Missing) => self.store.forget(id).await,
            Ok(Applied::Committed { .. }) => Ok(()),
            Err(e) => {
                tracing::warn!(callout_id = %id, error = %e, "timer fire failed; its lease will retry it");
                Ok(())
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(callout_id = %id, error = %e, "could not reschedule a timer; its lease will retry it");
        }
    }
}
