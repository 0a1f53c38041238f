//! What the dispatchers do during a run: callouts with their own phone numbers
//! (so the simulator's per-number records are per-contact records), random callee
//! scripts, template- and assistant-driven conversations, and some cancellations.
//! A dispatcher's client retries what fails, the way an operator's tooling would,
//! and never creates a callout twice on purpose: after an answer it did not get,
//! it looks the callout up by its unique name before posting again.

use std::time::{Duration, Instant};

use ivr_gateway::sim::{Behaviour, CalleeScript, SimHandle};
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

/// The accept key of every script in the run (the template's key 1, the
/// simulated assistant's first button, the fallback keypad's 1).
pub const ACCEPT_KEY: &str = "1";

#[derive(Debug, Clone)]
pub struct ContactPlan {
    pub phone: String,
    /// A label for the summary, e.g. `accepts_after_2`.
    pub kind: String,
    pub script: CalleeScript,
}

#[derive(Debug, Clone)]
pub struct CalloutPlan {
    pub name: String,
    pub assistant: bool,
    pub contacts: Vec<ContactPlan>,
    pub attempts_per_contact: u32,
    pub retry_delay_s: u32,
    /// When to create it, from the start of the run.
    pub start_at: Duration,
    /// When to cancel it, after its creation.
    pub cancel_after: Option<Duration>,
    /// `policy.needed` (people to accept) and `policy.parallel` (calls at once).
    pub needed: u32,
    pub parallel: u32,
}

/// The name the sandbox-style simulated assistant is registered under.
pub const ASSISTANT: &str = "fault-suite-assistant";

/// A phone number unique to (callout, contact): `+30 691 CCCCC KK`.
fn phone(callout: usize, contact: usize) -> String {
    format!("+30691{callout:05}{contact:02}")
}

/// A random callee. Accepting callees press 1 at up to three prompts: a person
/// asked "please press your choice again" (the store was away) or put on hold
/// (Voiceflow was slow) presses again.
fn callee(rng: &mut StdRng, attempts: u32) -> (String, CalleeScript) {
    let persistent_accept = || Behaviour::press_on_prompt(["1", "1", "1"]);
    let noise = |rng: &mut StdRng| match rng.random_range(0..4) {
        0 => Behaviour::NeverAnswers,
        1 => Behaviour::Busy,
        2 => Behaviour::silent(),
        _ => Behaviour::Rejects,
    };
    match rng.random_range(0..12) {
        0 => ("never_answers".into(), Behaviour::NeverAnswers.into()),
        1 => ("busy".into(), Behaviour::Busy.into()),
        2 => ("fails".into(), Behaviour::Fails.into()),
        3 => ("silent".into(), Behaviour::silent().into()),
        4 => ("declines".into(), Behaviour::Rejects.into()),
        5 => (
            "presses_reject".into(),
            Behaviour::press_on_prompt(["2"]).into(),
        ),
        6 => {
            // Hangs up somewhere in the intro or the options.
            let after = rng.random_range(2.0..9.0);
            ("hangs_up".into(), Behaviour::hang_up(after).into())
        }
        7 => (
            "invalid_then_accepts".into(),
            Behaviour::press_on_prompt(["9", "1", "1"]).into(),
        ),
        8 => {
            // Presses whenever, not on a prompt: may land in a pause and only
            // reach the gateway with the end-of-call post.
            let after = rng.random_range(4.0..14.0);
            (
                "presses_1_late".into(),
                Behaviour::press_after("1", after).into(),
            )
        }
        9 | 10 => {
            let k = rng.random_range(2..=3);
            let mut script = CalleeScript::always(noise(rng));
            for _ in 2..k {
                script = script.then(noise(rng));
            }
            let label = if k > attempts {
                format!("accepts_after_{k}_too_late")
            } else {
                format!("accepts_after_{k}")
            };
            (label, script.then(persistent_accept()))
        }
        _ => ("accepts".into(), persistent_accept().into()),
    }
}

pub fn plan(rng: &mut StdRng, n: usize, window: Duration) -> Vec<CalloutPlan> {
    let create_span = window.mul_f64(0.7);
    let mut plans: Vec<CalloutPlan> = (0..n)
        .map(|i| {
            let attempts = rng.random_range(1..=3);
            let contacts: Vec<ContactPlan> = (0..rng.random_range(1..=3))
                .map(|k| {
                    let (kind, script) = callee(rng, attempts);
                    ContactPlan {
                        phone: phone(i, k),
                        kind,
                        script,
                    }
                })
                .collect();
            let n_contacts = contacts.len();
            CalloutPlan {
                name: format!("fault suite callout {i}"),
                assistant: rng.random_bool(0.5),
                contacts,
                attempts_per_contact: attempts,
                retry_delay_s: rng.random_range(1..=2),
                start_at: create_span.mul_f64(rng.random_range(0.0..1.0)),
                cancel_after: rng
                    .random_bool(0.15)
                    .then(|| Duration::from_millis(rng.random_range(500..10_000))),
                // Waves: a third of the callouts call up to 3 at once, and a
                // third of those with 2+ contacts need 2 people.
                parallel: if rng.random_bool(0.33) {
                    rng.random_range(2..=3)
                } else {
                    1
                },
                needed: if n_contacts >= 2 && rng.random_bool(0.33) {
                    2
                } else {
                    1
                },
            }
        })
        .collect();
    plans.sort_by_key(|p| p.start_at);
    plans
}

impl CalloutPlan {
    pub fn body(&self) -> Value {
        let contacts: Vec<Value> = self
            .contacts
            .iter()
            .enumerate()
            .map(|(k, c)| json!({"name": format!("Person {k}"), "phone": c.phone}))
            .collect();
        let mut body = json!({
            "name": self.name,
            "variables": {"ticket": "Server room 2 is flooding."},
            "contacts": contacts,
            // Real seconds on the gateway's side; the simulator scales the callee's.
            "policy": {
                "attempts_per_contact": self.attempts_per_contact,
                "retry_delay_s": self.retry_delay_s,
                "input_timeout_s": 5,
                "reprompts": 1,
                "ring_timeout_s": 10,
                "max_call_s": 30,
                "needed": self.needed,
                "parallel": self.parallel,
            },
        });
        if self.assistant {
            body["assistant"] = json!(ASSISTANT);
        } else {
            body["dialplan"] = json!("ticket-escalation");
        }
        body
    }
}

/// The dispatcher API through the load balancer.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

/// An answer we did not get: the request may or may not have been applied.
fn maybe_applied(resp: &Result<reqwest::Response, reqwest::Error>) -> bool {
    match resp {
        Err(e) => !e.is_connect(),
        Ok(r) => r.status().is_server_error(),
    }
}

impl Api {
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
        }
    }

    async fn get_json(&self, path: &str) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    /// One callout with its timeline, retried until the gateway answers.
    pub async fn callout(&self, id: &str) -> Value {
        loop {
            if let Some(v) = self.get_json(&format!("/v1/callouts/{id}")).await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// One callout, or `None` if the gateway did not answer this time.
    pub async fn try_callout(&self, id: &str) -> Option<Value> {
        self.get_json(&format!("/v1/callouts/{id}")).await
    }

    /// Every callout in the store (newest first), retried until complete.
    pub async fn all_callouts(&self) -> Vec<Value> {
        'again: loop {
            let mut all = Vec::new();
            let mut before = String::new();
            loop {
                let Some(page) = self
                    .get_json(&format!("/v1/callouts?limit=200&before={before}"))
                    .await
                else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue 'again;
                };
                all.extend(page["callouts"].as_array().cloned().unwrap_or_default());
                match page["next"].as_str() {
                    Some(next) => before = next.to_owned(),
                    None => return all,
                }
            }
        }
    }

    async fn find_by_name(&self, name: &str) -> Option<String> {
        self.all_callouts()
            .await
            .into_iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["id"].as_str().map(str::to_owned))
    }

    /// Creates a callout, retrying failures; returns its id and how many tries
    /// it took.
    pub async fn create(&self, body: &Value) -> (String, u32) {
        let name = body["name"].as_str().unwrap_or_default().to_owned();
        let mut tries = 0;
        loop {
            tries += 1;
            let resp = self
                .http
                .post(format!("{}/v1/callouts", self.base))
                .bearer_auth(&self.token)
                .json(body)
                .send()
                .await;
            let unsure = maybe_applied(&resp);
            if let Ok(r) = resp {
                let status = r.status();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if status.as_u16() == 201 {
                    return (v["id"].as_str().expect("id").to_owned(), tries);
                }
                assert!(
                    status.is_server_error(),
                    "creating {name} was refused: {status} {v}"
                );
            }
            if unsure {
                // A replica may have stored it before dying or timing out: give a
                // write stuck behind a frozen Redis time to land, then look.
                tokio::time::sleep(Duration::from_secs(4)).await;
                if let Some(id) = self.find_by_name(&name).await {
                    return (id, tries);
                }
            } else {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }

    /// Cancels; true once the gateway answered 200 (cancelled) or 409 (already
    /// final). Retries server errors for up to `patience`.
    pub async fn cancel(&self, id: &str, patience: Duration) -> Option<u16> {
        let started = Instant::now();
        while started.elapsed() < patience {
            let resp = self
                .http
                .post(format!("{}/v1/callouts/{id}/cancel", self.base))
                .bearer_auth(&self.token)
                .send()
                .await;
            if let Ok(r) = &resp
                && matches!(r.status().as_u16(), 200 | 409)
            {
                return Some(r.status().as_u16());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        None
    }
}

/// What the dispatchers did.
#[derive(Debug, Default, Clone)]
pub struct Dispatched {
    /// (plan index, callout id)
    pub created: Vec<(usize, String)>,
    /// Create requests beyond the first, over all callouts.
    pub create_retries: u32,
    pub cancels_requested: u32,
    /// Cancels answered 200 (409 means it had already ended).
    pub cancels_applied: u32,
}

/// Gives every planned number its script.
pub fn script_callees(sim: &SimHandle, plans: &[CalloutPlan]) {
    for p in plans {
        for c in &p.contacts {
            sim.set_callee(&c.phone, c.script.clone());
        }
    }
}

/// Creates each callout at its time (and cancels the chosen ones), from `t0`.
pub async fn run(api: Api, plans: Vec<CalloutPlan>, t0: Instant) -> Dispatched {
    let mut tasks = Vec::new();
    for (i, p) in plans.into_iter().enumerate() {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until((t0 + p.start_at).into()).await;
            let (id, tries) = api.create(&p.body()).await;
            let mut cancel = None;
            if let Some(after) = p.cancel_after {
                tokio::time::sleep(after).await;
                cancel = Some(api.cancel(&id, Duration::from_secs(60)).await);
            }
            (i, id, tries, cancel)
        }));
    }
    let mut out = Dispatched::default();
    for t in tasks {
        let (i, id, tries, cancel) = t.await.expect("dispatcher task");
        out.created.push((i, id));
        out.create_retries += tries - 1;
        if let Some(c) = cancel {
            out.cancels_requested += 1;
            if c == Some(200) {
                out.cancels_applied += 1;
            }
        }
    }
    out
}
