//! The escalation engine end to end: the real application, the carrier simulator
//! playing scripted callees, and (for each test) every store.
//!
//! The simulator is strict: tones are cumulative over the call unless a test
//! says otherwise, a key pressed during a `PAUSE` is posted only at the next
//! trigger, and a `PLAY` of anything but a reachable `.wav` is a protocol error.
//! Every scenario also runs with per-submit tones (the other reading of
//! Routee's wording) on the in-memory store and one Redis server: the reading
//! changes what Routee posts, not what the store does. Each run ends by
//! checking that the gateway sent the carrier nothing it would refuse.

use std::time::Duration;

use ivr_gateway::sim::{Behaviour, CalleeScript, Faults, ToneReading};
use serde_json::json;

use crate::helpers::{
    Options, StoreKind, attempts, numbers_called, phone, spawn_app, ticket_callout,
};
use crate::redis_server::RedisServer;

const LONG: Duration = Duration::from_secs(40);

/// Runs one test body against the in-memory store, one Redis server, a Redis
/// Cluster and a Sentinel setup (the last two shared by the test binary, each
/// test under its own key prefix), with cumulative tones; and with per-submit
/// tones on the in-memory store and one Redis server.
macro_rules! on_both_stores {
    ($name:ident, |$app:ident| $body:block) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_memory() {
                let $app = spawn_app(Options::with_store(StoreKind::Memory)).await;
                $body
                $app.assert_no_protocol_errors();
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_redis() {
                let server = RedisServer::start();
                let $app = spawn_app(Options::with_store(StoreKind::Redis {
                    url: server.url(),
                    prefix: "t".into(),
                }))
                .await;
                $body
                $app.assert_no_protocol_errors();
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn per_submit_tones_on_memory() {
                let $app = spawn_app(Options::with_store(StoreKind::Memory)).await;
                $app.sim.set_tone_reading(ToneReading::PerSubmit);
                $body
                $app.assert_no_protocol_errors();
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn per_submit_tones_on_redis() {
                let server = RedisServer::start();
                let $app = spawn_app(Options::with_store(StoreKind::Redis {
                    url: server.url(),
                    prefix: "t".into(),
                }))
                .await;
                $app.sim.set_tone_reading(ToneReading::PerSubmit);
                $body
                $app.assert_no_protocol_errors();
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_redis_cluster() {
                let url = crate::redis_server::shared_cluster().url();
                let $app = spawn_app(Options::with_store(StoreKind::Redis {
                    url,
                    prefix: crate::redis_server::unique_prefix(),
                }))
                .await;
                $body
                $app.assert_no_protocol_errors();
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_redis_sentinel() {
                let url = crate::redis_server::shared_sentinel().url();
                let $app = spawn_app(Options::with_store(StoreKind::Redis {
                    url,
                    prefix: crate::redis_server::unique_prefix(),
                }))
                .await;
                $body
                $app.assert_no_protocol_errors();
            }
        }
    };
}

on_both_stores!(the_seed_flow_calls_until_the_third_person_accepts, |app| {
    app.sim.set_callee(&phone(1), Behaviour::NeverAnswers);
    app.sim
        .set_callee(&phone(2), Behaviour::press_on_prompt(["2"]));
    app.sim.set_callee(&phone(3), Behaviour::accepts());
    let id = app.create_callout(&ticket_callout(3)).await;
    let c = app.wait_settled(&id, LONG).await;
    assert_eq!(c["status"], "accepted", "{c}");
    assert_eq!(c["accepted_by"]["contact"], 2);
    assert_eq!(c["accepted_by"]["phone"], phone(3));
    let got = attempts(&c);
    let want = [
        (0, 1, "no_answer"),
        (0, 2, "no_answer"),
        (0, 3, "no_answer"),
        (1, 1, "rejected"),
        (2, 1, "accepted"),
    ];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0, g.1, g.2.as_str()), w, "{got:?}");
    }
    // Nobody is called after the acceptance.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        numbers_called(&app.sim),
        [phone(1), phone(1), phone(1), phone(2), phone(3)]
    );
    assert_eq!(c["contacts"][0]["attempts"], 3);
    assert_eq!(c["contacts"][2]["outcome"], "accepted");
    // The timeline is in order and tells the story.
    let kinds: Vec<&str> = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"callout_created"));
    assert!(kinds.contains(&"callout_accepted"));
    assert_eq!(kinds.iter().filter(|k| **k == "call_placed").count(), 5);
    let times: Vec<&str> = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "events out of order: {times:?}"
    );
});

on_both_stores!(
    silence_hears_the_options_twice_and_ends_as_no_input,
    |app| {
        app.sim.set_callee(&phone(1), Behaviour::silent());
        let mut body = ticket_callout(1);
        body["policy"]["attempts_per_contact"] = json!(1);
        let id = app.create_callout(&body).await;
        let c = app.wait_settled(&id, LONG).await;
        assert_eq!(c["status"], "exhausted");
        assert_eq!(attempts(&c), [(0, 1, "no_input".to_owned())]);
        // The reprompt: the options were said, then said again after the input timeout.
        let call = &app.sim.calls()[0];
        let options: Vec<&String> = call
            .heard
            .iter()
            .filter(|t| t.contains("Press 1"))
            .collect();
        assert_eq!(options.len(), 2, "heard: {:?}", call.heard);
        assert!(
            call.heard
                .iter()
                .any(|t| t.contains("Server room 2 is flooding")),
            "{:?}",
            call.heard
        );
    }
);

on_both_stores!(
    busy_and_unanswered_calls_are_retried_after_the_delay,
    |app| {
        app.sim.set_callee(
            &phone(1),
            CalleeScript::always(Behaviour::Busy)
                .then(Behaviour::NeverAnswers)
                .then(Behaviour::accepts()),
        );
        let mut body = ticket_callout(1);
        body["policy"]["retry_delay_s"] = json!(2);
        let id = app.create_callout(&body).await;
        let c = app.wait_settled(&id, LONG).await;
        assert_eq!(c["status"], "accepted");
        let got: Vec<String> = attempts(&c).into_iter().map(|a| a.2).collect();
        assert_eq!(got, ["busy", "no_answer", "accepted"]);
        // Each retry started at least the policy's delay after the previous attempt ended.
        let a = c["attempts"].as_array().unwrap();
        for pair in a.windows(2) {
            let ended = ivr_gateway::domain::Timestamp::parse_lenient(
                pair[0]["ended_at"].as_str().unwrap(),
            )
            .unwrap();
            let started = ivr_gateway::domain::Timestamp::parse_lenient(
                pair[1]["started_at"].as_str().unwrap(),
            )
            .unwrap();
            assert!(
                started.since(ended) >= Duration::from_millis(1900),
                "retried too early: {pair:?}"
            );
        }
    }
);

on_both_stores!(cancelling_mid_call_hangs_up_and_calls_nobody_else, |app| {
    app.sim.set_callee(&phone(1), Behaviour::silent());
    let id = app.create_callout(&ticket_callout(2)).await;
    app.wait_until(&id, LONG, |c| c["attempts"][0]["status"] == "in_progress")
        .await;
    let r = app
        .http
        .post(app.url(&format!("/v1/callouts/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let c = app
        .wait_until(&id, LONG, |c| c["attempts"][0]["outcome"] == "cancelled")
        .await;
    assert_eq!(c["status"], "cancelled");
    let call = &app.sim.calls()[0];
    assert!(
        call.end_reason
            .as_deref()
            .unwrap_or_default()
            .contains("hung up"),
        "{:?}",
        call.end_reason
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        numbers_called(&app.sim),
        [phone(1)],
        "no call after a cancel"
    );
    // Cancelling again is a conflict, not a change.
    let r = app
        .http
        .post(app.url(&format!("/v1/callouts/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
});

on_both_stores!(duplicated_and_reordered_webhooks_change_nothing, |app| {
    app.sim.set_faults(Faults {
        duplicate_callbacks: 1.0,
        reorder_callbacks: true,
        callback_delay_ms: (0, 60),
        seed: Some(7),
        ..Faults::default()
    });
    app.sim.set_callee(&phone(1), Behaviour::NeverAnswers);
    app.sim
        .set_callee(&phone(2), Behaviour::press_on_prompt(["2"]));
    app.sim.set_callee(&phone(3), Behaviour::accepts());
    let mut body = ticket_callout(3);
    body["policy"]["attempts_per_contact"] = json!(2);
    let id = app.create_callout(&body).await;
    let c = app.wait_settled(&id, LONG).await;
    assert_eq!(c["status"], "accepted");
    let got: Vec<String> = attempts(&c).into_iter().map(|a| a.2).collect();
    assert_eq!(got, ["no_answer", "no_answer", "rejected", "accepted"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        numbers_called(&app.sim).len(),
        4,
        "a duplicate webhook placed a call"
    );
    // Every status was delivered twice, yet each appears once in the timeline.
    let statuses = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "call_status")
        .count();
    let distinct: std::collections::HashSet<String> = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "call_status")
        .map(|e| format!("{}{}{}", e["contact"], e["attempt"], e["status"]))
        .collect();
    assert_eq!(statuses, distinct.len());
});

on_both_stores!(a_forged_webhook_is_refused_and_changes_nothing, |app| {
    app.sim.set_callee(&phone(1), Behaviour::silent());
    let id = app.create_callout(&ticket_callout(1)).await;
    let c = app
        .wait_until(&id, LONG, |c| c["attempts"][0]["status"] == "in_progress")
        .await;
    let call_id = c["attempts"][0]["call_id"].as_str().unwrap().to_owned();
    let before = app.get_callout(&id).await;
    let forged = json!({"messageId": "m", "status": {"name": "Completed"}});
    // No signature, a wrong one, and a valid one for a different call.
    let other_call = ivr_gateway::domain::CallId::new();
    let stolen = app.engine.status_url(id.parse().unwrap(), other_call);
    let stolen_sig = stolen.split("sig=").nth(1).unwrap();
    for (url, expected) in [
        (app.url(&format!("/routee/status/{id}/{call_id}")), 401),
        (
            app.url(&format!("/routee/status/{id}/{call_id}?sig=AAAA")),
            403,
        ),
        (
            app.url(&format!("/routee/status/{id}/{call_id}?sig={stolen_sig}")),
            403,
        ),
        (
            app.url(&format!(
                "/routee/collect/{id}/{call_id}/0?sig={stolen_sig}"
            )),
            403,
        ),
    ] {
        let r = app.http.post(&url).json(&forged).send().await.unwrap();
        assert_eq!(r.status().as_u16(), expected, "{url}");
    }
    let after = app.get_callout(&id).await;
    assert_eq!(before["attempts"], after["attempts"]);
    assert_eq!(before["events"], after["events"]);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_mid_callout_on_the_same_redis_finishes_it() {
    restart_scenario(ToneReading::Cumulative).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_mid_callout_finishes_it_with_per_submit_tones() {
    restart_scenario(ToneReading::PerSubmit).await;
}

async fn restart_scenario(tones: ToneReading) {
    let server = RedisServer::start();
    let callees = ivr_gateway::sim::Callees::default()
        .with(&phone(1), Behaviour::NeverAnswers)
        .with(&phone(2), Behaviour::accepts());
    let sim = crate::helpers::spawn_sim(callees).await;
    sim.set_tone_reading(tones);
    let store = StoreKind::Redis {
        url: server.url(),
        prefix: "restart".into(),
    };
    // A fixed port, so the webhook URLs given to the carrier stay valid across the restart.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = || {
        let mut o =
            Options::with_store(store.clone()).env("LISTEN_ADDR", &format!("127.0.0.1:{port}"));
        o.external_sim = Some(sim.clone());
        o.public_url = Some(format!("http://127.0.0.1:{port}"));
        o
    };
    let first = spawn_app(opts()).await;
    let mut body = ticket_callout(2);
    body["policy"]["attempts_per_contact"] = json!(2);
    body["policy"]["retry_delay_s"] = json!(3);
    let id = first.create_callout(&body).await;
    first
        .wait_until(&id, LONG, |c| c["attempts"][0]["outcome"] == "no_answer")
        .await;
    first.stop().await;
    // The next attempt is due while no replica runs; a new one picks it up.
    let second = spawn_app(opts()).await;
    let c = second.wait_settled(&id, LONG).await;
    assert_eq!(c["status"], "accepted");
    let got: Vec<String> = attempts(&c).into_iter().map(|a| a.2).collect();
    assert_eq!(got, ["no_answer", "no_answer", "accepted"]);
    assert_eq!(numbers_called(&sim), [phone(1), phone(1), phone(2)]);
    crate::helpers::assert_no_protocol_errors(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_callee_behaviour_ends_in_its_own_outcome() {
    let app = spawn_app(Options::default()).await;
    let cases = [
        (Behaviour::hang_up(3.0), "hung_up"),
        (Behaviour::press_after("1", 6.0), "accepted"),
        (Behaviour::press_after("2", 6.0), "rejected"),
        (Behaviour::Fails, "failed"),
        (Behaviour::Rejects, "no_answer"),
        (Behaviour::Busy, "busy"),
        (Behaviour::NeverAnswers, "no_answer"),
        (Behaviour::silent(), "no_input"),
        (Behaviour::voicemail(), "voicemail"),
    ];
    let mut ids = Vec::new();
    for (i, (behaviour, _)) in cases.iter().enumerate() {
        let number = format!("+3069400000{i:02}");
        app.sim.set_callee(&number, behaviour.clone());
        let mut body = ticket_callout(1);
        body["contacts"] = json!([{"name": "X", "phone": number}]);
        body["policy"]["attempts_per_contact"] = json!(1);
        ids.push(app.create_callout(&body).await);
    }
    for (id, (behaviour, want)) in ids.iter().zip(cases) {
        let c = app.wait_settled(id, LONG).await;
        assert_eq!(c["attempts"][0]["outcome"], want, "{behaviour:?}: {c}");
    }
    // The callee who hung up mid-prompt heard part of the call, not all of it.
    let hung = app
        .sim
        .calls()
        .into_iter()
        .find(|c| c.to == "+306940000000")
        .unwrap();
    assert!(
        hung.end_reason
            .as_deref()
            .unwrap_or_default()
            .contains("hung up"),
        "{:?}",
        hung.end_reason
    );
    app.assert_no_protocol_errors();
}

const FILLED_TEXT: &str = "This request has been filled. Thank you.";

/// When each attempt started and ended, in the gateway's view.
fn attempt_times(
    c: &serde_json::Value,
) -> Vec<(
    ivr_gateway::domain::Timestamp,
    ivr_gateway::domain::Timestamp,
)> {
    let parse = |v: &serde_json::Value| {
        ivr_gateway::domain::Timestamp::parse_lenient(v.as_str().unwrap()).unwrap()
    };
    c["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (parse(&a["started_at"]), parse(&a["ended_at"])))
        .collect()
}

on_both_stores!(
    two_needed_of_five_two_at_a_time_ends_the_third_acceptors_call_politely,
    |app| {
        // Lanes call 1 and 2 at once. 1 accepts; 2 answers and only presses 1
        // much later; 3 (lane 1's next) accepts and fills the callout while 2
        // is still listening: 2 is told the request was filled.
        app.sim.set_callee(&phone(1), Behaviour::accepts());
        app.sim
            .set_callee(&phone(2), Behaviour::press_after("1", 150.0));
        app.sim.set_callee(&phone(3), Behaviour::accepts());
        app.sim.set_callee(&phone(4), Behaviour::accepts());
        app.sim.set_callee(&phone(5), Behaviour::accepts());
        let mut body = ticket_callout(5);
        body["policy"]["needed"] = json!(2);
        body["policy"]["parallel"] = json!(2);
        body["policy"]["input_timeout_s"] = json!(60);
        body["policy"]["reprompts"] = json!(5);
        let id = app.create_callout(&body).await;
        let c = app.wait_settled(&id, LONG).await;
        assert_eq!(c["status"], "accepted", "{c}");
        let acceptors: Vec<u64> = c["acceptors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["contact"].as_u64().unwrap())
            .collect();
        assert_eq!(acceptors, [0, 2], "{c}");
        assert_eq!(c["accepted_by"]["contact"], 0);
        assert_eq!(c["policy"]["needed"], 2);
        // Exactly three calls, never more than two at once, nobody after the fill.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut called = numbers_called(&app.sim);
        called[..2].sort();
        assert_eq!(called, [phone(1), phone(2), phone(3)]);
        let times = attempt_times(&c);
        for (i, (start, _)) in times.iter().enumerate() {
            let open = times
                .iter()
                .filter(|(s, e)| s <= start && e > start)
                .count();
            assert!(
                open <= 2,
                "{open} calls at once when attempt {i} started: {c}"
            );
        }
        let second = app
            .sim
            .calls()
            .into_iter()
            .find(|k| k.to == phone(2))
            .unwrap();
        assert!(
            second.heard.iter().any(|t| t == FILLED_TEXT),
            "heard: {:?}",
            second.heard
        );
        let its = c["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["contact"] == 1)
            .unwrap();
        assert!(its.get("decision").is_none(), "{its}");
    }
);

on_both_stores!(
    two_rounds_of_silence_call_everyone_twice_with_the_round_delay_between,
    |app| {
        app.sim.set_callee(&phone(1), Behaviour::silent());
        app.sim.set_callee(&phone(2), Behaviour::silent());
        let mut body = ticket_callout(2);
        body["policy"]["attempts_per_contact"] = json!(1);
        body["policy"]["input_timeout_s"] = json!(1);
        body["policy"]["reprompts"] = json!(0);
        body["policy"]["rounds"] = json!(2);
        body["policy"]["round_delay_s"] = json!(2);
        let id = app.create_callout(&body).await;
        let c = app.wait_settled(&id, LONG).await;
        assert_eq!(c["status"], "exhausted", "{c}");
        assert_eq!(
            attempts(&c),
            [
                (0, 1, "no_input".to_owned()),
                (1, 1, "no_input".to_owned()),
                (0, 1, "no_input".to_owned()),
                (1, 1, "no_input".to_owned()),
            ]
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            numbers_called(&app.sim),
            [phone(1), phone(2), phone(1), phone(2)]
        );
        assert_eq!(c["contacts"][0]["attempts"], 2);
        let times = attempt_times(&c);
        let gap = times[2].0.since(times[1].1);
        assert!(
            gap >= Duration::from_millis(1900),
            "round 2 began {gap:?} after round 1 ended"
        );
        assert!(
            gap < Duration::from_secs(10),
            "round 2 began {gap:?} after round 1 ended"
        );
        assert!(times[1].0 >= times[0].1, "one call at a time");
        let rounds: Vec<u64> = c["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "round_started")
            .map(|e| e["round"].as_u64().unwrap())
            .collect();
        assert_eq!(rounds, [2]);
        assert_eq!(c["round"], 2);
    }
);

/// A gateway with a per-person limit of one call per 15 minutes.
fn limited(store: StoreKind) -> Options {
    Options::with_store(store)
        .env("PERSON_CALLS_PER_15_MIN", "1")
        .env("PERSON_CALLS_PER_HOUR", "7")
}

/// Two callouts share person 1: the first calls them; the second's call to
/// them waits, on its timeline, for the 15 minutes to pass, and is never placed
/// meanwhile.
async fn a_per_person_limit_is_shared_by_two_callouts(app: &crate::helpers::TestApp) {
    app.sim
        .set_callee(&phone(1), Behaviour::press_on_prompt(["2"]));
    app.sim.set_callee(&phone(2), Behaviour::accepts());
    let first = app.create_callout(&ticket_callout(2)).await;
    let c = app.wait_settled(&first, LONG).await;
    assert_eq!(c["status"], "accepted", "{c}");
    let second = app.create_callout(&ticket_callout(2)).await;
    let c = app
        .wait_until(&second, LONG, |c| {
            c["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["kind"] == "call_held"))
        })
        .await;
    let held = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "call_held")
        .unwrap();
    assert_eq!(held["contact"], 0);
    let at = ivr_gateway::domain::Timestamp::parse_lenient(held["at"].as_str().unwrap()).unwrap();
    let until =
        ivr_gateway::domain::Timestamp::parse_lenient(held["until"].as_str().unwrap()).unwrap();
    let wait = until.since(at);
    assert!(
        wait > Duration::from_secs(14 * 60) && wait <= Duration::from_secs(15 * 60),
        "held for {wait:?}"
    );
    assert_eq!(c["status"], "calling");
    assert_eq!(c["next_call_at"], serde_json::Value::Null, "{c}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        numbers_called(&app.sim),
        [phone(1), phone(2)],
        "person 1 was called a second time within 15 minutes"
    );
    let r = app
        .http
        .post(app.url(&format!("/v1/callouts/{second}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let c = app.wait_settled(&second, LONG).await;
    assert_eq!(attempts(&c), [(0, 1, "cancelled".to_owned())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_person_limit_is_shared_by_two_callouts_on_memory() {
    let app = spawn_app(limited(StoreKind::Memory)).await;
    a_per_person_limit_is_shared_by_two_callouts(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_person_limit_is_shared_by_two_callouts_on_redis() {
    let server = RedisServer::start();
    let app = spawn_app(limited(StoreKind::Redis {
        url: server.url(),
        prefix: "t".into(),
    }))
    .await;
    a_per_person_limit_is_shared_by_two_callouts(&app).await;
}
