//! Benchmark 2: status callback intake. Each sender owns its own calls (placed
//! with the fake carrier, so in `Queued`) and delivers, per call, what a carrier
//! sends for an answered call that ends without a key, with one redelivery:
//!
//! | # | callback | effect |
//! |---|---|---|
//! | 1 | `Queued` | no-op: the call is already queued (the create answer said so) |
//! | 2 | `Ringing` | applied |
//! | 3 | `InProgress` | applied (answered) |
//! | 4 | `Completed` | applied (the call ended; the attempt's grace timer is set) |
//! | 5 | `Completed` again | no-op: a redelivery |
//!
//! so 3 of 5 callbacks change state and 2 are idempotent no-ops. The baseline
//! handler gets the same sequences and does one Redis round trip each.

use std::sync::Arc;

use crate::gateway::{Gateway, PlacedCall, status_body};
use crate::load::{self, Run};

/// The callbacks delivered per call, in order.
const MIX: [&str; 5] = ["Queued", "Ringing", "InProgress", "Completed", "Completed"];

pub struct Level {
    pub senders: usize,
    pub gateway: Run,
    pub baseline: Run,
}

pub struct StatusReport {
    pub levels: Vec<Level>,
    /// Client round trips of an applied callback (`Ringing`) and of a no-op
    /// (`Queued` again), by command.
    pub applied_round_trips: Vec<String>,
    pub noop_round_trips: Vec<String>,
}

pub struct Settings {
    pub levels: Vec<usize>,
    pub rounds: usize,
    /// Callbacks per sender level and round.
    pub callbacks: usize,
}

/// Per sender, its calls' callbacks in delivery order.
fn sequences(calls: &[PlacedCall], senders: usize) -> Vec<Vec<(PlacedCall, &'static str)>> {
    let mut out: Vec<Vec<(PlacedCall, &'static str)>> = vec![Vec::new(); senders];
    for (i, call) in calls.iter().enumerate() {
        out[i % senders].extend(MIX.iter().map(|s| (*call, *s)));
    }
    out
}

pub async fn run(
    ctx: &crate::Ctx,
    gw: &Arc<Gateway>,
    baseline_url: &str,
    settings: &Settings,
) -> anyhow::Result<StatusReport> {
    let http = load::client()?;
    // Numbers after the turn benchmark's.
    let mut next_number = 1_000_000;
    let probe = gw.place_calls(&http, next_number, 1, false).await?[0];
    next_number += 1;
    let needle = probe.callout.to_string();
    let applied = crate::monitor::round_trips(ctx.redis_port, &needle, async {
        anyhow::ensure!(
            gw.post_status(&http, probe, "Ringing").await?,
            "probe callback refused"
        );
        Ok(())
    })
    .await?;
    let noop = crate::monitor::round_trips(ctx.redis_port, &needle, async {
        anyhow::ensure!(
            gw.post_status(&http, probe, "Queued").await?,
            "probe callback refused"
        );
        Ok(())
    })
    .await?;

    let mut redis = ctx.redis.clone();
    let per_run_calls = settings.callbacks.div_ceil(MIX.len());
    let mut levels = Vec::new();
    for &senders in &settings.levels {
        let mut level = Level {
            senders,
            gateway: Run::default(),
            baseline: Run::default(),
        };
        for round in 0..settings.rounds {
            eprintln!(
                "[status] {senders} senders, round {}/{}: placing {per_run_calls} calls",
                round + 1,
                settings.rounds
            );
            let calls = gw
                .place_calls(&http, next_number, per_run_calls, false)
                .await?;
            next_number += per_run_calls;
            let base = baseline_url.to_owned();
            let h = http.clone();
            let b = load::fixed_work(
                &mut redis,
                sequences(&calls, senders),
                move |(call, status)| {
                    let url = format!("{base}/baseline/status/{}/{}", call.callout, call.call);
                    let req = h.post(url).json(&status_body(call, status));
                    async move { req.send().await.is_ok_and(|r| r.status().is_success()) }
                },
            )
            .await?;
            level.baseline.absorb(b);
            let (g2, h) = (Arc::clone(gw), http.clone());
            let g = load::fixed_work(
                &mut redis,
                sequences(&calls, senders),
                move |(call, status)| {
                    let req = h
                        .post(g2.engine.status_url(call.callout, call.call))
                        .json(&status_body(call, status));
                    async move { req.send().await.is_ok_and(|r| r.status().is_success()) }
                },
            )
            .await?;
            level.gateway.absorb(g);
        }
        levels.push(level);
    }
    Ok(StatusReport {
        levels,
        applied_round_trips: applied,
        noop_round_trips: noop,
    })
}
