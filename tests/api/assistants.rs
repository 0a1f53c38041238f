//! The assistants registry and the conversation tools: registration checked
//! against Voiceflow (the simulated assistant, or wiremock for answers the
//! simulator cannot give), keys that never leak, rotation, deletion rules,
//! roles, the startup `default` assistant, and each conversation tool with the
//! Routee verbs a call would get.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ivr_gateway::app::Application;
use ivr_gateway::assistants::Assistants;
use ivr_gateway::config::{Config, Secret};
use ivr_gateway::domain::{Assistant, AssistantId, AssistantSettings, Conversation, Timestamp};
use ivr_gateway::security::Signer;
use ivr_gateway::sim::Behaviour;
use ivr_gateway::sim::voiceflow::{SimVoiceflow, SimVoiceflowHandle, SimVoiceflowSettings};
use ivr_gateway::store::{MemoryStore, RedisStore, Replaced, Store, ToolSession};
use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    ADMIN_TOKEN, DISPATCHER_TOKEN, Options, SECRET, StoreKind, TestApp, phone, spawn_app,
};
use crate::redis_server::RedisServer;

const LONG: Duration = Duration::from_secs(40);
const SIM_KEY: &str = "VF.DM.5f1e0c7a9b3d2e4f60718293.SimulatedKeyForRegistration9a7Q";

// ----- helpers ---------------------------------------------------------------

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = app.http.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn admin(app: &TestApp, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    send(app, method, path, Some(ADMIN_TOKEN), body).await
}

/// Registers through the API, expecting 201; returns the answer.
async fn register(app: &TestApp, body: Value) -> Value {
    let (status, v) = admin(app, Method::POST, "/v1/assistants", Some(&body)).await;
    assert_eq!(status, 201, "registration failed: {v}");
    v
}

async fn names(app: &TestApp) -> Vec<String> {
    let (status, v) = admin(app, Method::GET, "/v1/assistants", None).await;
    assert_eq!(status, 200, "{v}");
    v["assistants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The `details[].field` of an error answer.
fn fields(v: &Value) -> Vec<String> {
    v["error"]["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|e| e["field"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn detail(v: &Value, field: &str) -> String {
    v["error"]["details"]
        .as_array()
        .and_then(|d| d.iter().find(|e| e["field"] == field))
        .and_then(|e| e["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn session_path(assistant: &str, session: &str, tool: &str) -> String {
    format!("/v1/assistants/{assistant}/sessions/{session}/{tool}")
}

fn verbs(report: &Value) -> Vec<Value> {
    report["dialplan"]["verbs"].as_array().unwrap().clone()
}

fn kinds(report: &Value) -> Vec<String> {
    report["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// A standalone simulated Voiceflow, for apps that should share one.
async fn standalone_voiceflow() -> SimVoiceflowHandle {
    SimVoiceflow::start(SimVoiceflowSettings::new(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn pointed_at(opts: Options, base: &str) -> Options {
    opts.env("VOICEFLOW_RUNTIME_URL", base)
        .env("VOICEFLOW_API_URL", base)
}

fn redis_opts(server: &RedisServer) -> Options {
    Options::with_store(StoreKind::Redis {
        url: server.url(),
        prefix: "t".into(),
    })
}

/// Wiremock answering the probe and the export for `key` like Voiceflow does.
async fn mock_voiceflow_accepting(server: &MockServer, key: &str) {
    Mock::given(method("GET"))
        .and(path_regex(r"^/state/user/[^/]+$"))
        .and(header("authorization", key))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v2/versions/[^/]+/export$"))
        .and(header("authorization", key))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "_version": "1.2",
            "project": {"_id": "66aa00000000000000000001", "name": "Escalation bot"},
            "version": {"_id": "66bb00000000000000000002", "name": "Published"},
            "diagrams": {},
        })))
        .mount(server)
        .await;
}

/// A tracing subscriber writing every event (TRACE and up) into a buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The forms a key could leak in: itself, its secret part, and its base64.
fn leak_forms(key: &str) -> Vec<String> {
    let secret = key.rsplit('.').next().unwrap().to_owned();
    let mut forms = vec![key.to_owned(), secret];
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        forms.push(engine.encode(key));
    }
    forms
}

fn assert_no_leak(haystack: &[u8], key: &str, what: &str) {
    let text = String::from_utf8_lossy(haystack);
    for form in leak_forms(key) {
        assert!(!text.contains(&form), "the key leaked into {what}: {form}");
    }
}

/// Every key and value in Redis, raw, whatever its type.
async fn redis_dump(url: &str) -> Vec<(String, Vec<u8>)> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(100)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut out = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let parts: Vec<Vec<u8>> = match kind.as_str() {
            "string" => redis::cmd("GET")
                .arg(&key)
                .query_async::<Option<Vec<u8>>>(&mut conn)
                .await
                .unwrap()
                .into_iter()
                .collect(),
            "hash" => redis::cmd("HGETALL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "list" => redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await
                .unwrap(),
            "set" => redis::cmd("SMEMBERS")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap(),
            other => panic!("unexpected Redis type {other} for {key}"),
        };
        out.push((key.clone(), key.into_bytes()));
        for p in parts {
            out.push((kind.clone(), p));
        }
    }
    out
}

// ----- registration ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_key_registers_with_voiceflows_names_and_the_answer_never_holds_the_key() {
    let app = spawn_app(Options::default()).await;
    let vf = app.voiceflow.clone().unwrap();
    let r = app
        .http
        .post(app.url("/v1/assistants"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({
            "api_key": SIM_KEY, "version": "production", "language": "el-GR",
            "voice": "Polly.Joanna", "keypad": {"7": "accept"}, "save_transcripts": true
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let text = r.text().await.unwrap();
    assert_no_leak(text.as_bytes(), SIM_KEY, "the registration answer");
    let a: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(a["name"], vf.project_name(), "named after the project");
    assert_eq!(a["project_id"], vf.project_id());
    assert_eq!(a["version_id"], vf.version_id());
    assert_eq!(a["version"], "production");
    assert_eq!(a["key_hint"], "9a7Q");
    assert_eq!(a["settings"]["language"], "el-GR");
    assert_eq!(a["settings"]["voice"], "female");
    assert_eq!(a["settings"]["keypad"]["7"], "accept");
    assert_eq!(a["settings"]["save_transcripts"], true);
    assert!(a.get("api_key").is_none() && a.get("encrypted_key").is_none());
    assert!(a["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        location,
        format!("/v1/assistants/{}", a["id"].as_str().unwrap())
    );

    let (status, by_name) = admin(
        &app,
        Method::GET,
        &format!("/v1/assistants/{}", vf.project_name().replace(' ', "%20")),
        None,
    )
    .await;
    assert_eq!((status, &by_name["id"]), (200, &a["id"]));
    let (_, list) = admin(&app, Method::GET, "/v1/assistants", None).await;
    assert_no_leak(list.to_string().as_bytes(), SIM_KEY, "the list");
    assert_eq!(
        names(&app).await,
        ["sandbox".to_owned(), vf.project_name()],
        "oldest first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_voiceflow_refuses_or_a_malformed_one_stores_nothing() {
    let server = MockServer::start().await;
    let refused = "VF.DM.66cc00000000000000000003.RefusedKeySecret77";
    Mock::given(method("GET"))
        .and(path_regex(r"^/state/user/[^/]+$"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "code": 401, "status": "Unauthorized", "data": "Auth Key Required"
        })))
        .mount(&server)
        .await;
    let app = spawn_app(pointed_at(Options::default(), &server.uri())).await;

    let (status, v) = admin(
        &app,
        Method::POST,
        "/v1/assistants",
        Some(&json!({"name": "bot", "api_key": refused, "version": "production"})),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(fields(&v), ["api_key"]);
    assert_eq!(detail(&v, "api_key"), "Voiceflow refused the key");
    assert_no_leak(v.to_string().as_bytes(), refused, "the error");

    // Not a Dialog Manager key at all: refused before Voiceflow is asked.
    let asked = server.received_requests().await.unwrap().len();
    let (status, v) = admin(
        &app,
        Method::POST,
        "/v1/assistants",
        Some(&json!({"api_key": "sk-live-abcdef123456", "version": "production"})),
    )
    .await;
    assert_eq!((status, fields(&v)), (422, vec!["api_key".to_owned()]));
    assert!(!v.to_string().contains("sk-live-abcdef123456"));
    assert_eq!(server.received_requests().await.unwrap().len(), asked);
    assert!(names(&app).await.is_empty(), "nothing stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_or_unpublished_version_is_named_and_nothing_is_stored() {
    let app = spawn_app(Options::default()).await;
    let (status, v) = admin(
        &app,
        Method::POST,
        "/v1/assistants",
        Some(&json!({"name": "bot", "api_key": SIM_KEY, "version": "0123456789abcdef01234567"})),
    )
    .await;
    assert_eq!(
        (status, fields(&v)),
        (422, vec!["version".to_owned()]),
        "{v}"
    );
    assert!(
        detail(&v, "version").contains("Cannot resolve version"),
        "Voiceflow's reason is given: {v}"
    );
    let (status, v) = admin(
        &app,
        Method::POST,
        "/v1/assistants",
        Some(&json!({"name": "bot", "api_key": SIM_KEY, "version": "latest"})),
    )
    .await;
    assert_eq!((status, fields(&v)), (422, vec!["version".to_owned()]));
    assert_eq!(names(&app).await, ["sandbox"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voiceflow_down_slow_or_failing_is_a_gateway_error_and_stores_nothing() {
    let server = MockServer::start().await;
    let key = "VF.DM.66dd00000000000000000004.OutageKeySecret11";
    Mock::given(method("GET"))
        .and(path_regex(r"^/state/user/[^/]+$"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream down"))
        .up_to_n_times(2) // the probe is retried once
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/state/user/[^/]+$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let app =
        spawn_app(pointed_at(Options::default(), &server.uri()).env("UPSTREAM_TIMEOUT_MS", "600"))
            .await;
    let body = json!({"name": "bot", "api_key": key, "version": "production"});
    let (status, v) = admin(&app, Method::POST, "/v1/assistants", Some(&body)).await;
    assert_error(status, &v, 502, "voiceflow_error");
    let (status, v) = admin(&app, Method::POST, "/v1/assistants", Some(&body)).await;
    assert_error(status, &v, 504, "voiceflow_timeout");
    assert!(names(&app).await.is_empty());

    // Nothing listening at all.
    let down = spawn_app(pointed_at(Options::default(), "http://127.0.0.1:9")).await;
    let (status, v) = admin(&down, Method::POST, "/v1/assistants", Some(&body)).await;
    assert_error(status, &v, 502, "voiceflow_unreachable");
    assert!(names(&down).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_without_metadata_needs_a_name_and_cannot_save_transcripts() {
    let server = MockServer::start().await;
    let key = "VF.DM.66ee00000000000000000005.AliasOnlyKeySecret2";
    Mock::given(method("GET"))
        .and(path_regex(r"^/state/user/[^/]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&server)
        .await;
    // Like Voiceflow: exporting an alias without a project id is refused.
    Mock::given(method("GET"))
        .and(path("/v2/versions/production/export"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "name": "verror", "message": "Missing projectID for version alias"
        })))
        .mount(&server)
        .await;
    let app = spawn_app(pointed_at(Options::default(), &server.uri())).await;

    let (status, v) = admin(
        &app,
        Method::POST,
        "/v1/assistants",
        Some(&json!({"api_key": key, "version": "production"})),
    )
    .await;
    assert_eq!((status, fields(&v)), (422, vec!["name".to_owned()]), "{v}");
    assert!(detail(&v, "name").contains("project_id"), "{v}");

    let (status, v) = admin(
        &app,
        Method::POST,
        "/v1/assistants",
        Some(&json!({"name": "bot", "api_key": key, "version": "production", "save_transcripts": true})),
    )
    .await;
    assert_eq!(
        (status, fields(&v)),
        (422, vec!["save_transcripts".to_owned()]),
        "{v}"
    );
    assert!(names(&app).await.is_empty());

    let a = register(
        &app,
        json!({"name": "bot", "api_key": key, "version": "production"}),
    )
    .await;
    assert!(a["project_id"].is_null() && a["version_id"].is_null());
    assert!(
        a["warnings"][0]
            .as_str()
            .unwrap()
            .contains("needs project_id"),
        "{a}"
    );
    // Streamed turns name the project: refused without its id, and nothing changes.
    let at = format!("/v1/assistants/{}", a["id"].as_str().unwrap());
    let (status, v) = admin(&app, Method::PATCH, &at, Some(&json!({"streaming": true}))).await;
    assert_eq!(
        (status, fields(&v)),
        (422, vec!["streaming".to_owned()]),
        "{v}"
    );
    assert!(detail(&v, "streaming").contains("project id"), "{v}");
    let (status, v) = admin(&app, Method::PATCH, &at, Some(&json!({"streaming": "yes"}))).await;
    assert_eq!(
        (status, fields(&v)),
        (422, vec!["streaming".to_owned()]),
        "{v}"
    );
    let (_, now) = admin(&app, Method::GET, &at, None).await;
    assert_eq!(now["settings"]["streaming"], false, "{now}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_unique_across_registrations_and_renames() {
    let app = spawn_app(Options::default()).await;
    let alpha = register(
        &app,
        json!({"name": "alpha", "api_key": SIM_KEY, "version": "production"}),
    )
    .await;
    let body = json!({"name": "alpha", "api_key": SIM_KEY, "version": "development"});
    let (status, v) = admin(&app, Method::POST, "/v1/assistants", Some(&body)).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("name_taken"))
    );
    // The project's name is taken by the first registration without a name.
    register(&app, json!({"api_key": SIM_KEY, "version": "production"})).await;
    let (status, _) = admin(
        &app,
        Method::POST,
        "/v1/assistants",
        Some(&json!({"api_key": SIM_KEY, "version": "production"})),
    )
    .await;
    assert_eq!(status, 409);
    let beta = register(
        &app,
        json!({"name": "beta", "api_key": SIM_KEY, "version": "production"}),
    )
    .await;
    let beta_path = format!("/v1/assistants/{}", beta["id"].as_str().unwrap());
    let (status, _) = admin(
        &app,
        Method::PATCH,
        &beta_path,
        Some(&json!({"name": "alpha"})),
    )
    .await;
    assert_eq!(status, 409);
    let (status, v) = admin(
        &app,
        Method::PATCH,
        &beta_path,
        Some(&json!({"name": alpha["id"]})),
    )
    .await;
    assert_eq!(
        (status, fields(&v)),
        (422, vec!["name".to_owned()]),
        "an id is no name"
    );
    let (status, v) = admin(
        &app,
        Method::PATCH,
        &beta_path,
        Some(&json!({"name": "gamma"})),
    )
    .await;
    assert_eq!((status, &v["id"]), (200, &beta["id"]));
    let (status, _) = admin(&app, Method::GET, "/v1/assistants/beta", None).await;
    assert_eq!(status, 404, "the old name is free");
}

// ----- keys: never leaked, rotated, re-encrypted ----------------------------

#[tokio::test]
async fn the_key_never_appears_in_answers_logs_or_the_stores_raw_bytes() {
    // Current-thread runtime: the app's tasks run on this thread, so this
    // thread's subscriber sees every log line of the test.
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let redis = RedisServer::start();
    let app = spawn_app(redis_opts(&redis).env("RUST_LOG", "trace")).await;
    let mut answers = Vec::new();
    let a = register(
        &app,
        json!({"name": "secretive", "api_key": SIM_KEY, "version": "production", "save_transcripts": true}),
    )
    .await;
    answers.push(a.clone());
    let id = a["id"].as_str().unwrap();
    for (m, p, b) in [
        (Method::GET, "/v1/assistants".to_owned(), None),
        (Method::GET, format!("/v1/assistants/{id}"), None),
        (
            Method::PATCH,
            format!("/v1/assistants/{id}"),
            Some(json!({"api_key": SIM_KEY, "language": "de-DE"})),
        ),
        (
            Method::POST,
            "/v1/assistants".to_owned(),
            Some(json!({"name": "secretive", "api_key": SIM_KEY, "version": "production"})),
        ),
        (
            Method::POST,
            session_path(id, "s1", "launch"),
            Some(json!({})),
        ),
        (
            Method::POST,
            session_path(id, "s1", "interact"),
            Some(json!({"digits": "1"})),
        ),
        (Method::GET, session_path(id, "s1", "state"), None),
        (
            Method::PUT,
            session_path(id, "s1", "transcript"),
            Some(json!({})),
        ),
    ] {
        let (status, v) = admin(&app, m, &p, b.as_ref()).await;
        assert!(status < 500, "{p}: {status} {v}");
        answers.push(v);
    }
    // A failing Voiceflow turn logs an error: still without the key.
    app.voiceflow.as_ref().unwrap().fail_next(vec![401]);
    let (status, v) = admin(&app, Method::POST, &session_path(id, "s2", "launch"), None).await;
    assert_eq!(status, 502);
    answers.push(v);

    for v in &answers {
        assert_no_leak(v.to_string().as_bytes(), SIM_KEY, "an answer");
    }
    let logs = captured.text();
    assert!(
        logs.contains("assistant registered"),
        "the capture must see the app's logs"
    );
    assert_no_leak(logs.as_bytes(), SIM_KEY, "the logs");
    let dump = redis_dump(&redis.url()).await;
    assert!(
        dump.iter()
            .any(|(_, v)| String::from_utf8_lossy(v).contains("secretive")),
        "the dump must see the assistant"
    );
    for (what, raw) in &dump {
        assert_no_leak(raw, SIM_KEY, &format!("Redis ({what})"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_used_at_once_and_a_refused_one_changes_nothing() {
    let server = MockServer::start().await;
    let old = "VF.DM.66ff00000000000000000006.OldKeySecretOLD1";
    let new = "VF.DM.66ff00000000000000000006.NewKeySecretNEW2";
    let refused = "VF.DM.66ff00000000000000000006.BadKeySecretBAD3";
    mock_voiceflow_accepting(&server, old).await;
    mock_voiceflow_accepting(&server, new).await;
    Mock::given(method("GET"))
        .and(header("authorization", refused))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"data": "Auth Key Required"})),
        )
        .mount(&server)
        .await;
    // The old key was revoked after registration: turns only work with the new one.
    Mock::given(method("POST"))
        .and(path_regex(r"^/state/user/[^/]+/interact$"))
        .and(header("authorization", new))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"type": "speak", "payload": {"type": "message", "message": "Hello from the new key."}},
            {"type": "end"}
        ])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/state/user/[^/]+/interact$"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"data": "Auth Key Required"})),
        )
        .mount(&server)
        .await;
    let app = spawn_app(pointed_at(Options::default(), &server.uri())).await;
    let a = register(
        &app,
        json!({"name": "rotating", "api_key": old, "version": "production"}),
    )
    .await;
    assert_eq!(a["project_name"], "Escalation bot");
    let id = a["id"].as_str().unwrap();
    let (status, v) = admin(&app, Method::POST, &session_path(id, "s", "launch"), None).await;
    assert_error(status, &v, 502, "voiceflow_refused_key");

    let (status, rotated) = admin(
        &app,
        Method::PATCH,
        &format!("/v1/assistants/{id}"),
        Some(&json!({"api_key": new})),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["id"], a["id"], "the id is kept");
    assert_eq!(rotated["created_at"], a["created_at"]);
    assert_eq!(rotated["key_hint"], "NEW2");
    assert_ne!(rotated["updated_at"], a["updated_at"]);
    // The cached old key is forgotten at once on this replica.
    let (status, v) = admin(&app, Method::POST, &session_path(id, "s", "launch"), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["spoken"][0], "Hello from the new key.");

    let (status, v) = admin(
        &app,
        Method::PATCH,
        &format!("/v1/assistants/{id}"),
        Some(&json!({"api_key": refused, "name": "renamed", "language": "fr-FR"})),
    )
    .await;
    assert_eq!(
        (status, fields(&v)),
        (422, vec!["api_key".to_owned()]),
        "{v}"
    );
    let (_, after) = admin(&app, Method::GET, &format!("/v1/assistants/{id}"), None).await;
    assert_eq!(after, rotated, "nothing changed");
    let (status, _) = admin(&app, Method::POST, &session_path(id, "s", "launch"), None).await;
    assert_eq!(status, 200, "the working key is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_stored_under_the_previous_secret_are_re_encrypted_so_it_can_be_retired() {
    let redis = RedisServer::start();
    let vf = standalone_voiceflow().await;
    let base = vf.base_url().to_string();
    let old_secret = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
    let first =
        spawn_app(pointed_at(redis_opts(&redis), &base).env("GATEWAY_SECRET", old_secret)).await;
    let a = register(
        &first,
        json!({"name": "long-lived", "api_key": SIM_KEY, "version": "production"}),
    )
    .await;
    first.stop().await;

    // Rotation step 1: the new secret, the old one as previous.
    let during =
        spawn_app(pointed_at(redis_opts(&redis), &base).env("GATEWAY_SECRET_PREVIOUS", old_secret))
            .await;
    during.stop().await;
    // Step 2: the old secret retired. The key still decrypts.
    let after = spawn_app(pointed_at(redis_opts(&redis), &base)).await;
    let id = a["id"].as_str().unwrap();
    let (status, v) = admin(&after, Method::POST, &session_path(id, "s", "launch"), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(kinds(&v), ["speak", "choice", "no-reply"]);
}

#[tokio::test]
async fn a_key_under_the_previous_secret_is_re_encrypted_when_first_used() {
    let secret = |s: &str| Secret::new(s.as_bytes().to_vec());
    let (old, new) = (
        "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
        "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9",
    );
    let store = Store::Memory(MemoryStore::new(Duration::from_secs(60)));
    let mut a = stored_assistant("lazy");
    a.encrypted_key = Signer::new(&secret(old), None).encrypt_key(a.id, SIM_KEY);
    store.save_assistant(&a).await.unwrap();

    let rotating = Assistants::new(store.clone(), Signer::new(&secret(new), Some(&secret(old))));
    let resolved = rotating.resolve(a.id).await.unwrap().unwrap();
    assert_eq!(resolved.credentials.api_key.expose(), SIM_KEY);
    let stored = store.assistant(a.id).await.unwrap().unwrap();
    assert_ne!(stored.encrypted_key, a.encrypted_key, "re-encrypted on use");
    let retired = Signer::new(&secret(new), None);
    assert_eq!(
        retired
            .decrypt_key(a.id, &stored.encrypted_key)
            .unwrap()
            .expose(),
        SIM_KEY
    );
}

// ----- deletion and roles ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assistant_in_use_is_kept_until_its_callout_ends() {
    let redis = RedisServer::start();
    let app = spawn_app(redis_opts(&redis)).await;
    register(
        &app,
        json!({"name": "ticket-bot", "api_key": SIM_KEY, "version": "production"}),
    )
    .await;
    app.sim.set_callee(&phone(1), Behaviour::silent());
    let callout = app
        .create_callout(&json!({
            "name": "Ticket 4711",
            "assistant": "ticket-bot",
            "contacts": [{"name": "Alice", "phone": phone(1)}],
            "policy": {"attempts_per_contact": 1, "input_timeout_s": 60},
        }))
        .await;
    let (status, v) = admin(&app, Method::DELETE, "/v1/assistants/ticket-bot", None).await;
    assert_error(status, &v, 409, "assistant_in_use");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("1 running callout")
    );

    let r = app
        .http
        .post(app.url(&format!("/v1/callouts/{callout}/cancel")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = admin(&app, Method::DELETE, "/v1/assistants/ticket-bot", None).await;
    assert_eq!(status, 204);
    let (status, _) = admin(&app, Method::GET, "/v1/assistants/ticket-bot", None).await;
    assert_eq!(status, 404);
    let (status, _) = admin(&app, Method::DELETE, "/v1/assistants/ticket-bot", None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_registry_needs_an_admin_and_the_tools_a_dispatcher() {
    let app = spawn_app(Options {
        api_keys: true,
        ..Options::default()
    })
    .await;
    let body = json!({"name": "x", "api_key": SIM_KEY, "version": "production"});
    let (status, _) = send(&app, Method::POST, "/v1/assistants", None, Some(&body)).await;
    assert_eq!(status, 401);
    let (status, _) = send(&app, Method::GET, "/v1/assistants", None, None).await;
    assert_eq!(status, 401);
    let (status, _) = send(
        &app,
        Method::POST,
        &session_path("sandbox", "s", "launch"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 401);
    let d = Some(DISPATCHER_TOKEN);
    let (status, v) = send(&app, Method::POST, "/v1/assistants", d, Some(&body)).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _) = send(&app, Method::DELETE, "/v1/assistants/sandbox", d, None).await;
    assert_eq!(status, 403);
    let patch = json!({"language": "de-DE"});
    let (status, _) = send(
        &app,
        Method::PATCH,
        "/v1/assistants/sandbox",
        d,
        Some(&patch),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(names(&app).await, ["sandbox"], "nothing changed");

    let (status, _) = send(&app, Method::GET, "/v1/assistants/sandbox", d, None).await;
    assert_eq!(status, 200, "dispatchers may read the registry");
    let (status, v) = send(
        &app,
        Method::POST,
        &session_path("sandbox", "s", "launch"),
        d,
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, _) = send(
        &app,
        Method::POST,
        "/v1/assistants",
        Some(ADMIN_TOKEN),
        Some(&body),
    )
    .await;
    assert_eq!(status, 201);
}

// ----- startup: the `default` assistant --------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voiceflow_api_key_registers_default_at_startup_and_refreshes_it_in_place() {
    let redis = RedisServer::start();
    let vf = standalone_voiceflow().await;
    let base = vf.base_url().to_string();
    let first_key = "VF.DM.5f1e0c7a9b3d2e4f60718293.FirstStartupKeyAAAA";
    let second_key = "VF.DM.5f1e0c7a9b3d2e4f60718293.SecondStartupKeyBBBB";
    let first =
        spawn_app(pointed_at(redis_opts(&redis), &base).env("VOICEFLOW_API_KEY", first_key)).await;
    let (status, a) = admin(&first, Method::GET, "/v1/assistants/default", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (a["key_hint"].as_str(), a["version"].as_str()),
        (Some("AAAA"), Some("production"))
    );
    assert_eq!(a["project_id"], vf.project_id());
    let id = a["id"].as_str().unwrap().to_owned();
    // An admin's settings survive a restart.
    admin(
        &first,
        Method::PATCH,
        "/v1/assistants/default",
        Some(&json!({"language": "en-GB"})),
    )
    .await;
    first.stop().await;

    let second = spawn_app(
        pointed_at(redis_opts(&redis), &base)
            .env("VOICEFLOW_API_KEY", second_key)
            .env("VOICEFLOW_VERSION", "development"),
    )
    .await;
    let (_, b) = admin(&second, Method::GET, "/v1/assistants/default", None).await;
    assert_eq!(b["id"], id.as_str());
    assert_eq!(b["created_at"], a["created_at"]);
    assert_eq!(
        (b["key_hint"].as_str(), b["version"].as_str()),
        (Some("BBBB"), Some("development"))
    );
    assert_eq!(b["settings"]["language"], "en-GB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_startup_key_is_logged_in_the_sandbox_and_stops_a_live_gateway() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"data": "Auth Key Required"})),
        )
        .mount(&server)
        .await;
    let key = "VF.DM.66aa00000000000000000007.RevokedStartupKey0";
    let sandbox =
        spawn_app(pointed_at(Options::default(), &server.uri()).env("VOICEFLOW_API_KEY", key))
            .await;
    let (status, _) = admin(&sandbox, Method::GET, "/v1/assistants/default", None).await;
    assert_eq!(status, 404, "the sandbox starts without it");

    let env: std::collections::HashMap<String, String> = [
        ("LISTEN_ADDR", "127.0.0.1:0"),
        ("ROUTEE_APP_ID", "app"),
        ("ROUTEE_APP_SECRET", "app-secret"),
        ("ROUTEE_API_URL", "http://127.0.0.1:9"),
        ("ROUTEE_AUTH_URL", "http://127.0.0.1:9/oauth/token"),
        ("ROUTEE_FROM", "+306900000000"),
        ("ALLOWED_DESTINATIONS", "*"),
        ("PUBLIC_URL", "https://gateway.example"),
        ("GATEWAY_SECRET", SECRET),
        ("API_KEYS", "admin:admin-token-for-tests-123"),
        ("VOICEFLOW_API_KEY", key),
        ("VOICEFLOW_RUNTIME_URL", &server.uri()),
        ("VOICEFLOW_API_URL", &server.uri()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let config = Config::from_map(&env).unwrap();
    let err = Application::build(config).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("VOICEFLOW_API_KEY"), "{message}");
    assert!(message.contains("Voiceflow refused the key"), "{message}");
    assert!(!message.contains(key), "{message}");
}

// ----- conversation tools ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_and_digits_show_voiceflows_traces_and_the_verbs_a_call_would_get() {
    let app = spawn_app(Options::default()).await;
    let vf = app.voiceflow.clone().unwrap();
    let (status, launch) = admin(
        &app,
        Method::POST,
        &session_path("sandbox", "demo", "launch"),
        Some(&json!({"variables": {"contact_name": "Alice", "ticket": "Server room 2 is flooding."}})),
    )
    .await;
    assert_eq!(status, 200, "{launch}");
    let (_, sandbox) = admin(&app, Method::GET, "/v1/assistants/sandbox", None).await;
    let user = format!("tool-{}-demo", sandbox["id"].as_str().unwrap());
    assert_eq!(launch["user_id"], user.as_str());
    assert_eq!(vf.variables(&user).unwrap()["contact_name"], "Alice");
    assert_eq!(launch["input"]["sent_as"], "launch");
    assert_eq!(kinds(&launch), ["speak", "choice", "no-reply"]);
    assert_eq!(
        launch["traces"][1]["payload"]["buttons"][0]["request"]["type"], "path-accept",
        "traces as Voiceflow returned them"
    );
    let greeting = json!({"type": "SAY", "message": {"text": "Hello Alice. Server room 2 is flooding.", "language": "en-US"}, "bargeIn": true});
    let options = json!({"type": "SAY", "message": {"text": "Press 1 for Accept. Press 2 for Reject.", "language": "en-US"}, "bargeIn": true});
    let v = verbs(&launch);
    // The wait for a key is ten seconds of the gateway's own silence, played
    // with barge-in so that a key pressed in it is posted at once.
    let silence = v[2]["fileURL"].as_str().unwrap_or_default();
    assert!(
        silence.starts_with(&format!("{}/audio/", app.base)) && silence.ends_with(".wav"),
        "{}",
        v[2]
    );
    let wait = json!({"type": "PLAY", "fileURL": silence, "repeat": 9, "bargeIn": true});
    assert_eq!(
        v[..5],
        [greeting, options.clone(), wait.clone(), options, wait]
    );
    assert_eq!(v[5]["type"], "COLLECT");
    assert_eq!(v[5]["submitOnHash"], true);
    assert!(
        v[5]["eventUrl"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/routee/collect/", app.base)),
        "{}",
        v[5]
    );
    assert_eq!(v.len(), 6);
    assert_eq!(launch["no_reply_timeout"], 10);
    assert_eq!(launch["menu"][1]["digit"], "2");
    assert!(launch["decision"].is_null() && launch["ends_call"] == false);

    let (status, accept) = admin(
        &app,
        Method::POST,
        &session_path("sandbox", "demo", "interact"),
        Some(&json!({"digits": "1"})),
    )
    .await;
    assert_eq!(status, 200, "{accept}");
    assert_eq!(accept["input"]["sent_as"], "menu");
    assert_eq!(accept["input"]["request"]["type"], "path-accept");
    assert_eq!(kinds(&accept), ["accept", "speak", "end"]);
    assert_eq!(accept["decision"], "accepted");
    assert_eq!(accept["ends_call"], true);
    assert_eq!(
        verbs(&accept),
        [
            json!({"type": "SAY", "message": {"text": "Thank you. The ticket is yours. Goodbye.", "language": "en-US"}, "bargeIn": false})
        ],
        "the goodbye, no COLLECT"
    );
    assert_eq!(accept["turn"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_text_keypad_and_raw_actions_are_sent_as_a_call_would_send_them() {
    let app = spawn_app(Options::default()).await;
    let tool = |s: &str, t: &str| session_path("sandbox", s, t);
    let interact = |s: &'static str, body: Value| {
        let app = &app;
        async move { admin(app, Method::POST, &tool(s, "interact"), Some(&body)).await }
    };

    admin(&app, Method::POST, &tool("quiet", "launch"), None).await;
    let (status, first) = interact("quiet", json!({"no_reply": true})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["input"]["request"], json!({"type": "no-reply"}));
    assert_eq!(kinds(&first), ["path", "speak", "choice", "no-reply"]);
    let (_, second) = interact("quiet", json!({"no_reply": true})).await;
    assert_eq!(second["ends_call"], true);
    assert!(
        second["spoken"][0]
            .as_str()
            .unwrap()
            .contains("did not hear")
    );
    // The goodbye asked for no input: a call would tell Voiceflow nothing.
    let (status, v) = interact("quiet", json!({"no_reply": true})).await;
    assert_error(status, &v, 409, "nothing_to_send");

    admin(&app, Method::POST, &tool("typed", "launch"), None).await;
    let (_, rejected) = interact("typed", json!({"text": "2"})).await;
    assert_eq!(rejected["input"]["sent_as"], "text");
    assert_eq!(rejected["decision"], "rejected");

    admin(&app, Method::POST, &tool("raw", "launch"), None).await;
    let (_, raw) = interact(
        "raw",
        json!({"action": {"type": "path-reject", "payload": {"label": "Reject"}}}),
    )
    .await;
    assert_eq!(raw["input"]["sent_as"], "action");
    assert_eq!(raw["decision"], "rejected");

    // Digits that are no menu key go through the assistant's keypad map.
    admin(
        &app,
        Method::PATCH,
        "/v1/assistants/sandbox",
        Some(&json!({"keypad": {"7": "accept"}})),
    )
    .await;
    admin(&app, Method::POST, &tool("keys", "launch"), None).await;
    let (_, keyed) = interact("keys", json!({"digits": "7#"})).await;
    assert_eq!(keyed["input"]["sent_as"], "keypad");
    assert_eq!(
        keyed["input"]["request"]["payload"]["intent"]["name"],
        "accept"
    );
    assert_eq!(keyed["input"]["request"]["payload"]["query"], "7");

    let (status, v) = interact("keys", json!({"digits": "1", "text": "1"})).await;
    assert_eq!((status, fields(&v)), (422, vec!["body".to_owned()]));
    let (status, v) = admin(&app, Method::POST, &tool("bad%20name", "launch"), None).await;
    assert_eq!((status, fields(&v)), (422, vec!["session".to_owned()]));
    let (status, _) = admin(
        &app,
        Method::POST,
        &session_path("nobody", "s", "launch"),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_variables_and_transcripts_of_a_session() {
    let app = spawn_app(Options::default()).await;
    let vf = app.voiceflow.clone().unwrap();
    let tool = |t: &str| session_path("sandbox", "qa", t);
    admin(&app, Method::POST, &tool("launch"), None).await;

    let (status, state) = admin(&app, Method::GET, &tool("state"), None).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["state"]["stack"][0]["nodeID"], "menu");
    assert_eq!(state["gateway"]["turn"], 1);
    assert_eq!(
        state["gateway"]["conversation"]["menu"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let user = state["user_id"].as_str().unwrap().to_owned();

    let (status, patched) = admin(
        &app,
        Method::PATCH,
        &tool("variables"),
        Some(&json!({"ticket": "4711", "priority": 2})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["state"]["variables"]["ticket"], "4711");
    assert_eq!(vf.variables(&user).unwrap()["priority"], 2);
    let (status, v) = admin(
        &app,
        Method::PATCH,
        &tool("variables"),
        Some(&json!({"deep": {"a": 1}})),
    )
    .await;
    assert_eq!(
        (status, fields(&v)),
        (422, vec!["variables.deep".to_owned()])
    );

    let (status, saved) = admin(&app, Method::PUT, &tool("transcript"), None).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["transcript"]["sessionID"], user.as_str());
    assert_eq!(saved["transcript"]["versionID"], vf.version_id());
    assert_eq!(saved["transcript"]["device"], "phone");
    assert_eq!(saved["transcript"]["browser"], "conversation-tools");
    let (_, custom) = admin(
        &app,
        Method::PUT,
        &tool("transcript"),
        Some(&json!({"device": "desktop", "os": "macOS", "browser": "curl"})),
    )
    .await;
    assert_eq!(custom["transcript"]["os"], "macOS");
    assert_eq!(vf.transcripts().len(), 2);

    let (status, _) = admin(&app, Method::DELETE, &tool("state"), None).await;
    assert_eq!(status, 204);
    let (_, gone) = admin(&app, Method::GET, &tool("state"), None).await;
    assert_eq!(gone["state"], json!({}));
    assert!(gone["gateway"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digits_are_read_with_the_menu_kept_by_another_replica() {
    let redis = RedisServer::start();
    let vf = standalone_voiceflow().await;
    let base = vf.base_url().to_string();
    let a = spawn_app(pointed_at(redis_opts(&redis), &base)).await;
    let b = spawn_app(pointed_at(redis_opts(&redis), &base)).await;
    register(
        &a,
        json!({"name": "shared", "api_key": SIM_KEY, "version": "production"}),
    )
    .await;
    let (status, _) = admin(
        &a,
        Method::POST,
        &session_path("shared", "x", "launch"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, v) = admin(
        &b,
        Method::POST,
        &session_path("shared", "x", "interact"),
        Some(&json!({"digits": "1"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["input"]["sent_as"], "menu");
    assert_eq!(v["decision"], "accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voiceflow_failures_in_the_tools_are_clear_gateway_errors() {
    let app = spawn_app(Options::default().env("UPSTREAM_TIMEOUT_MS", "600")).await;
    let vf = app.voiceflow.clone().unwrap();
    let launch = session_path("sandbox", "f", "launch");
    vf.fail_next(vec![401]);
    let (status, v) = admin(&app, Method::POST, &launch, None).await;
    assert_error(status, &v, 502, "voiceflow_refused_key");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("PATCH /v1/assistants")
    );
    vf.fail_next(vec![503]);
    let (status, v) = admin(&app, Method::POST, &launch, None).await;
    assert_error(status, &v, 502, "voiceflow_error");
    vf.garbage_next(1);
    let (status, v) = admin(&app, Method::POST, &launch, None).await;
    assert_error(status, &v, 502, "voiceflow_bad_answer");
    vf.set_latency(Duration::from_millis(1500));
    let (status, v) = admin(&app, Method::POST, &launch, None).await;
    assert_error(status, &v, 504, "voiceflow_timeout");
    vf.set_latency(Duration::ZERO);
    let (status, _) = admin(&app, Method::POST, &launch, None).await;
    assert_eq!(status, 200);
}

// ----- transcripts of real calls --------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcript_that_fails_to_save_does_not_disturb_the_call() {
    let server = MockServer::start().await;
    let key = "VF.DM.66aa00000000000000000008.TranscriptKey0000";
    mock_voiceflow_accepting(&server, key).await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/state/user/[0-9a-f]{32}/interact$"))
        .and(body_partial_json(json!({"action": {"type": "launch"}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"type": "speak", "payload": {"type": "message", "message": "A ticket for you."}},
            {"type": "choice", "payload": {"buttons": [
                {"name": "Accept", "request": {"type": "path-yes", "payload": {"label": "Accept"}}},
                {"name": "Reject", "request": {"type": "path-no", "payload": {"label": "Reject"}}}
            ]}},
            {"type": "no-reply", "payload": {"timeout": 10}}
        ])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/state/user/[0-9a-f]{32}/interact$"))
        .and(body_partial_json(json!({"action": {"type": "path-yes"}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"type": "accept", "payload": {}, "paths": [{"event": {"type": "done"}}], "defaultPath": 0},
            {"type": "speak", "payload": {"type": "message", "message": "Thanks, goodbye."}},
            {"type": "end"}
        ])))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2/transcripts"))
        .respond_with(ResponseTemplate::new(500).set_body_string("transcripts are down"))
        .mount(&server)
        .await;
    let app = spawn_app(pointed_at(Options::default(), &server.uri())).await;
    register(
        &app,
        json!({"name": "recorded", "api_key": key, "version": "66bb00000000000000000002", "save_transcripts": true}),
    )
    .await;
    app.sim.set_callee(&phone(1), Behaviour::accepts());
    let id = app
        .create_callout(&json!({
            "name": "Ticket 4712",
            "assistant": "recorded",
            "contacts": [{"name": "Alice", "phone": phone(1)}],
            "policy": {"attempts_per_contact": 1},
        }))
        .await;
    let c = app.wait_settled(&id, LONG).await;
    assert_eq!(c["status"], "accepted", "{c}");
    assert_eq!(c["attempts"][0]["outcome"], "accepted");
    let started = Instant::now();
    let put = loop {
        let puts: Vec<_> = server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.method.as_str() == "PUT")
            .collect();
        if let Some(first) = puts.into_iter().next() {
            break first;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no transcript was attempted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let body: Value = serde_json::from_slice(&put.body).unwrap();
    assert_eq!(body["sessionID"], c["attempts"][0]["call_id"]);
    assert_eq!(body["versionID"], "66bb00000000000000000002");
    // The callout is untouched by the failure.
    let again = app.get_callout(&id).await;
    assert_eq!(again["status"], "accepted");
    assert!(
        !again["events"].to_string().contains("transcript"),
        "no transcript event disturbs the timeline: {again}"
    );
}

// ----- store operations, on both stores --------------------------------------

fn stored_assistant(name: &str) -> Assistant {
    let now = Timestamp::now();
    Assistant {
        id: AssistantId::new(),
        name: name.into(),
        version: "production".into(),
        project_id: None,
        project_name: None,
        version_id: None,
        created_at: now,
        updated_at: now,
        settings: AssistantSettings::default(),
        encrypted_key: "v1:x".into(),
        key_hint: "abcd".into(),
    }
}

async fn replace_is_compare_and_set(store: Store) {
    let a = stored_assistant("one");
    store.save_assistant(&a).await.unwrap();
    store
        .save_assistant(&stored_assistant("two"))
        .await
        .unwrap();
    let mut next = a.clone();
    next.name = "uno".into();
    next.updated_at = a.updated_at.plus(Duration::from_millis(1));
    assert_eq!(
        store.replace_assistant(&next, a.updated_at).await.unwrap(),
        Replaced::Yes
    );
    // A writer that read the old version loses.
    let mut stale = a.clone();
    stale.key_hint = "zzzz".into();
    assert_eq!(
        store.replace_assistant(&stale, a.updated_at).await.unwrap(),
        Replaced::Changed
    );
    let mut clash = next.clone();
    clash.name = "two".into();
    assert_eq!(
        store
            .replace_assistant(&clash, next.updated_at)
            .await
            .unwrap(),
        Replaced::NameTaken
    );
    assert_eq!(
        store
            .replace_assistant(&stored_assistant("new"), Timestamp::now())
            .await
            .unwrap(),
        Replaced::NotFound
    );
    let got = store.assistant(a.id).await.unwrap().unwrap();
    assert_eq!((got.name.as_str(), got.key_hint.as_str()), ("uno", "abcd"));
    assert!(
        store.assistant_by_name("one").await.unwrap().is_none(),
        "the old name is freed"
    );
    assert_eq!(
        store.assistant_by_name("uno").await.unwrap().unwrap().id,
        a.id
    );
}

async fn tool_sessions_expire_and_can_be_deleted(store: Store) {
    let id = AssistantId::new();
    let session = ToolSession {
        turn: 3,
        conversation: Conversation {
            expects_no_reply: true,
            ..Conversation::default()
        },
    };
    store
        .save_tool_session(id, "s", &session, Duration::from_secs(60))
        .await
        .unwrap();
    store
        .save_tool_session(id, "short", &session, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(store.tool_session(id, "s").await.unwrap(), Some(session));
    assert!(
        store
            .tool_session(AssistantId::new(), "s")
            .await
            .unwrap()
            .is_none()
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        store.tool_session(id, "short").await.unwrap().is_none(),
        "expired"
    );
    store.delete_tool_session(id, "s").await.unwrap();
    assert!(store.tool_session(id, "s").await.unwrap().is_none());
}

#[tokio::test]
async fn replacing_an_assistant_is_compare_and_set_on_both_stores() {
    replace_is_compare_and_set(Store::Memory(MemoryStore::new(Duration::from_secs(60)))).await;
    let server = RedisServer::start();
    let redis = RedisStore::connect(&server.url(), "t", Duration::from_secs(60))
        .await
        .unwrap();
    replace_is_compare_and_set(Store::Redis(redis)).await;
}

#[tokio::test]
async fn tool_sessions_expire_and_can_be_deleted_on_both_stores() {
    tool_sessions_expire_and_can_be_deleted(Store::Memory(MemoryStore::new(Duration::from_secs(
        60,
    ))))
    .await;
    let server = RedisServer::start();
    let redis = RedisStore::connect(&server.url(), "t", Duration::from_secs(60))
        .await
        .unwrap();
    tool_sessions_expire_and_can_be_deleted(Store::Redis(redis)).await;
}

/// Asserts an error answer: its HTTP status and its `error.code`.
#[track_caller]
fn assert_error(status: u16, v: &Value, want_status: u16, want_code: &str) {
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (want_status, Some(want_code)),
        "{v}"
    );
}
