//! The real binary in the sandbox (`ivr-gateway serve`, as `tests/cli.rs`
//! starts it), and a faked Voiceflow (wiremock) for registering assistants.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BIN: &str = env!("CARGO_BIN_EXE_ivr-gateway");
pub const ADMIN_KEY: &str = "console-admin-key-0123456789";
pub const DISPATCHER_KEY: &str = "console-dispatcher-key-0123456789";

/// A running gateway; killed when dropped.
pub struct Gateway {
    pub base: String,
    child: Child,
    http: reqwest::Client,
    key: Option<&'static str>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    /// `serve` in the sandbox with `env`; simulated time ten times faster.
    pub fn start(env: &[(&str, String)], key: Option<&'static str>) -> Result<Gateway> {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars() {
            let inherited = ["ROUTEE_", "VOICEFLOW_", "REDIS_", "SIM_"]
                .iter()
                .any(|p| k.starts_with(p))
                || ["API_KEYS", "GATEWAY_SECRET", "PUBLIC_URL", "LISTEN_ADDR"]
                    .contains(&k.as_str());
            if inherited {
                cmd.env_remove(k);
            }
        }
        cmd.arg("serve")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("SIM_TIME_SCALE", "0.1")
            .env("TIMER_POLL_MS", "50")
            .env("COLLECT_GRACE_MS", "300")
            .env("ROUTEE_CALLS_PER_SECOND", "50")
            .env("PERSON_CALLS_PER_15_MIN", "0")
            .env("PERSON_CALLS_PER_HOUR", "0")
            .env("RUST_LOG", "warn")
            .env("LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().context("starting the gateway")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let base = rx
            .iter()
            .find_map(|l| Some(l.split("listening on ").nth(1)?.trim().to_owned()))
            .ok_or_else(|| anyhow!("the gateway printed no address"))?;
        Ok(Gateway {
            base,
            child,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            key,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An API call with this gateway's admin key (if it has keys).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let mut req = self.http.request(method, self.url(path));
        if let Some(k) = self.key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

/// A Voiceflow that accepts any key: the probe and the export that registration
/// reads, and a conversation (a greeting and two buttons) for the tools.
pub async fn fake_voiceflow() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/state/user/[^/]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v2/versions/[^/]+/export$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "_version": "1.2",
            "project": {"_id": "66aa00000000000000000001", "name": "Escalation bot"},
            "version": {"_id": "66bb00000000000000000002", "name": "Published"},
            "diagrams": {},
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/state/user/[^/]+/interact$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"type": "speak", "payload": {"type": "message", "message": "Hello Alice. Server room 2 is flooding."}},
            {"type": "choice", "payload": {"buttons": [
                {"name": "Accept", "request": {"type": "path-accept", "payload": {"label": "Accept"}}},
                {"name": "Reject", "request": {"type": "path-reject", "payload": {"label": "Reject"}}}
            ]}}
        ])))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path_regex(r"^/state/user/[^/]+/variables$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path_regex(r"^/state/user/[^/]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    server
}
