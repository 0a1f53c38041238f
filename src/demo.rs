//! `ivr-gateway demo`: the whole product in one command, with nothing installed.
//!
//! Starts the gateway in the sandbox (simulated carrier, in-memory store), scripts
//! three callees (Alice never answers, Bob rejects, Carol accepts), creates the
//! seed's callout through the real HTTP API, and narrates it as it happens: who is
//! called, attempt n of 3, what they heard, what they pressed, the outcome. Then a
//! summary. Exits 0 only if the callout ends as expected.

#![allow(clippy::print_stdout, clippy::print_stderr)] // printing is what the demo is for

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::app::{Application, SANDBOX_ASSISTANT};
use crate::config::Config;
use crate::domain::phone::mask;
use crate::domain::{EventKind, Outcome};
use crate::engine::TimelineEvent;
use crate::routee::CallStatus;
use crate::sim::{Behaviour, SimEvent, SimHandle};

/// The seed scenario's call list, in order.
pub const PEOPLE: [(&str, &str); 3] = [
    ("Alice", "+306900000001"),
    ("Bob", "+306900000002"),
    ("Carol", "+306900000003"),
];
const ATTEMPTS: u32 = 3;
const RETRY_DELAY_S: u32 = 3;

/// Scripts the seed scenario's simulated callees: Alice never answers, Bob
/// presses 2 (reject), Carol presses 1 (accept). Other numbers are untouched.
pub fn script_seed_callees(sim: &SimHandle) {
    sim.set_callee(PEOPLE[0].1, Behaviour::NeverAnswers);
    sim.set_callee(PEOPLE[1].1, Behaviour::press_on_prompt(["2"]));
    sim.set_callee(PEOPLE[2].1, Behaviour::press_on_prompt(["1"]));
}

/// The seed scenario's callout (the body of `POST /v1/callouts`): the ticket to
/// Alice, Bob and Carol, three attempts each, from the ticket template or (with
/// `voiceflow`) the sandbox's simulated assistant.
pub fn seed_callout(voiceflow: bool) -> Value {
    let script = if voiceflow {
        json!({"assistant": SANDBOX_ASSISTANT})
    } else {
        json!({"dialplan": "ticket-escalation"})
    };
    let mut body = json!({
        "name": "Ticket 4711",
        "variables": {"ticket": "Server room 2 is flooding."},
        "contacts": PEOPLE.iter().map(|(n, p)| json!({"name": n, "phone": p})).collect::<Vec<_>>(),
        "policy": {"attempts_per_contact": ATTEMPTS, "retry_delay_s": RETRY_DELAY_S, "ring_timeout_s": 20},
    });
    if let (Some(b), Some(s)) = (body.as_object_mut(), script.as_object()) {
        b.extend(s.clone());
    }
    body
}

/// Runs the demo; the exit code says whether the callout ended as expected.
pub async fn run(voiceflow: bool, time_scale: f64) -> anyhow::Result<ExitCode> {
    if !(time_scale > 0.0 && time_scale <= 1.0) {
        anyhow::bail!("--time-scale must be in (0, 1]");
    }
    let env: HashMap<String, String> = [
        ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("SIM_TIME_SCALE", time_scale.to_string()),
        ("COLLECT_GRACE_MS", "1000".to_owned()),
        ("ROUTEE_CALLS_PER_SECOND", "5".to_owned()),
        ("RUST_LOG", "error".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = Config::from_map(&env).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::telemetry::init_logging(config.log_format, &config.log_filter);
    let app = Application::build(config)
        .await
        .context("starting the sandbox")?;
    let sim = app
        .simulator()
        .cloned()
        .context("the sandbox has no simulator")?;
    script_seed_callees(&sim);
    let mut sim_events = sim.subscribe();
    let mut timeline = app.engine().subscribe();
    let base = format!("http://{}", app.local_addr());
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run());

    let body = seed_callout(voiceflow);

    println!(
        "ivr-gateway demo: the sandbox (simulated carrier, in-memory store), simulated time x{:.0}",
        1.0 / time_scale
    );
    println!(
        "Callout \"Ticket 4711: Server room 2 is flooding.\" to Alice, Bob and Carol, {ATTEMPTS} attempts each, {RETRY_DELAY_S} s apart; conversation from {}.",
        if voiceflow {
            "a (simulated) Voiceflow assistant"
        } else {
            "the ticket-escalation dialplan template"
        }
    );
    println!("Alice never answers, Bob presses 2 (reject), Carol presses 1 (accept).\n");

    let http = crate::net::http_client(Duration::from_secs(2), Duration::from_secs(10))?;
    let created: Value = http
        .post(format!("{base}/v1/callouts"))
        .json(&body)
        .send()
        .await?
        .error_for_status()
        .context("creating the callout")?
        .json()
        .await?;
    let id = created["id"].as_str().context("no callout id")?.to_owned();
    println!("POST /v1/callouts -> 201, callout {id}\n");

    let started = Instant::now();
    let names: HashMap<&str, &str> = PEOPLE.iter().map(|(n, p)| (*p, *n)).collect();
    let who = |phone: &str| {
        format!(
            "{} ({})",
            names.get(phone).copied().unwrap_or("someone"),
            mask(phone)
        )
    };
    let stamp = |at: Instant| {
        let t = at.duration_since(started);
        format!("{:>3}:{:04.1}", t.as_secs() / 60, t.as_secs_f64() % 60.0)
    };
    let deadline = started + Duration::from_secs(110);
    let mut finished = false;
    while !finished && Instant::now() < deadline {
        tokio::select! {
            e = sim_events.recv() => match e {
                Ok(e) => print_sim_event(&stamp(Instant::now()), &e, &who),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            t = timeline.recv() => match t {
                Ok(t) => finished |= print_timeline(&stamp(Instant::now()), &t, &PEOPLE),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    // Let the accepting call say goodbye and end before the summary.
    let final_state = wait_settled(
        &http,
        &base,
        &id,
        Duration::from_secs(15),
        &mut sim_events,
        &stamp,
        &who,
    )
    .await?;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;

    let ok = summarize(&final_state, started.elapsed());
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn wait_settled(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    timeout: Duration,
    sim_events: &mut tokio::sync::broadcast::Receiver<SimEvent>,
    stamp: &impl Fn(Instant) -> String,
    who: &impl Fn(&str) -> String,
) -> anyhow::Result<Value> {
    let until = Instant::now() + timeout;
    loop {
        let c: Value = http
            .get(format!("{base}/v1/callouts/{id}"))
            .send()
            .await?
            .json()
            .await?;
        let settled = c["status"] != "calling"
            && c["attempts"]
                .as_array()
                .is_some_and(|a| a.iter().all(|x| !x["outcome"].is_null()));
        if settled || Instant::now() > until {
            return Ok(c);
        }
        while let Ok(e) = sim_events.try_recv() {
            print_sim_event(&stamp(Instant::now()), &e, who);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_sim_event(at: &str, e: &SimEvent, who: &impl Fn(&str) -> String) {
    match e {
        SimEvent::CallPlaced { to, attempt, .. } => {
            println!(
                "{at}  calling {} - attempt {attempt} of {ATTEMPTS}",
                who(to)
            );
        }
        SimEvent::Status {
            status: CallStatus::Ringing,
            ..
        } => println!("{at}    ringing..."),
        SimEvent::Status {
            status: CallStatus::InProgress,
            to,
            ..
        } => println!("{at}    {} answered", who(to)),
        SimEvent::Verb {
            verb,
            text: Some(text),
            ..
        } if verb == "SAY" => println!("{at}    heard: \"{text}\""),
        SimEvent::KeysPressed { keys, .. } => println!("{at}    pressed {keys}"),
        SimEvent::CallEnded { status, .. } => println!("{at}    call ended ({status})"),
        _ => {}
    }
}

/// Prints an engine event; true when the callout reached its final status.
fn print_timeline(at: &str, t: &TimelineEvent, people: &[(&str, &str)]) -> bool {
    let name = |i: Option<usize>| i.and_then(|i| people.get(i)).map_or("someone", |p| p.0);
    match &t.event.kind {
        EventKind::Decided { decision } => {
            println!(
                "{at}    {} {}",
                name(t.event.contact),
                if *decision == crate::domain::Decision::Accepted {
                    "ACCEPTED"
                } else {
                    "rejected"
                }
            );
        }
        EventKind::AttemptEnded { outcome, .. }
            if *outcome != Outcome::Accepted && *outcome != Outcome::Rejected =>
        {
            println!("{at}    outcome: {}", outcome.as_str().replace('_', " "));
        }
        EventKind::CallScheduled { due } if t.event.attempt.unwrap_or(1) > 1 => {
            let secs = due.since(t.event.at).as_secs();
            println!(
                "{at}  next attempt for {} in {secs} s",
                name(t.event.contact)
            );
        }
        EventKind::ContactDone => println!("{at}  done with {}; moving on", name(t.event.contact)),
        EventKind::RoundStarted { round, .. } => println!("{at}  round {round}: from the top"),
        EventKind::CallHeld { .. } => {
            println!("{at}  {} was called often: waiting", name(t.event.contact))
        }
        EventKind::CalloutAccepted | EventKind::CalloutExhausted | EventKind::CalloutCancelled => {
            return true;
        }
        EventKind::CalloutFailed { reason } => {
            println!("{at}  callout failed: {reason}");
            return true;
        }
        _ => {}
    }
    false
}

fn summarize(c: &Value, took: Duration) -> bool {
    let attempts = c["attempts"].as_array().cloned().unwrap_or_default();
    println!("\nSummary");
    println!("  status: {}", c["status"].as_str().unwrap_or("?"));
    if let Some(by) = c["accepted_by"].as_object() {
        println!(
            "  accepted by: {} ({})",
            by["name"].as_str().unwrap_or("?"),
            mask(by["phone"].as_str().unwrap_or(""))
        );
    }
    println!(
        "  calls placed: {} in {:.1} s",
        attempts.len(),
        took.as_secs_f64()
    );
    for (i, contact) in c["contacts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let outcomes: Vec<String> = attempts
            .iter()
            .filter(|a| a["contact"].as_u64() == Some(i as u64))
            .map(|a| a["outcome"].as_str().unwrap_or("live").replace('_', " "))
            .collect();
        println!(
            "  {:<6} {}",
            contact["name"].as_str().unwrap_or("?"),
            outcomes.join(", ")
        );
    }
    let outcomes: Vec<(u64, &str)> = attempts
        .iter()
        .map(|a| {
            (
                a["contact"].as_u64().unwrap_or(99),
                a["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let expected = [
        (0, "no_answer"),
        (0, "no_answer"),
        (0, "no_answer"),
        (1, "rejected"),
        (2, "accepted"),
    ];
    let ok = c["status"] == "accepted" && c["accepted_by"]["contact"] == 2 && outcomes == expected;
    if ok {
        println!(
            "\nAs expected: Carol took the ticket after Alice (3 calls, no answer) and Bob (rejected)."
        );
    } else {
        eprintln!("\nUNEXPECTED: the callout did not end as the demo expects (see above).");
    }
    ok
}
