//! HTTP fakes of the two upstreams, and the baseline handlers.
//!
//! - **Voiceflow**: every `interact` answers the same small turn (a sentence, a
//!   two-button choice, a no-reply timeout) after a fixed latency, so the
//!   conversation never ends and a call can be driven turn after turn.
//! - **Routee**: a token endpoint and a `POST /voice/conversation` that accepts
//!   every call and never calls back: the load generator plays the carrier's
//!   part (status callbacks, key presses), so nothing else writes to a call.
//! - **Baselines**: the least a handler can do for the same request: the turn
//!   baseline makes the same Voiceflow call and answers a fixed dialplan (no
//!   store, no signature); the status baseline does one Redis round trip.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// One Voiceflow turn: what a small menu step of a real assistant returns.
const TURN_TRACES: &str = r#"[
 {"type":"speak","payload":{"type":"message","message":"You have a new ticket: server room 2 is flooding. Please accept or reject it."},"time":1700000000000},
 {"type":"choice","payload":{"buttons":[
   {"name":"Accept","request":{"type":"path-accept","payload":{"label":"Accept"}}},
   {"name":"Reject","request":{"type":"path-reject","payload":{"label":"Reject"}}}]},"time":1700000000000},
 {"type":"no-reply","payload":{"timeout":10},"time":1700000000000}
]"#;

/// The baseline's answer: about what the gateway renders for [`TURN_TRACES`].
const BASELINE_DIALPLAN: &str = r#"{"verbs":[{"type":"SAY","message":"You have a new ticket: server room 2 is flooding. Please accept or reject it.","language":"en-US","bargeIn":true},{"type":"SAY","message":"Press 1 for Accept. Press 2 for Reject.","language":"en-US","bargeIn":true},{"type":"PAUSE","duration":10},{"type":"COLLECT","eventUrl":"http://127.0.0.1/next","submitOnHash":true}]}"#;

async fn serve(router: Router) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(url)
}

/// The fake Voiceflow runtime.
#[derive(Clone)]
pub struct FakeVoiceflow {
    pub url: String,
    latency_ms: Arc<AtomicU64>,
}

impl FakeVoiceflow {
    pub async fn start(latency: Duration) -> anyhow::Result<Self> {
        let latency_ms = Arc::new(AtomicU64::new(0));
        let router = Router::new()
            .route("/state/user/{user}/interact", post(interact))
            // No stored state: the gateway's no-reply turn run ahead is not
            // run (one fast GET per turn that asks for input with a timeout).
            .route("/state/user/{user}", get(no_state))
            .with_state(Arc::clone(&latency_ms));
        let vf = Self {
            url: serve(router).await?,
            latency_ms,
        };
        vf.set_latency(latency);
        Ok(vf)
    }

    /// Every later answer comes after `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.latency_ms.store(
            u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

async fn interact(State(latency_ms): State<Arc<AtomicU64>>) -> Response {
    let ms = latency_ms.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ([(header::CONTENT_TYPE, "application/json")], TURN_TRACES).into_response()
}

async fn no_state() -> Response {
    axum::Json(json!({})).into_response()
}

/// The fake Routee: accepts every call, calls nobody back.
#[derive(Clone)]
pub struct FakeRoutee {
    pub url: String,
}

impl FakeRoutee {
    pub async fn start() -> anyhow::Result<Self> {
        let router = Router::new()
            .route("/oauth/token", post(token))
            .route("/voice/conversation", post(create))
            .route("/voice/conversation/{id}", put(control))
            .route("/voice/tracking/conversation/{id}", get(tracking));
        Ok(Self {
            url: serve(router).await?,
        })
    }
}

async fn token() -> Response {
    axum::Json(json!({"access_token": uuid::Uuid::new_v4().to_string(), "token_type": "Bearer", "expires_in": 3600}))
        .into_response()
}

async fn create() -> Response {
    axum::Json(json!({"trackingId": uuid::Uuid::new_v4().to_string()})).into_response()
}

async fn control() -> StatusCode {
    StatusCode::OK
}

async fn tracking() -> StatusCode {
    StatusCode::NOT_FOUND
}

/// The baseline handlers, on their own listener in the same process.
pub struct Baseline {
    pub url: String,
}

struct BaseState {
    http: reqwest::Client,
    interact_base: String,
    redis: redis::aio::ConnectionManager,
}

impl Baseline {
    pub async fn start(voiceflow: &FakeVoiceflow, redis_url: &str) -> anyhow::Result<Self> {
        // The same client settings the gateway's Voiceflow client uses that matter
        // here: a pooled HTTP/1.1 client with timeouts.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()?;
        // The same kind of Redis connection as the gateway's store: one
        // multiplexed ConnectionManager.
        let redis = redis::Client::open(redis_url)?
            .get_connection_manager()
            .await?;
        let state = Arc::new(BaseState {
            http,
            interact_base: format!("{}/state/user", voiceflow.url),
            redis,
        });
        let router = Router::new()
            .route(
                "/baseline/collect/{callout}/{call}/{turn}",
                post(base_collect),
            )
            .route("/baseline/status/{callout}/{call}", post(base_status))
            .with_state(state);
        Ok(Self {
            url: serve(router).await?,
        })
    }
}

async fn base_collect(
    State(s): State<Arc<BaseState>>,
    Path((_callout, call, _turn)): Path<(String, String, u32)>,
    body: Bytes,
) -> Response {
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let digits = event
        .get("collectedTones")
        .and_then(Value::as_str)
        .unwrap_or("");
    let action = if digits == "1" {
        json!({"type": "path-accept", "payload": {"label": "Accept"}})
    } else {
        json!({"type": "text", "payload": digits})
    };
    let answer = s
        .http
        .post(format!("{}/{call}/interact", s.interact_base))
        .header(header::AUTHORIZATION, "VF.DM.bench")
        .header("versionID", "production")
        .json(&json!({"action": action, "config": {"tts": false, "stripSSML": true}}))
        .send()
        .await;
    let traces = match answer {
        Ok(r) => r.bytes().await.ok(),
        Err(_) => None,
    };
    // Parse the traces as the gateway must, so both sides pay for it.
    let parsed: Option<Value> = traces.and_then(|b| serde_json::from_slice(&b).ok());
    if parsed.is_none() {
        return StatusCode::BAD_GATEWAY.into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        BASELINE_DIALPLAN,
    )
        .into_response()
}

async fn base_status(
    State(s): State<Arc<BaseState>>,
    Path((_callout, call)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let cb: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let status = cb
        .pointer("/status/name")
        .and_then(Value::as_str)
        .unwrap_or("Unknown")
        .to_owned();
    let mut conn = s.redis.clone();
    let stored: redis::RedisResult<i64> = redis::cmd("HSET")
        .arg(format!("baseline:call:{call}"))
        .arg("status")
        .arg(status)
        .query_async(&mut conn)
        .await;
    match stored {
        Ok(_) => axum::Json(json!({"ok": true})).into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}
