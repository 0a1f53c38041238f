//! Issue 13 end to end, against the strict simulator: every key press is
//! answered at once, and keys are read on cumulative (or per-submit) tones.

use std::time::Duration;

use ivr_gateway::routee::Verb;
use ivr_gateway::sim::{Behaviour, Faults, SimCallRecord, ToneReading};
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, attempts, phone, spawn_app, ticket_callout};

const LONG: Duration = Duration::from_secs(60);
/// Slower than the other suites (a simulated second lasts 100 ms) so that the
/// scheduling noise of a loaded machine stays small against a second.
const SCALE: f64 = 0.1;

const CONFIRMATION: &str = "The ticket is yours";
const OPTIONS: &str = "Press 1 to accept";
const NOT_VALID: &str = "not a valid choice";

/// Simulated seconds from the answer to the end of the menu, where the first
/// wait for a key starts, read from the dialplan the gateway would place.
async fn menu_end_s(app: &TestApp, body: &Value) -> f64 {
    let r = app
        .http
        .post(app.url("/v1/callouts/preview"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let preview: Value = r.json().await.unwrap();
    let verbs: Vec<Verb> = serde_json::from_value(preview["first_call"]["verbs"].clone()).unwrap();
    let mut total = 0.0;
    for verb in &verbs {
        if let Verb::Say(s) = verb
            && s.message.text.contains(OPTIONS)
        {
            return total + ivr_gateway::sim::verb_seconds(verb, 0.0).unwrap_or(0.0);
        }
        total += ivr_gateway::sim::verb_seconds(verb, 0.0).unwrap_or(0.0);
    }
    panic!("no menu in {verbs:?}");
}

/// One ticket call whose callee presses turn k of `keys` at `menu end + at[k]`
/// seconds; the callout when settled, and the call.
async fn ticket_call(tones: ToneReading, keys: &[&str], at: &[f64]) -> (Value, SimCallRecord) {
    let app = spawn_app(Options::default().env("SIM_TIME_SCALE", &SCALE.to_string())).await;
    app.sim.set_tone_reading(tones);
    let mut body = ticket_callout(1);
    body["policy"]["attempts_per_contact"] = json!(1);
    let menu_end = menu_end_s(&app, &body).await;
    let at: Vec<f64> = at.iter().map(|s| (menu_end + s).max(0.0)).collect();
    app.sim
        .set_callee(&phone(1), Behaviour::press_at(keys.iter().copied(), &at));
    let id = app.create_callout(&body).await;
    let c = app.wait_settled(&id, LONG).await;
    app.assert_no_protocol_errors();
    let call = app.sim.calls().remove(0);
    (c, call)
}

/// Simulated milliseconds from the callee's last key to the first `SAY` after it.
fn key_to_say_ms(call: &SimCallRecord) -> (f64, &str) {
    let pressed = *call.keys_at.last().expect("a key was pressed");
    let (i, said) = call
        .heard_at
        .iter()
        .enumerate()
        .find(|(_, t)| **t >= pressed)
        .expect("something was said after the key");
    ((said - pressed) * 1000.0, call.heard[i].as_str())
}

fn times_heard(call: &SimCallRecord, needle: &str) -> usize {
    call.heard.iter().filter(|t| t.contains(needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_pressed_while_waiting_is_answered_within_a_second() {
    for tones in [ToneReading::Cumulative, ToneReading::PerSubmit] {
        // 1 second after the options: in the wait, before the reprompt (10 s).
        let (c, call) = ticket_call(tones, &["1"], &[1.0]).await;
        assert_eq!(attempts(&c), [(0, 1, "accepted".to_owned())], "{tones:?}");
        let (ms, said) = key_to_say_ms(&call);
        eprintln!("{tones:?}: key to confirmation {ms:.0} simulated ms (time scale {SCALE})");
        assert!(
            said.contains(CONFIRMATION),
            "{tones:?}: heard {said:?} first"
        );
        assert!(
            ms < 1000.0,
            "{tones:?}: the confirmation came {ms:.0} ms after the key"
        );
        assert_eq!(
            times_heard(&call, OPTIONS),
            1,
            "{tones:?}: no reprompt: {:?}",
            call.heard
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_then_silence_then_one_again_is_accepted_under_both_readings() {
    for tones in [ToneReading::Cumulative, ToneReading::PerSubmit] {
        // The first 1 lands in the intro's pause (gathered, not posted); the
        // second, in the wait after the options, posts both: "11".
        let (c, call) = ticket_call(tones, &["1", "1"], &[-100.0, 1.0]).await;
        assert_eq!(call.event_posts[0].collected_tones, "11", "{tones:?}");
        assert_eq!(attempts(&c), [(0, 1, "accepted".to_owned())], "{tones:?}");
        assert_eq!(
            times_heard(&call, NOT_VALID),
            0,
            "{tones:?}: {:?}",
            call.heard
        );
        assert!(key_to_say_ms(&call).1.contains(CONFIRMATION), "{tones:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_then_the_right_one_is_accepted_under_both_readings() {
    for (tones, second_post) in [
        (ToneReading::Cumulative, "91"),
        (ToneReading::PerSubmit, "1"),
    ] {
        let (c, call) = ticket_call(tones, &["9", "1"], &[1.0, 6.0]).await;
        let posted: Vec<&str> = call
            .event_posts
            .iter()
            .map(|p| p.collected_tones.as_str())
            .collect();
        assert_eq!(posted[..2], ["9", second_post], "{tones:?}");
        assert_eq!(
            times_heard(&call, NOT_VALID),
            1,
            "{tones:?}: {:?}",
            call.heard
        );
        assert_eq!(attempts(&c), [(0, 1, "accepted".to_owned())], "{tones:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_call_report_is_not_read_as_a_second_press() {
    // A wrong key, then silence until the call ends: with cumulative tones the
    // end-of-call POST carries "9" again, which is nothing new.
    let (c, call) = ticket_call(ToneReading::Cumulative, &["9"], &[1.0]).await;
    let last = call.event_posts.last().unwrap();
    assert!(last.final_post && last.collected_tones == "9", "{last:?}");
    assert_eq!(attempts(&c), [(0, 1, "no_input".to_owned())]);
    let keys: Vec<&Value> = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "keys_pressed")
        .collect();
    assert_eq!(keys.len(), 1, "one press, one event: {keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_legs_callbacks_show_as_the_transfer_and_never_change_the_callees_attempt() {
    let app = spawn_app(Options::default()).await;
    app.sim.set_callee(&phone(1), Behaviour::silent());
    let id = app.create_callout(&ticket_callout(1)).await;
    let c = app
        .wait_until(&id, LONG, |c| c["attempts"][0]["status"] == "in_progress")
        .await;
    let call = c["attempts"][0]["call_id"].as_str().unwrap().to_owned();
    let url = app
        .engine
        .status_url(id.parse().unwrap(), call.parse().unwrap());
    // The DIAL's second leg reports with its own messageId to the same URL.
    for s in ["Initiated", "Ringing", "InProgress", "InProgress", "Busy"] {
        let r = app
            .http
            .post(&url)
            .json(&json!({"messageId": "the-transfer-leg", "status": {"name": s}}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{s}: {}", r.status());
    }
    let c = app.get_callout(&id).await;
    assert_eq!(c["attempts"][0]["status"], "in_progress", "{c}");
    assert!(c["attempts"][0]["outcome"].is_null(), "{c}");
    assert_eq!(c["attempts"][0]["transfer"], "busy", "{c}");
    let transfer: Vec<&str> = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "transfer")
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(transfer, ["dialing", "ringing", "answered", "busy"]);
}

/// Routee answers 500 to every creation for a while (four seconds here: the
/// two minutes of the issue, shortened), then recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_outage_costs_no_attempt_and_places_no_duplicate_call() {
    let app = spawn_app(Options::default().env("ROUTEE_UNCONFIRMED_WINDOW_S", "1")).await;
    app.sim
        .set_callee(&phone(1), Behaviour::press_on_prompt(["2"]));
    app.sim.set_callee(&phone(2), Behaviour::accepts());
    app.sim.set_faults(Faults {
        create_outage_ms: 4000,
        ..Faults::none()
    });
    let id = app.create_callout(&ticket_callout(2)).await;
    let c = app.wait_settled(&id, LONG).await;
    assert_eq!(c["status"], "accepted", "{c}");
    // The callees decided: one attempt each, none lost to the outage.
    assert_eq!(
        attempts(&c),
        [(0, 1, "rejected".to_owned()), (1, 1, "accepted".to_owned())]
    );
    let refused = app.sim.injected().refused_creations.len();
    assert!(refused >= 2, "the outage refused {refused} creations");
    // Exactly one call per attempt reached the network.
    assert_eq!(app.sim.calls().len(), 2);
    let events: Vec<&str> = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        events
            .iter()
            .filter(|k| **k == "carrier_unavailable")
            .count(),
        1,
        "{events:?}"
    );
    app.assert_no_protocol_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_outage_longer_than_the_limit_fails_the_callout_as_carrier_unavailable() {
    let app = spawn_app(
        Options::default()
            .env("ROUTEE_UNCONFIRMED_WINDOW_S", "1")
            .env("CARRIER_OUTAGE_LIMIT_S", "3"),
    )
    .await;
    app.sim.set_callee(&phone(1), Behaviour::accepts());
    app.sim.set_faults(Faults {
        create_outage_ms: 60_000,
        ..Faults::none()
    });
    let id = app.create_callout(&ticket_callout(2)).await;
    let c = app.wait_settled(&id, LONG).await;
    assert_eq!(c["status"], "failed", "{c}");
    let failed = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "callout_failed")
        .expect("a callout_failed event");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .starts_with("carrier_unavailable"),
        "{failed}"
    );
    // The second contact was never tried: the carrier, not the callees, failed.
    assert_eq!(attempts(&c).len(), 1, "{c}");
    assert!(app.sim.calls().is_empty());
}

/// The other side of "was a call created?": a 500 whose call was in fact
/// created is adopted by its callbacks, never placed a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_500_that_created_the_call_is_adopted_not_placed_twice() {
    let app = spawn_app(Options::default().env("ROUTEE_UNCONFIRMED_WINDOW_S", "5")).await;
    app.sim.set_callee(&phone(1), Behaviour::accepts());
    app.sim.set_faults(Faults {
        create_then_fail: 1,
        ..Faults::none()
    });
    let id = app.create_callout(&ticket_callout(1)).await;
    let c = app.wait_settled(&id, LONG).await;
    assert_eq!(c["status"], "accepted", "{c}");
    assert_eq!(attempts(&c), [(0, 1, "accepted".to_owned())]);
    assert_eq!(app.sim.calls().len(), 1, "placed once");
    let kinds: Vec<&str> = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"placement_unconfirmed"), "{kinds:?}");
    assert!(!kinds.contains(&"carrier_unavailable"), "{kinds:?}");
}
