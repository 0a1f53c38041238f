//! The Routee client against an HTTP fake of Routee's token endpoint and Voice
//! Conversation API (wiremock): token caching and refresh, the 401/403 replay,
//! request shapes, and how failures are classified.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns fail loudly on purpose"
)]

use std::time::{Duration, Instant};

use base64::Engine;
use ivr_gateway::config::Secret;
use ivr_gateway::routee::{
    CallAction, CallStatus, Callback, CallbackStrategy, Collect, CreateConversation, Destination,
    Dialplan, Gender, Language, Play, RouteeClient, RouteeClientConfig, RouteeError, Verb,
};
use serde_json::{Value, json};
use url::Url;
use wiremock::matchers::{bearer_token, body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const APP_ID: &str = "app-7f3c";
const APP_SECRET: &str = "very-secret-app-secret";
const TOKEN_PATH: &str = "/oauth/token";
const TRACKING_PATH: &str = "/voice/tracking/conversation/conv-1";

fn config(api: &str, auth: &MockServer, timeout: Duration) -> RouteeClientConfig {
    RouteeClientConfig {
        api_url: Url::parse(api).unwrap(),
        auth_url: Url::parse(&format!("{}{TOKEN_PATH}", auth.uri())).unwrap(),
        app_id: APP_ID.into(),
        app_secret: Secret::new(APP_SECRET.into()),
        connect_timeout: Duration::from_millis(500),
        timeout,
    }
}

fn client(server: &MockServer) -> RouteeClient {
    RouteeClient::new(config(&server.uri(), server, Duration::from_secs(5))).unwrap()
}

fn token(access_token: &str, expires_in: u32) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": "voice sms",
        "permissions": ["MT_ROLE_VOICE"]
    }))
}

async fn mount_token(server: &MockServer, access_token: &str, expected_requests: u64) {
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(token(access_token, 3600))
        .expect(expected_requests)
        .mount(server)
        .await;
}

fn tracking_page() -> Value {
    json!({
        "content": [{
            "messageId": "msg-1",
            "conversationTrackingId": "conv-1",
            "to": "+306900000001",
            "status": {"status": "No Answer", "date": "2026-01-01T10:00:00Z"},
            "collectedTones": 1,
            "duration": "12",
            "price": 0.02,
            "answeredBy": "HUMAN",
            "recordings": [],
            "somethingNew": {"nested": true}
        }],
        "first": true, "last": true, "totalPages": 1, "totalElements": 1
    })
}

async fn mount_tracking(server: &MockServer, expected_requests: u64) {
    Mock::given(method("GET"))
        .and(path(TRACKING_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(tracking_page()))
        .expect(expected_requests)
        .mount(server)
        .await;
}

fn conversation() -> CreateConversation {
    CreateConversation {
        from: "AcmeOps".into(),
        to: Destination::Phone("+306900000001".into()),
        dial_plan: Dialplan::new(vec![
            Verb::say(
                "Server room 2 is flooding",
                Language::EnUs,
                Some(Gender::Female),
            )
            .with_barge_in(true),
            Verb::Play(Play {
                file_url: "https://cdn.example.com/beep.wav".into(),
                barge_in: false,
                repeat: None,
            }),
            Verb::Collect(Collect {
                event_url: "https://gw.example.com/routee/collect?s=abc&t=1".into(),
                max_digits: Some(1),
                submit_on_hash: false,
            }),
            Verb::pause(10),
        ]),
        callback: Some(Callback {
            url: "https://gw.example.com/routee/status?s=abc".into(),
            strategy: CallbackStrategy::OnChange,
        }),
        hangup_delay: Some(30),
        max_duration: Some(300),
        machine_detection: None,
    }
}

fn created() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "trackingId": "conv-1",
        "createdAt": "2026-01-01T10:00:00Z",
        "direction": "Outbound",
        "dialPlans": [{"verbs": []}]
    }))
}

fn api_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"code": code, "developerMessage": message}))
}

/// The full text of an error: Display, Debug, and every source's Display.
fn everything_said_by(err: &RouteeError) -> String {
    let mut text = format!("{err} {err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(&format!(" {s}"));
        source = s.source();
    }
    text
}

#[tokio::test]
async fn token_is_fetched_once_and_reused() {
    let server = MockServer::start().await;
    mount_token(&server, "tok-1", 1).await;
    mount_tracking(&server, 4).await;
    let client = client(&server);

    for _ in 0..3 {
        client.dial_tracking("conv-1").await.unwrap();
    }
    // A clone shares the cache too.
    client.clone().dial_tracking("conv-1").await.unwrap();

    let requests = server.received_requests().await.unwrap();
    let api_calls: Vec<_> = requests
        .iter()
        .filter(|r| r.url.path() == TRACKING_PATH)
        .collect();
    assert_eq!(api_calls.len(), 4);
    for r in api_calls {
        assert_eq!(r.headers["authorization"], "Bearer tok-1");
    }
}

#[tokio::test]
async fn the_token_request_uses_basic_auth_and_the_client_credentials_grant() {
    let server = MockServer::start().await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{APP_ID}:{APP_SECRET}"));
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(header("authorization", format!("Basic {basic}").as_str()))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string("grant_type=client_credentials"))
        .respond_with(token("tok-1", 3600))
        .expect(1)
        .mount(&server)
        .await;
    mount_tracking(&server, 1).await;

    client(&server).dial_tracking("conv-1").await.unwrap();
}

#[tokio::test]
async fn concurrent_first_calls_share_one_token_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(token("tok-1", 3600).set_delay(Duration::from_millis(200)))
        .expect(1)
        .mount(&server)
        .await;
    mount_tracking(&server, 8).await;
    let client = client(&server);

    let calls = (0..8).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.dial_tracking("conv-1").await })
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap().unwrap();
    }
}

#[tokio::test]
async fn callers_waiting_on_a_failed_token_request_share_its_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(503).set_delay(Duration::from_millis(200)))
        .expect(1)
        .mount(&server)
        .await;
    mount_tracking(&server, 0).await;
    let client = client(&server);

    let calls = (0..5).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.dial_tracking("conv-1").await })
    });
    for result in futures::future::join_all(calls).await {
        let err = result.unwrap().unwrap_err();
        assert!(
            matches!(err, RouteeError::TokenUnavailable { .. }),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn token_is_refreshed_when_near_expiry() {
    let server = MockServer::start().await;
    // A 1 s lifetime is used for 0.8 s.
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(token("tok-1", 1))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    mount_token(&server, "tok-2", 1).await;
    Mock::given(method("GET"))
        .and(path(TRACKING_PATH))
        .and(bearer_token("tok-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(tracking_page()))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(TRACKING_PATH))
        .and(bearer_token("tok-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(tracking_page()))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);

    client.dial_tracking("conv-1").await.unwrap();
    client.dial_tracking("conv-1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    client.dial_tracking("conv-1").await.unwrap();
}

#[tokio::test]
async fn a_401_refreshes_the_token_once_and_the_replay_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(token("revoked", 3600))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    mount_token(&server, "fresh", 1).await;
    Mock::given(method("POST"))
        .and(path("/voice/conversation"))
        .and(bearer_token("revoked"))
        .respond_with(api_error(401, "401000001", "Access token expired"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/voice/conversation"))
        .and(bearer_token("fresh"))
        .respond_with(created())
        .expect(1)
        .mount(&server)
        .await;

    let created = client(&server)
        .create_conversation(&conversation())
        .await
        .unwrap();
    assert_eq!(created.tracking_id, "conv-1");
}

async fn refused_twice(status: u16) {
    let server = MockServer::start().await;
    mount_token(&server, "tok", 2).await;
    Mock::given(method("GET"))
        .and(path(TRACKING_PATH))
        .respond_with(api_error(status, &format!("{status}000000"), "Not allowed"))
        .expect(2)
        .mount(&server)
        .await;

    let err = client(&server).dial_tracking("conv-1").await.unwrap_err();
    match &err {
        RouteeError::Api { status: s, .. } => assert_eq!(*s, status),
        other => panic!("expected an API error, got {other:?}"),
    }
    assert!(!err.retryable());
    assert!(!err.may_have_been_applied());
}

#[tokio::test]
async fn two_401s_are_an_error_after_exactly_two_api_hits() {
    refused_twice(401).await;
}

#[tokio::test]
async fn two_403s_are_an_error_after_exactly_two_api_hits() {
    refused_twice(403).await;
}

#[tokio::test]
async fn error_bodies_become_typed_errors_with_the_right_retry_advice() {
    let server = MockServer::start().await;
    mount_token(&server, "tok", 1).await;
    let client = client(&server);
    let cases = [
        (
            "/voice/tracking/conversation/c500",
            api_error(500, "500013000", "Internal error"),
        ),
        (
            "/voice/tracking/conversation/c400",
            api_error(400, "400013002", "Invalid conversation id"),
        ),
        (
            "/voice/tracking/conversation/c429",
            ResponseTemplate::new(429)
                .insert_header("retry-after", "3")
                .set_body_string("slow down"),
        ),
        (
            "/voice/tracking/conversation/c502",
            ResponseTemplate::new(502).set_body_string("<html><body>Bad Gateway</body></html>"),
        ),
    ];
    for (p, response) in cases {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(response)
            .mount(&server)
            .await;
    }

    let err = client.dial_tracking("c500").await.unwrap_err();
    let RouteeError::Api {
        status,
        code,
        message,
        retry_after,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (*status, code.as_deref(), message.as_str()),
        (500, Some("500013000"), "Internal error")
    );
    assert_eq!(*retry_after, None);
    assert!(err.retryable());

    let err = client.dial_tracking("c400").await.unwrap_err();
    assert!(
        matches!(&err, RouteeError::Api { status: 400, code: Some(c), .. } if c == "400013002")
    );
    assert!(!err.retryable());

    let err = client.dial_tracking("c429").await.unwrap_err();
    assert!(matches!(
        &err,
        RouteeError::Api {
            status: 429,
            code: None,
            ..
        }
    ));
    assert!(err.retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));

    let err = client.dial_tracking("c502").await.unwrap_err();
    let RouteeError::Api { code, message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*code, None);
    assert!(message.contains("Bad Gateway"), "{message}");
    assert!(err.retryable());
}

#[tokio::test]
async fn a_5xx_on_creation_may_have_placed_the_call() {
    let server = MockServer::start().await;
    mount_token(&server, "tok", 1).await;
    Mock::given(method("POST"))
        .and(path("/voice/conversation"))
        .respond_with(api_error(500, "500013000", "Internal error"))
        .expect(1)
        .mount(&server)
        .await;

    let err = client(&server)
        .create_conversation(&conversation())
        .await
        .unwrap_err();
    assert!(err.retryable());
    assert!(err.may_have_been_applied());
}

#[tokio::test]
async fn a_slow_creation_times_out_quickly_and_may_have_been_applied() {
    let server = MockServer::start().await;
    mount_token(&server, "tok", 1).await;
    Mock::given(method("POST"))
        .and(path("/voice/conversation"))
        .respond_with(created().set_delay(Duration::from_secs(2)))
        .expect(1)
        .mount(&server)
        .await;
    let client =
        RouteeClient::new(config(&server.uri(), &server, Duration::from_millis(300))).unwrap();

    let started = Instant::now();
    let err = client
        .create_conversation(&conversation())
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, RouteeError::Timeout { .. }), "{err:?}");
    assert!(err.may_have_been_applied());
    assert!(err.retryable());
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error_and_nothing_was_applied() {
    let auth = MockServer::start().await;
    mount_token(&auth, "tok", 1).await;
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let client = RouteeClient::new(config(&api, &auth, Duration::from_secs(2))).unwrap();

    let err = client
        .create_conversation(&conversation())
        .await
        .unwrap_err();
    assert!(matches!(err, RouteeError::Connect { .. }), "{err:?}");
    assert!(!err.may_have_been_applied());
    assert!(err.retryable());
}

#[tokio::test]
async fn an_unreadable_2xx_creation_is_a_decode_error_that_placed_the_call() {
    let server = MockServer::start().await;
    mount_token(&server, "tok", 1).await;
    Mock::given(method("POST"))
        .and(path("/voice/conversation"))
        .respond_with(ResponseTemplate::new(200).set_body_string("queued"))
        .mount(&server)
        .await;

    let err = client(&server)
        .create_conversation(&conversation())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RouteeError::Decode { status: 200, .. }),
        "{err:?}"
    );
    assert!(err.may_have_been_applied());
    assert!(!err.retryable());
}

#[tokio::test]
async fn the_create_body_matches_routees_documented_shape_exactly() {
    let server = MockServer::start().await;
    mount_token(&server, "tok-1", 1).await;
    Mock::given(method("POST"))
        .and(path("/voice/conversation"))
        .and(bearer_token("tok-1"))
        .and(header("content-type", "application/json"))
        .respond_with(created())
        .expect(1)
        .mount(&server)
        .await;

    let created = client(&server)
        .create_conversation(&conversation())
        .await
        .unwrap();
    assert_eq!(created.tracking_id, "conv-1");

    let requests = server.received_requests().await.unwrap();
    let create = requests
        .iter()
        .find(|r| r.url.path() == "/voice/conversation")
        .unwrap();
    assert_eq!(
        create.body_json::<Value>().unwrap(),
        json!({
            "from": "AcmeOps",
            "to": {"phone": "+306900000001"},
            "dialPlan": {"verbs": [
                {"type": "SAY",
                 "message": {"text": "Server room 2 is flooding", "language": "en-US", "gender": "female"},
                 "bargeIn": true},
                {"type": "PLAY", "fileURL": "https://cdn.example.com/beep.wav", "bargeIn": false},
                {"type": "COLLECT", "eventUrl": "https://gw.example.com/routee/collect?s=abc&t=1",
                 "maxDigits": 1, "submitOnHash": false},
                {"type": "PAUSE", "duration": 10}
            ]},
            "callback": {"url": "https://gw.example.com/routee/status?s=abc", "strategy": "OnChange"},
            "hangupDelay": 30,
            "maxDuration": 300
        })
    );
}

#[tokio::test]
async fn control_call_puts_the_action_on_the_percent_encoded_message_id() {
    let server = MockServer::start().await;
    mount_token(&server, "tok", 1).await;
    Mock::given(method("PUT"))
        .and(path("/voice/conversation/msg%2F1%20x"))
        .and(wiremock::matchers::body_json(json!({"action": "hangup"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messageId": "msg/1 x", "message": "ok", "createdAt": "2026-01-01T10:00:00Z"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/voice/conversation/msg-2"))
        .and(wiremock::matchers::body_json(json!({"action": "reject"})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);

    client
        .control_call("msg/1 x", CallAction::Hangup)
        .await
        .unwrap();
    client
        .control_call("msg-2", CallAction::Reject)
        .await
        .unwrap();
    let err = client
        .control_call("..", CallAction::Hangup)
        .await
        .unwrap_err();
    assert!(matches!(err, RouteeError::Invalid { .. }), "{err:?}");
}

#[tokio::test]
async fn dial_tracking_parses_statuses_leniently_and_ignores_unknown_fields() {
    let server = MockServer::start().await;
    mount_token(&server, "tok", 1).await;
    mount_tracking(&server, 1).await;

    let tracking = client(&server).dial_tracking("conv-1").await.unwrap();
    assert_eq!(tracking.content.len(), 1);
    let leg = &tracking.content[0];
    assert_eq!(leg.message_id.as_deref(), Some("msg-1"));
    assert_eq!(leg.status.status, CallStatus::NoAnswer);
    assert_eq!(leg.collected_tones.as_deref(), Some("1"));
    assert_eq!(leg.duration, Some(12.0));
    assert_eq!(leg.answered_by.as_deref(), Some("HUMAN"));
}

#[tokio::test]
async fn refused_credentials_are_bad_credentials_and_not_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "unauthorized", "error_description": "Bad credentials"
        })))
        .expect(1)
        .mount(&server)
        .await;
    mount_tracking(&server, 0).await;

    let err = client(&server).dial_tracking("conv-1").await.unwrap_err();
    let RouteeError::BadCredentials { status, message } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((*status, message.as_str()), (401, "Bad credentials"));
    assert!(!err.retryable());
    assert!(!err.may_have_been_applied());
}

#[tokio::test]
async fn a_failing_token_endpoint_is_retryable_and_nothing_was_applied() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "5"))
        .expect(1)
        .mount(&server)
        .await;
    mount_tracking(&server, 0).await;

    let err = client(&server)
        .create_conversation(&conversation())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RouteeError::TokenUnavailable { .. }),
        "{err:?}"
    );
    assert!(err.retryable());
    assert!(!err.may_have_been_applied());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
    assert_eq!(err.status(), Some(503));
}

#[tokio::test]
async fn neither_the_token_nor_the_secret_appear_in_errors_or_debug_output() {
    let server = MockServer::start().await;
    mount_token(&server, "tok-abc123", 1).await;
    Mock::given(method("GET"))
        .and(path(TRACKING_PATH))
        .respond_with(api_error(
            400,
            "400000000",
            &format!("Bearer tok-abc123 with secret {APP_SECRET} is odd"),
        ))
        .mount(&server)
        .await;
    let client = client(&server);

    let err = client.dial_tracking("conv-1").await.unwrap_err();
    let said = everything_said_by(&err);
    assert!(said.contains("[redacted]"), "{said}");
    assert!(!said.contains("tok-abc123"), "{said}");
    assert!(!said.contains(APP_SECRET), "{said}");

    let debug = format!("{client:?}");
    assert!(debug.contains(APP_ID));
    assert!(
        !debug.contains(APP_SECRET) && !debug.contains("tok-abc123"),
        "{debug}"
    );
}

#[tokio::test]
async fn phone_numbers_and_url_signatures_in_routee_errors_are_masked() {
    // Routee echoes what it refused: a callee's number in the message and the
    // properties, and our signed callback URL. Errors are logged as they read.
    let server = MockServer::start().await;
    mount_token(&server, "tok-1", 1).await;
    Mock::given(method("GET"))
        .and(path(TRACKING_PATH))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": "400013000",
            "developerMessage": "Cannot call +306912345678 (or 306912345679): eventUrl https://gw.example.com/routee/status/a/b?sig=1764770000.SGVsbG8tc2lnbmF0dXJlLXRoYXQtbXVzdC1ub3QtbGVhaw rejected",
            "properties": {"to.phone": "+44 7700 900123", "callback": "https://gw.example.com/x?turn=1&sig=abcDEF_123-xyz&b=2"}
        })))
        .mount(&server)
        .await;
    let err = client(&server).dial_tracking("conv-1").await.unwrap_err();
    let said = everything_said_by(&err);
    for secret in [
        "+306912345678",
        "306912345679",
        "7700 900123",
        "SGVsbG8tc2lnbmF0dXJlLXRoYXQtbXVzdC1ub3QtbGVhaw",
        "abcDEF_123-xyz",
    ] {
        assert!(!said.contains(secret), "{secret} in {said}");
    }
    assert!(
        said.contains("+3069****5678"),
        "masked, not removed: {said}"
    );
    assert!(said.contains("sig=[redacted]"), "{said}");
    assert!(
        said.contains("400013000") || said.contains("Cannot call"),
        "{said}"
    );
}
