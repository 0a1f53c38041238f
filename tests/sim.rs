//! End-to-end tests of the carrier simulator and the simulated Voiceflow
//! assistant, driven over HTTP exactly as the gateway drives them: Routee's
//! protocol with `reqwest`, and a tiny axum "gateway stub" that records status
//! callbacks and eventUrl POSTs and answers the latter with scripted dialplans.
//!
//! Time is scaled by 0.02 (a simulated second lasts 20 ms), so the whole file
//! runs in a few seconds.

// The helpers below are test code too: a panic is how they report a failure.
// (clippy.toml's allowance only reaches `#[test]` functions themselves.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ivr_gateway::routee::{CallStatus, CollectEvent, ErrorBody, StatusCallback};
use ivr_gateway::sim::{
    Behaviour, CalleeScript, Callees, EventOutcome, Faults, SimCallRecord, SimEvent, SimHandle,
    SimSettings, SimVoiceflow, SimVoiceflowHandle, SimVoiceflowSettings, Simulator, ToneReading,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpListener;

const SCALE: f64 = 0.02;
const ALICE: &str = "+306900000001";
const BOB: &str = "+306900000002";

// ---------------------------------------------------------------- gateway stub

/// How the stub answers one eventUrl POST.
#[derive(Clone)]
struct Answer {
    delay: Duration,
    status: u16,
    body: String,
}

impl Answer {
    fn dialplan(verbs: &Value) -> Self {
        Self {
            delay: Duration::ZERO,
            status: 200,
            body: json!({ "verbs": verbs }).to_string(),
        }
    }
}

#[derive(Default)]
struct StubState {
    callbacks: Mutex<Vec<StatusCallback>>,
    events: Mutex<Vec<CollectEvent>>,
    answers: Mutex<VecDeque<Answer>>,
}

/// A stand-in for the gateway's webhooks.
#[derive(Clone)]
struct Stub {
    base: String,
    state: Arc<StubState>,
}

impl Stub {
    async fn start() -> Stub {
        let state = Arc::new(StubState::default());
        let app = Router::new()
            .route("/status", post(on_status))
            .route("/event", post(on_event))
            .route(
                "/audio/one-second.wav",
                axum::routing::get(|| async { ivr_gateway::audio::silence_wav(1) }),
            )
            .route(
                "/audio/not-a-wav.wav",
                axum::routing::get(|| async { "RIFF? no, text" }),
            )
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Stub { base, state }
    }

    fn status_url(&self) -> String {
        format!("{}/status", self.base)
    }

    fn event_url(&self) -> String {
        format!("{}/event?session=s1&turn=1", self.base)
    }

    /// Queues the answer of the next eventUrl POST (by default: 200, empty body).
    fn answer(&self, answer: Answer) {
        self.state.answers.lock().unwrap().push_back(answer);
    }

    fn callbacks_for(&self, message_id: &str) -> Vec<StatusCallback> {
        self.state
            .callbacks
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.message_id.as_deref() == Some(message_id))
            .cloned()
            .collect()
    }

    fn statuses_for(&self, message_id: &str) -> Vec<CallStatus> {
        self.callbacks_for(message_id)
            .into_iter()
            .map(|c| c.status.name)
            .collect()
    }

    fn events_for(&self, message_id: &str) -> Vec<CollectEvent> {
        self.state
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.message_id.as_deref() == Some(message_id))
            .cloned()
            .collect()
    }
}

async fn on_status(State(state): State<Arc<StubState>>, body: Bytes) -> StatusCode {
    let callback: StatusCallback = serde_json::from_slice(&body).unwrap();
    state.callbacks.lock().unwrap().push(callback);
    StatusCode::OK
}

async fn on_event(State(state): State<Arc<StubState>>, body: Bytes) -> Response {
    let event: CollectEvent = serde_json::from_slice(&body).unwrap();
    state.events.lock().unwrap().push(event);
    let answer = state.answers.lock().unwrap().pop_front();
    let Some(answer) = answer else {
        return StatusCode::OK.into_response();
    };
    tokio::time::sleep(answer.delay).await;
    (
        StatusCode::from_u16(answer.status).unwrap(),
        [("content-type", "application/json")],
        answer.body,
    )
        .into_response()
}

// ---------------------------------------------------------------- helpers

struct Harness {
    sim: SimHandle,
    stub: Stub,
    http: reqwest::Client,
    token: String,
}

fn http() -> reqwest::Client {
    ivr_gateway::net::http_client(Duration::from_secs(2), Duration::from_secs(10)).unwrap()
}

async fn harness_with(settings: SimSettings) -> Harness {
    let sim = Simulator::start(settings, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let stub = Stub::start().await;
    let http = http();
    let token = fetch_token(&http, &sim).await;
    Harness {
        sim,
        stub,
        http,
        token,
    }
}

async fn harness(callees: Callees) -> Harness {
    let mut settings = SimSettings::new(SCALE);
    settings.callees = callees;
    harness_with(settings).await
}

/// A harness whose `collectedTones` are per submit (the other reading of the GAP).
async fn harness_per_submit(callees: Callees) -> Harness {
    let mut settings = SimSettings::new(SCALE);
    settings.callees = callees;
    settings.tones = ToneReading::PerSubmit;
    harness_with(settings).await
}

async fn fetch_token(http: &reqwest::Client, sim: &SimHandle) -> String {
    let (id, secret) = sim.credentials();
    let resp = http
        .post(sim.auth_url())
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

fn say(text: &str, barge_in: bool) -> Value {
    json!({"type": "SAY", "message": {"text": text, "language": "en-US", "gender": "female"}, "bargeIn": barge_in})
}

fn pause(seconds: u32) -> Value {
    json!({"type": "PAUSE", "duration": seconds})
}

impl Harness {
    fn url(&self, path: &str) -> String {
        self.sim.base_url().join(path).unwrap().to_string()
    }

    fn collect(&self, submit_on_hash: bool) -> Value {
        json!({"type": "COLLECT", "eventUrl": self.stub.event_url(), "maxDigits": 30, "submitOnHash": submit_on_hash})
    }

    /// A conversation to `to` with status callbacks to the stub.
    fn conversation(&self, to: &str, verbs: Value) -> Value {
        let mut body = json!({
            "from": "Acme",
            "to": {"phone": to},
            "callback": {"url": self.stub.status_url(), "strategy": "OnChange"},
            "hangupDelay": 5,
        });
        body["dialPlan"] = json!({});
        body["dialPlan"]["verbs"] = verbs;
        body
    }

    async fn post_conversation(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("voice/conversation"))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Creates the conversation and returns its tracking id.
    async fn create(&self, body: &Value) -> String {
        let resp = self.post_conversation(body).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
        let created: Value = resp.json().await.unwrap();
        created["trackingId"].as_str().unwrap().to_owned()
    }

    fn record(&self, tracking_id: &str) -> Option<SimCallRecord> {
        self.sim
            .calls()
            .into_iter()
            .find(|c| c.conversation_tracking_id == tracking_id)
    }

    /// Waits until the call ended and every callback it owes was handled.
    async fn settled(
        &self,
        tracking_id: &str,
        owed: impl Fn(&SimCallRecord) -> usize,
    ) -> SimCallRecord {
        for _ in 0..1000 {
            if let Some(r) = self.record(tracking_id)
                && r.ended_at.is_some()
                && r.callbacks.len() >= owed(&r)
            {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "call {tracking_id} did not settle: {:#?}",
            self.record(tracking_id)
        );
    }

    /// Settled, for `OnChange` callbacks: one per status.
    async fn finished(&self, tracking_id: &str) -> SimCallRecord {
        self.settled(tracking_id, |r| r.statuses.len()).await
    }

    /// Waits until the call reaches `status`.
    async fn reached(&self, tracking_id: &str, status: CallStatus) -> SimCallRecord {
        for _ in 0..1000 {
            if let Some(r) = self.record(tracking_id)
                && r.status == status
            {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("call {tracking_id} never reached {status}");
    }

    async fn act(&self, message_id: &str, action: &str) -> reqwest::Response {
        self.http
            .put(self.url(&format!("voice/conversation/{message_id}")))
            .bearer_auth(&self.token)
            .json(&json!({ "action": action }))
            .send()
            .await
            .unwrap()
    }

    async fn tracking(&self, tracking_id: &str) -> reqwest::Response {
        self.http
            .get(self.url(&format!("voice/tracking/conversation/{tracking_id}")))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }
}

fn statuses(record: &SimCallRecord) -> Vec<CallStatus> {
    record.statuses.iter().map(|s| s.status.clone()).collect()
}

use CallStatus::{Busy, Completed, Failed, InProgress, Initiated, NoAnswer, Queued, Ringing};

async fn error_body(resp: reqwest::Response) -> ErrorBody {
    resp.json().await.unwrap()
}

// ---------------------------------------------------------------- auth

#[tokio::test]
async fn a_token_is_issued_for_the_right_credentials_only() {
    let sim = Simulator::start(SimSettings::new(SCALE), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let http = http();
    let (id, secret) = sim.credentials();

    let resp = http
        .post(sim.auth_url())
        .basic_auth(&id, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let err = error_body(resp).await;
    assert!(err.code.starts_with("401"), "{err:?}");
    assert!(!err.developer_message.is_empty());

    let resp = http
        .post(sim.auth_url())
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let resp = http
        .post(sim.auth_url())
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let token: Value = resp.json().await.unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 3600);
    assert!(
        token["access_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert!(token["permissions"].is_array());
    assert!(token["scope"].is_string());
    sim.shutdown().await;
}

#[tokio::test]
async fn the_voice_api_requires_an_issued_bearer_token() {
    let h = harness(Callees::default()).await;
    let body = h.conversation(ALICE, json!([pause(1)]));
    for auth in [None, Some("not-a-token")] {
        let mut req = h.http.post(h.url("voice/conversation")).json(&body);
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "token {auth:?}");
        assert!(error_body(resp).await.code.starts_with("401"));
    }
    let resp = h
        .http
        .get(h.url("voice/tracking/conversation/whatever"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let resp = h.post_conversation(&body).await;
    assert_eq!(resp.status(), 200);
    let created: Value = resp.json().await.unwrap();
    assert!(
        created["trackingId"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert_eq!(created["direction"], "Outbound");
    assert_eq!(created["from"], "Acme");
    assert_eq!(created["to"]["phone"], ALICE);
    assert_eq!(created["hangupDelay"], 5);
    assert_eq!(created["dialPlan"]["verbs"][0]["type"], "PAUSE");
    assert_eq!(created["callback"]["strategy"], "OnChange");
    assert!(created["createdAt"].is_string());
}

// ---------------------------------------------------------------- validation

#[tokio::test]
async fn invalid_conversations_are_refused_with_routee_error_bodies() {
    let h = harness(Callees::default()).await;
    let valid = h.conversation(ALICE, json!([pause(1)]));
    let dial = json!({"type": "DIAL", "from": "Acme", "to": {"phone": BOB}});
    let mut cases: Vec<(Value, &str)> = Vec::new();
    let mut v = valid.clone();
    v["to"] = json!({"phone": "6900000001"});
    cases.push((v, "to.phone"));
    let mut v = valid.clone();
    v["from"] = json!("");
    cases.push((v, "from"));
    let mut v = valid.clone();
    v["dialPlan"] = json!({"verbs": []});
    cases.push((v, "verbs"));
    let mut v = valid.clone();
    v["dialPlan"] = json!({"verbs": [dial.clone(), dial]});
    cases.push((v, "DIAL"));
    let mut v = valid.clone();
    v["hangupDelay"] = json!(90);
    cases.push((v, "hangupDelay"));
    let mut v = valid.clone();
    v.as_object_mut().unwrap().remove("dialPlan");
    cases.push((v, "dialPlan"));
    for (body, needle) in cases {
        let resp = h.post_conversation(&body).await;
        assert_eq!(resp.status(), 400, "{body}");
        let err = error_body(resp).await;
        assert_eq!(err.code, "400013000");
        assert!(
            err.developer_message.contains(needle),
            "{} should mention {needle}",
            err.developer_message
        );
    }
    assert!(h.sim.calls().is_empty(), "no call was placed");
}

// ---------------------------------------------------------------- status sequences

#[tokio::test]
async fn each_callee_behaviour_produces_routees_status_sequence() {
    let callees = Callees::new(CalleeScript::always(Behaviour::silent()))
        .with(ALICE, Behaviour::Busy)
        .with(BOB, Behaviour::NeverAnswers)
        .with("+306900000003", Behaviour::Fails)
        .with("+306900000004", Behaviour::Rejects);
    let h = harness(callees).await;
    let cases = [
        (
            "+306900000009",
            vec![Queued, Initiated, Ringing, InProgress, Completed],
        ),
        (ALICE, vec![Queued, Initiated, Busy]),
        (BOB, vec![Queued, Initiated, Ringing, NoAnswer]),
        ("+306900000003", vec![Queued, Initiated, Failed]),
        ("+306900000004", vec![Queued, Initiated, Ringing, NoAnswer]),
    ];
    let mut calls = Vec::new();
    for (to, _) in &cases {
        let mut body = h.conversation(to, json!([say("Hello there", false)]));
        body["hangupDelay"] = json!(3);
        calls.push(h.create(&body).await);
    }
    for ((to, expected), tracking_id) in cases.iter().zip(&calls) {
        let record = h.finished(tracking_id).await;
        assert_eq!(&statuses(&record), expected, "{to}");
        let delivered = h.stub.statuses_for(&record.message_id);
        assert_eq!(&delivered, expected, "{to}: callbacks arrive in order");
        for cb in h.stub.callbacks_for(&record.message_id) {
            assert_eq!(
                cb.conversation_tracking_id.as_deref(),
                Some(tracking_id.as_str())
            );
            assert_eq!(cb.to.as_deref(), Some(*to));
            assert_eq!(cb.from.as_deref(), Some("Acme"));
            assert_eq!(cb.direction.as_deref(), Some("Outbound"));
            let date = cb.status.updated_date.as_deref().unwrap();
            OffsetDateTime::parse(date, &Rfc3339).unwrap();
        }
    }
    let answered = h.record(&calls[0]).unwrap();
    assert_eq!(answered.heard, vec!["Hello there"]);
    assert!(answered.answered_at.is_some());
    let never = h.record(&calls[2]).unwrap();
    assert!(never.end_reason.unwrap().contains("no answer within 3"));
}

#[tokio::test]
async fn on_completion_sends_only_the_final_status() {
    let h = harness(Callees::new(Behaviour::silent().into())).await;
    let mut body = h.conversation(ALICE, json!([say("Hi", false)]));
    body["callback"]["strategy"] = json!("OnCompletion");
    let tracking_id = h.create(&body).await;
    let record = h.settled(&tracking_id, |_| 1).await;
    assert_eq!(statuses(&record).len(), 5);
    assert_eq!(h.stub.statuses_for(&record.message_id), vec![Completed]);
    let cb = &h.stub.callbacks_for(&record.message_id)[0];
    assert!(cb.duration.unwrap() >= 0.0);
    assert!(cb.price.unwrap() > 0.0, "an answered call costs something");
}

// ---------------------------------------------------------------- DTMF

#[tokio::test]
async fn a_key_during_a_barge_in_say_is_posted_at_once_and_the_answer_replaces_the_rest() {
    let h = harness(Callees::default()).await; // presses 1 at the first prompt
    h.stub.answer(Answer::dialplan(&json!([say(
        "Thank you. Goodbye.",
        false
    )])));
    let verbs = json!([
        say("The server room is flooding.", false),
        say("Press 1 to accept or 2 to reject.", true),
        pause(10),
        say("Never heard, the answer replaced me.", false),
        h.collect(false),
    ]);
    let tracking_id = h.create(&h.conversation(ALICE, verbs)).await;
    let record = h.finished(&tracking_id).await;

    assert_eq!(record.keys, vec!["1"]);
    assert_eq!(
        record.heard,
        vec![
            "The server room is flooding.",
            "Press 1 to accept or 2 to reject.",
            "Thank you. Goodbye."
        ]
    );
    let events = h.stub.events_for(&record.message_id);
    assert_eq!(
        events.len(),
        1,
        "the replacement has no COLLECT: no end POST"
    );
    assert_eq!(events[0].collected_tones, "1");
    assert_eq!(
        events[0].conversation_tracking_id.as_deref(),
        Some(tracking_id.as_str())
    );
    assert_eq!(events[0].to.as_deref(), Some(ALICE));
    assert_eq!(events[0].from.as_deref(), Some("Acme"));
    assert_eq!(
        record.event_posts[0].outcome,
        EventOutcome::Replaced { verbs: 1 }
    );
    assert!(!record.event_posts[0].final_post);
    assert_eq!(statuses(&record).last(), Some(&Completed));
    assert!(
        record.duration_s < 10.0,
        "the 10 s PAUSE was skipped: {} s",
        record.duration_s
    );
}

#[tokio::test]
async fn a_key_during_a_pause_is_buffered_and_posted_when_the_call_ends() {
    let h = harness(Callees::new(Behaviour::press_after("4", 2.0).into())).await;
    // Ignored: the end-of-call POST's answer does not play.
    h.stub
        .answer(Answer::dialplan(&json!([say("Too late", false)])));
    let verbs = json!([say("Hello there", false), pause(5), h.collect(false)]);
    let tracking_id = h.create(&h.conversation(ALICE, verbs)).await;
    let record = h.finished(&tracking_id).await;

    let events = h.stub.events_for(&record.message_id);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].collected_tones, "4");
    assert!(record.event_posts[0].final_post);
    assert_eq!(record.event_posts[0].outcome, EventOutcome::Ignored);
    assert_eq!(record.heard, vec!["Hello there"]);
    assert_eq!(record.collected_tones, "4");
}

#[tokio::test]
async fn a_silent_callee_gets_an_end_of_call_post_with_no_tones_before_completed() {
    let h = harness(Callees::new(Behaviour::silent().into())).await;
    let mut events = h.sim.subscribe();
    let verbs = json!([say("Press 1", true), h.collect(true), pause(2)]);
    let tracking_id = h.create(&h.conversation(ALICE, verbs)).await;
    let record = h.finished(&tracking_id).await;

    let posts = h.stub.events_for(&record.message_id);
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].collected_tones, "");
    assert!(record.event_posts[0].final_post);
    assert!(record.keys.is_empty());

    // On the timeline, the end POST comes before the final status.
    let mut order = Vec::new();
    while let Ok(ev) = events.try_recv() {
        match ev {
            SimEvent::EventPosted {
                final_post: true, ..
            } => order.push("end post"),
            SimEvent::Status {
                status: Completed, ..
            } => order.push("completed"),
            _ => {}
        }
    }
    assert_eq!(order, vec!["end post", "completed"]);
}

#[tokio::test]
async fn submit_on_hash_posts_mid_call_without_the_hash() {
    let h = harness_per_submit(Callees::new(Behaviour::press_after("12#", 2.0).into())).await;
    h.stub
        .answer(Answer::dialplan(&json!([say("PIN accepted", false)])));
    let verbs = json!([
        say("Enter your PIN", false),
        h.collect(true),
        pause(10),
        say("Never heard", false)
    ]);
    let tracking_id = h.create(&h.conversation(ALICE, verbs)).await;
    let record = h.finished(&tracking_id).await;
    let posts = h.stub.events_for(&record.message_id);
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].collected_tones, "12");
    assert_eq!(record.heard, vec!["Enter your PIN", "PIN accepted"]);
}

#[tokio::test]
async fn keys_in_several_turns_are_submitted_separately() {
    let h = harness_per_submit(Callees::new(Behaviour::press_on_prompt(["9", "1"]).into())).await;
    let collect = h.collect(false);
    h.stub.answer(Answer::dialplan(&json!([
        say("That is not an option. Press 1 to accept.", true),
        collect.clone(),
        pause(5),
    ])));
    h.stub
        .answer(Answer::dialplan(&json!([say("Accepted.", false)])));
    let verbs = json!([say("Press 1 to accept.", true), collect, pause(5)]);
    let tracking_id = h.create(&h.conversation(ALICE, verbs)).await;
    let record = h.finished(&tracking_id).await;
    let tones: Vec<String> = h
        .stub
        .events_for(&record.message_id)
        .into_iter()
        .map(|e| e.collected_tones)
        .collect();
    assert_eq!(
        tones,
        vec!["9", "1"],
        "non-cumulative: each POST has its own turn"
    );
    assert_eq!(record.keys, vec!["9", "1"]);
    assert_eq!(record.heard.last().map(String::as_str), Some("Accepted."));
}

#[tokio::test]
async fn a_late_or_invalid_answer_lets_the_current_dialplan_continue() {
    let mut settings = SimSettings::new(SCALE);
    settings.event_url_timeout = Duration::from_millis(200);
    settings.callees = Callees::new(Behaviour::press_on_prompt(["1", "2"]).into());
    let h = harness_with(settings).await;
    h.stub.answer(Answer {
        delay: Duration::from_millis(600),
        ..Answer::dialplan(&json!([say("Too late", false)]))
    });
    h.stub.answer(Answer {
        delay: Duration::ZERO,
        status: 200,
        body: json!({"verbs": [{"type": "HANGUP"}]}).to_string(),
    });
    let verbs = json!([
        say("First prompt", true),
        say("Second prompt", true),
        say("Still here", false),
        h.collect(false),
    ]);
    let tracking_id = h.create(&h.conversation(ALICE, verbs)).await;
    let record = h.finished(&tracking_id).await;
    assert_eq!(
        record.heard,
        vec!["First prompt", "Second prompt", "Still here"]
    );
    let outcomes: Vec<&EventOutcome> = record.event_posts.iter().map(|p| &p.outcome).collect();
    assert!(
        matches!(outcomes[0], EventOutcome::Continued { reason } if reason.contains("no answer within")),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[1], EventOutcome::Continued { reason } if reason.contains("not a dialplan")),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[2], &EventOutcome::Ignored, "then the end POST");
}

// ---------------------------------------------------------------- attempts and hang-ups

#[tokio::test]
async fn a_callee_can_answer_only_on_the_second_attempt() {
    let script = CalleeScript::always(Behaviour::NeverAnswers).then(Behaviour::accepts());
    let h = harness(Callees::default().with(ALICE, script)).await;
    let verbs = json!([say("Press 1", true), h.collect(false)]);
    let mut body = h.conversation(ALICE, verbs);
    body["hangupDelay"] = json!(3);
    let first = h.create(&body).await;
    let first = h.finished(&first).await;
    let second = h.create(&body).await;
    let second = h.finished(&second).await;
    assert_eq!(first.attempt, 1);
    assert_eq!(statuses(&first).last(), Some(&NoAnswer));
    assert_eq!(second.attempt, 2);
    assert_eq!(statuses(&second).last(), Some(&Completed));
    assert_eq!(second.keys, vec!["1"]);
}

#[tokio::test]
async fn a_callee_who_hangs_up_mid_prompt_ends_the_call_completed() {
    let h = harness(Callees::new(Behaviour::hang_up(2.0).into())).await;
    let long = "This prompt is long enough that nobody listens to the end of it. ".repeat(3);
    let verbs = json!([say(&long, true), say("After", false), h.collect(false)]);
    let tracking_id = h.create(&h.conversation(ALICE, verbs)).await;
    let record = h.finished(&tracking_id).await;
    assert_eq!(record.heard, vec![long]);
    assert_eq!(record.end_reason.as_deref(), Some("the callee hung up"));
    assert_eq!(statuses(&record).last(), Some(&Completed));
    assert!(record.duration_s < 5.0, "{}", record.duration_s);
    let posts = h.stub.events_for(&record.message_id);
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].collected_tones, "");
}

#[tokio::test]
async fn max_duration_cuts_an_answered_call() {
    let h = harness(Callees::new(Behaviour::silent().into())).await;
    let mut body = h.conversation(ALICE, json!([pause(30), say("Never", false)]));
    body["maxDuration"] = json!(2);
    let tracking_id = h.create(&body).await;
    let record = h.finished(&tracking_id).await;
    assert_eq!(record.end_reason.as_deref(), Some("maxDuration reached"));
    assert_eq!(statuses(&record).last(), Some(&Completed));
    assert!(record.heard.is_empty());
}

#[tokio::test]
async fn a_dial_bridges_the_call_and_then_ends_it() {
    let h = harness(Callees::new(Behaviour::silent().into())).await;
    let verbs = json!([
        say("Connecting you", false),
        {"type": "DIAL", "from": "Acme", "to": {"phone": BOB}},
        say("Never", false)
    ]);
    let tracking_id = h.create(&h.conversation(ALICE, verbs)).await;
    let record = h.finished(&tracking_id).await;
    assert_eq!(record.dialed.as_deref(), Some(BOB));
    assert_eq!(record.heard, vec!["Connecting you"]);
    assert_eq!(record.end_reason.as_deref(), Some("the bridged call ended"));
}

// ---------------------------------------------------------------- strict readings

#[tokio::test]
async fn cumulative_tones_carry_every_key_of_the_call() {
    let h = harness(Callees::new(Behaviour::press_on_prompt(["9", "1"]).into())).await;
    let collect = h.collect(false);
    h.stub.answer(Answer::dialplan(&json!([
        say("That is not an option. Press 1 to accept.", true),
        collect.clone(),
        pause(5),
    ])));
    h.stub
        .answer(Answer::dialplan(&json!([say("Accepted.", false)])));
    let verbs = json!([say("Press 1 to accept.", true), collect, pause(5)]);
    let tracking_id = h.create(&h.conversation(ALICE, verbs)).await;
    let record = h.finished(&tracking_id).await;
    let tones: Vec<String> = h
        .stub
        .events_for(&record.message_id)
        .into_iter()
        .map(|e| e.collected_tones)
        .collect();
    // The answer "Accepted." has no COLLECT: no end-of-call POST.
    assert_eq!(
        tones,
        vec!["9", "91"],
        "all the collected tones of the call"
    );
    assert_eq!(record.heard.last().map(String::as_str), Some("Accepted."));
}

#[tokio::test]
async fn cumulative_tones_keep_the_hashes_that_submitted_them() {
    let h = harness(Callees::new(
        Behaviour::press_at(["1#", "2#"], &[1.0, 2.0]).into(),
    ))
    .await;
    let verbs = json!([say("Enter a code", false), h.collect(true), pause(4)]);
    let tracking_id = h.create(&h.conversation(ALICE, verbs)).await;
    let record = h.finished(&tracking_id).await;
    let tones: Vec<String> = h
        .stub
        .events_for(&record.message_id)
        .into_iter()
        .map(|e| e.collected_tones)
        .collect();
    assert_eq!(
        tones,
        vec!["1#", "1#2#", "1#2#"],
        "two submits, then the end of the call"
    );
}

#[tokio::test]
async fn a_key_during_a_pause_waits_for_the_next_barge_in_key_under_both_readings() {
    for (reading, want) in [
        (ToneReading::Cumulative, "11"),
        (ToneReading::PerSubmit, "11"),
    ] {
        let mut settings = SimSettings::new(SCALE);
        settings.tones = reading;
        // 1 during the pause: gathered, not posted; 1 again during the prompt.
        settings.callees = Callees::new(Behaviour::press_at(["1", "1"], &[1.0, 4.5]).into());
        let h = harness_with(settings).await;
        h.stub
            .answer(Answer::dialplan(&json!([say("Confirmed.", false)])));
        let verbs = json!([
            say("Hello", false),
            h.collect(false),
            pause(3),
            say("Press 1 to accept. Press 1 to accept.", true),
            pause(5),
        ]);
        let tracking_id = h.create(&h.conversation(ALICE, verbs)).await;
        let record = h.finished(&tracking_id).await;
        let posts = h.stub.events_for(&record.message_id);
        assert_eq!(posts.len(), 1, "{reading:?}: one POST, at the barge-in key");
        assert_eq!(posts[0].collected_tones, want, "{reading:?}");
        assert!(!record.event_posts[0].final_post, "{reading:?}");
        assert_eq!(record.heard.last().map(String::as_str), Some("Confirmed."));
    }
}

#[tokio::test]
async fn play_of_anything_but_a_reachable_wav_is_a_protocol_error() {
    let h = harness(Callees::new(Behaviour::silent().into())).await;
    // Refused at creation: not a .wav.
    let mp3 = json!([{"type": "PLAY", "fileURL": format!("{}/audio/x.mp3", h.stub.base)}]);
    let resp = h.post_conversation(&h.conversation(ALICE, mp3)).await;
    assert_eq!(resp.status(), 400);
    assert!(error_body(resp).await.developer_message.contains(".wav"));
    // Accepted, but cannot be played: a protocol error on the record, the verb skipped.
    let verbs = json!([
        {"type": "PLAY", "fileURL": format!("{}/audio/missing.wav", h.stub.base)},
        {"type": "PLAY", "fileURL": format!("{}/audio/not-a-wav.wav", h.stub.base)},
        {"type": "PLAY", "fileURL": format!("{}/audio/one-second.wav", h.stub.base), "repeat": 2},
    ]);
    let tracking_id = h.create(&h.conversation(ALICE, verbs)).await;
    let record = h.finished(&tracking_id).await;
    assert_eq!(
        record.protocol_errors.len(),
        2,
        "{:?}",
        record.protocol_errors
    );
    assert!(
        record.protocol_errors[0].contains("HTTP 404"),
        "{:?}",
        record.protocol_errors
    );
    assert!(
        record.protocol_errors[1].contains("not a WAV"),
        "{:?}",
        record.protocol_errors
    );
    // The good file played three times its one second.
    assert!(
        (2.5..4.5).contains(&record.duration_s),
        "played {} s",
        record.duration_s
    );
}

#[tokio::test]
async fn a_dial_leg_has_its_own_message_id_and_callbacks() {
    let callees = Callees::new(Behaviour::silent().into())
        .with(BOB, Behaviour::Busy)
        .with("+306900000003", Behaviour::silent());
    let h = harness(callees).await;
    // Busy: the leg reports Initiated, Busy; the caller's dialplan goes on.
    let verbs = json!([
        {"type": "DIAL", "from": "Acme", "to": {"phone": BOB}, "maxDuration": 60},
        say("Nobody is free", false),
    ]);
    let tracking_id = h.create(&h.conversation(ALICE, verbs)).await;
    let record = h.finished(&tracking_id).await;
    let leg = record.dial_leg.clone().expect("a second leg");
    assert_ne!(leg.message_id, record.message_id);
    assert_eq!(leg.to, BOB);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.stub.statuses_for(&leg.message_id), vec![Initiated, Busy]);
    assert_eq!(record.heard, vec!["Nobody is free"]);
    assert_eq!(
        h.stub.statuses_for(&record.message_id).last(),
        Some(&Completed)
    );
    // Answered: Initiated, Ringing, InProgress, Completed on the leg's own id,
    // and the caller's call ends with the bridged one.
    let verbs = json!([
        {"type": "DIAL", "from": "Acme", "to": {"phone": "+306900000003"}, "maxDuration": 3},
        say("Never heard", false),
    ]);
    let tracking_id = h.create(&h.conversation(ALICE, verbs)).await;
    let record = h.finished(&tracking_id).await;
    let leg = record.dial_leg.clone().expect("a second leg");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        h.stub.statuses_for(&leg.message_id),
        vec![Initiated, Ringing, InProgress, Completed]
    );
    assert!(record.heard.is_empty(), "{:?}", record.heard);
    // Tracking lists both legs of the conversation.
    let page: Value = h.tracking(&tracking_id).await.json().await.unwrap();
    let ids: Vec<&str> = page["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![record.message_id.as_str(), leg.message_id.as_str()]
    );
}

// ---------------------------------------------------------------- hangup / reject API

#[tokio::test]
async fn reject_works_only_before_the_answer_and_ends_the_call_no_answer() {
    let h = harness(Callees::new(Behaviour::NeverAnswers.into())).await;
    let mut body = h.conversation(ALICE, json!([pause(1)]));
    body["hangupDelay"] = json!(60);
    let tracking_id = h.create(&body).await;
    let ringing = h.reached(&tracking_id, Ringing).await;

    let resp = h.act(&ringing.message_id, "hangup").await;
    assert_eq!(resp.status(), 409, "hangup needs InProgress");
    assert_eq!(error_body(resp).await.code, "409013000");

    let resp = h.act(&ringing.message_id, "reject").await;
    assert_eq!(resp.status(), 200);
    let ok: Value = resp.json().await.unwrap();
    assert_eq!(ok["messageId"], ringing.message_id.as_str());

    let record = h.finished(&tracking_id).await;
    assert_eq!(
        statuses(&record),
        vec![Queued, Initiated, Ringing, NoAnswer]
    );
    assert!(record.end_reason.unwrap().contains("rejected"));
    assert_eq!(
        h.stub.statuses_for(&record.message_id).last(),
        Some(&NoAnswer)
    );

    let resp = h.act(&ringing.message_id, "reject").await;
    assert_eq!(resp.status(), 409, "the call is over");
    let resp = h.act("no-such-call", "reject").await;
    assert_eq!(resp.status(), 404);
    let resp = h
        .http
        .put(h.url(&format!("voice/conversation/{}", ringing.message_id)))
        .bearer_auth(&h.token)
        .json(&json!({"action": "explode"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn hangup_works_only_while_in_progress_and_ends_the_call_completed() {
    let h = harness(Callees::new(Behaviour::silent().into())).await;
    let verbs = json!([pause(60), h.collect(false)]);
    let tracking_id = h.create(&h.conversation(ALICE, verbs)).await;
    let live = h.reached(&tracking_id, InProgress).await;

    let resp = h.act(&live.message_id, "reject").await;
    assert_eq!(resp.status(), 409, "reject needs Initiated or Ringing");
    let resp = h.act(&live.message_id, "hangup").await;
    assert_eq!(resp.status(), 200);

    let record = h.finished(&tracking_id).await;
    assert_eq!(statuses(&record).last(), Some(&Completed));
    assert_eq!(
        record.end_reason.as_deref(),
        Some("hung up through the API")
    );
    assert!(record.duration_s < 30.0);
    assert_eq!(
        h.stub.events_for(&record.message_id).len(),
        1,
        "a hung-up call still gets its end POST"
    );
}

// ---------------------------------------------------------------- tracking

#[tokio::test]
async fn tracking_reports_the_call_leg_with_its_tones() {
    let h = harness(Callees::default()).await;
    let verbs = json!([say("Press 1", true), h.collect(false)]);
    let tracking_id = h.create(&h.conversation(ALICE, verbs)).await;
    let record = h.finished(&tracking_id).await;

    let resp = h.tracking(&tracking_id).await;
    assert_eq!(resp.status(), 200);
    let page: Value = resp.json().await.unwrap();
    assert_eq!(page["totalElements"], 1);
    let leg = &page["content"][0];
    assert_eq!(leg["messageId"], record.message_id.as_str());
    assert_eq!(leg["conversationTrackingId"], tracking_id.as_str());
    assert_eq!(leg["to"], ALICE);
    assert_eq!(leg["status"]["status"], "Completed");
    assert!(leg["status"]["date"].is_string());
    assert_eq!(leg["collectedTones"], "1");
    assert_eq!(leg["answeredBy"], "HUMAN");
    let parsed: ivr_gateway::routee::DialTracking = serde_json::from_value(page).unwrap();
    assert_eq!(parsed.content[0].status.status, Completed);

    let resp = h.tracking("unknown").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(error_body(resp).await.code, "404013000");
}

// ---------------------------------------------------------------- faults

#[tokio::test]
async fn duplicated_callbacks_and_event_posts_arrive_twice() {
    let mut settings = SimSettings::new(SCALE);
    settings.faults = Faults {
        duplicate_callbacks: 1.0,
        seed: Some(1),
        ..Faults::none()
    };
    let h = harness_with(settings).await;
    let verbs = json!([say("Press 1", true), h.collect(false)]);
    let tracking_id = h.create(&h.conversation(ALICE, verbs)).await;
    let record = h.finished(&tracking_id).await;
    // Duplicates are sent after the original; give the last one a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        h.stub.statuses_for(&record.message_id),
        vec![
            Queued, Queued, Initiated, Initiated, Ringing, Ringing, InProgress, InProgress,
            Completed, Completed
        ]
    );
    let mut tones: Vec<String> = h
        .stub
        .events_for(&record.message_id)
        .into_iter()
        .map(|e| e.collected_tones)
        .collect();
    // A duplicate may race the next POST; only the multiset is certain.
    tones.sort();
    // Cumulative: the end-of-call POST carries the call's tones again.
    assert_eq!(tones, vec!["1", "1", "1", "1"]);
    assert!(record.callbacks.iter().all(|c| c.duplicated));
}

#[tokio::test]
async fn reordered_callbacks_still_deliver_every_final_status() {
    let mut settings = SimSettings::new(SCALE);
    settings.callees = Callees::new(Behaviour::silent().into());
    settings.faults = Faults {
        reorder_callbacks: true,
        callback_delay_ms: (0, 5),
        seed: Some(42),
        ..Faults::none()
    };
    let h = harness_with(settings).await;
    let mut reordered = 0;
    for _ in 0..6 {
        let tracking_id = h
            .create(&h.conversation(ALICE, json!([say("Hi", false)])))
            .await;
        let record = h.finished(&tracking_id).await;
        let delivered = h.stub.statuses_for(&record.message_id);
        let mut sorted = delivered.clone();
        sorted.sort_by_key(|s| statuses(&record).iter().position(|x| x == s));
        assert_eq!(
            sorted,
            statuses(&record),
            "every status delivered exactly once"
        );
        if delivered != statuses(&record) {
            reordered += 1;
        }
    }
    assert!(
        reordered > 0,
        "with a 1/2 chance per callback, some call is reordered"
    );
}

#[tokio::test]
async fn failing_creations_answer_routee_errors_then_recover() {
    let mut settings = SimSettings::new(SCALE);
    settings.faults = Faults {
        fail_create: vec![500, 429, 400],
        ..Faults::none()
    };
    let h = harness_with(settings).await;
    let body = h.conversation(ALICE, json!([pause(1)]));

    let resp = h.post_conversation(&body).await;
    assert_eq!(resp.status(), 500);
    assert_eq!(error_body(resp).await.code, "500013000");
    let resp = h.post_conversation(&body).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(error_body(resp).await.code, "429013000");
    let resp = h.post_conversation(&body).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(error_body(resp).await.code, "400013000");
    let resp = h.post_conversation(&body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(h.sim.calls().len(), 1, "failed creations place no call");
}

#[tokio::test]
async fn failing_token_requests_answer_500_then_recover() {
    let mut settings = SimSettings::new(SCALE);
    settings.faults = Faults {
        fail_token: 2,
        ..Faults::none()
    };
    let sim = Simulator::start(settings, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let http = http();
    let (id, secret) = sim.credentials();
    let mut codes = Vec::new();
    for _ in 0..3 {
        let resp = http
            .post(sim.auth_url())
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        codes.push(resp.status().as_u16());
    }
    assert_eq!(codes, vec![500, 500, 200]);
}

#[tokio::test]
async fn a_dropped_final_status_is_still_visible_through_tracking() {
    let mut settings = SimSettings::new(SCALE);
    settings.callees = Callees::new(Behaviour::silent().into());
    let h = harness_with(settings).await;
    h.sim.set_faults(Faults {
        drop_final_status: 1.0,
        ..Faults::none()
    });
    let tracking_id = h
        .create(&h.conversation(ALICE, json!([say("Hi", false)])))
        .await;
    let record = h.finished(&tracking_id).await;
    assert_eq!(
        h.stub.statuses_for(&record.message_id),
        vec![Queued, Initiated, Ringing, InProgress],
        "no final callback"
    );
    assert!(record.callbacks.last().unwrap().dropped);
    let page: Value = h.tracking(&tracking_id).await.json().await.unwrap();
    assert_eq!(page["content"][0]["status"]["status"], "Completed");
}

// ---------------------------------------------------------------- control API and timeline

#[tokio::test]
async fn the_control_api_sets_callees_and_faults_and_resets() {
    let h = harness(Callees::default()).await;
    let resp = h
        .http
        .put(h.url(&format!("sim/callees/{ALICE}")))
        .body(r#"{"attempts": ["busy", "silent"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = h
        .http
        .put(h.url("sim/callees"))
        .body(r#"{"+306900000002": "nevr_answers"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("+306900000002") && message.contains("nevr_answers"),
        "{message}"
    );
    let resp = h
        .http
        .put(h.url("sim/faults"))
        .body(r#"{"duplicate_callbacks": 2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = h
        .http
        .put(h.url("sim/faults"))
        .body(r#"{"fail_create": [503]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);

    let body = h.conversation(ALICE, json!([pause(1)]));
    assert_eq!(h.post_conversation(&body).await.status(), 503);
    let tracking_id = h.create(&body).await;
    let record = h.finished(&tracking_id).await;
    assert_eq!(statuses(&record).last(), Some(&Busy));

    let calls: Value = h
        .http
        .get(h.url("sim/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls[0]["conversation_tracking_id"], tracking_id.as_str());
    assert_eq!(calls[0]["behaviour"], "busy");

    let resp = h.http.post(h.url("sim/reset")).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert!(h.sim.calls().is_empty());
    // Back to the initial callees (everyone accepts) and attempt 1.
    let tracking_id = h.create(&body).await;
    let record = h.finished(&tracking_id).await;
    assert_eq!(record.attempt, 1);
    assert_eq!(statuses(&record).last(), Some(&Completed));
}

#[tokio::test]
async fn the_timeline_shows_each_step_of_a_call() {
    let h = harness(Callees::default()).await;
    let mut timeline = h.sim.subscribe();
    let verbs = json!([say("Press 1", true), h.collect(false)]);
    let tracking_id = h.create(&h.conversation(ALICE, verbs)).await;
    let record = h.finished(&tracking_id).await;
    let mut lines = Vec::new();
    while let Ok(ev) = timeline.try_recv() {
        assert_eq!(ev.message_id(), record.message_id);
        lines.push(ev.to_string());
    }
    let text = lines.join("\n");
    for needle in [
        "call placed (attempt 1)",
        "Ringing",
        "hears SAY: \"Press 1\"",
        "presses 1",
        "tones \"1\" posted mid-call",
        "call ended Completed",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(!text.contains("6900000001"), "numbers are masked:\n{text}");
}

#[tokio::test]
async fn a_behaviour_file_is_read_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("callees.json");
    std::fs::write(
        &path,
        r#"{"default": "busy", "+306900000001": {"press": "2"}}"#,
    )
    .unwrap();
    let callees = Callees::from_file(&path).unwrap();
    assert_eq!(callees.script_for(BOB).for_attempt(1), &Behaviour::Busy);
    std::fs::write(&path, r#"{"+306900000001": {"press": {"keys": ""}}}"#).unwrap();
    let err = Callees::from_file(&path).unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        chain.contains("callees.json") && chain.contains(ALICE),
        "{chain}"
    );
}

// ---------------------------------------------------------------- simulated Voiceflow

async fn voiceflow() -> (SimVoiceflowHandle, reqwest::Client) {
    let vf = SimVoiceflow::start(SimVoiceflowSettings::new(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (vf, http())
}

async fn interact(
    http: &reqwest::Client,
    vf: &SimVoiceflowHandle,
    user: &str,
    body: Value,
) -> reqwest::Response {
    http.post(
        vf.base_url()
            .join(&format!("state/user/{user}/interact"))
            .unwrap(),
    )
    .header("Authorization", "VF.DM.test.key")
    .header("versionID", "production")
    .json(&body)
    .send()
    .await
    .unwrap()
}

async fn turn(
    http: &reqwest::Client,
    vf: &SimVoiceflowHandle,
    user: &str,
    body: Value,
) -> Vec<Value> {
    let resp = interact(http, vf, user, body).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn kinds(traces: &[Value]) -> Vec<&str> {
    traces.iter().map(|t| t["type"].as_str().unwrap()).collect()
}

fn spoken(traces: &[Value]) -> Vec<&str> {
    traces
        .iter()
        .filter(|t| t["type"] == "speak")
        .map(|t| t["payload"]["message"].as_str().unwrap())
        .collect()
}

fn launch(name: &str) -> Value {
    json!({
        "action": {"type": "launch"},
        "state": {"variables": {"contact_name": name, "ticket": "Server room 2 is flooding."}}
    })
}

#[tokio::test]
async fn the_simulated_assistant_runs_the_ticket_flow() {
    let (vf, http) = voiceflow().await;

    let traces = turn(&http, &vf, "call-1", launch("Alice")).await;
    assert_eq!(kinds(&traces), ["speak", "choice", "no-reply"]);
    assert_eq!(spoken(&traces), ["Hello Alice. Server room 2 is flooding."]);
    assert_eq!(
        traces[1]["payload"]["buttons"][0]["request"]["type"],
        "path-accept"
    );
    assert_eq!(
        traces[1]["payload"]["buttons"][1]["request"]["type"],
        "path-reject"
    );
    assert_eq!(traces[2]["payload"]["timeout"], 10);
    // The gateway's own parser understands every trace.
    let parsed = ivr_gateway::voiceflow::Trace::parse_response(&Value::Array(traces.clone()));
    assert!(
        matches!(&parsed[1], ivr_gateway::voiceflow::Trace::Choice { buttons } if buttons.len() == 2)
    );

    let button = traces[1]["payload"]["buttons"][0]["request"].clone();
    let traces = turn(&http, &vf, "call-1", json!({ "action": button })).await;
    assert_eq!(kinds(&traces), ["accept", "speak", "end"]);
    assert_eq!(
        spoken(&traces),
        ["Thank you. The ticket is yours. Goodbye."]
    );

    turn(&http, &vf, "call-2", launch("Bob")).await;
    let traces = turn(
        &http,
        &vf,
        "call-2",
        json!({"action": {"type": "text", "payload": "2"}}),
    )
    .await;
    assert_eq!(kinds(&traces), ["reject", "speak", "end"]);

    turn(&http, &vf, "call-3", launch("Carol")).await;
    let traces = turn(
        &http,
        &vf,
        "call-3",
        json!({"action": {"type": "text", "payload": "7"}}),
    )
    .await;
    assert_eq!(kinds(&traces), ["speak", "choice", "no-reply"]);
    assert_eq!(spoken(&traces), ["Sorry, I did not get that."]);
    let traces = turn(
        &http,
        &vf,
        "call-3",
        json!({"action": {"type": "no-reply"}}),
    )
    .await;
    assert_eq!(kinds(&traces), ["path", "speak", "choice", "no-reply"]);
    assert_eq!(traces[0]["payload"]["path"], "reprompt");
    // No action at all is a no-reply too.
    let traces = turn(&http, &vf, "call-3", json!({})).await;
    assert_eq!(kinds(&traces), ["path", "speak", "end"]);
    assert_eq!(spoken(&traces), ["We did not hear from you. Goodbye."]);

    let interactions = vf.interactions();
    assert_eq!(interactions.len(), 8);
    assert!(interactions.iter().all(|i| i.version == "production"));
    vf.shutdown().await;
}

#[tokio::test]
async fn the_simulated_assistant_refuses_requests_without_a_key_or_with_an_unknown_version() {
    let (vf, http) = voiceflow().await;
    let url = vf.base_url().join("state/user/u1/interact").unwrap();
    let resp = http
        .post(url.clone())
        .json(&launch("A"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"], "Auth Key Required");
    let resp = http
        .post(url.clone())
        .header("Authorization", "Bearer VF.DM.x")
        .json(&launch("A"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "the key is sent raw, without Bearer");
    let resp = http
        .post(url)
        .header("Authorization", "VF.DM.x")
        .header("versionID", "0123456789abcdef01234567")
        .json(&launch("A"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["name"], "verror");
    assert!(vf.interactions().is_empty());
}

#[tokio::test]
async fn the_simulated_assistant_injects_latency_failures_and_garbage() {
    let (vf, http) = voiceflow().await;
    vf.set_latency(Duration::from_millis(300));
    let started = std::time::Instant::now();
    turn(&http, &vf, "slow", launch("A")).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    vf.set_latency(Duration::ZERO);

    vf.fail_next(vec![500, 429]);
    let resp = interact(&http, &vf, "u", launch("A")).await;
    assert_eq!(resp.status(), 500);
    let resp = interact(&http, &vf, "u", launch("A")).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");

    vf.garbage_next(1);
    let resp = interact(&http, &vf, "u", launch("A")).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");

    let resp = interact(&http, &vf, "u", launch("A")).await;
    assert_eq!(resp.status(), 200, "back to normal");
    assert_eq!(
        vf.interactions().len(),
        2,
        "failed requests changed nothing"
    );
}

#[tokio::test]
async fn the_simulated_assistant_serves_state_variables_transcripts_and_export() {
    let (vf, http) = voiceflow().await;
    let base = vf.base_url();
    let auth = "VF.DM.test.key";
    turn(&http, &vf, "call-9", launch("Dora")).await;

    let resp = http
        .patch(base.join("state/user/call-9/variables").unwrap())
        .header("Authorization", auth)
        .json(&json!({"attempt": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let state: Value = http
        .get(base.join("state/user/call-9").unwrap())
        .header("Authorization", auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["variables"]["contact_name"], "Dora");
    assert_eq!(state["variables"]["attempt"], 2);
    assert_eq!(state["stack"].as_array().unwrap().len(), 1);

    let resp = http
        .delete(base.join("state/user/call-9").unwrap())
        .header("Authorization", auth)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(vf.variables("call-9").is_none());

    let resp = http
        .put(base.join("v2/transcripts").unwrap())
        .header("Authorization", auth)
        .json(&json!({"projectID": vf.project_id(), "versionID": vf.version_id(), "sessionID": "call-9", "device": "Phone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let stored: Value = resp.json().await.unwrap();
    assert!(stored["_id"].is_string());
    assert_eq!(vf.transcripts().len(), 1);
    let resp = http
        .put(base.join("v2/transcripts").unwrap())
        .header("Authorization", auth)
        .json(&json!({"device": "Phone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let export: Value = http
        .get(base.join("v2/versions/production/export").unwrap())
        .header("Authorization", auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(export["project"]["_id"], vf.project_id().as_str());
    assert_eq!(export["project"]["name"], vf.project_name().as_str());
    assert_eq!(export["version"]["_id"], vf.version_id().as_str());
    let resp = http
        .get(base.join("v2/versions/nope/export").unwrap())
        .header("Authorization", auth)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}
