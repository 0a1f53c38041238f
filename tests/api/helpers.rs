//! `spawn_app()`: the real `Application` on port 0, against a private
//! `redis-server` (or the in-memory store) and the built-in carrier simulator
//! (sandbox), or an external simulator shared by several replicas (live mode).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ivr_gateway::app::Application;
use ivr_gateway::config::Config;
use ivr_gateway::engine::Engine;
use ivr_gateway::sim::voiceflow::SimVoiceflowHandle;
use ivr_gateway::sim::{Callees, SimHandle, SimSettings, Simulator};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Simulated seconds per real second: a 10 s pause takes 0.2 s.
pub const TIME_SCALE: f64 = 0.02;
pub const SECRET: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
pub const ADMIN_TOKEN: &str = "admin-token-for-tests-123";
pub const DISPATCHER_TOKEN: &str = "dispatcher-token-for-tests";

/// Which store an app uses.
#[derive(Debug, Clone)]
pub enum StoreKind {
    Memory,
    Redis { url: String, prefix: String },
}

pub struct Options {
    pub store: StoreKind,
    pub env: Vec<(String, String)>,
    /// Use this simulator (live mode) instead of a built-in one (sandbox).
    pub external_sim: Option<SimHandle>,
    /// PUBLIC_URL (live mode; e.g. a load balancer in front of several replicas).
    pub public_url: Option<String>,
    /// Require API keys even in the sandbox.
    pub api_keys: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            store: StoreKind::Memory,
            env: Vec::new(),
            external_sim: None,
            public_url: None,
            api_keys: false,
        }
    }
}

impl Options {
    pub fn with_store(store: StoreKind) -> Self {
        Self {
            store,
            ..Self::default()
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub engine: Engine,
    pub sim: SimHandle,
    pub voiceflow: Option<SimVoiceflowHandle>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

fn env_map(opts: &Options) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("SIM_TIME_SCALE", &TIME_SCALE.to_string()),
        ("TIMER_POLL_MS", "20"),
        ("COLLECT_GRACE_MS", "300"),
        ("SHUTDOWN_GRACE_MS", "500"),
        ("GATEWAY_SECRET", SECRET),
        ("RUST_LOG", "warn"),
        ("ROUTEE_CALLS_PER_SECOND", "200"),
        // Tests call the same few simulated numbers many times; the per-person
        // limits are on only where a test turns them on.
        ("PERSON_CALLS_PER_15_MIN", "0"),
        ("PERSON_CALLS_PER_HOUR", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if let StoreKind::Redis { url, prefix } = &opts.store {
        env.insert("REDIS_URL".into(), url.clone());
        env.insert("REDIS_PREFIX".into(), prefix.clone());
    }
    if opts.api_keys || opts.external_sim.is_some() {
        env.insert(
            "API_KEYS".into(),
            format!("admin:{ADMIN_TOKEN},dispatcher:{DISPATCHER_TOKEN}"),
        );
    }
    if let Some(sim) = &opts.external_sim {
        let (id, secret) = sim.credentials();
        env.insert("ROUTEE_APP_ID".into(), id);
        env.insert("ROUTEE_APP_SECRET".into(), secret);
        env.insert("ROUTEE_API_URL".into(), sim.base_url().to_string());
        env.insert("ROUTEE_AUTH_URL".into(), sim.auth_url().to_string());
        env.insert("ROUTEE_FROM".into(), "+306900000000".into());
        env.insert("ALLOWED_DESTINATIONS".into(), "*".into());
        env.insert("ALLOW_INSECURE_PUBLIC_URL".into(), "true".into());
        env.insert("ALLOW_PRIVATE_URLS".into(), "true".into());
    }
    if let Some(url) = &opts.public_url {
        env.insert("PUBLIC_URL".into(), url.clone());
    }
    for (k, v) in &opts.env {
        env.insert(k.clone(), v.clone());
    }
    env
}

pub async fn spawn_app(opts: Options) -> TestApp {
    let config = Config::from_map(&env_map(&opts)).unwrap_or_else(|e| panic!("test config: {e}"));
    let app = Application::build(config)
        .await
        .expect("application builds");
    let base = format!("http://{}", app.local_addr());
    let engine = app.engine().clone();
    let sim = match (&opts.external_sim, app.simulator()) {
        (Some(s), _) | (None, Some(s)) => s.clone(),
        (None, None) => unreachable!("sandbox apps have a simulator"),
    };
    let voiceflow = app.simulated_voiceflow().cloned();
    let shutdown = app.shutdown_token();
    let task = tokio::spawn(app.run());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let test_app = TestApp {
        base,
        http,
        engine,
        sim,
        voiceflow,
        shutdown,
        task: Some(task),
    };
    test_app.wait_ready().await;
    test_app
}

/// Every call the simulator placed went by Routee's rules (no `PLAY` of
/// something that is not a reachable `.wav`...).
pub fn assert_no_protocol_errors(sim: &SimHandle) {
    let errors: Vec<String> = sim
        .calls()
        .into_iter()
        .flat_map(|c| c.protocol_errors)
        .collect();
    assert!(errors.is_empty(), "protocol errors: {errors:?}");
}

/// A standalone simulator for several replicas.
pub async fn spawn_sim(callees: Callees) -> SimHandle {
    let mut settings = SimSettings::new(TIME_SCALE);
    settings.callees = callees;
    Simulator::start(settings, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("simulator starts")
}

/// A fast policy for tests: 1 s between attempts, short rings.
pub fn fast_policy() -> Value {
    json!({"attempts_per_contact": 3, "retry_delay_s": 1, "input_timeout_s": 10, "reprompts": 1, "ring_timeout_s": 10})
}

pub fn phone(n: u32) -> String {
    format!("+3069000000{n:02}")
}

/// A callout body for the ticket template with `n` contacts (phones 1..=n).
pub fn ticket_callout(n: u32) -> Value {
    let contacts: Vec<Value> = (1..=n)
        .map(|i| json!({"name": format!("Person {i}"), "phone": phone(i)}))
        .collect();
    json!({
        "name": "Ticket 4711",
        "dialplan": "ticket-escalation",
        "variables": {"ticket": "Server room 2 is flooding"},
        "contacts": contacts,
        "policy": fast_policy(),
    })
}

impl TestApp {
    async fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "app never became ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POST /v1/callouts; returns (status, body).
    pub async fn post_callout(&self, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url("/v1/callouts"))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Creates a callout, expecting 201; returns its id.
    pub async fn create_callout(&self, body: &Value) -> String {
        let (status, v) = self.post_callout(body).await;
        assert_eq!(status, 201, "create failed: {v}");
        v["id"].as_str().expect("id").to_owned()
    }

    pub async fn get_callout(&self, id: &str) -> Value {
        let r = self
            .http
            .get(self.url(&format!("/v1/callouts/{id}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200);
        r.json().await.expect("json")
    }

    /// Polls until the callout is final and every call has ended (the accepting
    /// call's goodbye included).
    pub async fn wait_settled(&self, id: &str, timeout: Duration) -> Value {
        self.wait_until(id, timeout, |c| {
            c["status"] != "calling"
                && c["attempts"]
                    .as_array()
                    .is_some_and(|a| a.iter().all(|x| !x["outcome"].is_null()))
        })
        .await
    }

    pub async fn wait_until(
        &self,
        id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let c = self.get_callout(id).await;
            if done(&c) {
                return c;
            }
            assert!(
                started.elapsed() < timeout,
                "timed out; callout is {}",
                serde_json::to_string_pretty(&c).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts a graceful shutdown (what SIGTERM does) without waiting for it.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// The gateway sent the carrier nothing Routee would refuse or fail to play.
    pub fn assert_no_protocol_errors(&self) {
        assert_no_protocol_errors(&self.sim);
    }

    /// Graceful stop (as on SIGTERM).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// (contact index, attempt number, outcome) of each attempt.
pub fn attempts(callout: &Value) -> Vec<(u64, u64, String)> {
    callout["attempts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x["contact"].as_u64().unwrap_or(99),
                        x["attempt"].as_u64().unwrap_or(0),
                        x["outcome"].as_str().unwrap_or("-").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The numbers the simulator was asked to call, in order.
pub fn numbers_called(sim: &SimHandle) -> Vec<String> {
    let mut calls = sim.calls();
    calls.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    calls.into_iter().map(|c| c.to).collect()
}
