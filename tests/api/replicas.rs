//! Several replicas on one Redis, behind a load balancer that sends every request
//! (API calls and Routee's webhooks) to a random replica.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ivr_gateway::domain::Timestamp;
use ivr_gateway::sim::{Behaviour, CalleeScript, Callees};
use serde_json::json;
use tokio::sync::RwLock;

use crate::helpers::{Options, StoreKind, TestApp, phone, spawn_app, spawn_sim, ticket_callout};
use crate::redis_server::RedisServer;

/// A load balancer forwarding each request to a random backend.
#[derive(Clone)]
pub struct Balancer {
    backends: Arc<RwLock<Vec<String>>>,
    http: reqwest::Client,
}

impl Balancer {
    pub async fn start() -> (Balancer, String) {
        let lb = Balancer {
            backends: Arc::new(RwLock::new(Vec::new())),
            http: reqwest::Client::new(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(forward).with_state(lb.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (lb, url)
    }

    pub async fn set(&self, backends: Vec<String>) {
        *self.backends.write().await = backends;
    }
}

async fn forward(
    State(lb): State<Balancer>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let backend = {
        let b = lb.backends.read().await;
        if b.is_empty() {
            return (StatusCode::BAD_GATEWAY, "no backend").into_response();
        }
        b[rand::random_range(0..b.len())].clone()
    };
    let url = format!(
        "{backend}{}",
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut req = lb.http.request(method, url).body(body);
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status();
            let headers = r.headers().clone();
            let body = r.bytes().await.unwrap_or_default();
            let mut out = (status, body).into_response();
            if let Some(ct) = headers.get("content-type") {
                out.headers_mut().insert("content-type", ct.clone());
            }
            out
        }
        Err(_) => (StatusCode::BAD_GATEWAY, "backend failed").into_response(),
    }
}

async fn replicas(
    n: usize,
    server: &RedisServer,
    sim: &ivr_gateway::sim::SimHandle,
    env: &[(&str, &str)],
) -> (Vec<TestApp>, String) {
    let (lb, lb_url) = Balancer::start().await;
    let mut apps = Vec::new();
    for _ in 0..n {
        let mut o = Options::with_store(StoreKind::Redis {
            url: server.url(),
            prefix: "replicas".into(),
        });
        o.external_sim = Some(sim.clone());
        o.public_url = Some(lb_url.clone());
        for (k, v) in env {
            o = o.env(k, v);
        }
        apps.push(spawn_app(o).await);
    }
    lb.set(apps.iter().map(|a| a.base.clone()).collect()).await;
    (apps, lb_url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_redis_place_each_call_exactly_once() {
    let server = RedisServer::start();
    let mut callees =
        Callees::new(CalleeScript::always(Behaviour::NeverAnswers).then(Behaviour::accepts()));
    callees.insert(&phone(2), Behaviour::press_on_prompt(["2"]));
    let sim = spawn_sim(callees).await;
    let (apps, lb) = replicas(2, &server, &sim, &[]).await;
    // Create through the balancer: any replica may take the request and any webhook.
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..6 {
        let mut body = ticket_callout(2);
        body["contacts"] = json!([
            {"name": "A", "phone": format!("+3069100000{i:02}")},
            {"name": "B", "phone": format!("+3069200000{i:02}")},
        ]);
        let r = http
            .post(format!("{lb}/v1/callouts"))
            .bearer_auth(crate::helpers::ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        ids.push(
            r.json::<serde_json::Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut total_attempts = 0;
    for id in &ids {
        let c = apps[0].wait_settled(id, Duration::from_secs(60)).await;
        assert_eq!(c["status"], "accepted", "{c}");
        let n = c["attempts"].as_array().unwrap().len();
        assert_eq!(n, 2, "first attempt unanswered, second accepted: {c}");
        total_attempts += n;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let calls = sim.calls();
    assert_eq!(
        calls.len(),
        total_attempts,
        "a call was placed twice or not at all"
    );
    // Each number was called exactly twice (attempts 1 and 2), never more.
    let mut per_number = std::collections::HashMap::<String, u32>::new();
    for c in &calls {
        *per_number.entry(c.to.clone()).or_default() += 1;
    }
    assert!(per_number.values().all(|n| *n == 2), "{per_number:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_outbound_call_rate_limit_holds_across_replicas() {
    let server = RedisServer::start();
    let sim = spawn_sim(Callees::new(CalleeScript::always(Behaviour::Busy))).await;
    let (apps, _lb) = replicas(2, &server, &sim, &[("ROUTEE_CALLS_PER_SECOND", "4")]).await;
    // Twelve callouts at once, half on each replica, all due immediately.
    let mut ids = Vec::new();
    for i in 0..12u32 {
        let mut body = ticket_callout(1);
        body["contacts"] = json!([{"name": "A", "phone": format!("+3069300000{i:02}")}]);
        body["policy"]["attempts_per_contact"] = json!(1);
        ids.push(apps[(i % 2) as usize].create_callout(&body).await);
    }
    for id in &ids {
        apps[0].wait_settled(id, Duration::from_secs(60)).await;
    }
    let mut times: Vec<i64> = sim
        .calls()
        .iter()
        .map(|c| Timestamp::parse_lenient(&c.created_at).unwrap().millis())
        .collect();
    times.sort_unstable();
    assert_eq!(times.len(), 12);
    // 4 per second across both replicas: 12 creations span at least ~11 intervals
    // of 250 ms, and no window of one second holds more than 4 (+1 at its edge).
    let span = times[11] - times[0];
    assert!(
        span >= 11 * 250 - 150,
        "12 calls in {span} ms: faster than 4/s"
    );
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|u| **u < t + 1000).count();
        assert!(
            in_window <= 5,
            "{in_window} calls within one second starting at call {i}: {times:?}"
        );
    }
}

/// A replica of a rotation: its own secrets, behind the shared balancer.
async fn rotation_replica(
    server: &RedisServer,
    sim: &ivr_gateway::sim::SimHandle,
    lb_url: &str,
    env: &[(&str, &str)],
) -> TestApp {
    let mut o = Options::with_store(StoreKind::Redis {
        url: server.url(),
        prefix: "rotation".into(),
    });
    o.external_sim = Some(sim.clone());
    o.public_url = Some(lb_url.to_owned());
    for (k, v) in env {
        o = o.env(k, v);
    }
    spawn_app(o).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_secret_rotation_across_two_replicas_keeps_every_live_calls_key_presses() {
    const OLD: &str = crate::helpers::SECRET;
    const NEW: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let server = RedisServer::start();
    // Two turns each: a wrong key, then 1. Every key press is a webhook signed by
    // the replica that rendered the turn, sent to whichever the balancer picks.
    let sim = spawn_sim(Callees::new(CalleeScript::always(
        Behaviour::press_on_prompt(["9", "1"]),
    )))
    .await;
    let (lb, lb_url) = Balancer::start().await;
    let http = reqwest::Client::new();
    let create = |i: u32| {
        let (http, lb_url) = (http.clone(), lb_url.clone());
        async move {
            let mut body = ticket_callout(1);
            body["contacts"] = json!([{"name": "A", "phone": format!("+3069100001{i:02}")}]);
            body["policy"]["attempts_per_contact"] = json!(1);
            let r = http
                .post(format!("{lb_url}/v1/callouts"))
                .bearer_auth(crate::helpers::ADMIN_TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<serde_json::Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    // Mid-roll of phase 2: one replica still announces NEW, one already signs with it.
    let phase1 = rotation_replica(
        &server,
        &sim,
        &lb_url,
        &[("GATEWAY_SECRET", OLD), ("GATEWAY_SECRET_NEXT", NEW)],
    )
    .await;
    let phase2 = rotation_replica(
        &server,
        &sim,
        &lb_url,
        &[("GATEWAY_SECRET", NEW), ("GATEWAY_SECRET_PREVIOUS", OLD)],
    )
    .await;
    lb.set(vec![phase1.base.clone(), phase2.base.clone()]).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(create(i).await);
    }
    // The roll goes on while those calls are live: the phase-1 replica is
    // replaced by a second phase-2 one.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let phase2b = rotation_replica(
        &server,
        &sim,
        &lb_url,
        &[("GATEWAY_SECRET", NEW), ("GATEWAY_SECRET_PREVIOUS", OLD)],
    )
    .await;
    lb.set(vec![phase2.base.clone(), phase2b.base.clone()])
        .await;
    phase1.stop().await;
    for i in 6..8 {
        ids.push(create(i).await);
    }
    for id in &ids {
        let c = phase2.wait_settled(id, Duration::from_secs(60)).await;
        assert_eq!(c["status"], "accepted", "every key press got through: {c}");
        let keys: Vec<&str> = c["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "keys_pressed")
            .filter_map(|e| e["keys"].as_str())
            .collect();
        assert_eq!(keys, ["9", "1"], "{c}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_per_person_limit_holds_across_replicas() {
    let server = RedisServer::start();
    let sim = spawn_sim(Callees::new(CalleeScript::always(Behaviour::Busy))).await;
    let limits = [
        ("PERSON_CALLS_PER_15_MIN", "2"),
        ("PERSON_CALLS_PER_HOUR", "7"),
    ];
    let (apps, _lb) = replicas(2, &server, &sim, &limits).await;
    // Six callouts at once for the same person, three on each replica.
    let mut ids = Vec::new();
    for i in 0..6 {
        let mut body = ticket_callout(1);
        body["policy"]["attempts_per_contact"] = json!(1);
        ids.push(apps[i % 2].create_callout(&body).await);
    }
    let mut held = 0;
    for id in &ids {
        let c = apps[0]
            .wait_until(id, Duration::from_secs(30), |c| {
                c["status"] != "calling"
                    || c["events"]
                        .as_array()
                        .is_some_and(|e| e.iter().any(|e| e["kind"] == "call_held"))
            })
            .await;
        if c["status"] == "calling" {
            held += 1;
        } else {
            assert_eq!(c["status"], "exhausted", "{c}");
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sim.calls().len(),
        2,
        "the person was called more than twice"
    );
    assert_eq!(held, 4);
}
