//! The Redis store on the high-availability deployments, and over TLS: a real
//! Redis Cluster and a real Sentinel setup started by the tests, a primary
//! killed with `kill -9` under a live store, and `rediss://` with an ACL user and
//! a throwaway CA. (The store contract and the escalation scenarios also run on
//! the shared cluster and Sentinel setup: see `store.rs` and `escalation.rs`.)

use std::time::{Duration, Instant};

use ivr_gateway::domain::{
    CalloutId, Contact, Event, EventKind, NewCallout, Policy, Script, Timestamp, Timing,
};
use ivr_gateway::store::keys::{Keys, SHARDS, shard_of, slot};
use ivr_gateway::store::{CommitResult, RedisOptions, RedisStore, Store};
use serde_json::json;

use crate::helpers::{Options, StoreKind, phone, spawn_app, ticket_callout};
use crate::redis_server::ha::{RedisCluster, RedisSentinel, Slots, cli};
use crate::redis_server::{TLS_PASSWORD, TLS_USER, TlsRedis, shared_cluster, unique_prefix};

const RETENTION: Duration = Duration::from_secs(3600);
const LONG: Duration = Duration::from_secs(40);

fn new_callout() -> (ivr_gateway::domain::Callout, Vec<Event>) {
    let input = NewCallout {
        name: "Ticket".into(),
        script: Script::Template {
            name: "ticket-escalation".into(),
        },
        variables: Default::default(),
        contacts: vec![Contact {
            name: "A".into(),
            phone: "+306900000001".parse().unwrap(),
            language: None,
        }],
        policy: Policy::default(),
        notify_url: None,
    };
    ivr_gateway::domain::Callout::create(CalloutId::new(), input, Timestamp::now())
}

/// A callout on each of the 16 shards.
fn one_per_shard() -> Vec<(ivr_gateway::domain::Callout, Vec<Event>)> {
    let mut out: Vec<Option<_>> = (0..SHARDS).map(|_| None).collect();
    while out.iter().any(Option::is_none) {
        let c = new_callout();
        let shard = usize::from(shard_of(c.0.id));
        if out[shard].is_none() {
            out[shard] = Some(c);
        }
    }
    out.into_iter().flatten().collect()
}

/// Retries `f` until it succeeds (a failover in progress answers errors).
async fn eventually<T, E: std::fmt::Debug, F: std::future::Future<Output = Result<T, E>>>(
    limit: Duration,
    mut f: impl FnMut() -> F,
) -> T {
    let started = Instant::now();
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => assert!(started.elapsed() < limit, "still failing: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn every_script_touches_keys_of_one_slot_as_the_cluster_computes_it() {
    let cluster = shared_cluster();
    let keys = Keys::new("ivr");
    keys.check_single_slot().unwrap();
    let port = cluster.nodes[0].port;
    for (script, ks) in keys.script_calls() {
        let slots: std::collections::BTreeSet<u16> = ks
            .iter()
            .map(|k| {
                let server: u16 = cli(port, &["CLUSTER", "KEYSLOT", k])
                    .trim()
                    .parse()
                    .unwrap();
                assert_eq!(server, slot(k), "{k}");
                server
            })
            .collect();
        assert_eq!(slots.len(), 1, "{script}: {ks:?}");
    }
}

#[tokio::test]
async fn on_a_cluster_one_claim_round_is_one_pipeline_per_primary() {
    let store = RedisStore::connect(&shared_cluster().url(), &unique_prefix(), RETENTION)
        .await
        .unwrap();
    assert_eq!(store.deployment(), "cluster");
    // Three primaries, created by `redis-cli --cluster create`, hold the 16 shards.
    assert_eq!(store.servers(), 3);
    let store = Store::Redis(store);
    let callouts = one_per_shard();
    for (c, events) in &callouts {
        store.insert(c, events).await.unwrap();
    }
    let claimed = store
        .claim_due(Timestamp::now().plus_secs(1), Duration::from_secs(30), 100)
        .await
        .unwrap();
    assert_eq!(claimed.len(), callouts.len(), "every shard's timer, once");
}

#[tokio::test]
async fn scripts_forgotten_by_the_servers_are_sent_again_on_every_path() {
    // A promoted replica or a restarted node does not have the scripts cached.
    let cluster = shared_cluster();
    let store = Store::Redis(
        RedisStore::connect(&cluster.url(), &unique_prefix(), RETENTION)
            .await
            .unwrap(),
    );
    let callouts = one_per_shard();
    for node in &cluster.nodes {
        cli(node.port, &["SCRIPT", "FLUSH"]);
    }
    for (c, events) in &callouts {
        store.insert(c, events).await.unwrap();
    }
    for node in &cluster.nodes {
        cli(node.port, &["SCRIPT", "FLUSH"]);
    }
    // A write that waits for a replica (the callout's end), then a claim round.
    let (c, _) = &callouts[3];
    let mut cancelled = c.clone();
    cancelled
        .cancel(Timestamp::now(), &Timing::default())
        .unwrap();
    let ev = [Event::new(Timestamp::now(), EventKind::CalloutCancelled)];
    assert_eq!(
        store.commit(&cancelled, 1, &ev).await.unwrap(),
        CommitResult::Done { version: 2 }
    );
    for node in &cluster.nodes {
        cli(node.port, &["SCRIPT", "FLUSH"]);
    }
    let claimed = store
        .claim_due(Timestamp::now().plus_secs(1), Duration::from_secs(30), 100)
        .await
        .unwrap();
    assert_eq!(claimed.len(), callouts.len() - 1);
}

#[tokio::test]
async fn a_prefix_with_a_hash_tag_is_refused_at_startup() {
    let url = shared_cluster().url();
    let err = RedisStore::connect(&url, "tenant{1}", RETENTION)
        .await
        .unwrap_err()
        .to_string();
    // `{1}` would be the hash tag of every key: the check names the problem.
    assert!(
        err.contains("REDIS_PREFIX") || err.contains("slot"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_cluster_primary_loses_no_acknowledged_decision_and_the_store_follows_the_promoted_replica()
 {
    let mut cluster =
        tokio::task::spawn_blocking(|| RedisCluster::start_with(3, 1, Slots::RedisCli))
            .await
            .unwrap();
    let prefix = unique_prefix();
    let store = Store::Redis(
        RedisStore::connect(&cluster.url(), &prefix, RETENTION)
            .await
            .unwrap(),
    );
    let callouts = one_per_shard();
    for (c, events) in &callouts {
        store.insert(c, events).await.unwrap();
    }
    // A write that matters (the callout's end) on the shard of the victim: it is
    // acknowledged by a replica (WAIT) before `commit` returns.
    let (victim, _) = &callouts[0];
    let mut cancelled = victim.clone();
    cancelled
        .cancel(Timestamp::now(), &Timing::default())
        .unwrap();
    let done = store
        .commit(
            &cancelled,
            1,
            &[Event::new(Timestamp::now(), EventKind::CalloutCancelled)],
        )
        .await
        .unwrap();
    assert_eq!(done, CommitResult::Done { version: 2 });
    let key = Keys::new(&prefix).callout(victim.id);
    let dead = cluster.primary_of(&key);
    cluster.node_mut(dead).kill();
    let promoted = tokio::task::spawn_blocking({
        let key = key.clone();
        let probe = cluster.nodes.iter().find(|n| n.port != dead).unwrap().port;
        move || {
            let started = Instant::now();
            loop {
                let nodes = cli(probe, &["CLUSTER", "NODES"]);
                let healthy = cli(probe, &["CLUSTER", "INFO"]).contains("cluster_state:ok");
                let slot: u16 = cli(probe, &["CLUSTER", "KEYSLOT", &key])
                    .trim()
                    .parse()
                    .unwrap();
                let owner = nodes.lines().find(|l| {
                    l.contains("master") && !l.contains("fail") && {
                        l.split_whitespace()
                            .skip(8)
                            .any(|r| match r.split_once('-') {
                                Some((a, b)) => {
                                    a.parse::<u16>().unwrap() <= slot
                                        && slot <= b.parse::<u16>().unwrap()
                                }
                                None => r.parse::<u16>().ok() == Some(slot),
                            })
                    }
                });
                if healthy && let Some(line) = owner {
                    let port: u16 = line
                        .split_whitespace()
                        .nth(1)
                        .unwrap()
                        .split(['@', ':'])
                        .nth(1)
                        .unwrap()
                        .parse()
                        .unwrap();
                    if port != dead {
                        return port;
                    }
                }
                assert!(started.elapsed() < Duration::from_secs(30), "no promotion");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    })
    .await
    .unwrap();
    assert_ne!(promoted, dead);
    // The same store (no reconnect by hand) reads the decision from the promoted
    // replica, and every callout of every shard is still there and writable.
    let loaded = eventually(Duration::from_secs(20), || store.load(victim.id)).await;
    assert_eq!(
        loaded.unwrap().version,
        2,
        "the acknowledged write survived"
    );
    for (c, _) in &callouts[1..] {
        let v = eventually(Duration::from_secs(20), || store.load(c.id))
            .await
            .unwrap();
        let mut changed = v.value.clone();
        changed.name = "after the failover".into();
        let r = eventually(Duration::from_secs(20), || {
            store.commit(&changed, v.version, &[])
        })
        .await;
        assert_eq!(
            r,
            CommitResult::Done {
                version: v.version + 1
            }
        );
    }
    let counts = eventually(Duration::from_secs(20), || store.counts()).await;
    assert_eq!(counts.active_callouts, u64::from(SHARDS) - 1);
    // The killed node comes back as a replica of the promoted one.
    tokio::task::spawn_blocking(move || {
        cluster.node_mut(dead).restart();
        cluster.wait_healthy();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sentinel_failover_the_store_writes_to_the_new_primary() {
    let mut sentinel = tokio::task::spawn_blocking(RedisSentinel::start)
        .await
        .unwrap();
    let store = Store::Redis(
        RedisStore::connect(&sentinel.url(), "t", RETENTION)
            .await
            .unwrap(),
    );
    let (c, events) = new_callout();
    store.insert(&c, &events).await.unwrap();
    let old = sentinel.primary.port;
    // Replication is asynchronous: a primary killed right after a write may take
    // it down with it (Redis documents that a failover can lose acknowledged
    // writes). The test is about where the store writes after the failover, so
    // the callout must be on the replica first. (A `WAIT` from redis-cli would not
    // do: it waits for that client's own writes, and it has none.)
    let key = Keys::new("t").callout(c.id);
    let replica = sentinel.replica.port;
    let started = Instant::now();
    while cli(replica, &["EXISTS", &key]).trim() != "1" {
        assert!(
            started.elapsed() < LONG,
            "the insert never reached the replica"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sentinel.primary.kill();
    let sentinel = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        while sentinel.primary_port() == old {
            assert!(started.elapsed() < Duration::from_secs(30), "no failover");
            std::thread::sleep(Duration::from_millis(100));
        }
        sentinel
    })
    .await
    .unwrap();
    assert_eq!(sentinel.primary_port(), sentinel.replica.port);
    let loaded = eventually(Duration::from_secs(20), || store.load(c.id))
        .await
        .unwrap();
    let mut changed = loaded.value.clone();
    changed.name = "on the new primary".into();
    let r = eventually(Duration::from_secs(20), || store.commit(&changed, 1, &[])).await;
    assert_eq!(r, CommitResult::Done { version: 2 });
    let role = cli(sentinel.replica.port, &["ROLE"]);
    assert!(role.starts_with("master"), "{role}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callout_runs_on_redis_over_tls_with_an_acl_user_and_a_private_ca() {
    let server = tokio::task::spawn_blocking(|| TlsRedis::start(false))
        .await
        .unwrap();
    let url = format!(
        "rediss://{TLS_USER}:{TLS_PASSWORD}@localhost:{}",
        server.port
    );
    let app = spawn_app(
        Options::with_store(StoreKind::Redis {
            url,
            prefix: "tls".into(),
        })
        .env("REDIS_TLS_CA_FILE", &server.file("ca.crt")),
    )
    .await;
    app.sim
        .set_callee(&phone(1), ivr_gateway::sim::Behaviour::accepts());
    let id = app.create_callout(&ticket_callout(1)).await;
    let c = app.wait_settled(&id, LONG).await;
    assert_eq!(c["status"], "accepted", "{c}");
    assert_eq!(c["accepted_by"]["phone"], json!(phone(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls_refuses_an_unknown_ca_a_wrong_password_and_a_missing_client_certificate() {
    let server = tokio::task::spawn_blocking(|| TlsRedis::start(true))
        .await
        .unwrap();
    let url = |pw: &str| format!("rediss://{TLS_USER}:{pw}@localhost:{}", server.port);
    let opts = |ca: bool, client: bool| RedisOptions {
        tls_ca_file: ca.then(|| server.file("ca.crt").into()),
        tls_cert_file: client.then(|| server.file("client.crt").into()),
        tls_key_file: client.then(|| server.file("client.key").into()),
        ..RedisOptions::new("t", RETENTION)
    };
    // Everything right: mutual TLS, the private CA, the ACL user.
    let store = RedisStore::connect_with(&url(TLS_PASSWORD), &opts(true, true))
        .await
        .unwrap();
    Store::Redis(store).ping().await.unwrap();
    for (what, u, o) in [
        (
            "the CA is not trusted",
            url(TLS_PASSWORD),
            opts(false, true),
        ),
        (
            "no client certificate",
            url(TLS_PASSWORD),
            opts(true, false),
        ),
        ("a wrong password", url("wrong-password"), opts(true, true)),
    ] {
        let r = tokio::time::timeout(Duration::from_secs(20), RedisStore::connect_with(&u, &o))
            .await
            .expect("an answer, not a hang");
        assert!(r.is_err(), "connected although {what}");
        let text = r.unwrap_err().to_string();
        assert!(!text.contains(TLS_PASSWORD), "the password leaked: {text}");
    }
}
