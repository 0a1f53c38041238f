//! The fault schedule: drawn from the seed before the run starts, then played
//! against the cluster, Redis, the carrier simulator and the simulated assistant.
//! Every injection is counted here when it is made; what the simulators actually
//! served (a queued creation failure is only a fault once a creation meets it) is
//! read back from them for the summary.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ivr_gateway::domain::Timestamp;
use ivr_gateway::sim::{SimHandle, SimVoiceflowHandle};
use rand::Rng;
use rand::rngs::StdRng;

use crate::cluster::Cluster;
use crate::redis_server::RedisProcess;

#[derive(Debug, Clone)]
pub enum Action {
    /// `kill -9` a running replica (chosen with `pick`), restart it after a delay.
    KillReplica {
        pick: usize,
        restart_after: Duration,
    },
    /// `kill -9` Redis and start it again at once (AOF replay).
    RedisRestart,
    /// `SIGSTOP` Redis for a while, then `SIGCONT`.
    RedisFreeze { for_: Duration },
    /// `kill -9` Redis and leave it down for a while.
    RedisDown { for_: Duration },
    /// Voiceflow answers past the 3 s window for a while.
    VoiceflowSlow { latency: Duration, for_: Duration },
    /// The next Voiceflow requests answer these statuses.
    VoiceflowFail { statuses: Vec<u16> },
    /// The next Voiceflow answers are 200 with a body that is not JSON.
    VoiceflowGarbage { n: u32 },
    /// The next call creation answers this status.
    CreateFails { status: u16 },
    /// The next token requests answer 500.
    TokenFails { n: u32 },
}

impl Action {
    fn kind(&self) -> &'static str {
        match self {
            Action::KillReplica { .. } => "replica kill -9 (and restart)",
            Action::RedisRestart => "redis kill -9 + immediate restart",
            Action::RedisFreeze { .. } => "redis frozen (SIGSTOP)",
            Action::RedisDown { .. } => "redis down (killed, restarted later)",
            Action::VoiceflowSlow { .. } => "voiceflow slow period (> 3 s)",
            Action::VoiceflowFail { .. } => "voiceflow 5xx burst (queued)",
            Action::VoiceflowGarbage { .. } => "voiceflow garbage burst (queued)",
            Action::CreateFails { .. } => "routee create failure (queued)",
            Action::TokenFails { .. } => "routee token failures (queued)",
        }
    }
}

/// Draws the schedule for a window: dozens of replica kills, Redis taken away in
/// each of three ways, upstream failures spread over the whole window.
pub fn schedule(rng: &mut StdRng, window: Duration) -> Vec<(Duration, Action)> {
    let secs = window.as_secs_f64();
    let mut at = |lo: f64, hi: f64| Duration::from_secs_f64(rng.random_range(lo..hi) * secs);
    let mut plan: Vec<(Duration, Action)> = Vec::new();
    // Redis: restarted, frozen and down, each in its own part of the window, once
    // per minute of window (the last 10% is left quiet so the run ends cleanly).
    let rounds = (secs / 60.0).ceil().max(1.0) as usize;
    for r in 0..rounds {
        let (lo, hi) = (r as f64 / rounds as f64, (r as f64 + 0.9) / rounds as f64);
        let span = hi - lo;
        plan.push((at(lo, lo + span / 3.0), Action::RedisRestart));
        let freeze = Duration::from_millis(4000 + (r as u64 * 977) % 3000);
        plan.push((
            at(lo + span / 3.0, lo + 2.0 * span / 3.0),
            Action::RedisFreeze { for_: freeze },
        ));
        plan.push((
            at(lo + 2.0 * span / 3.0, hi),
            Action::RedisDown {
                for_: Duration::from_secs(3),
            },
        ));
    }
    let mut every = |mean: f64, make: &mut dyn FnMut(&mut StdRng) -> Action| {
        let mut t = rng.random_range(0.0..mean);
        while t < secs * 0.95 {
            let action = make(rng);
            plan.push((Duration::from_secs_f64(t), action));
            t += rng.random_range(mean * 0.5..mean * 1.5);
        }
    };
    every(2.0, &mut |rng| Action::KillReplica {
        pick: rng.random_range(0..1000),
        restart_after: Duration::from_millis(rng.random_range(300..2500)),
    });
    every(12.0, &mut |rng| Action::VoiceflowSlow {
        latency: Duration::from_millis(rng.random_range(3200..5000)),
        for_: Duration::from_millis(rng.random_range(2000..5000)),
    });
    every(9.0, &mut |rng| Action::VoiceflowFail {
        statuses: if rng.random_bool(0.5) {
            vec![500, 503]
        } else {
            vec![502]
        },
    });
    every(11.0, &mut |rng| Action::VoiceflowGarbage {
        n: rng.random_range(1..=2),
    });
    every(3.0, &mut |rng| Action::CreateFails {
        status: [500, 503, 429, 429, 400][rng.random_range(0..5)],
    });
    every(10.0, &mut |rng| Action::TokenFails {
        n: rng.random_range(1..=3),
    });
    plan.sort_by_key(|(t, _)| *t);
    plan
}

/// What was injected, when.
#[derive(Debug, Default, Clone)]
pub struct Injected {
    pub by_kind: BTreeMap<&'static str, u32>,
    /// When each replica was killed (to excuse a lost report in the same instant).
    pub kills: Vec<Timestamp>,
    /// Intervals when Redis was unavailable.
    pub redis_away: Vec<(Timestamp, Timestamp)>,
}

pub struct Targets {
    pub cluster: Arc<Cluster>,
    pub redis: Arc<Mutex<RedisProcess>>,
    pub sim: SimHandle,
    pub voiceflow: SimVoiceflowHandle,
}

async fn redis_op(redis: &Arc<Mutex<RedisProcess>>, op: fn(&mut RedisProcess)) {
    let redis = Arc::clone(redis);
    tokio::task::spawn_blocking(move || op(&mut redis.lock().expect("redis lock")))
        .await
        .expect("redis op");
}

/// Plays `schedule` from `t0`; returns once every injection (and every restart it
/// caused) is done, with Redis and every replica back.
pub async fn run(t: Arc<Targets>, schedule: Vec<(Duration, Action)>, t0: Instant) -> Injected {
    let injected = Arc::new(Mutex::new(Injected::default()));
    let mut background = Vec::new();
    for (at, action) in schedule {
        tokio::time::sleep_until((t0 + at).into()).await;
        let count = |inj: &Arc<Mutex<Injected>>| {
            *inj.lock()
                .expect("tally")
                .by_kind
                .entry(action.kind())
                .or_insert(0) += 1;
        };
        match action.clone() {
            Action::KillReplica {
                pick,
                restart_after,
            } => {
                let running = t.cluster.running();
                if running.is_empty() {
                    continue;
                }
                let i = running[pick % running.len()];
                if t.cluster.kill(i).await {
                    count(&injected);
                    injected.lock().expect("tally").kills.push(Timestamp::now());
                    let cluster = Arc::clone(&t.cluster);
                    background.push(tokio::spawn(async move {
                        tokio::time::sleep(restart_after).await;
                        cluster.start(i).await;
                    }));
                }
            }
            Action::RedisRestart => {
                count(&injected);
                let from = Timestamp::now();
                redis_op(&t.redis, |r| {
                    r.kill();
                    r.start_again();
                })
                .await;
                injected
                    .lock()
                    .expect("tally")
                    .redis_away
                    .push((from, Timestamp::now()));
            }
            Action::RedisFreeze { for_ } | Action::RedisDown { for_ } => {
                count(&injected);
                let freeze = matches!(action, Action::RedisFreeze { .. });
                let from = Timestamp::now();
                let take_away: fn(&mut RedisProcess) = if freeze {
                    RedisProcess::freeze
                } else {
                    RedisProcess::kill
                };
                redis_op(&t.redis, take_away).await;
                let redis = Arc::clone(&t.redis);
                let inj = Arc::clone(&injected);
                background.push(tokio::spawn(async move {
                    tokio::time::sleep(for_).await;
                    redis_op(&redis, |r| {
                        r.thaw();
                        r.start_again();
                    })
                    .await;
                    inj.lock()
                        .expect("tally")
                        .redis_away
                        .push((from, Timestamp::now()));
                }));
            }
            Action::VoiceflowSlow { latency, for_ } => {
                count(&injected);
                t.voiceflow.set_latency(latency);
                let vf = t.voiceflow.clone();
                background.push(tokio::spawn(async move {
                    tokio::time::sleep(for_).await;
                    vf.set_latency(Duration::ZERO);
                }));
            }
            Action::VoiceflowFail { statuses } => {
                count(&injected);
                t.voiceflow.fail_next(statuses);
            }
            Action::VoiceflowGarbage { n } => {
                count(&injected);
                t.voiceflow.garbage_next(n);
            }
            Action::CreateFails { status } => {
                count(&injected);
                t.sim
                    .queue_create_failures(&[status])
                    .expect("valid status");
            }
            Action::TokenFails { n } => {
                count(&injected);
                t.sim.queue_token_failures(n);
            }
        }
    }
    for b in background {
        b.await.expect("background fault task");
    }
    injected.lock().expect("tally").clone()
}

/// Ends every fault that is still pending: Redis running, every replica up,
/// the simulators answering promptly (duplicated, delayed and reordered callbacks
/// go on: they never stop a callout from finishing).
pub async fn calm(t: &Targets, keep: ivr_gateway::sim::Faults) {
    redis_op(&t.redis, |r| {
        r.thaw();
        r.start_again();
    })
    .await;
    t.cluster.start_all().await;
    t.voiceflow.set_latency(Duration::ZERO);
    t.voiceflow.fail_next(Vec::new());
    t.voiceflow.garbage_next(0);
    t.sim.set_faults(keep);
}
