//! What the person on the phone hears (issue 16), end to end: the real
//! application, the carrier simulator playing callees, the shipped seed
//! template in each of its languages.

use std::time::Duration;

use ivr_gateway::dialplan::phrases::Phrases;
use ivr_gateway::routee::Language;
use ivr_gateway::sim::{Behaviour, SimCallRecord, ToneReading};
use serde_json::json;

use crate::helpers::{Options, StoreKind, TestApp, attempts, phone, spawn_app, ticket_callout};

const LONG: Duration = Duration::from_secs(40);

/// Every `SAY` the gateway sent on a call: the dialplan it was placed with and
/// every answer to a key press, as (text, language).
fn says(call: &SimCallRecord) -> Vec<(String, String)> {
    let mut plans = vec![serde_json::to_value(&call.dialplan).unwrap()];
    plans.extend(call.event_posts.iter().filter_map(|p| p.answer.clone()));
    plans
        .iter()
        .flat_map(|plan| plan["verbs"].as_array().cloned().unwrap_or_default())
        .filter(|v| v["type"] == "SAY")
        .map(|v| {
            (
                v["message"]["text"].as_str().unwrap_or_default().to_owned(),
                v["message"]["language"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// Everything the English seed call and the English phrases say.
fn english_words() -> Vec<String> {
    let template = ivr_gateway::dialplan::template::embedded();
    let seed = template.get("ticket-escalation").unwrap();
    let mut words: Vec<String> = Phrases::of(Language::EnUs)
        .entries()
        .iter()
        .map(|(_, t)| (*t).to_owned())
        .collect();
    words.push(seed.menu.text.source().to_owned());
    for key in seed.keys.values() {
        words.extend(
            key.say
                .as_ref()
                .map(|t| t.source().replace("{{contact_name}}", "Person 1")),
        );
        words.extend(
            key.say
                .as_ref()
                .map(|t| t.source().replace("{{contact_name}}", "Person 2")),
        );
    }
    words
}

/// The seed flow with every contact speaking `language`: the first presses a
/// wrong key, then rejects; the second accepts.
async fn seed_flow_in(app: &TestApp, language: Language) {
    app.sim
        .set_callee(&phone(1), Behaviour::press_on_prompt(["9", "2"]));
    app.sim.set_callee(&phone(2), Behaviour::accepts());
    let mut body = ticket_callout(2);
    for contact in body["contacts"].as_array_mut().unwrap() {
        contact["language"] = json!(language.code());
    }
    let id = app.create_callout(&body).await;
    let c = app.wait_settled(&id, LONG).await;
    assert_eq!(c["status"], "accepted", "{c}");
    let got: Vec<String> = attempts(&c).into_iter().map(|a| a.2).collect();
    assert_eq!(got, ["rejected", "accepted"]);
    let english = english_words();
    let p = Phrases::of(language);
    let calls = app.sim.calls();
    assert_eq!(calls.len(), 2);
    for call in &calls {
        let said = says(call);
        assert!(said.len() >= 3, "{said:?}");
        for (text, spoken_in) in &said {
            assert_eq!(spoken_in, language.code(), "{text:?} in {spoken_in}");
            if language.primary() != "en" {
                assert!(!english.contains(text), "English leaks: {text:?}");
            }
        }
    }
    let first = calls.iter().find(|c| c.to == phone(1)).unwrap();
    assert!(
        first.heard.contains(&p.invalid),
        "{:?} not in {:?}",
        p.invalid,
        first.heard
    );
}

macro_rules! seed_flow_in {
    ($name:ident, $language:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let app = spawn_app(Options::with_store(StoreKind::Memory)).await;
            seed_flow_in(&app, $language).await;
            app.assert_no_protocol_errors();
        }
    };
}

seed_flow_in!(the_seed_flow_in_english, Language::EnUs);
seed_flow_in!(the_seed_flow_in_greek, Language::ElGr);
seed_flow_in!(the_seed_flow_in_german, Language::DeDe);
seed_flow_in!(the_seed_flow_in_french, Language::FrFr);
seed_flow_in!(the_seed_flow_in_spanish, Language::EsEs);

/// `*` and `0` between two invalid keys: neither counts, so the third
/// decision-less key never comes and the callee still accepts; the help, the
/// repeat and the confirmation are heard. Under both tone readings.
async fn repeat_and_help_keys(app: &TestApp) {
    app.sim.set_callee(
        &phone(1),
        Behaviour::press_on_prompt(["9", "*", "0", "9", "1"]),
    );
    let id = app.create_callout(&ticket_callout(1)).await;
    let c = app.wait_settled(&id, LONG).await;
    assert_eq!(c["status"], "accepted", "{c}");
    let heard = &app.sim.calls()[0].heard;
    let en = Phrases::of(Language::EnUs);
    let count = |t: &str| heard.iter().filter(|h| *h == t).count();
    assert_eq!(count(&en.invalid), 2, "{heard:?}");
    assert_eq!(count(&en.options_again), 1, "{heard:?}");
    // The ticket: once in the intro, once more on `*`.
    assert_eq!(count("Server room 2 is flooding"), 2, "{heard:?}");
    assert!(
        heard
            .last()
            .unwrap()
            .starts_with("You accepted Ticket 4711. "),
        "{heard:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn star_and_zero_are_never_invalid_keys() {
    let app = spawn_app(Options::with_store(StoreKind::Memory)).await;
    repeat_and_help_keys(&app).await;
    app.assert_no_protocol_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn star_and_zero_are_never_invalid_keys_with_per_submit_tones() {
    let app = spawn_app(Options::with_store(StoreKind::Memory)).await;
    app.sim.set_tone_reading(ToneReading::PerSubmit);
    repeat_and_help_keys(&app).await;
    app.assert_no_protocol_errors();
}

/// A reached callee who cannot decide says why: three invalid keys are
/// `no_input`, a hang-up mid-prompt is `hung_up`; both on the timeline and in
/// the metrics, and both retried like any undecided attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_keys_are_no_input_and_a_hang_up_mid_prompt_is_hung_up() {
    let app = spawn_app(Options::with_store(StoreKind::Memory)).await;
    app.sim
        .set_callee(&phone(1), Behaviour::press_on_prompt(["7", "7", "7"]));
    app.sim.set_callee(&phone(2), Behaviour::hang_up(3.0));
    let mut body = ticket_callout(2);
    body["policy"]["attempts_per_contact"] = json!(1);
    let id = app.create_callout(&body).await;
    let c = app.wait_settled(&id, LONG).await;
    assert_eq!(c["status"], "exhausted", "{c}");
    let got: Vec<String> = attempts(&c).into_iter().map(|a| a.2).collect();
    assert_eq!(
        got,
        ["no_input", "hung_up"],
        "{}",
        serde_json::to_string_pretty(&c["events"]).unwrap()
    );
    let mut ended: Vec<&str> = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "attempt_ended")
        .map(|e| e["outcome"].as_str().unwrap_or_default())
        .collect();
    ended.sort_unstable();
    assert_eq!(ended, ["hung_up", "no_input"], "{c}");
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for outcome in ["no_input", "hung_up"] {
        let line = format!("ivr_attempt_outcomes_total{{outcome=\"{outcome}\"}} 1");
        assert!(metrics.contains(&line), "{line} not in metrics");
    }
    app.assert_no_protocol_errors();
}

/// An answering machine (Routee's machine detection, `Continue`): no decision,
/// the voicemail message once per call and never the menu, the attempt
/// `voicemail` and retried; the callout ends by the next callee's decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voicemail_hears_the_message_never_the_menu_and_is_retried() {
    let app = spawn_app(Options::with_store(StoreKind::Memory)).await;
    app.sim.set_callee(&phone(1), Behaviour::voicemail());
    app.sim.set_callee(&phone(2), Behaviour::accepts());
    let mut body = ticket_callout(2);
    body["policy"]["attempts_per_contact"] = json!(2);
    let id = app.create_callout(&body).await;
    let c = app.wait_settled(&id, LONG).await;
    assert_eq!(c["status"], "accepted", "{c}");
    let got: Vec<String> = attempts(&c).into_iter().map(|a| a.2).collect();
    assert_eq!(got, ["voicemail", "voicemail", "accepted"]);
    assert_eq!(c["accepted_by"]["phone"], phone(2));
    let events = c["events"].as_array().unwrap();
    let of_first = |kind: &str| {
        events
            .iter()
            .filter(|e| e["kind"] == kind && e["contact"] == 0)
            .count()
    };
    assert_eq!(of_first("voicemail_detected"), 2, "{c}");
    assert_eq!(of_first("decided"), 0, "{c}");
    let message = Phrases::of(Language::EnUs).voicemail("Ticket 4711");
    let machines: Vec<SimCallRecord> = app
        .sim
        .calls()
        .into_iter()
        .filter(|call| call.to == phone(1))
        .collect();
    assert_eq!(machines.len(), 2);
    for call in &machines {
        assert!(call.machine_detected);
        assert_eq!(
            call.heard.iter().filter(|h| **h == message).count(),
            1,
            "{:?}",
            call.heard
        );
        assert!(
            !call.heard.iter().any(|h| h.contains("Press 1")),
            "the menu reached a machine: {:?}",
            call.heard
        );
        assert!(call.keys.is_empty());
    }
    app.assert_no_protocol_errors();
}

/// The voicemail message is in the contact's language.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_greek_voicemail_is_left_in_greek() {
    let app = spawn_app(Options::with_store(StoreKind::Memory)).await;
    app.sim.set_callee(&phone(1), Behaviour::voicemail());
    let mut body = ticket_callout(1);
    body["policy"]["attempts_per_contact"] = json!(1);
    body["contacts"][0]["language"] = json!("el-GR");
    let id = app.create_callout(&body).await;
    let c = app.wait_settled(&id, LONG).await;
    assert_eq!(attempts(&c)[0].2, "voicemail");
    let call = &app.sim.calls()[0];
    let message = Phrases::of(Language::ElGr).voicemail("Ticket 4711");
    assert!(call.heard.contains(&message), "{:?}", call.heard);
    for (text, language) in says(call) {
        assert_eq!(language, "el-GR", "{text}");
    }
}

/// A policy may leave no message: the machine hears nothing after detection
/// (not the message, never the menu), and the attempt still ends `voicemail`.
/// A non-boolean `voicemail_message` is refused, naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_may_leave_no_voicemail_message() {
    let app = spawn_app(Options::with_store(StoreKind::Memory)).await;
    app.sim.set_callee(&phone(1), Behaviour::voicemail());
    let mut body = ticket_callout(1);
    body["policy"]["attempts_per_contact"] = json!(1);
    body["policy"]["voicemail_message"] = json!("no");
    crate::probe::create(&app, &body)
        .await
        .assert_names("policy.voicemail_message");
    body["policy"]["voicemail_message"] = json!(false);
    let id = app.create_callout(&body).await;
    let c = app.wait_settled(&id, LONG).await;
    assert_eq!(c["policy"]["voicemail_message"], json!(false), "{c}");
    assert_eq!(attempts(&c)[0].2, "voicemail", "{c}");
    let call = &app.sim.calls()[0];
    assert!(call.machine_detected);
    let message = Phrases::of(Language::EnUs).voicemail("Ticket 4711");
    assert!(!call.heard.contains(&message), "{:?}", call.heard);
    assert!(
        !call.heard.iter().any(|h| h.contains("Press 1")),
        "the menu reached a machine: {:?}",
        call.heard
    );
    app.assert_no_protocol_errors();
}

/// No dead air: for every callee behaviour the longest silence a callee hears
/// is the input timeout (measured by the simulator: from the end of one SAY to
/// the next, or to the end of the call), and no key waits more than 2 s for the
/// gateway's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_callee_hears_more_silence_than_the_input_timeout() {
    const INPUT_TIMEOUT_S: f64 = 10.0;
    // Scheduling slack: at the tests' time scale of 0.02, a timer 20 ms late
    // reads as 1 s; a loaded machine (the whole suite on two cores) is late so.
    const SLACK_S: f64 = 3.0;
    let app = spawn_app(Options::with_store(StoreKind::Memory)).await;
    let behaviours = [
        Behaviour::silent(),
        Behaviour::accepts(),
        Behaviour::press_on_prompt(["9", "2"]),
        Behaviour::press_on_prompt(["*", "0", "7", "7", "7"]),
        Behaviour::hang_up(12.0),
        Behaviour::voicemail(),
        Behaviour::press_after("1", 20.0),
    ];
    let mut ids = Vec::new();
    for (i, behaviour) in behaviours.iter().enumerate() {
        let number = format!("+3069500000{i:02}");
        app.sim.set_callee(&number, behaviour.clone());
        let mut body = ticket_callout(1);
        body["contacts"] = json!([{"name": "X", "phone": number}]);
        body["policy"]["attempts_per_contact"] = json!(1);
        body["policy"]["input_timeout_s"] = json!(10);
        ids.push(app.create_callout(&body).await);
    }
    for id in &ids {
        app.wait_settled(id, LONG).await;
    }
    let calls = app.sim.calls();
    assert_eq!(calls.len(), behaviours.len());
    for call in &calls {
        // What `cargo nextest run --test api no_callee_hears --no-capture` measures.
        println!(
            "{}: longest silence {} s, longest answer wait {} ms",
            call.behaviour, call.longest_silence_s, call.longest_answer_wait_ms
        );
        assert!(
            call.longest_silence_s <= INPUT_TIMEOUT_S + SLACK_S,
            "{}: {} s of silence; heard {:?} at {:?}",
            call.behaviour,
            call.longest_silence_s,
            call.heard,
            call.heard_at
        );
        assert!(
            call.longest_answer_wait_ms < 2000,
            "{}: a key waited {} ms for the next words",
            call.behaviour,
            call.longest_answer_wait_ms
        );
    }
    // The silent callee did hear the whole input timeout: the measure is real.
    let silent = calls
        .iter()
        .find(|c| c.behaviour == Behaviour::silent())
        .unwrap();
    assert!(
        silent.longest_silence_s >= INPUT_TIMEOUT_S - SLACK_S,
        "{}",
        silent.longest_silence_s
    );
    app.assert_no_protocol_errors();
}
