//! The summary printed at the end of a run: what ran, what was injected (as
//! scheduled and as the simulators actually served it), what was observed, and
//! every invariant violation.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ivr_gateway::routee::CallStatus;
use ivr_gateway::sim::{InjectedFaults, SimCallRecord, VoiceflowInjected};
use serde_json::Value;

use crate::chaos::Injected;
use crate::checks::{Observed, PLACEMENT_RACE, Violation};
use crate::lb::LbStats;
use crate::settings::Settings;
use crate::workload::{CalloutPlan, Dispatched};

pub struct Report<'a> {
    pub settings: &'a Settings,
    pub plans: &'a [CalloutPlan],
    pub callouts: &'a [Value],
    pub calls: &'a [SimCallRecord],
    pub injected: &'a Injected,
    pub carrier: &'a InjectedFaults,
    pub voiceflow: &'a VoiceflowInjected,
    pub lb: &'a LbStats,
    pub dispatched: &'a Dispatched,
    pub observed: &'a Observed,
    pub slowest_settle: Option<Duration>,
    pub run_time: Duration,
    pub stuck_samples: u32,
    pub violations: &'a [Violation],
}

fn rank(s: &CallStatus) -> u8 {
    match s {
        CallStatus::Queued => 1,
        CallStatus::Initiated => 2,
        CallStatus::Ringing => 3,
        CallStatus::InProgress => 4,
        _ => 5,
    }
}

/// Callback faults as they happened, from the carrier's records.
#[derive(Default)]
struct Callbacks {
    sent: u32,
    duplicated: u32,
    out_of_order: u32,
    dropped_finals: u32,
    undelivered: u32,
    posts: u32,
    posts_duplicated: u32,
}

fn callbacks(calls: &[SimCallRecord]) -> Callbacks {
    let mut c = Callbacks::default();
    for call in calls {
        let mut highest = 0;
        for cb in &call.callbacks {
            if cb.dropped {
                c.dropped_finals += 1;
                continue;
            }
            c.sent += 1;
            c.duplicated += u32::from(cb.duplicated);
            c.undelivered += u32::from(!cb.delivered);
            let r = rank(&cb.status);
            if r < highest {
                c.out_of_order += 1;
            }
            highest = highest.max(r);
        }
        c.posts += call.event_posts.len() as u32;
        c.posts_duplicated += call.event_posts.iter().filter(|p| p.duplicated).count() as u32;
    }
    c
}

fn counts<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut by: BTreeMap<&str, u32> = BTreeMap::new();
    for i in items {
        *by.entry(i).or_insert(0) += 1;
    }
    by.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Report<'_> {
    pub fn print(&self) {
        let s = self.settings;
        println!();
        println!("================ fault suite summary ================");
        println!(
            "seed {} | {} callouts | {} replicas | {} s of faults | bound {} s | time scale {} | run {:.0} s",
            s.seed,
            s.callouts,
            s.replicas,
            s.fault_window.as_secs(),
            s.bound.as_secs(),
            s.time_scale,
            self.run_time.as_secs_f64()
        );
        println!(
            "reproduce: FAULTS_SEED={} FAULTS_CALLOUTS={} FAULTS_SECONDS={} cargo test --release --test faults -- --ignored --nocapture",
            s.seed,
            s.callouts,
            s.fault_window.as_secs()
        );
        println!();
        let assistant = self.plans.iter().filter(|p| p.assistant).count();
        println!(
            "callouts run: {} ({} assistant-driven, {} template-driven); final: {}",
            self.callouts.len(),
            assistant,
            self.plans.len() - assistant,
            counts(
                self.callouts
                    .iter()
                    .map(|c| c["status"].as_str().unwrap_or("?"))
            )
        );
        println!(
            "waves: {} callouts calling 2-3 at once, {} needing 2 people",
            self.plans.iter().filter(|p| p.parallel > 1).count(),
            self.plans.iter().filter(|p| p.needed > 1).count()
        );
        println!(
            "contacts: {} ({})",
            self.plans.iter().map(|p| p.contacts.len()).sum::<usize>(),
            counts(
                self.plans
                    .iter()
                    .flat_map(|p| p.contacts.iter().map(|c| c.kind.as_str()))
            )
        );
        println!(
            "calls placed: {}; attempts: {}; slowest callout to settle after the faults stopped: {}",
            self.calls.len(),
            self.callouts
                .iter()
                .map(|c| c["attempts"].as_array().map_or(0, Vec::len))
                .sum::<usize>(),
            self.slowest_settle
                .map_or("-".into(), |d| format!("{:.1} s", d.as_secs_f64()))
        );
        println!(
            "dispatchers: create retries {}, cancels {} (applied {}, already final {})",
            self.dispatched.create_retries,
            self.dispatched.cancels_requested,
            self.dispatched.cancels_applied,
            self.dispatched.cancels_requested - self.dispatched.cancels_applied
        );
        println!();
        println!("faults injected:");
        for (kind, n) in &self.injected.by_kind {
            println!("  {kind:<44} {n}");
        }
        let cb = callbacks(self.calls);
        println!(
            "  {:<44} {} sent, {} duplicated, {} delivered out of order, {} finals dropped, {} undelivered after retries",
            "status callbacks (all delayed 0-200 ms)",
            cb.sent,
            cb.duplicated,
            cb.out_of_order,
            cb.dropped_finals,
            cb.undelivered
        );
        println!(
            "  {:<44} {} posted, {} duplicated",
            "eventUrl posts", cb.posts, cb.posts_duplicated
        );
        println!(
            "  {:<44} {} ({:?} by status); token requests failed {}",
            "routee creations refused (served)",
            self.carrier.refused_creations.len(),
            self.carrier.refusals_by_status(),
            self.carrier.token_failures
        );
        println!(
            "  {:<44} delayed {}, failed {:?}, garbage {}",
            "voiceflow answers (served)",
            self.voiceflow.delayed,
            self.voiceflow.failures,
            self.voiceflow.garbage
        );
        println!(
            "  {:<44} forwarded {}, refused connections retried {}, died mid-request {}, no replica up {}",
            "load balancer",
            self.lb.forwarded.load(Ordering::Relaxed),
            self.lb.refused.load(Ordering::Relaxed),
            self.lb.broken.load(Ordering::Relaxed),
            self.lb.no_replica.load(Ordering::Relaxed)
        );
        println!();
        let o = self.observed;
        println!(
            "observed: accept presses taken {} (answered 'press again' while the store was away: {}; held for Voiceflow, then cancelled before it answered: {}); eventUrl posts answered with a dialplan {} (refused by the load balancer: {})",
            o.accept_presses_taken,
            o.accept_presses_not_recorded,
            o.accept_presses_pending_when_cancelled,
            o.event_posts_answered,
            o.event_posts_lb_refused
        );
        println!(
            "          callouts with a reconciled call {}; calls the gateway never learnt of {}; carrier refusals found in timelines {} (excused by a kill/outage: {})",
            o.reconciled, o.orphan_calls, o.refusals_matched, o.refusals_excused
        );
        println!(
            "          latest call creation after its callout ended: {} ms (allowed {PLACEMENT_RACE} ms); stuck samples taken {}",
            o.max_placement_lag_ms, self.stuck_samples
        );
        println!();
        println!("invariant violations: {}", self.violations.len());
        for v in self.violations {
            println!("  {v}");
        }
        println!("=====================================================");
    }
}
