//! Scheduled and recurring callouts (`/v1/schedules`) end to end: validation,
//! a one-off, pause/resume/delete, and a recurring schedule on two replicas of
//! one Redis across restarts, firing each occurrence exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use ivr_gateway::domain::Timestamp;
use ivr_gateway::sim::{Behaviour, Callees};

use crate::helpers::{Options, StoreKind, TestApp, phone, spawn_app, spawn_sim, ticket_callout};
use crate::probe::{Answer, probe};
use crate::redis_server::RedisServer;
use crate::replicas::Balancer;

const LONG: Duration = Duration::from_secs(40);

async fn send(app: &TestApp, method: Method, path: &str, body: Option<&Value>) -> Answer {
    let p = probe(app, method, path);
    match body {
        Some(b) => p.json(b).send().await,
        None => p.send().await,
    }
}

/// A callout of one contact (phone 1), one attempt.
fn one_call() -> Value {
    let mut c = ticket_callout(1);
    c["policy"]["attempts_per_contact"] = json!(1);
    c
}

async fn schedule(app: &TestApp, id: &str) -> Value {
    let a = send(app, Method::GET, &format!("/v1/schedules/{id}"), None).await;
    assert_eq!(a.status, 200, "{a:?}");
    a.json
}

fn fired_at(s: &Value) -> Vec<i64> {
    s["fired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            Timestamp::parse_lenient(f["at"].as_str().unwrap())
                .unwrap()
                .millis()
        })
        .collect()
}

async fn wait_fired(app: &TestApp, id: &str, n: usize) -> Value {
    let started = std::time::Instant::now();
    loop {
        let s = schedule(app, id).await;
        if s["fired"].as_array().unwrap().len() >= n {
            return s;
        }
        assert!(started.elapsed() < LONG, "never fired {n} times: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_names_every_bad_field_and_saves_nothing() {
    let app = spawn_app(Options::default()).await;
    let mut callout = one_call();
    callout["contacts"][0]["phone"] = json!("12");
    let bad = json!({"name": "", "callout": callout, "cron": "61 * * * *", "timezone": "Mars/Olympus", "x": 1});
    let a = send(&app, Method::POST, "/v1/schedules", Some(&bad)).await;
    for field in ["name", "callout.contacts[0].phone", "cron", "timezone", "x"] {
        a.assert_names(field);
    }
    let past = json!({"name": "n", "callout": one_call(), "start_at": "2020-01-01T00:00:00Z"});
    send(&app, Method::POST, "/v1/schedules", Some(&past))
        .await
        .assert_names("start_at");
    let neither = json!({"name": "n", "callout": one_call()});
    send(&app, Method::POST, "/v1/schedules", Some(&neither))
        .await
        .assert_names("start_at");
    let zone_alone = json!({"name": "n", "callout": one_call(), "start_at": "2099-01-01T00:00:00Z", "timezone": "UTC"});
    send(&app, Method::POST, "/v1/schedules", Some(&zone_alone))
        .await
        .assert_names("timezone");
    let never = json!({"name": "n", "callout": one_call(), "cron": "0 0 30 2 *"});
    send(&app, Method::POST, "/v1/schedules", Some(&never))
        .await
        .assert_names("cron");
    // What needs a lookup is checked too: the team must exist now.
    let mut from_team = one_call();
    from_team.as_object_mut().unwrap().remove("contacts");
    from_team["team"] = json!("nobody");
    let no_team = json!({"name": "n", "callout": from_team, "cron": "0 7 * * *"});
    send(&app, Method::POST, "/v1/schedules", Some(&no_team))
        .await
        .assert_names("callout.team");
    let listed = send(&app, Method::GET, "/v1/schedules", None).await;
    assert_eq!(listed.json["schedules"], json!([]), "{listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_off_fires_once_and_a_recurrence_pauses_resumes_and_is_deleted() {
    let app = spawn_app(Options::default()).await;
    app.sim.set_callee(&phone(1), Behaviour::accepts());
    let start = Timestamp::now().plus(Duration::from_secs(1));
    let body = json!({"name": "once", "callout": one_call(), "start_at": start.rfc3339()});
    let created = send(&app, Method::POST, "/v1/schedules", Some(&body)).await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.json["id"].as_str().unwrap().to_owned();
    assert_eq!(created.json["next_at"], start.rfc3339());
    let s = wait_fired(&app, &id, 1).await;
    assert_eq!(s["next_at"], Value::Null, "{s}");
    let callout = s["fired"][0]["callout_id"].as_str().unwrap().to_owned();
    let c = app.wait_settled(&callout, LONG).await;
    assert_eq!(c["status"], "accepted", "{c}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        schedule(&app, &id).await["fired"].as_array().unwrap().len(),
        1
    );

    // Every second, paused at once: nothing fires while paused.
    let body = json!({"name": "often", "callout": one_call(), "cron": "* * * * * *"});
    let every = send(&app, Method::POST, "/v1/schedules", Some(&body)).await;
    let id = every.json["id"].as_str().unwrap().to_owned();
    let paused = send(
        &app,
        Method::POST,
        &format!("/v1/schedules/{id}/pause"),
        None,
    )
    .await;
    assert_eq!(paused.status, 200, "{paused:?}");
    assert_eq!(paused.json["paused"], true);
    let fired_before = paused.json["fired"].as_array().unwrap().len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let s = schedule(&app, &id).await;
    assert_eq!(s["fired"].as_array().unwrap().len(), fired_before, "{s}");
    let resumed = send(
        &app,
        Method::POST,
        &format!("/v1/schedules/{id}/resume"),
        None,
    )
    .await;
    assert_eq!(resumed.json["paused"], false);
    wait_fired(&app, &id, fired_before + 2).await;
    let deleted = send(&app, Method::DELETE, &format!("/v1/schedules/{id}"), None).await;
    assert_eq!(deleted.status, 204);
    send(&app, Method::GET, &format!("/v1/schedules/{id}"), None)
        .await
        .assert_error(404, "not_found");
    let callouts_then = crate::probe::callout_ids(&app).await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(crate::probe::callout_ids(&app).await.len(), callouts_then);
}

/// Two replicas of one Redis behind a balancer: both run the schedule loop.
struct Pair {
    apps: Vec<TestApp>,
}

impl Pair {
    async fn start(
        n: usize,
        server: &RedisServer,
        sim: &ivr_gateway::sim::SimHandle,
        lb: &Balancer,
        lb_url: &str,
    ) -> Pair {
        let mut apps = Vec::new();
        for _ in 0..n {
            let mut o = Options::with_store(StoreKind::Redis {
                url: server.url(),
                prefix: "sched".into(),
            });
            o.external_sim = Some(sim.clone());
            o.public_url = Some(lb_url.to_owned());
            apps.push(spawn_app(o).await);
        }
        lb.set(apps.iter().map(|a| a.base.clone()).collect()).await;
        Pair { apps }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recurring_callout_on_two_replicas_across_restarts_fires_each_occurrence_once() {
    let server = RedisServer::start();
    let sim = spawn_sim(Callees::default().with(&phone(1), Behaviour::accepts())).await;
    let (lb, lb_url) = Balancer::start().await;
    let mut pair = Pair::start(2, &server, &sim, &lb, &lb_url).await;
    // Every 2 seconds.
    let body = json!({"name": "roster", "callout": one_call(), "cron": "*/2 * * * * *", "timezone": "Europe/Athens"});
    let created = send(&pair.apps[0], Method::POST, "/v1/schedules", Some(&body)).await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.json["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(5)).await;

    // One replica restarts while the other runs on.
    let first = pair.apps.remove(0);
    lb.set(vec![pair.apps[0].base.clone()]).await;
    first.stop().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = Pair::start(1, &server, &sim, &lb, &lb_url).await;
    pair.apps.extend(again.apps);
    lb.set(pair.apps.iter().map(|a| a.base.clone()).collect())
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;

    // The whole gateway stops, for more than two occurrences, and restarts.
    lb.set(Vec::new()).await;
    for app in pair.apps.drain(..) {
        app.stop().await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pair = Pair::start(2, &server, &sim, &lb, &lb_url).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let paused = send(
        &pair.apps[1],
        Method::POST,
        &format!("/v1/schedules/{id}/pause"),
        None,
    )
    .await;
    assert_eq!(paused.status, 200, "{paused:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let s = schedule(&pair.apps[0], &id).await;
    let at = fired_at(&s);
    assert!(at.len() >= 6, "{s}");
    // Each occurrence once, on the 2 s grid, in order. The occurrences missed
    // while nothing ran were not fired one by one afterwards: one late firing
    // stood for them (a gap of two periods or more). A loaded machine may
    // coalesce more (a replica late by a period), never fire one twice.
    assert!(at.iter().all(|t| t % 2000 == 0), "{at:?}");
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
    assert!(at.windows(2).any(|w| w[1] - w[0] >= 4000), "{at:?}");
    assert!(
        s["fired"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["error"].is_null()),
        "{s}"
    );

    // One callout per occurrence, with the occurrence's id, and one call each.
    let fired: BTreeSet<String> = s["fired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["callout_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fired.len(), at.len());
    let listed: BTreeSet<String> = crate::probe::callout_ids(&pair.apps[0])
        .await
        .into_iter()
        .collect();
    assert_eq!(listed, fired);
    // Each callout places its one call (a callout made just before the whole
    // gateway stopped places it after the restart; a call in flight then may
    // lose its webhooks, which is not what this test is about).
    let started = std::time::Instant::now();
    while sim.calls().len() < fired.len() {
        assert!(started.elapsed() < LONG, "{} calls", sim.calls().len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for c in &fired {
        let c = pair.apps[0].get_callout(c).await;
        assert_eq!(c["attempts"].as_array().unwrap().len(), 1, "{c}");
    }
    assert_eq!(sim.calls().len(), fired.len(), "one call per occurrence");
    // Paused: nothing more.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(fired_at(&schedule(&pair.apps[0], &id).await), at);
}
