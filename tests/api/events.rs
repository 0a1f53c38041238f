//! `GET /v1/callouts/{id}/events`: a callout's timeline as Server-Sent Events,
//! against a real `redis-server`: in order and complete, resumed after a
//! disconnect with `Last-Event-ID`, served by any replica of several on one
//! Redis, ended by a settled callout or a shutdown.

use std::time::{Duration, Instant};

use ivr_gateway::sim::{Behaviour, CalleeScript, Callees};
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, DISPATCHER_TOKEN, Options, StoreKind, TestApp, phone, spawn_app, spawn_sim,
    ticket_callout,
};
use crate::redis_server::RedisServer;
use crate::replicas::Balancer;

const LONG: Duration = Duration::from_secs(40);

/// One Server-Sent Events message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: Option<usize>,
    pub event: String,
    pub data: Value,
}

/// An open stream, read message by message.
pub struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    /// Opens the stream of `id` (after `last` when given); panics unless 200.
    pub async fn open(app_base: &str, id: &str, last: Option<usize>) -> Stream {
        let r = request(app_base, id, last, Some(DISPATCHER_TOKEN)).await;
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        Stream {
            response: r,
            buffer: String::new(),
        }
    }

    /// The next message; `None` when the stream ended. Panics after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Message> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(at) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..at + 2).collect();
                if let Some(m) = parse(&block) {
                    return Some(m);
                }
                continue; // a keep-alive comment
            }
            let left = until.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .expect("no message in time")
                .expect("the stream broke");
            match chunk {
                Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                None => return None,
            }
        }
    }

    /// Every message until the stream ends.
    pub async fn rest(&mut self, timeout: Duration) -> Vec<Message> {
        let mut all = Vec::new();
        while let Some(m) = self.next(timeout).await {
            all.push(m);
        }
        all
    }
}

fn parse(block: &str) -> Option<Message> {
    let (mut id, mut event, mut data) = (None, "message".to_owned(), String::new());
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.parse().expect("numeric id"));
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = v.to_owned();
        } else if let Some(v) = line.strip_prefix("data: ") {
            data.push_str(v);
        }
    }
    (!data.is_empty()).then(|| Message {
        id,
        event,
        data: serde_json::from_str(&data).expect("JSON data"),
    })
}

async fn request(
    base: &str,
    id: &str,
    last: Option<usize>,
    token: Option<&str>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{base}/v1/callouts/{id}/events"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(n) = last {
        req = req.header("last-event-id", n.to_string());
    }
    req.send().await.expect("request")
}

async fn redis_app(server: &RedisServer) -> TestApp {
    let mut o = Options::with_store(StoreKind::Redis {
        url: server.url(),
        prefix: "sse".into(),
    });
    o.api_keys = true;
    spawn_app(o).await
}

/// Person 1 never answers (two calls), person 2 accepts.
fn two_people(app: &TestApp) -> Value {
    app.sim.set_callee(&phone(1), Behaviour::NeverAnswers);
    let mut body = ticket_callout(2);
    body["policy"]["attempts_per_contact"] = json!(2);
    body["policy"]["ring_timeout_s"] = json!(5);
    body
}

fn timeline_of(messages: &[Message]) -> Vec<Value> {
    messages
        .iter()
        .filter(|m| m.event == "message")
        .map(|m| m.data.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sends_the_whole_timeline_in_order_then_ends_with_the_callouts_last_event() {
    let server = RedisServer::start();
    let app = redis_app(&server).await;
    let id = app.create_callout(&two_people(&app)).await;
    let mut stream = Stream::open(&app.base, &id, None).await;
    let messages = stream.rest(LONG).await;

    let end = messages.last().expect("messages");
    assert_eq!(end.event, "end");
    assert_eq!(end.id, None, "the end message carries no id");
    assert_eq!(end.data, json!({"status": "accepted"}));
    let events = &messages[..messages.len() - 1];
    let ids: Vec<Option<usize>> = events.iter().map(|m| m.id).collect();
    let expected: Vec<Option<usize>> = (0..events.len()).map(Some).collect();
    assert_eq!(ids, expected, "ids are the timeline's indexes, in order");
    // Exactly the stored timeline, and nothing after it: the callout is settled.
    let callout = app.get_callout(&id).await;
    assert_eq!(
        timeline_of(events),
        callout["events"].as_array().unwrap().clone()
    );
    assert!(
        callout["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| !a.is_null() && !a["outcome"].is_null()),
        "the stream ended before the last call did: {callout}"
    );
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|m| m.data["kind"].as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"callout_created"));
    assert!(kinds.contains(&"callout_accepted"), "{kinds:?}");
    // Reconnecting after the last event: nothing more will come.
    let again = request(
        &app.base,
        &id,
        Some(events.len() - 1),
        Some(DISPATCHER_TOKEN),
    )
    .await;
    assert_eq!(again.status(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_resumes_after_its_last_event_id_with_nothing_lost_or_repeated() {
    let server = RedisServer::start();
    let app = redis_app(&server).await;
    let id = app.create_callout(&two_people(&app)).await;
    let mut first = Stream::open(&app.base, &id, None).await;
    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.push(first.next(LONG).await.expect("an event"));
    }
    drop(first); // the connection goes
    // Events keep being committed while nobody listens.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let last = seen.last().and_then(|m| m.id).expect("an id");
    let mut second = Stream::open(&app.base, &id, Some(last)).await;
    let rest = second.rest(LONG).await;
    assert_eq!(
        rest[0].id,
        Some(last + 1),
        "resumes right after the last seen id"
    );
    seen.extend(rest);
    let events: Vec<&Message> = seen.iter().filter(|m| m.event == "message").collect();
    for (i, m) in events.iter().enumerate() {
        assert_eq!(m.id, Some(i), "a gap or a repeat at {i}");
    }
    let callout = app.get_callout(&id).await;
    assert_eq!(
        events.iter().map(|m| m.data.clone()).collect::<Vec<_>>(),
        callout["events"].as_array().unwrap().clone()
    );
    assert_eq!(seen.last().unwrap().event, "end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_committed_through_one_replica_streams_from_another() {
    let server = RedisServer::start();
    let callees = Callees::new(CalleeScript::always(Behaviour::press_after("1", 20.0)))
        .with(&phone(1), Behaviour::NeverAnswers);
    let sim = spawn_sim(callees).await;
    // Every webhook goes to A (the balancer has no other backend).
    let (lb, lb_url) = Balancer::start().await;
    let replica = || {
        let mut o = Options::with_store(StoreKind::Redis {
            url: server.url(),
            prefix: "two".into(),
        });
        o.external_sim = Some(sim.clone());
        o.public_url = Some(lb_url.clone());
        o
    };
    let a = spawn_app(replica()).await;
    let b = spawn_app(replica()).await;
    lb.set(vec![a.base.clone()]).await;
    let mut on_b = b.engine.subscribe();
    let mut body = ticket_callout(2);
    body["policy"]["attempts_per_contact"] = json!(1);
    body["policy"]["ring_timeout_s"] = json!(5);
    let (status, created) = a.post_callout(&body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    let mut stream = Stream::open(&b.base, &id, None).await;
    let messages = stream.rest(LONG).await;
    let kinds: Vec<&str> = messages
        .iter()
        .filter_map(|m| m.data["kind"].as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"callout_created"));
    assert!(kinds.contains(&"keys_pressed"), "{kinds:?}");
    assert_eq!(messages.last().unwrap().data["status"], "accepted");
    // B never committed the creation or the key press: A did, and B's stream
    // read them from Redis.
    let mut committed_on_b = Vec::new();
    while let Ok(t) = on_b.try_recv() {
        if t.callout.to_string() == id {
            committed_on_b.push(t.event.kind_name());
        }
    }
    for kind in ["callout_created", "keys_pressed", "callout_accepted"] {
        assert!(
            !committed_on_b.contains(&kind),
            "{kind} was committed on B: {committed_on_b:?}"
        );
    }
    assert_eq!(
        timeline_of(&messages),
        a.get_callout(&id).await["events"]
            .as_array()
            .unwrap()
            .clone()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_when_its_replica_shuts_down_so_the_client_resumes_elsewhere() {
    let server = RedisServer::start();
    let app = redis_app(&server).await;
    app.sim.set_callee(&phone(1), Behaviour::NeverAnswers);
    let mut body = ticket_callout(1);
    body["policy"]["ring_timeout_s"] = json!(60);
    let id = app.create_callout(&body).await;
    let mut stream = Stream::open(&app.base, &id, None).await;
    assert_eq!(stream.next(LONG).await.unwrap().id, Some(0));
    app.begin_shutdown();
    let started = Instant::now();
    let rest = stream.rest(Duration::from_secs(10)).await;
    assert!(
        rest.iter().all(|m| m.event == "message"),
        "no end message: the callout is not over"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_needs_a_key_names_a_bad_last_event_id_and_404s_an_unknown_callout() {
    let server = RedisServer::start();
    let app = redis_app(&server).await;
    let id = app.create_callout(&ticket_callout(1)).await;
    let r = request(&app.base, &id, None, None).await;
    assert_eq!(r.status(), 401);
    let r = request(&app.base, &id, None, Some("not-a-key")).await;
    assert_eq!(r.status(), 401);
    let r = reqwest::Client::new()
        .get(app.url(&format!("/v1/callouts/{id}/events")))
        .bearer_auth(ADMIN_TOKEN)
        .header("last-event-id", "seven")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Last-Event-ID"),
        "{body}"
    );
    let r = request(
        &app.base,
        "0123456789abcdef0123456789abcdef",
        None,
        Some(DISPATCHER_TOKEN),
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
}
