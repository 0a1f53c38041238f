//! The Voiceflow client against an HTTP fake of the Dialog Manager runtime and
//! the project API (wiremock): headers, request and response shapes, error
//! classification, deadlines and which calls are retried.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns fail loudly on purpose"
)]

use std::time::{Duration, Instant};

use ivr_gateway::voiceflow::{
    Entity, InteractConfig, Request, Trace, TranscriptRequest, TranscriptUser, VersionInfo,
    VoiceflowClient, VoiceflowClientConfig, VoiceflowCredentials, VoiceflowError,
};
use serde_json::{Map, Value, json};
use url::Url;
use wiremock::matchers::{body_json, header, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "VF.DM.65f0c0ffee1234567890abcd.Zq9secretPart";
const INTERACT_PATH: &str = "/state/user/call-1/interact";

fn client(server: &MockServer) -> VoiceflowClient {
    VoiceflowClient::new(VoiceflowClientConfig {
        runtime_url: Url::parse(&server.uri()).unwrap(),
        api_url: Url::parse(&server.uri()).unwrap(),
        connect_timeout: Duration::from_millis(500),
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

fn creds() -> VoiceflowCredentials {
    VoiceflowCredentials::new(KEY, "production")
}

fn variables(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(map) => map,
        other => panic!("variables must be an object, got {other}"),
    }
}

async fn interact(
    client: &VoiceflowClient,
    request: &Request,
    vars: Option<&Map<String, Value>>,
) -> Result<Vec<Trace>, VoiceflowError> {
    client
        .interact(
            &creds(),
            "call-1",
            request,
            vars,
            &InteractConfig::default(),
            Duration::from_secs(2),
        )
        .await
}

async fn mount_interact(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(INTERACT_PATH))
        .respond_with(response)
        .mount(server)
        .await;
}

/// The full text of an error: Display, Debug, and every source's Display.
fn everything_said_by(err: &VoiceflowError) -> String {
    let mut text = format!("{err} {err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(&format!(" {s}"));
        source = s.source();
    }
    text
}

#[tokio::test]
async fn runtime_calls_send_the_raw_key_and_the_version_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(INTERACT_PATH))
        .and(header("authorization", KEY))
        .and(header("versionid", "production"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(1)
        .mount(&server)
        .await;

    interact(&client(&server), &Request::Launch, None)
        .await
        .unwrap();

    let request = &server.received_requests().await.unwrap()[0];
    let auth = request.headers["authorization"].to_str().unwrap();
    assert!(!auth.to_ascii_lowercase().starts_with("bearer"), "{auth}");
}

#[tokio::test]
async fn each_request_kind_is_sent_in_voiceflows_shape() {
    let server = MockServer::start().await;
    mount_interact(&server, ResponseTemplate::new(200).set_body_json(json!([]))).await;
    let client = client(&server);
    let button = json!({"type": "path-cmd906pp", "payload": {"label": "Accept"}});
    let launch_vars = variables(json!({
        "ticket": "Server room 2 is flooding", "contact_name": "Alice",
        "callout_name": "Ticket 4711", "attempt": 1
    }));

    interact(&client, &Request::Launch, Some(&launch_vars))
        .await
        .unwrap();
    let requests = [
        Request::Text("12".into()),
        Request::Intent {
            name: "accept".into(),
            query: Some("1".into()),
            entities: vec![Entity {
                name: "digit".into(),
                value: "1".into(),
            }],
            confidence: Some(1.0),
        },
        Request::NoReply,
        Request::Raw(button.clone()),
        Request::Raw(json!({"type": "done"})),
        Request::Event("escalate".into()),
    ];
    for r in &requests {
        interact(&client, r, None).await.unwrap();
    }

    let config = json!({"tts": false, "stripSSML": true, "stopAll": false, "excludeTypes": ["block", "flow"]});
    let bodies: Vec<Value> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.body_json().unwrap())
        .collect();
    let expected_actions = [
        json!({"type": "launch"}),
        json!({"type": "text", "payload": "12"}),
        json!({"type": "intent", "payload": {
            "intent": {"name": "accept"}, "query": "1",
            "entities": [{"name": "digit", "value": "1"}], "confidence": 1.0
        }}),
        json!({"type": "no-reply"}),
        button,
        json!({"type": "done"}),
        json!({"type": "event", "payload": {"event": {"name": "escalate"}}}),
    ];
    assert_eq!(bodies.len(), expected_actions.len());
    assert_eq!(
        bodies[0],
        json!({
            "action": {"type": "launch"},
            "config": config,
            "state": {"variables": {
                "ticket": "Server room 2 is flooding", "contact_name": "Alice",
                "callout_name": "Ticket 4711", "attempt": 1
            }}
        })
    );
    for (body, action) in bodies.iter().zip(&expected_actions).skip(1) {
        assert_eq!(body, &json!({"action": action, "config": config}));
    }
}

#[tokio::test]
async fn traces_come_back_parsed_and_unknown_types_as_custom_actions() {
    let server = MockServer::start().await;
    mount_interact(
        &server,
        ResponseTemplate::new(200).set_body_json(json!([
            {"type": "speak", "payload": {"type": "message", "message": "Press 1 to accept"}},
            {"type": "debug", "payload": {"message": "matched intent"}},
            {"type": "accept", "payload": "{\"ticket\": 4711}", "defaultPath": 0,
             "paths": [{"event": {"type": "done"}}]},
            {"type": "brand-new-trace", "payload": {"anything": [1, 2]}},
            {"type": "no-reply", "payload": {"timeout": 10}}
        ])),
    )
    .await;

    let traces = interact(&client(&server), &Request::Launch, None)
        .await
        .unwrap();
    assert_eq!(traces.len(), 5);
    assert!(matches!(&traces[0], Trace::Speak(s) if s.message == "Press 1 to accept"));
    let Trace::CustomAction(accept) = &traces[2] else {
        panic!("{:?}", traces[2])
    };
    assert_eq!(accept.name, "accept");
    assert_eq!(accept.payload, json!({"ticket": 4711}));
    assert_eq!(accept.paths, vec!["done"]);
    assert!(matches!(&traces[3], Trace::CustomAction(a) if a.name == "brand-new-trace"));
    assert_eq!(traces[4], Trace::NoReply { timeout: Some(10) });
}

#[tokio::test]
async fn a_2xx_that_is_not_a_trace_list_is_a_decode_error() {
    let server = MockServer::start().await;
    mount_interact(
        &server,
        ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"),
    )
    .await;

    let err = interact(&client(&server), &Request::Launch, None)
        .await
        .unwrap_err();
    assert!(matches!(err, VoiceflowError::Decode { .. }), "{err:?}");
    assert!(!err.retryable());
}

#[tokio::test]
async fn a_refused_key_is_unauthorized() {
    let server = MockServer::start().await;
    mount_interact(
        &server,
        ResponseTemplate::new(401).set_body_json(json!({
            "code": 401, "status": "Unauthorized", "data": "Auth Key Required"
        })),
    )
    .await;

    let err = interact(&client(&server), &Request::Launch, None)
        .await
        .unwrap_err();
    assert!(matches!(err, VoiceflowError::Unauthorized), "{err:?}");
    assert!(!err.retryable());
}

#[tokio::test]
async fn a_missing_or_unpublished_version_is_version_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/state/user/dev-user/interact"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "code": 404, "status": "Not Found",
            "data": "Model not found. Ensure project is properly rendered."
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(INTERACT_PATH))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "name": "verror",
            "message": "Voiceflow project was not published to production",
            "requestID": "r-1"
        })))
        .mount(&server)
        .await;
    let client = client(&server);

    let err = client
        .interact(
            &creds(),
            "dev-user",
            &Request::Launch,
            None,
            &InteractConfig::default(),
            Duration::from_secs(2),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, VoiceflowError::VersionNotFound { message } if message.contains("Model not found")),
        "{err:?}"
    );

    let err = interact(&client, &Request::Launch, None).await.unwrap_err();
    assert!(
        matches!(&err, VoiceflowError::VersionNotFound { message } if message.contains("not published")),
        "{err:?}"
    );
    assert!(!err.retryable());
}

#[tokio::test]
async fn other_400s_are_upstream_errors() {
    let server = MockServer::start().await;
    mount_interact(
        &server,
        ResponseTemplate::new(400).set_body_json(json!({
            "name": "verror", "message": "action.type is required"
        })),
    )
    .await;

    let err = interact(&client(&server), &Request::Launch, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, VoiceflowError::Upstream { status: 400, message } if message == "action.type is required"),
        "{err:?}"
    );
    assert!(!err.retryable());
}

#[tokio::test]
async fn a_429_is_rate_limited_with_its_retry_after() {
    let server = MockServer::start().await;
    mount_interact(
        &server,
        ResponseTemplate::new(429)
            .insert_header("retry-after", "7")
            .set_body_string("Too Many Requests"),
    )
    .await;

    let err = interact(&client(&server), &Request::Launch, None)
        .await
        .unwrap_err();
    assert!(matches!(err, VoiceflowError::RateLimited { .. }), "{err:?}");
    assert!(err.retryable());
    assert!(!err.may_have_been_applied());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn interact_honours_its_deadline_and_is_never_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(INTERACT_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([]))
                .set_delay(Duration::from_secs(2)),
        )
        .expect(1)
        .mount(&server)
        .await;

    let started = Instant::now();
    let err = client(&server)
        .interact(
            &creds(),
            "call-1",
            &Request::Text("1".into()),
            None,
            &InteractConfig::default(),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, VoiceflowError::Timeout { .. }), "{err:?}");
    assert!(err.may_have_been_applied());
}

#[tokio::test]
async fn interact_is_not_retried_after_a_5xx() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(INTERACT_PATH))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&server)
        .await;

    let err = interact(&client(&server), &Request::Text("1".into()), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, VoiceflowError::Upstream { status: 503, .. }),
        "{err:?}"
    );
    assert!(err.retryable() && err.may_have_been_applied());
}

#[tokio::test]
async fn get_state_is_retried_once_after_a_503() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/state/user/call-1"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/state/user/call-1"))
        .and(header("versionid", "production"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "stack": [], "storage": {}, "variables": {"ticket": "4711"}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let state = client(&server).get_state(&creds(), "call-1").await.unwrap();
    assert_eq!(state["variables"]["ticket"], "4711");
}

#[tokio::test]
async fn idempotent_calls_give_up_after_one_retry() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/state/user/call-1"))
        .respond_with(ResponseTemplate::new(502))
        .expect(2)
        .mount(&server)
        .await;

    let err = client(&server)
        .delete_state(&creds(), "call-1")
        .await
        .unwrap_err();
    assert!(
        matches!(err, VoiceflowError::Upstream { status: 502, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn delete_state_addresses_the_percent_encoded_user() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/state/user/call%2F1%20x"))
        .and(header("authorization", KEY))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;

    client(&server)
        .delete_state(&creds(), "call/1 x")
        .await
        .unwrap();
}

#[tokio::test]
async fn patch_variables_sends_the_flat_object_and_returns_the_state() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/state/user/call-1/variables"))
        .and(header("versionid", "production"))
        .and(body_json(json!({"accepted": true, "attempt": 2})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "stack": [], "storage": {}, "variables": {"accepted": true, "attempt": 2}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let state = client(&server)
        .patch_variables(
            &creds(),
            "call-1",
            &variables(json!({"accepted": true, "attempt": 2})),
        )
        .await
        .unwrap();
    assert_eq!(state["variables"]["attempt"], 2);
}

fn transcript(image: Option<&str>, tags: Option<Vec<String>>) -> TranscriptRequest {
    TranscriptRequest {
        project_id: "p-1".into(),
        version_id: "66ac0ffee0000000000000aa".into(),
        session_id: "call-1".into(),
        device: "Phone".into(),
        os: "Routee".into(),
        browser: "Routee".into(),
        user: TranscriptUser {
            name: "+30690****0001".into(),
            image: image.map(str::to_owned),
        },
        report_tags: tags,
    }
}

#[tokio::test]
async fn save_transcript_sends_the_documented_body_without_absent_fields() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v2/transcripts"))
        .and(header("authorization", KEY))
        .and(body_json(json!({
            "projectID": "p-1", "versionID": "66ac0ffee0000000000000aa", "sessionID": "call-1",
            "device": "Phone", "os": "Routee", "browser": "Routee",
            "user": {"name": "+30690****0001"}, "unread": true
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"_id": "t-1"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2/transcripts"))
        .and(body_json(json!({
            "projectID": "p-1", "versionID": "66ac0ffee0000000000000aa", "sessionID": "call-1",
            "device": "Phone", "os": "Routee", "browser": "Routee",
            "user": {"name": "+30690****0001", "image": "https://x/logo.png"},
            "unread": true, "reportTags": ["accepted"]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"_id": "t-1"})))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);

    let saved = client
        .save_transcript(&creds(), &transcript(None, None))
        .await
        .unwrap();
    assert_eq!(saved["_id"], "t-1");
    client
        .save_transcript(
            &creds(),
            &transcript(Some("https://x/logo.png"), Some(vec!["accepted".into()])),
        )
        .await
        .unwrap();
}

fn export_body() -> Value {
    json!({
        "_version": "1.2",
        "project": {"_id": "p-1", "name": "Ticket escalation", "type": "voice",
                    "platform": "voiceflow", "devVersion": "v-dev"},
        "version": {"_id": "66ac0ffee0000000000000aa", "name": "Initial version",
                    "projectID": "p-1", "variables": ["ticket"]},
        "diagrams": {"d-1": {"nodes": {}}}
    })
}

fn expected_version_info() -> VersionInfo {
    VersionInfo {
        project_id: "p-1".into(),
        project_name: Some("Ticket escalation".into()),
        version_id: "66ac0ffee0000000000000aa".into(),
        version_name: Some("Initial version".into()),
        project_type: Some("voice".into()),
        platform: Some("voiceflow".into()),
    }
}

#[tokio::test]
async fn export_version_sends_the_project_header_for_aliases_and_reads_the_ids() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/versions/production/export"))
        .and(header("authorization", KEY))
        .and(header("projectid", "p-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(export_body()))
        .expect(1)
        .mount(&server)
        .await;

    let info = client(&server)
        .export_version(&creds(), Some("p-1"))
        .await
        .unwrap();
    assert_eq!(info, expected_version_info());
}

#[tokio::test]
async fn a_huge_export_is_read_only_as_far_as_its_head() {
    let server = MockServer::start().await;
    let export = export_body();
    // Voiceflow's order: project and version first, then 6 MiB of diagrams.
    let body = format!(
        r#"{{"_version":"1.2","project":{},"version":{},"diagrams":{{"d-1":"{}"}}}}"#,
        export["project"],
        export["version"],
        "x".repeat(6 << 20)
    );
    Mock::given(method("GET"))
        .and(path("/v2/versions/66ac0ffee0000000000000aa/export"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .expect(1)
        .mount(&server)
        .await;

    let info = client(&server)
        .export_version(
            &VoiceflowCredentials::new(KEY, "66ac0ffee0000000000000aa"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(info, expected_version_info());
}

#[tokio::test]
async fn probe_reads_a_random_users_state_with_the_version_header() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/state/user/[A-Za-z0-9-]+$"))
        .and(header("authorization", KEY))
        .and(header("versionid", "production"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(2)
        .mount(&server)
        .await;
    let client = client(&server);

    client.probe(&creds()).await.unwrap();
    client.probe(&creds()).await.unwrap();

    let requests = server.received_requests().await.unwrap();
    assert_ne!(requests[0].url.path(), requests[1].url.path());
}

#[tokio::test]
async fn probe_reports_an_unpublished_version() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/state/user/"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "name": "verror", "message": "Cannot resolve version alias production"
        })))
        .mount(&server)
        .await;

    let err = client(&server).probe(&creds()).await.unwrap_err();
    assert!(
        matches!(err, VoiceflowError::VersionNotFound { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error_and_nothing_was_applied() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = Url::parse(&format!("http://{}", closed.local_addr().unwrap())).unwrap();
    drop(closed);
    let client = VoiceflowClient::new(VoiceflowClientConfig {
        runtime_url: url.clone(),
        api_url: url,
        connect_timeout: Duration::from_millis(500),
        timeout: Duration::from_secs(2),
    })
    .unwrap();

    let err = client
        .interact(
            &creds(),
            "call-1",
            &Request::Launch,
            None,
            &InteractConfig::default(),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, VoiceflowError::Connect { .. }), "{err:?}");
    assert!(err.retryable() && !err.may_have_been_applied());
}

#[tokio::test]
async fn the_api_key_never_appears_in_any_error() {
    let server = MockServer::start().await;
    let echo = format!("the key {KEY} is not valid here");
    let responses = [
        (
            "/state/user/u401",
            ResponseTemplate::new(401).set_body_string(echo.clone()),
        ),
        (
            "/state/user/u400",
            ResponseTemplate::new(400).set_body_json(json!({"name": "verror", "message": echo})),
        ),
        (
            "/state/user/u404",
            ResponseTemplate::new(404).set_body_json(json!({"code": 404, "data": echo})),
        ),
        (
            "/state/user/u500",
            ResponseTemplate::new(500).set_body_string(echo.clone()),
        ),
        (
            "/state/user/u403",
            ResponseTemplate::new(403).set_body_json(json!({"error": {"message": echo}})),
        ),
    ];
    for (p, response) in responses {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(response)
            .mount(&server)
            .await;
    }
    let client = client(&server);

    for user in ["u401", "u400", "u404", "u500", "u403"] {
        let err = client.get_state(&creds(), user).await.unwrap_err();
        let said = everything_said_by(&err);
        assert!(
            !said.contains(KEY) && !said.contains("VF.DM."),
            "{user}: {said}"
        );
    }
    let debug = format!("{:?} {client:?}", creds());
    assert!(!debug.contains(KEY), "{debug}");
}
