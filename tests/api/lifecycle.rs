//! Health, readiness and the shutdown sequence.

use std::time::{Duration, Instant};

use ivr_gateway::sim::Behaviour;
use serde_json::{Value, json};

use crate::helpers::{Options, phone, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer_with_their_reasons() {
    let app = spawn_app(Options::default()).await;
    let h: Value = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    let r: Value = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            r["status"].as_str(),
            r["mode"].as_str(),
            r["store"].as_str()
        ),
        (Some("ready"), Some("sandbox"), Some("memory"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_fails_readiness_finishes_the_webhook_in_flight_then_stops() {
    let app = spawn_app(Options::default().env("SHUTDOWN_GRACE_MS", "3000")).await;
    app.sim.set_callee(&phone(1), Behaviour::silent());
    let body = json!({
        "name": "T", "assistant": "sandbox", "variables": {"ticket": "x"},
        "contacts": [{"name": "A", "phone": phone(1)}],
        "policy": {"attempts_per_contact": 1, "input_timeout_s": 60},
    });
    let id = app.create_callout(&body).await;
    let c = app
        .wait_until(&id, Duration::from_secs(30), |c| {
            c["attempts"][0]["status"] == "in_progress"
        })
        .await;
    let call = c["attempts"][0]["call_id"].as_str().unwrap().to_owned();
    // A key press whose Voiceflow turn takes a while.
    app.voiceflow
        .as_ref()
        .unwrap()
        .set_latency(Duration::from_millis(1200));
    let url = app
        .engine
        .collect_url(id.parse().unwrap(), call.parse().unwrap(), 0);
    let http = app.http.clone();
    let in_flight = tokio::spawn(async move {
        http.post(url)
            .json(&json!({"collectedTones": "1"}))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Draining: not ready, so a load balancer stops sending new work.
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    // The webhook that was being answered still gets its dialplan.
    let answered = in_flight.await.unwrap().unwrap();
    assert_eq!(answered.status(), 200);
    let plan: Value = answered.json().await.unwrap();
    assert!(!plan["verbs"].as_array().unwrap().is_empty());
    // Then the listener closes.
    let started = Instant::now();
    loop {
        if app.http.get(app.url("/healthz")).send().await.is_err() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still serving after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
