//! Calls driven by a Voiceflow assistant (the sandbox's simulated one): the launch
//! variables, key presses as button requests, and the 3-second window when
//! Voiceflow is slow, down, or asked twice.

use std::time::{Duration, Instant};

use ivr_gateway::sim::voiceflow::{NO_REPLY_GOODBYE_TEXT, NOT_UNDERSTOOD_TEXT, REPROMPT_TEXT};
use ivr_gateway::sim::{Behaviour, SimCallRecord, StateRecord, StreamShape};
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, attempts, phone, spawn_app};

const LONG: Duration = Duration::from_secs(40);

fn assistant_callout(n: u32) -> Value {
    let contacts: Vec<Value> = (1..=n)
        .map(|i| json!({"name": format!("Person {i}"), "phone": phone(i)}))
        .collect();
    json!({
        "name": "Ticket 4711",
        "assistant": "sandbox",
        "variables": {"ticket": "Server room 2 is flooding."},
        "contacts": contacts,
        "policy": {"attempts_per_contact": 1, "retry_delay_s": 1, "ring_timeout_s": 10},
    })
}

/// The live call of the callout's first attempt: (callout id, call id).
async fn live_call(app: &TestApp, id: &str) -> String {
    let c = app
        .wait_until(id, LONG, |c| c["attempts"][0]["status"] == "in_progress")
        .await;
    c["attempts"][0]["call_id"].as_str().unwrap().to_owned()
}

async fn post_keys(
    app: &TestApp,
    id: &str,
    call: &str,
    turn: u32,
    keys: &str,
) -> (Duration, Value) {
    let url = app
        .engine
        .collect_url(id.parse().unwrap(), call.parse().unwrap(), turn);
    let started = Instant::now();
    let r = app
        .http
        .post(url)
        .json(&json!({"collectedTones": keys, "messageId": "m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    (started.elapsed(), body)
}

fn said(plan: &Value) -> String {
    plan["verbs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["message"]["text"].as_str())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assistant_call_launches_with_the_callouts_variables_and_accepts_on_a_button() {
    let app = spawn_app(Options::default()).await;
    app.sim
        .set_callee(&phone(1), Behaviour::press_on_prompt(["2"]));
    app.sim.set_callee(&phone(2), Behaviour::accepts());
    let id = app.create_callout(&assistant_callout(2)).await;
    let c = app.wait_settled(&id, LONG).await;
    assert_eq!(c["status"], "accepted", "{c}");
    let got: Vec<String> = attempts(&c).into_iter().map(|a| a.2).collect();
    assert_eq!(got, ["rejected", "accepted"]);

    let vf = app
        .voiceflow
        .as_ref()
        .expect("the sandbox serves a simulated assistant");
    let call = c["attempts"][1]["call_id"].as_str().unwrap();
    // The Dialog Manager userID is the opaque call id, never the phone number.
    let interactions = vf.interactions();
    assert!(interactions.iter().all(|i| !i.user_id.contains("69000000")));
    let launch = interactions
        .iter()
        .find(|i| i.user_id == call && i.action["type"] == "launch")
        .expect("launched");
    assert_eq!(launch.version, "production");
    let vars = vf.variables(call).expect("state kept");
    assert_eq!(vars["contact_name"], "Person 2");
    assert_eq!(vars["callout_name"], "Ticket 4711");
    assert_eq!(vars["attempt"], 1);
    assert_eq!(vars["ticket"], "Server room 2 is flooding.");
    // The key press went back as the button's own request.
    assert!(
        interactions
            .iter()
            .any(|i| i.user_id == call && i.action["type"] == "path-accept"),
        "{interactions:?}"
    );
    // Transcripts of real calls are saved, with the outcome and no full number.
    let transcripts = app.wait_transcripts(2).await;
    let t = transcripts
        .iter()
        .find(|t| t["sessionID"] == call)
        .expect("transcript of the accepting call");
    assert_eq!(t["device"], "phone");
    assert!(
        t["user"]["name"].as_str().unwrap().contains("accepted"),
        "{t}"
    );
    assert!(
        !t.to_string().contains(&phone(2)),
        "full number in a transcript: {t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_voiceflow_still_gets_a_dialplan_in_the_window_and_its_late_accept_counts() {
    // Real-time simulation: the call must still be live when the late output is played.
    // The deadline is set to 1 s (default 2.5 s) so that a Voiceflow twice as slow
    // costs the test 2 s, not 4; the answer keeps the default's 400 ms margin.
    let deadline = Duration::from_millis(1000);
    let app = spawn_app(
        Options::default()
            .env("SIM_TIME_SCALE", "1")
            .env("WEBHOOK_DEADLINE_MS", &deadline.as_millis().to_string()),
    )
    .await;
    // Picks up after a short ring (real seconds here) and never presses a key.
    app.sim
        .set_callee(&phone(1), Behaviour::Silent { ring_s: 0.2 });
    let mut body = assistant_callout(1);
    body["policy"]["input_timeout_s"] = json!(60); // keep the call up while we act
    let id = app.create_callout(&body).await;
    let call = live_call(&app, &id).await;
    app.voiceflow.as_ref().unwrap().set_latency(deadline * 2);
    let (took, plan) = post_keys(&app, &id, &call, 0, "1").await;
    assert!(
        took < deadline + Duration::from_millis(400),
        "answered after {took:?}"
    );
    assert!(
        said(&plan).contains("One moment"),
        "not a holding dialplan: {plan}"
    );
    assert!(
        plan.to_string().contains("/collect/"),
        "the holding dialplan must keep collecting: {plan}"
    );
    // The slow turn finishes in the background; its accept is recorded.
    let c = app
        .wait_until(&id, LONG, |c| c["status"] != "calling")
        .await;
    assert_eq!(c["status"], "accepted");
    // The next key press plays what Voiceflow said meanwhile (the goodbye).
    app.voiceflow.as_ref().unwrap().set_latency(Duration::ZERO);
    let (_, next) = post_keys(&app, &id, &call, 1, "5").await;
    assert!(said(&next).contains("The ticket is yours"), "{next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_voiceflow_fails_the_caller_can_still_accept_on_the_fallback_keypad() {
    let app = spawn_app(Options::default()).await;
    app.sim.set_callee(&phone(1), Behaviour::silent());
    let mut body = assistant_callout(1);
    body["policy"]["input_timeout_s"] = json!(60);
    let id = app.create_callout(&body).await;
    let call = live_call(&app, &id).await;
    // Down for the key's turn: the state put back first (tried twice), then the turn.
    app.voiceflow.as_ref().unwrap().fail_next(vec![503; 3]);
    let (took, plan) = post_keys(&app, &id, &call, 0, "1").await;
    assert!(took < Duration::from_millis(2900));
    let text = said(&plan);
    assert!(
        text.contains("technical difficulties") && text.contains("Press 1 to accept"),
        "{plan}"
    );
    // Tones are cumulative over the call (the documented reading): "11".
    let (_, bye) = post_keys(&app, &id, &call, 1, "11").await;
    assert!(said(&bye).contains("accepted"), "{bye}");
    let c = app
        .wait_until(&id, LONG, |c| c["status"] != "calling")
        .await;
    assert_eq!(c["status"], "accepted");
    assert!(
        c["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "conversation_fallback")
    );
}

/// The same as above with per-submit tones: the second "1" only repeats the
/// keys already read, which cumulative tones would send as the end-of-call
/// report. It is answered "press your choice again"; pressed again, it counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_key_pressed_again_with_per_submit_tones_is_asked_once_more_then_accepted() {
    let app = spawn_app(Options::default()).await;
    app.sim.set_callee(&phone(1), Behaviour::silent());
    let mut body = assistant_callout(1);
    body["policy"]["input_timeout_s"] = json!(60);
    let id = app.create_callout(&body).await;
    let call = live_call(&app, &id).await;
    // Down for the key's turn: the state put back first (tried twice), then the turn.
    app.voiceflow.as_ref().unwrap().fail_next(vec![503; 3]);
    let (_, plan) = post_keys(&app, &id, &call, 0, "1").await;
    assert!(said(&plan).contains("Press 1 to accept"), "{plan}");
    let (_, again) = post_keys(&app, &id, &call, 1, "1").await;
    assert!(said(&again).contains("press your choice again"), "{again}");
    assert_eq!(app.get_callout(&id).await["status"], "calling");
    let (_, bye) = post_keys(&app, &id, &call, 1, "1").await;
    assert!(said(&bye).contains("accepted"), "{bye}");
    let c = app
        .wait_until(&id, LONG, |c| c["status"] != "calling")
        .await;
    assert_eq!(c["status"], "accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_key_press_delivery_gets_the_same_answer_and_no_second_turn() {
    let app = spawn_app(Options::default()).await;
    app.sim.set_callee(&phone(1), Behaviour::silent());
    let mut body = assistant_callout(1);
    body["policy"]["input_timeout_s"] = json!(60);
    let id = app.create_callout(&body).await;
    let call = live_call(&app, &id).await;
    let vf = app.voiceflow.as_ref().unwrap();
    // Key turns only: the no-reply turn run ahead for the answer is one more.
    let key_turns = || {
        vf.interactions()
            .iter()
            .filter(|i| i.action["type"] != "no-reply")
            .count()
    };
    let before = key_turns();
    // Three concurrent deliveries of the same event, then a late fourth.
    let (a, b, c) = tokio::join!(
        post_keys(&app, &id, &call, 0, "9"),
        post_keys(&app, &id, &call, 0, "9"),
        post_keys(&app, &id, &call, 0, "9")
    );
    let (_, d) = post_keys(&app, &id, &call, 0, "9").await;
    let plans = [a.1, b.1, c.1, d];
    let answered: Vec<&Value> = plans
        .iter()
        .filter(|p| !said(p).contains("One moment"))
        .collect();
    assert!(!answered.is_empty());
    assert!(
        answered.iter().all(|p| *p == answered[0]),
        "different answers: {plans:?}"
    );
    assert_eq!(
        key_turns(),
        before + 1,
        "Voiceflow was asked more than once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_callouts_and_garbage_bodies_still_get_a_dialplan() {
    let app = spawn_app(Options::default()).await;
    let (co, call) = (
        ivr_gateway::domain::CalloutId::new(),
        ivr_gateway::domain::CallId::new(),
    );
    let url = app.engine.collect_url(co, call, 0);
    let r = app
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let plan: Value = r.json().await.unwrap();
    assert!(!plan["verbs"].as_array().unwrap().is_empty());
}

impl TestApp {
    async fn wait_transcripts(&self, n: usize) -> Vec<Value> {
        let vf = self.voiceflow.as_ref().unwrap();
        let started = Instant::now();
        loop {
            let t = vf.transcripts();
            if t.len() >= n || started.elapsed() > Duration::from_secs(10) {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_press_is_recorded_even_when_the_carrier_stops_waiting_for_the_answer() {
    let app = spawn_app(Options::default()).await;
    app.sim.set_callee(&phone(1), Behaviour::silent());
    let mut body = assistant_callout(1);
    body["policy"]["input_timeout_s"] = json!(60);
    let id = app.create_callout(&body).await;
    let call = live_call(&app, &id).await;
    // Voiceflow answers within the window, but the caller of the webhook (Routee,
    // overloaded network...) gives up first and drops the connection.
    app.voiceflow
        .as_ref()
        .unwrap()
        .set_latency(Duration::from_millis(800));
    let url = app
        .engine
        .collect_url(id.parse().unwrap(), call.parse().unwrap(), 0);
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    let sent = impatient
        .post(url)
        .json(&json!({"collectedTones": "1"}))
        .send()
        .await;
    assert!(
        sent.is_err(),
        "the client was meant to give up before the answer"
    );
    // The accept still counts.
    let c = app
        .wait_until(&id, LONG, |c| c["status"] != "calling")
        .await;
    assert_eq!(c["status"], "accepted", "{c}");
}

// ----- silence heard as Voiceflow designed it (issue 13 item 8) ---------------

/// What one call cost in Dialog Manager requests, once the gateway is done
/// with it (the end-of-call report's turn may come after the callout settled).
async fn voiceflow_requests(
    app: &TestApp,
    call: &str,
    at_least: usize,
) -> (Vec<String>, Vec<&'static str>) {
    let vf = app.voiceflow.as_ref().unwrap();
    let started = Instant::now();
    loop {
        let interactions: Vec<String> = vf
            .interactions()
            .iter()
            .filter(|i| i.user_id == call)
            .map(|i| i.action["type"].as_str().unwrap_or("null").to_owned())
            .collect();
        let state: Vec<&'static str> = vf
            .state_requests()
            .iter()
            .filter(|r: &&StateRecord| r.user_id == call)
            .map(|r| r.method)
            .collect();
        if interactions.len() + state.len() >= at_least || started.elapsed() > LONG {
            // Anything more would show up now.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return (interactions, state);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn position(call: &SimCallRecord, needle: &str) -> Option<usize> {
    call.heard.iter().position(|t| t.contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_callee_hears_the_assistants_own_no_reply_response() {
    let app = spawn_app(Options::default()).await;
    app.sim.set_callee(&phone(1), Behaviour::silent());
    let id = app.create_callout(&assistant_callout(1)).await;
    let c = app.wait_settled(&id, LONG).await;
    assert_eq!(attempts(&c), [(0, 1, "no_input".to_owned())], "{c}");
    app.assert_no_protocol_errors();
    let record = app.sim.calls().remove(0);
    // The assistant's reprompt, after the wait, where the gateway's generic
    // repeat of the options used to be.
    let hello = position(&record, "Server room 2 is flooding").expect("greeted");
    let reprompt = position(&record, REPROMPT_TEXT)
        .unwrap_or_else(|| panic!("the no-reply response was not heard: {:?}", record.heard));
    assert!(hello < reprompt, "{:?}", record.heard);
    // The cost, in Dialog Manager requests: the launch, the saved state and the
    // no-reply turn run ahead, then the end-of-call silence reported as the
    // reprompt's own no-reply (which says goodbye to a call already over).
    let call = c["attempts"][0]["call_id"].as_str().unwrap();
    let (interactions, state) = voiceflow_requests(&app, call, 4).await;
    assert_eq!(interactions, ["launch", "no-reply", "no-reply"]);
    assert_eq!(state, ["GET"]);
    assert!(position(&record, NO_REPLY_GOODBYE_TEXT).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_pressed_during_the_wait_wins_over_the_no_reply_turn_run_ahead() {
    let app = spawn_app(Options::default()).await;
    // The greeting and the options take about 6 s, the wait 10 s: 1 at 9 s is
    // in the wait, before the no-reply response.
    app.sim
        .set_callee(&phone(1), Behaviour::press_after("1", 9.0));
    let id = app.create_callout(&assistant_callout(1)).await;
    let c = app.wait_settled(&id, LONG).await;
    assert_eq!(attempts(&c), [(0, 1, "accepted".to_owned())], "{c}");
    app.assert_no_protocol_errors();
    let record = app.sim.calls().remove(0);
    assert!(
        position(&record, "The ticket is yours").is_some(),
        "{:?}",
        record.heard
    );
    assert!(
        position(&record, REPROMPT_TEXT).is_none(),
        "{:?}",
        record.heard
    );
    // The no-reply turn ran ahead, and was undone before the key's turn.
    let call = c["attempts"][0]["call_id"].as_str().unwrap();
    let (interactions, state) = voiceflow_requests(&app, call, 5).await;
    assert_eq!(interactions, ["launch", "no-reply", "path-accept"]);
    assert_eq!(state, ["GET", "PUT"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_during_the_wait_is_answered_on_the_state_from_before_the_no_reply_turn() {
    let app = spawn_app(Options::default()).await;
    // A key the assistant does not understand, in the first wait, then silence.
    app.sim
        .set_callee(&phone(1), Behaviour::press_after("9", 9.0));
    let id = app.create_callout(&assistant_callout(1)).await;
    let c = app.wait_settled(&id, LONG).await;
    assert_eq!(attempts(&c), [(0, 1, "no_input".to_owned())], "{c}");
    let record = app.sim.calls().remove(0);
    let sorry = position(&record, NOT_UNDERSTOOD_TEXT).expect("the key's turn was answered");
    // Had the state not been put back, Voiceflow would count the silence run
    // ahead as the first one, and the next silence would say goodbye; it
    // reprompts, as for a first silence.
    let reprompt = position(&record, REPROMPT_TEXT)
        .unwrap_or_else(|| panic!("no reprompt after the key's turn: {:?}", record.heard));
    assert!(sorry < reprompt, "{:?}", record.heard);
    assert!(
        position(&record, NO_REPLY_GOODBYE_TEXT).is_none(),
        "{:?}",
        record.heard
    );
}

// ----- streamed turns (issue 19 item 1) ---------------------------------------

const STREAM_DEADLINE: Duration = Duration::from_millis(1000);

/// A live call of the sandbox assistant switched to streamed turns, with a
/// 1-second deadline and the simulator's stream shaped as `shape`: (app,
/// callout id, call id).
async fn streaming_call(shape: StreamShape) -> (TestApp, String, String) {
    let app = spawn_app(Options::default().env("SIM_TIME_SCALE", "1").env(
        "WEBHOOK_DEADLINE_MS",
        &STREAM_DEADLINE.as_millis().to_string(),
    ))
    .await;
    let list: Value = app
        .http
        .get(app.url("/v1/assistants"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sandbox = list["assistants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "sandbox")
        .expect("the sandbox assistant");
    let r = app
        .http
        .patch(app.url(&format!(
            "/v1/assistants/{}",
            sandbox["id"].as_str().unwrap()
        )))
        .json(&json!({"streaming": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    app.sim
        .set_callee(&phone(1), Behaviour::Silent { ring_s: 0.2 });
    let mut body = assistant_callout(1);
    body["policy"]["input_timeout_s"] = json!(60); // keep the call up while we act
    let id = app.create_callout(&body).await;
    let call = live_call(&app, &id).await;
    app.voiceflow.as_ref().unwrap().set_stream(shape);
    (app, id, call)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_turn_cut_at_the_deadline_says_what_came_and_plays_the_rest_next() {
    // "Sorry, I did not get that." at once, the buttons 1.5 s later.
    let shape = StreamShape {
        delay_ms: 1500,
        ..StreamShape::default()
    };
    let (app, id, call) = streaming_call(shape).await;
    let (took, plan) = post_keys(&app, &id, &call, 0, "9").await;
    assert!(
        took < STREAM_DEADLINE + Duration::from_millis(400),
        "answered after {took:?}"
    );
    let text = said(&plan);
    assert!(text.contains(NOT_UNDERSTOOD_TEXT), "{plan}");
    // No menu before its buttons came, and the wait keeps listening.
    assert!(!text.contains("Press 1"), "{plan}");
    assert!(text.contains("Press any key"), "{plan}");
    assert!(plan.to_string().contains("/collect/"), "{plan}");
    // The rest, once streamed, is played at the next key press; nothing twice.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (_, next) = post_keys(&app, &id, &call, 1, "95").await;
    let text = said(&next);
    assert!(text.contains("Press 1 for Accept"), "{next}");
    assert!(!text.contains(NOT_UNDERSTOOD_TEXT), "{next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_turn_that_ends_early_is_answered_at_once() {
    let (app, id, call) = streaming_call(StreamShape::default()).await;
    let (took, plan) = post_keys(&app, &id, &call, 0, "9").await;
    assert!(
        took < STREAM_DEADLINE / 2,
        "waited for the deadline: {took:?}"
    );
    let text = said(&plan);
    assert!(
        text.contains(NOT_UNDERSTOOD_TEXT) && text.contains("Press 1 for Accept"),
        "{plan}"
    );
    assert!(!text.contains("Press any key"), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_late_in_a_stream_counts_as_soon_as_it_arrives() {
    // The accept comes first, its goodbye 3 s later and the end 6 s later.
    let shape = StreamShape {
        delay_ms: 3000,
        ..StreamShape::default()
    };
    let (app, id, call) = streaming_call(shape).await;
    let started = Instant::now();
    let (_, plan) = post_keys(&app, &id, &call, 0, "1").await;
    assert!(said(&plan).contains("One moment"), "{plan}");
    let c = app
        .wait_until(&id, LONG, |c| c["status"] != "calling")
        .await;
    assert_eq!(c["status"], "accepted", "{c}");
    assert!(
        started.elapsed() < Duration::from_millis(4500),
        "the accept counted only at the end of the stream: {:?}",
        started.elapsed()
    );
    // The goodbye is still played at the next key press.
    tokio::time::sleep(Duration::from_millis(6500).saturating_sub(started.elapsed())).await;
    let (_, next) = post_keys(&app, &id, &call, 1, "15").await;
    assert!(said(&next).contains("The ticket is yours"), "{next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_broken_midway_continues_on_the_fallback_keypad() {
    let shape = StreamShape {
        break_after: Some(1),
        ..StreamShape::default()
    };
    let (app, id, call) = streaming_call(shape).await;
    let (took, plan) = post_keys(&app, &id, &call, 0, "9").await;
    assert!(took < STREAM_DEADLINE + Duration::from_millis(400));
    let text = said(&plan);
    assert!(
        text.contains("technical difficulties") && text.contains("Press 1 to accept"),
        "{plan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_stream_event_is_skipped_logged_and_counted() {
    let shape = StreamShape {
        malformed: 1,
        ..StreamShape::default()
    };
    let (app, id, call) = streaming_call(shape).await;
    let (_, plan) = post_keys(&app, &id, &call, 0, "9").await;
    let text = said(&plan);
    assert!(
        text.contains(NOT_UNDERSTOOD_TEXT) && text.contains("Press 1 for Accept"),
        "{plan}"
    );
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ivr_voiceflow_stream_malformed_total 1")),
        "{metrics}"
    );
}
