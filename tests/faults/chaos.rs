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

use ivr_gateway::store::Store;
use ivr_gateway::store::keys::{Keys, shard_of};

use crate::cluster::Cluster;
use crate::redis_server::RedisProcess;
use crate::redis_server::ha::RedisCluster;
use crate::settings::RedisMode;

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
    /// Cluster mode: `kill -9` the primary holding the shard of a callout with a
    /// live call (chosen with `pick`); a replica is promoted; the node is started
    /// again after `restart_after` and rejoins as a replica.
    PrimaryKill {
        pick: usize,
        restart_after: Duration,
    },
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
            Action::PrimaryKill { .. } => "cluster primary kill -9 under a live call",
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
pub fn schedule(rng: &mut StdRng, window: Duration, redis: RedisMode) -> Vec<(Duration, Action)> {
    let secs = window.as_secs_f64();
    let mut plan: Vec<(Duration, Action)> = Vec::new();
    match redis {
        RedisMode::Single => redis_faults(rng, secs, &mut plan),
        RedisMode::Cluster => primary_kills(rng, secs, &mut plan),
    }
    other_faults(rng, secs, &mut plan);
    plan.sort_by_key(|(t, _)| *t);
    plan
}

/// Cluster mode: three primary kills per minute of window, each in its own part
/// of it (one at a time: the chaos waits for the previous one to heal).
fn primary_kills(rng: &mut StdRng, secs: f64, plan: &mut Vec<(Duration, Action)>) {
    let kills = ((secs / 60.0).ceil().max(1.0) as usize) * 3;
    for k in 0..kills {
        let (lo, hi) = (k as f64 / kills as f64, (k as f64 + 0.8) / kills as f64);
        let at = Duration::from_secs_f64(rng.random_range(lo..hi) * 0.9 * secs);
        plan.push((
            at,
            Action::PrimaryKill {
                pick: rng.random_range(0..1000),
                restart_after: Duration::from_millis(rng.random_range(2000..5000)),
            },
        ));
    }
}

fn redis_faults(rng: &mut StdRng, secs: f64, plan: &mut Vec<(Duration, Action)>) {
    let mut at = |lo: f64, hi: f64| Duration::from_secs_f64(rng.random_range(lo..hi) * secs);
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
}

fn other_faults(rng: &mut StdRng, secs: f64, plan: &mut Vec<(Duration, Action)>) {
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
}

/// What was injected, when.
#[derive(Debug, Default, Clone)]
pub struct Injected {
    pub by_kind: BTreeMap<&'static str, u32>,
    /// When each replica was killed (to excuse a lost report in the same instant).
    pub kills: Vec<Timestamp>,
    /// Intervals when Redis was unavailable (one server away; in cluster mode, a
    /// primary from its death to its replica's promotion).
    pub redis_away: Vec<(Timestamp, Timestamp)>,
    /// Cluster mode: what each primary kill hit and how long the promotion took.
    pub primary_kills: Vec<String>,
}

/// The run's Redis.
pub enum RedisUnderTest {
    Single(Arc<Mutex<RedisProcess>>),
    Cluster {
        cluster: Arc<Mutex<RedisCluster>>,
        /// The gateway's store on it, to find callouts with a live call.
        store: Store,
    },
}

pub struct Targets {
    pub cluster: Arc<Cluster>,
    pub redis: RedisUnderTest,
    pub sim: SimHandle,
    pub voiceflow: SimVoiceflowHandle,
}

async fn redis_op(redis: &RedisUnderTest, op: fn(&mut RedisProcess)) {
    let RedisUnderTest::Single(redis) = redis else {
        return;
    };
    let redis = Arc::clone(redis);
    tokio::task::spawn_blocking(move || op(&mut redis.lock().expect("redis lock")))
        .await
        .expect("redis op");
}

async fn on_cluster<T: Send + 'static>(
    cluster: &Arc<Mutex<RedisCluster>>,
    op: impl FnOnce(&mut RedisCluster) -> T + Send + 'static,
) -> T {
    let cluster = Arc::clone(cluster);
    tokio::task::spawn_blocking(move || op(&mut cluster.lock().expect("cluster lock")))
        .await
        .expect("cluster op")
}

/// Kills the primary of a callout with a live call, waits for its replica's
/// promotion, and starts the node again later (in `background`). Skipped while
/// the previous kill has not healed or no call is live.
async fn primary_kill(
    redis: &RedisUnderTest,
    pick: usize,
    restart_after: Duration,
    injected: &Arc<Mutex<Injected>>,
    background: &mut Vec<tokio::task::JoinHandle<()>>,
) -> bool {
    let RedisUnderTest::Cluster { cluster, store } = redis else {
        return false;
    };
    if !on_cluster(cluster, |c| c.healthy()).await {
        return false;
    }
    let far = Timestamp::now().plus_secs(1_000_000);
    let live = store.overdue_calls(far, 64).await.unwrap_or_default();
    let Some(id) = live.get(pick % live.len().max(1)).copied() else {
        return false;
    };
    let key = Keys::new("ivr").callout(id);
    let from = Timestamp::now();
    let (dead, promoted) = on_cluster(cluster, move |c| {
        let dead = c.primary_of(&key);
        c.node_mut(dead).kill();
        (dead, c.wait_promoted(&key, dead, Duration::from_secs(30)))
    })
    .await;
    let healed = Timestamp::now();
    let mut inj = injected.lock().expect("tally");
    inj.redis_away.push((from, healed));
    inj.primary_kills.push(format!(
        "callout {id} (shard {:02}): primary :{dead} killed at {from}, replica :{promoted} promoted after {} ms",
        shard_of(id),
        healed.0 - from.0
    ));
    drop(inj);
    let cluster = Arc::clone(cluster);
    background.push(tokio::spawn(async move {
        tokio::time::sleep(restart_after).await;
        on_cluster(&cluster, move |c| {
            c.node_mut(dead).restart();
            c.wait_healthy();
        })
        .await;
    }));
    true
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
            Action::PrimaryKill {
                pick,
                restart_after,
            } => {
                if primary_kill(&t.redis, pick, restart_after, &injected, &mut background).await {
                    count(&injected);
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
                let RedisUnderTest::Single(redis) = &t.redis else {
                    continue;
                };
                let redis = RedisUnderTest::Single(Arc::clone(redis));
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
    if let RedisUnderTest::Cluster { cluster, .. } = &t.redis {
        on_cluster(cluster, |c| {
            let stopped: Vec<u16> = c
                .nodes
                .iter()
                .filter(|n| !n.is_running())
                .map(|n| n.port)
                .collect();
            for port in stopped {
                c.node_mut(port).restart();
            }
            c.wait_healthy();
        })
        .await;
    }
    t.cluster.start_all().await;
    t.voiceflow.set_latency(Duration::ZERO);
    t.voiceflow.fail_next(Vec::new());
    t.voiceflow.garbage_next(0);
    t.sim.set_faults(keep);
}
