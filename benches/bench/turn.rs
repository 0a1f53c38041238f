//! Benchmark 1: the call turn. Each worker owns one live call and POSTs its
//! COLLECT event turn after turn (key `1`); the gateway loads the callout, claims
//! the turn, asks the fake Voiceflow, renders and commits. The baseline worker
//! POSTs the same body to a handler that only makes the Voiceflow call.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::gateway::{Gateway, LiveCall};
use crate::load::{self, Run};

pub struct Level {
    pub concurrency: usize,
    pub gateway: Run,
    pub baseline: Run,
}

pub struct TurnReport {
    pub levels: Vec<Level>,
    /// The most calls, with a fast Voiceflow: both handlers saturate the CPU,
    /// so their throughput compares what a turn costs.
    pub saturation: Option<Level>,
    pub saturation_latency: Duration,
    /// Client round trips to Redis of one turn, by command.
    pub round_trips: Vec<String>,
    pub voiceflow_latency: Duration,
}

pub struct Settings {
    pub levels: Vec<usize>,
    /// Voiceflow latency of the saturation run.
    pub saturation_latency: Duration,
    pub rounds: usize,
    pub warmup: Duration,
    pub measure: Duration,
}

/// The COLLECT event of `call`'s current turn, as Routee posts it: the tones
/// are cumulative over the call (every turn so far pressed `1`), so the
/// gateway reads one new `1` each turn.
fn event_body(call: &LiveCall) -> serde_json::Value {
    let pressed = usize::try_from(call.turn).unwrap_or(usize::MAX - 1) + 1;
    json!({
        "messageId": format!("m-{}", call.call),
        "conversationTrackingId": format!("t-{}", call.call),
        "collectedTones": "1".repeat(pressed),
    })
}

/// One gateway turn: true when the answer is the assistant's next turn (its
/// COLLECT points at the following turn), not a holding or fallback dialplan.
async fn gateway_turn(
    gw: &Gateway,
    http: &reqwest::Client,
    mut call: LiveCall,
) -> (LiveCall, bool) {
    let url = gw.engine.collect_url(call.callout, call.call, call.turn);
    let next = format!("/{}?sig=", call.turn + 1);
    let ok = match http.post(url).json(&event_body(&call)).send().await {
        Ok(r) if r.status().is_success() => r
            .text()
            .await
            .is_ok_and(|t| t.contains(&next) && t.contains("Accept")),
        _ => false,
    };
    // Move on either way: a wrong answer has still used up its turn.
    call.turn += 1;
    (call, ok)
}

async fn baseline_turn(base: &str, http: &reqwest::Client, mut call: LiveCall) -> (LiveCall, bool) {
    let url = format!(
        "{base}/baseline/collect/{}/{}/{}",
        call.callout, call.call, call.turn
    );
    let ok = match http.post(url).json(&event_body(&call)).send().await {
        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
        _ => false,
    };
    call.turn += 1;
    (call, ok)
}

pub async fn run(
    ctx: &crate::Ctx,
    gw: &Arc<Gateway>,
    vf: &crate::fakes::FakeVoiceflow,
    baseline_url: &str,
    settings: &Settings,
) -> anyhow::Result<TurnReport> {
    let http = load::client()?;
    let most = settings.levels.iter().copied().max().unwrap_or(1);
    eprintln!("[turn] placing and answering {most} calls driven by the fake Voiceflow assistant");
    let mut calls = gw.live_calls(&http, 0, most).await?;

    // Exactly what one turn costs in Redis, on an otherwise idle call.
    let probe = calls[0];
    let rt = crate::monitor::round_trips(ctx.redis_port, &probe.callout.to_string(), async {
        let (_, ok) = gateway_turn(gw, &http, probe).await;
        anyhow::ensure!(ok, "the probe turn was not answered with the next turn");
        Ok(())
    })
    .await?;
    calls[0].turn += 1;

    let mut redis = ctx.redis.clone();
    let mut levels = Vec::new();
    let mut runs: Vec<(usize, bool)> = settings.levels.iter().map(|c| (*c, false)).collect();
    runs.push((most, true));
    let mut saturation = None;
    for (c, saturating) in runs {
        let mut level = Level {
            concurrency: c,
            gateway: Run::default(),
            baseline: Run::default(),
        };
        let latency = if saturating {
            settings.saturation_latency
        } else {
            ctx.voiceflow_latency
        };
        vf.set_latency(latency);
        for round in 0..settings.rounds {
            eprintln!(
                "[turn] {c} concurrent calls{}, round {}/{}",
                if saturating { " (saturation)" } else { "" },
                round + 1,
                settings.rounds
            );
            // Baseline and gateway alternate so that noise from other load on the
            // machine falls on both.
            let base = baseline_url.to_owned();
            let h = http.clone();
            let (_, b) = load::closed_loop(
                &mut redis,
                calls[..c].to_vec(),
                settings.warmup,
                settings.measure,
                latency,
                move |call| {
                    let (base, h) = (base.clone(), h.clone());
                    async move { baseline_turn(&base, &h, call).await }
                },
            )
            .await?;
            level.baseline.absorb(b);
            let (g2, h) = (Arc::clone(gw), http.clone());
            let (states, g) = load::closed_loop(
                &mut redis,
                calls[..c].to_vec(),
                settings.warmup,
                settings.measure,
                latency,
                move |call| {
                    let (g2, h) = (Arc::clone(&g2), h.clone());
                    async move { gateway_turn(&g2, &h, call).await }
                },
            )
            .await?;
            calls[..c].copy_from_slice(&states);
            level.gateway.absorb(g);
        }
        if saturating {
            saturation = Some(level);
        } else {
            levels.push(level);
        }
    }
    vf.set_latency(ctx.voiceflow_latency);
    Ok(TurnReport {
        levels,
        saturation,
        saturation_latency: settings.saturation_latency,
        round_trips: rt,
        voiceflow_latency: ctx.voiceflow_latency,
    })
}
