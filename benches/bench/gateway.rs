//! The gateway under test, in process: the real `Application` in live mode
//! against the fake upstreams and the private Redis, plus a Voiceflow assistant
//! registered straight into the store and calls brought to life cheaply.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use ivr_gateway::app::Application;
use ivr_gateway::config::Config;
use ivr_gateway::domain::{
    Assistant, AssistantId, AssistantSettings, CallId, CallState, CalloutId, Timestamp,
};
use ivr_gateway::engine::Engine;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::fakes::{FakeRoutee, FakeVoiceflow};

pub const SECRET: &str = "7d865e959b2466918c9863afca942d0fb89d7c9ac0c99bafc3749504ded97730";
pub const TOKEN: &str = "admin-token-for-the-benchmark";

pub struct Gateway {
    pub base: String,
    pub engine: Engine,
    pub assistant: AssistantId,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A live call: the callout, the call, and the next COLLECT turn.
#[derive(Debug, Clone, Copy)]
pub struct LiveCall {
    pub callout: CalloutId,
    pub call: CallId,
    pub turn: u32,
}

/// A call that has been placed (`Queued`) and not called back yet.
#[derive(Debug, Clone, Copy)]
pub struct PlacedCall {
    pub callout: CalloutId,
    pub call: CallId,
}

/// A Greek mobile number (valid for libphonenumber) for call `n`.
pub fn phone(n: usize) -> String {
    format!("+3069{:08}", n % 100_000_000)
}

impl Gateway {
    pub async fn start(
        redis_url: &str,
        voiceflow: &FakeVoiceflow,
        routee: &FakeRoutee,
    ) -> anyhow::Result<Gateway> {
        let port = crate::free_port()?;
        let env: HashMap<String, String> = [
            ("LISTEN_ADDR", format!("127.0.0.1:{port}")),
            ("PUBLIC_URL", format!("http://127.0.0.1:{port}")),
            ("REDIS_URL", redis_url.to_owned()),
            ("REDIS_PREFIX", "bench".to_owned()),
            ("ROUTEE_APP_ID", "bench".to_owned()),
            ("ROUTEE_APP_SECRET", "bench-secret".to_owned()),
            ("ROUTEE_API_URL", routee.url.clone()),
            ("ROUTEE_AUTH_URL", format!("{}/oauth/token", routee.url)),
            ("ROUTEE_FROM", "+306900000000".to_owned()),
            ("ALLOWED_DESTINATIONS", "*".to_owned()),
            ("ALLOW_INSECURE_PUBLIC_URL", "true".to_owned()),
            ("ROUTEE_CALLS_PER_SECOND", "1000".to_owned()),
            // 10,000 callouts call the same few simulated numbers: no per-person limits.
            ("PERSON_CALLS_PER_15_MIN", "0".to_owned()),
            ("PERSON_CALLS_PER_HOUR", "0".to_owned()),
            ("VOICEFLOW_RUNTIME_URL", voiceflow.url.clone()),
            ("VOICEFLOW_API_URL", voiceflow.url.clone()),
            ("GATEWAY_SECRET", SECRET.to_owned()),
            ("API_KEYS", format!("admin:{TOKEN}")),
            ("ALLOW_PRIVATE_URLS", "true".to_owned()),
            ("MAX_CONTACTS", "100".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let config = Config::from_map(&env).map_err(|e| anyhow::anyhow!("config: {e}"))?;
        let app = Application::build(config).await?;
        let base = format!("http://{}", app.local_addr());
        let engine = app.engine().clone();
        let shutdown = app.shutdown_token();
        let task = tokio::spawn(app.run());
        let assistant = register_assistant(&engine).await?;
        let gw = Gateway {
            base,
            engine,
            assistant,
            shutdown,
            task: Some(task),
        };
        gw.wait_ready().await?;
        Ok(gw)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(15),
                "the gateway never became ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Creates `n` one-contact callouts (numbers from `first`) through the
    /// dispatcher API, driven by the benchmark assistant or by the ticket
    /// template, and waits until each call is placed with the fake carrier.
    pub async fn place_calls(
        &self,
        http: &reqwest::Client,
        first: usize,
        n: usize,
        assistant: bool,
    ) -> anyhow::Result<Vec<PlacedCall>> {
        let ids: Vec<CalloutId> = crate::run_bounded(first..first + n, 32, |i| {
            let (assistant, dialplan) = if assistant {
                (Some(self.assistant.to_string()), None)
            } else {
                (None, Some("ticket-escalation"))
            };
            let body = json!({
                "name": format!("bench {i}"),
                "assistant": assistant,
                "dialplan": dialplan,
                "variables": {"ticket": "Server room 2 is flooding"},
                "contacts": [{"name": format!("Callee {i}"), "phone": phone(i)}],
                // A call that stays up: long input timeout, many reprompts, one
                // attempt and a long retry delay so nothing else happens to it.
                "policy": {"attempts_per_contact": 1, "retry_delay_s": 86400, "input_timeout_s": 60,
                           "reprompts": 5, "ring_timeout_s": 60, "max_call_s": 3600},
            });
            let req = http
                .post(format!("{}/v1/callouts", self.base))
                .bearer_auth(TOKEN)
                .json(&body);
            async move {
                let r = req.send().await?;
                anyhow::ensure!(r.status() == 201, "create callout: {}", r.status());
                let v: Value = r.json().await?;
                v["id"]
                    .as_str()
                    .context("no id")?
                    .parse::<CalloutId>()
                    .map_err(|e| anyhow::anyhow!("callout id: {e:?}"))
            }
        })
        .await?;
        let started = Instant::now();
        let mut placed = Vec::with_capacity(ids.len());
        for id in ids {
            loop {
                let found =
                    self.engine.callout(id).await?.and_then(|(c, _)| {
                        c.attempts.first().map(|a| (a.call_id, a.state.clone()))
                    });
                if let Some((call, CallState::Queued)) = found {
                    placed.push(PlacedCall { callout: id, call });
                    break;
                }
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(120),
                    "callout {id} was never placed: {found:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(placed)
    }

    /// Posts one status callback for a call; true when the gateway answered 200.
    pub async fn post_status(
        &self,
        http: &reqwest::Client,
        call: PlacedCall,
        status: &str,
    ) -> anyhow::Result<bool> {
        let r = http
            .post(self.engine.status_url(call.callout, call.call))
            .json(&status_body(call, status))
            .send()
            .await?;
        Ok(r.status().is_success())
    }

    /// Places `n` calls and answers them (an `InProgress` callback each): live
    /// calls whose first COLLECT is turn 0.
    pub async fn live_calls(
        &self,
        http: &reqwest::Client,
        first: usize,
        n: usize,
    ) -> anyhow::Result<Vec<LiveCall>> {
        let placed = self.place_calls(http, first, n, true).await?;
        crate::run_bounded(placed, 32, |p| async move {
            anyhow::ensure!(
                self.post_status(http, p, "Ringing").await?
                    && self.post_status(http, p, "InProgress").await?,
                "answering call {} failed",
                p.call
            );
            Ok(LiveCall {
                callout: p.callout,
                call: p.call,
                turn: 0,
            })
        })
        .await
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
    }
}

/// A Routee status callback body (reference §5.1).
pub fn status_body(call: PlacedCall, status: &str) -> Value {
    json!({
        "messageId": format!("m-{}", call.call),
        "conversationTrackingId": format!("t-{}", call.call),
        "to": "+306900000001",
        "from": "+306900000000",
        "status": {"name": status, "updatedDate": "2026-01-01T00:00:00.000Z"},
    })
}

/// A Voiceflow assistant in the store, as `POST /v1/assistants` would leave it
/// (without asking the fake Voiceflow to check the key).
async fn register_assistant(engine: &Engine) -> anyhow::Result<AssistantId> {
    let id = AssistantId::new();
    let now = Timestamp::now();
    let key = "VF.DM.bench.0123456789";
    let assistant = Assistant {
        id,
        name: "bench".into(),
        version: "production".into(),
        project_id: None,
        project_name: None,
        version_id: None,
        created_at: now,
        updated_at: now,
        settings: AssistantSettings::default(),
        encrypted_key: engine.signer.encrypt_key(id, key),
        key_hint: key[key.len() - 4..].to_owned(),
    };
    engine.store.save_assistant(&assistant).await?;
    Ok(id)
}
