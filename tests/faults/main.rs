//! The fault suite: many callouts through the carrier simulator while replicas
//! are killed, Redis is restarted and frozen, callbacks are duplicated, delayed,
//! reordered and dropped, Voiceflow is slow, failing or answering garbage, and
//! Routee refuses creations and tokens; then invariants over the whole run.
//!
//! ```text
//! cargo test --release --test faults -- --ignored --nocapture    # CI size
//! FAULTS_CALLOUTS=300 FAULTS_SECONDS=600 \
//!   cargo test --release --test faults -- --ignored --nocapture  # soak
//! ```
//!
//! The test is `#[ignore]`d so that the ordinary `cargo test` (debug, every
//! target) only builds it; it runs on its own, in release, because it starts
//! real gateway processes and measures them against Routee's 3-second window.
//!
//! Knobs: `FAULTS_CALLOUTS`, `FAULTS_SECONDS` (fault window), `FAULTS_REPLICAS`,
//! `FAULTS_BOUND_SECONDS` (time allowed after the faults stop), `FAULTS_SEED`
//! (the plan, the fault schedule and the simulator's choices), `FAULTS_TIME_SCALE`,
//! `FAULTS_REDIS` (`single`, the default, or `cluster`: a Redis Cluster of three
//! primaries and three replicas whose primaries are killed with `kill -9` under
//! live calls instead of the one server being restarted, frozen and taken down).
//!
//! # Layout
//!
//! - [`settings`]: the knobs.
//! - [`redis_server`]: the private `redis-server` (AOF) and how it is taken away.
//! - [`lb`]: the load balancer that is every replica's `PUBLIC_URL`.
//! - [`cluster`]: the gateway replicas, real `ivr-gateway serve` processes.
//! - [`workload`]: the callouts, their callees, the dispatchers' client.
//! - [`chaos`]: the fault schedule and its injection.
//! - [`watch`]: "nothing is stuck", sampled from Redis during the run.
//! - [`checks`]: the invariants over the whole run.
//! - [`report`]: the summary.
//!
//! # A run
//!
//! Setup, then the fault window (callouts are created during its first 70%),
//! then calm (every fault lifted except duplicated/delayed/reordered callbacks,
//! which never stop a callout from finishing), then every callout must settle
//! within the bound, then the checks. On a violation the run directory (replica
//! logs, Redis log and AOF, `callouts.json` and the carrier's `calls.json`) is
//! kept and its path printed.

// Test support code may panic: that is how a test fails. The summary is printed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod chaos;
mod checks;
mod cluster;
mod lb;
mod redis_server;
mod report;
mod settings;
mod watch;
mod workload;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ivr_gateway::config::Secret;
use ivr_gateway::domain::{Assistant, AssistantId, AssistantSettings, Timestamp};
use ivr_gateway::security::Signer;
use ivr_gateway::sim::{
    Behaviour, CalleeScript, Callees, Faults, SimSettings, SimVoiceflow, SimVoiceflowHandle,
    SimVoiceflowSettings, Simulator,
};
use ivr_gateway::store::{RedisStore, Store};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::chaos::{RedisUnderTest, Targets};
use crate::cluster::Cluster;
use crate::lb::LoadBalancer;
use crate::redis_server::RedisProcess;
use crate::redis_server::ha::{RedisCluster, Slots};
use crate::settings::{RedisMode, Settings};
use crate::workload::{ASSISTANT, Api};

const SECRET: &str = "4b1f0e7c2d9a8356e1c0b7a49f3d2e6851a7c4b0e9d8f3a2c6b5e4d1f0a9b8c7";
const ADMIN_TOKEN: &str = "fault-suite-admin-token-0001";
const DISPATCHER_TOKEN: &str = "fault-suite-dispatcher-token";

fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Registers the simulated assistant the way the assistants API stores one: its
/// key encrypted with the shared `GATEWAY_SECRET`, so every replica can use it.
async fn register_assistant(redis_url: &str, vf: &SimVoiceflowHandle) {
    let store = Store::Redis(
        RedisStore::connect(redis_url, "ivr", Duration::from_secs(3600))
            .await
            .expect("store"),
    );
    let signer = Signer::new(&Secret::new(SECRET.as_bytes().to_vec()), None);
    let id = AssistantId::new();
    let key = "VF.DM.fault-suite-simulated";
    let now = Timestamp::now();
    let assistant = Assistant {
        id,
        name: ASSISTANT.into(),
        version: "production".into(),
        project_id: Some(vf.project_id()),
        project_name: Some(vf.project_name()),
        version_id: Some(vf.version_id()),
        created_at: now,
        updated_at: now,
        settings: AssistantSettings {
            save_transcripts: true,
            ..AssistantSettings::default()
        },
        encrypted_key: signer.encrypt_key(id, key),
        key_hint: key[key.len() - 4..].into(),
    };
    store
        .save_assistant(&assistant)
        .await
        .expect("assistant saved");
}

/// The live-mode environment every replica shares (`LISTEN_ADDR` is per replica).
fn gateway_env(
    redis_url: &str,
    sim: &ivr_gateway::sim::SimHandle,
    vf: &SimVoiceflowHandle,
    lb: &LoadBalancer,
) -> Vec<(String, String)> {
    let (app_id, app_secret) = sim.credentials();
    [
        ("ROUTEE_APP_ID", app_id),
        ("ROUTEE_APP_SECRET", app_secret),
        ("ROUTEE_API_URL", sim.base_url().to_string()),
        ("ROUTEE_AUTH_URL", sim.auth_url().to_string()),
        ("ROUTEE_FROM", "+306900000000".into()),
        ("ALLOWED_DESTINATIONS", "*".into()),
        ("ALLOW_INSECURE_PUBLIC_URL", "true".into()),
        ("ROUTEE_CALLS_PER_SECOND", "200".into()),
        // The workload calls the same simulated numbers far more than a person's limits.
        ("PERSON_CALLS_PER_15_MIN", "0".into()),
        ("PERSON_CALLS_PER_HOUR", "0".into()),
        ("VOICEFLOW_RUNTIME_URL", vf.base_url().to_string()),
        ("VOICEFLOW_API_URL", vf.base_url().to_string()),
        ("GATEWAY_SECRET", SECRET.into()),
        (
            "API_KEYS",
            format!("admin:{ADMIN_TOKEN},dispatcher:{DISPATCHER_TOKEN}"),
        ),
        ("REDIS_URL", redis_url.into()),
        ("PUBLIC_URL", lb.url.clone()),
        ("ALLOW_PRIVATE_URLS", "true".into()),
        ("COLLECT_GRACE_MS", "500".into()),
        ("TIMER_POLL_MS", "50".into()),
        ("SHUTDOWN_GRACE_MS", "1000".into()),
        ("LOG_FORMAT", "json".into()),
        ("RUST_LOG", "info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn settled(c: &Value) -> bool {
    c["status"] != "calling"
        && c["attempts"]
            .as_array()
            .is_some_and(|a| a.iter().all(|a| !a["outcome"].is_null()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long: cargo test --release --test faults -- --ignored --nocapture"]
async fn callouts_keep_their_promises_while_replicas_redis_and_upstreams_fail() {
    let settings = Settings::from_env();
    // A hung run fails instead of hanging CI; dropping it kills every process
    // it started.
    let limit = settings.fault_window + settings.bound + Duration::from_secs(300);
    tokio::time::timeout(limit, run(settings))
        .await
        .unwrap_or_else(|_| panic!("the fault suite did not finish within {limit:?}"));
}

async fn run(settings: Settings) {
    let started = Instant::now();
    println!(
        "fault suite: seed {} ({} callouts, {} replicas, {} s of faults, redis {:?})",
        settings.seed,
        settings.callouts,
        settings.replicas,
        settings.fault_window.as_secs(),
        settings.redis
    );
    let run_dir = tempfile::Builder::new()
        .prefix("ivr-faults-")
        .tempdir()
        .expect("run dir");
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let plans = workload::plan(&mut rng, settings.callouts, settings.fault_window);
    let schedule = chaos::schedule(&mut rng, settings.fault_window, settings.redis);

    // The world: Redis, the carrier, Voiceflow, the load balancer, the replicas.
    let (redis, redis_url) = match settings.redis {
        RedisMode::Single => {
            let redis = RedisProcess::start(&run_dir.path().join("redis"));
            let url = redis.url();
            (RedisUnderTest::Single(Arc::new(Mutex::new(redis))), url)
        }
        RedisMode::Cluster => {
            let cluster =
                tokio::task::spawn_blocking(|| RedisCluster::start_with(3, 1, Slots::RedisCli))
                    .await
                    .expect("cluster");
            let url = cluster.url();
            let store = Store::Redis(
                RedisStore::connect(&url, "ivr", Duration::from_secs(3600))
                    .await
                    .expect("store on the cluster"),
            );
            let cluster = Arc::new(Mutex::new(cluster));
            (RedisUnderTest::Cluster { cluster, store }, url)
        }
    };
    let steady = Faults {
        duplicate_callbacks: 1.0,
        callback_delay_ms: (0, 200),
        reorder_callbacks: true,
        seed: Some(settings.seed),
        ..Faults::none()
    };
    let mut sim_settings = SimSettings::new(settings.time_scale);
    // A number the plan did not script would be a stray call: it never answers.
    sim_settings.callees = Callees::new(CalleeScript::always(Behaviour::NeverAnswers));
    sim_settings.faults = Faults {
        drop_final_status: 0.15,
        ..steady.clone()
    };
    let sim = Simulator::start(sim_settings, localhost())
        .await
        .expect("carrier simulator");
    workload::script_callees(&sim, &plans);
    let vf = SimVoiceflow::start(SimVoiceflowSettings::new(), localhost())
        .await
        .expect("voiceflow simulator");
    register_assistant(&redis_url, &vf).await;
    let lb = LoadBalancer::start(settings.replicas).await;
    let cluster = Arc::new(Cluster::new(
        gateway_env(&redis_url, &sim, &vf, &lb),
        run_dir.path(),
        lb.clone(),
        settings.replicas,
    ));
    cluster.start_all().await;
    let api = Api::new(&lb.url, DISPATCHER_TOKEN);
    let targets = Arc::new(Targets {
        cluster: Arc::clone(&cluster),
        redis,
        sim: sim.clone(),
        voiceflow: vf.clone(),
    });

    // The fault window.
    let t0 = Instant::now();
    let stop_watch = CancellationToken::new();
    let watcher = tokio::spawn(watch::run(
        redis_url.clone(),
        Duration::from_secs(2),
        stop_watch.clone(),
    ));
    let dispatch = tokio::spawn(workload::run(api.clone(), plans.clone(), t0));
    let injected = chaos::run(Arc::clone(&targets), schedule, t0).await;
    tokio::time::sleep_until((t0 + settings.fault_window).into()).await;
    chaos::calm(&targets, steady).await;
    let calm_at = Instant::now();
    println!(
        "faults stopped after {:.0} s; waiting for every callout to settle",
        calm_at.duration_since(t0).as_secs_f64()
    );
    let dispatched = dispatch.await.expect("dispatchers");

    // Every callout must settle within the bound.
    let mut pending: Vec<String> = dispatched
        .created
        .iter()
        .map(|(_, id)| id.clone())
        .collect();
    let mut settled_after: HashMap<String, Duration> = HashMap::new();
    while !pending.is_empty() && calm_at.elapsed() < settings.bound {
        let mut still = Vec::new();
        for id in pending {
            match api.try_callout(&id).await {
                Some(c) if settled(&c) => {
                    settled_after.insert(id, calm_at.elapsed());
                }
                _ => still.push(id),
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    // Let the carrier finish what is still ringing or playing, then leave time
    // for a late creation to show.
    let waited = Instant::now();
    while sim.calls().iter().any(|c| c.ended_at.is_none())
        && waited.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_watch.cancel();
    let stuck = watcher.await.expect("watcher");

    // The evidence, and the checks.
    let mut callouts = Vec::new();
    for c in api.all_callouts().await {
        callouts.push(api.callout(c["id"].as_str().expect("id")).await);
    }
    let calls = sim.calls();
    let carrier = sim.injected();
    let voiceflow = vf.injected();
    let (mut violations, observed) = checks::check(&checks::Evidence {
        callouts: &callouts,
        calls: &calls,
        refused: &carrier.refused_creations,
        kills: &injected.kills,
        redis_away: &injected.redis_away,
    });
    for (id, at) in &stuck.seen {
        violations.push(checks::Violation {
            invariant: "nothing is stuck",
            callout: id.clone(),
            evidence: format!("calling with no timer and no live call at {at}"),
        });
    }
    cluster.stop_all().await;
    report::Report {
        settings: &settings,
        plans: &plans,
        callouts: &callouts,
        calls: &calls,
        injected: &injected,
        carrier: &carrier,
        voiceflow: &voiceflow,
        lb: &lb.shared.stats,
        dispatched: &dispatched,
        observed: &observed,
        slowest_settle: settled_after.values().max().copied(),
        run_time: started.elapsed(),
        stuck_samples: stuck.samples,
        violations: &violations,
    }
    .print();
    for kill in &injected.primary_kills {
        println!("  {kill}");
    }
    if !violations.is_empty() {
        // The evidence next to the logs: what the gateway and the carrier saw.
        let dump = |name: &str, value: serde_json::Value| {
            let path = run_dir.path().join(name);
            std::fs::write(&path, serde_json::to_vec_pretty(&value).unwrap_or_default())
                .expect("evidence written");
        };
        dump("callouts.json", Value::from(callouts.clone()));
        dump(
            "calls.json",
            serde_json::to_value(&calls).unwrap_or_default(),
        );
        let kept = run_dir.keep();
        panic!(
            "{} invariant violation(s) (seed {}); replica logs, Redis log and AOF kept in {}",
            violations.len(),
            settings.seed,
            kept.display()
        );
    }
}

/// The CI run's plan (its seed, 40 callouts, 60 s) has waves and callouts
/// needing two people, so the suite's invariants about them are exercised.
#[test]
fn the_ci_plan_has_waves_and_callouts_needing_two_people() {
    let mut rng = StdRng::seed_from_u64(3_550_348_673);
    let plans = workload::plan(&mut rng, 40, std::time::Duration::from_secs(60));
    let waves = plans.iter().filter(|p| p.parallel > 1).count();
    let needed = plans.iter().filter(|p| p.needed > 1).count();
    let both = plans
        .iter()
        .filter(|p| p.parallel > 1 && p.needed > 1)
        .count();
    println!("waves {waves}, needed 2: {needed}, both {both}");
    assert!(
        waves >= 5 && needed >= 3,
        "waves {waves}, needed 2: {needed}"
    );
}
