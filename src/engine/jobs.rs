//! Periodic maintenance, on tokio-cron-scheduler (a few jobs on the multi-thread
//! runtime; per-call timers are never here, they live in the store):
//!
//! | job | every | where |
//! |---|---|---|
//! | reconcile calls past their deadline with Routee's tracking API | 15 s | one replica (lock) |
//! | purge index entries of expired callouts | 10 min | one replica (lock) |
//! | refresh gauges from the store, exporter upkeep | 5 s | every replica |

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use super::Engine;
use crate::domain::{Attempt, CalloutId, Reconciliation, Timestamp};
use crate::routee::CallStatus;
use crate::telemetry::metrics as m;

const RECONCILE_EVERY: Duration = Duration::from_secs(15);
const PURGE_EVERY: Duration = Duration::from_secs(600);
const GAUGES_EVERY: Duration = Duration::from_secs(5);
/// Overdue calls looked at per reconciliation round.
const RECONCILE_BATCH: usize = 100;

pub struct Jobs {
    scheduler: JobScheduler,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Jobs")
    }
}

impl Jobs {
    pub async fn start(
        engine: Engine,
        prometheus: PrometheusHandle,
    ) -> Result<Jobs, JobSchedulerError> {
        let scheduler = JobScheduler::new().await?;
        let e = engine.clone();
        scheduler
            .add(Job::new_repeated_async(RECONCILE_EVERY, move |_, _| {
                let e = e.clone();
                Box::pin(async move { e.reconcile_overdue().await })
            })?)
            .await?;
        let e = engine.clone();
        scheduler
            .add(Job::new_repeated_async(PURGE_EVERY, move |_, _| {
                let e = e.clone();
                Box::pin(async move { e.purge_expired().await })
            })?)
            .await?;
        let e = engine;
        scheduler
            .add(Job::new_repeated_async(GAUGES_EVERY, move |_, _| {
                let e = e.clone();
                let p = prometheus.clone();
                Box::pin(async move {
                    e.refresh_gauges().await;
                    p.run_upkeep();
                })
            })?)
            .await?;
        scheduler.start().await?;
        Ok(Jobs { scheduler })
    }

    pub async fn shutdown(mut self) {
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::warn!(error = %e, "periodic jobs did not stop cleanly");
        }
    }
}

impl Engine {
    /// True when this replica holds (or just took) the named job's lock.
    async fn lead(&self, job: &str, ttl: Duration) -> bool {
        match self
            .store
            .try_lock(job, &self.settings.replica_id, ttl)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(job, error = %e, "could not take a job lock");
                false
            }
        }
    }

    /// Asks Routee about calls whose final status never arrived.
    pub async fn reconcile_overdue(&self) {
        if !self.lead("reconcile", RECONCILE_EVERY * 2).await {
            return;
        }
        let ids = match self
            .store
            .overdue_calls(Timestamp::now(), RECONCILE_BATCH)
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "could not list overdue calls");
                return;
            }
        };
        for id in ids {
            let Ok(Some(v)) = self.store.load(id).await else {
                continue;
            };
            // The overdue calls (with `policy.parallel` > 1 there may be several).
            let now = Timestamp::now();
            let live = || v.value.open_attempts().filter(|a| a.state.is_live());
            let mut overdue: Vec<&Attempt> = live().filter(|a| a.deadline <= now).collect();
            if overdue.is_empty() {
                overdue.extend(live().min_by_key(|a| a.deadline));
            }
            for attempt in overdue {
                self.reconcile_call(id, attempt).await;
            }
        }
    }

    /// Asks Routee about one overdue call and records the answer.
    async fn reconcile_call(&self, id: CalloutId, attempt: &Attempt) {
        let call = attempt.call_id;
        let result = match &attempt.tracking_id {
            None => Reconciliation::Unknown,
            Some(tracking) => match self.routee.dial_tracking(tracking).await {
                Ok(t) => {
                    let part = t
                        .content
                        .iter()
                        .find(|p| {
                            attempt.message_id.is_some() && p.message_id == attempt.message_id
                        })
                        .or_else(|| t.content.first());
                    match part.map(|p| &p.status.status) {
                        Some(s) if s.is_final() => Reconciliation::Final(s.clone()),
                        Some(CallStatus::Unknown) | None => Reconciliation::Unknown,
                        Some(_) => Reconciliation::StillLive,
                    }
                }
                Err(e) => {
                    tracing::warn!(callout_id = %id, call_id = %call, error = %e, "tracking lookup failed");
                    Reconciliation::Unknown
                }
            },
        };
        tracing::info!(callout_id = %id, call_id = %call, result = ?result, "reconciled an overdue call");
        let timing = self.settings.timing;
        if let Err(e) = self
            .update(id, |c, now| {
                (c.on_reconciled(call, result.clone(), now, &timing), ())
            })
            .await
        {
            tracing::warn!(callout_id = %id, error = %e, "could not record a reconciliation");
        }
    }

    async fn purge_expired(&self) {
        if !self.lead("retention", PURGE_EVERY * 2).await {
            return;
        }
        match self.store.purge_expired(Timestamp::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "purged expired callouts from the indexes"),
            Err(e) => tracing::warn!(error = %e, "retention purge failed"),
        }
    }

    /// Sets the gauges from the store: every replica reports the same numbers.
    /// The daily call counts are read for the current UTC day, so they drop to
    /// 0 at midnight even when no call is placed.
    pub async fn refresh_gauges(&self) {
        self.refresh_daily_counts().await;
        match self.assistants.old_key_items().await {
            Ok(n) => metrics::gauge!(m::SECRET_OLD_KEY_ITEMS).set(n as f64),
            Err(e) => tracing::warn!(error = %e, "could not count keys under an old secret"),
        }
        match self.store.counts().await {
            Ok(c) => {
                metrics::gauge!(m::CALLOUTS_ACTIVE).set(c.active_callouts as f64);
                metrics::gauge!(m::CALLS_ACTIVE).set(c.live_calls as f64);
                metrics::gauge!(m::READY).set(1.0);
            }
            Err(e) => {
                metrics::gauge!(m::READY).set(0.0);
                tracing::warn!(error = %e, "could not read gauges from the store");
            }
        }
    }

    async fn refresh_daily_counts(&self) {
        let day = Timestamp::now().millis().div_euclid(86_400_000);
        if self.settings.max_calls_per_day.is_some()
            && let Ok(n) = self.store.calls_today(day, None).await
        {
            metrics::gauge!(m::CALLS_TODAY).set(n as f64);
        }
        let keys: Vec<String> = self
            .keys_counted_today
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        for by in keys {
            if let Ok(n) = self.store.calls_today(day, Some(&by)).await {
                metrics::gauge!(m::CALLS_TODAY_BY_KEY, "key" => by).set(n as f64);
            }
        }
    }
}
