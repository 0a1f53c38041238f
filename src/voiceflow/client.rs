//! The Voiceflow Dialog Manager API client: conversation turns (`interact`), user
//! state and variables, legacy transcripts, and what assistant registration needs
//! (a key/version probe and the version export).
//!
//! Credentials belong to an assistant, not to the gateway, so they are passed on
//! every call as [`VoiceflowCredentials`]. The key goes out raw in `Authorization`
//! (no `Bearer`, reference §1) and the version alias or id in `versionID` on
//! runtime calls.
//!
//! # Retries
//!
//! `interact` is never retried: a turn is not idempotent, and a replayed key press
//! would advance the dialog twice (reference §9.3). Its timeout is the caller's
//! deadline (capped by the client timeout), because the eventUrl answer to Routee
//! has to leave within 3 s whatever Voiceflow does. The idempotent calls (state,
//! variables, the transcript upsert, probe, export) are retried once, after a
//! short jittered pause, when the connection failed or Voiceflow answered 5xx.
//!
//! Error messages are built from Voiceflow's answers with the API key cut out, so
//! no [`VoiceflowError`] can carry it into a log.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use reqwest::{RequestBuilder, StatusCode};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::types::{InteractConfig, Request, Trace};
use crate::config::Secret;
use crate::net::{UpstreamResult, http_client, record_upstream};

const UPSTREAM: &str = "voiceflow";
const OP_INTERACT: &str = "interact";
const OP_GET_STATE: &str = "get_state";
const OP_DELETE_STATE: &str = "delete_state";
const OP_PUT_STATE: &str = "put_state";
const OP_INTERACT_STREAM: &str = "interact_stream";
const OP_PATCH_VARIABLES: &str = "patch_variables";
const OP_SAVE_TRANSCRIPT: &str = "save_transcript";
const OP_PROBE: &str = "probe";
const OP_EXPORT: &str = "export";

/// The runtime refuses request bodies over 1 MB; its answers stay well below this.
const MAX_BODY_BYTES: usize = 4 << 20;
/// How much of a version export is read. Exports hold every diagram and can be
/// far larger, but `project` and `version` come first, and the reader below
/// stops as soon as it has both.
const MAX_EXPORT_BYTES: usize = 4 << 20;
const MAX_MESSAGE_CHARS: usize = 300;
/// Debug traces can be long (stack dumps, prompts): logs get the start.
const MAX_DEBUG_TRACE_CHARS: usize = 500;
/// Pause before the single retry of an idempotent call.
const RETRY_PAUSE_MS: std::ops::RangeInclusive<u64> = 100..=250;

/// Where Voiceflow is.
#[derive(Debug, Clone)]
pub struct VoiceflowClientConfig {
    /// Dialog Manager runtime, e.g. `https://general-runtime.voiceflow.com`.
    pub runtime_url: Url,
    /// Project API (exports, transcripts), e.g. `https://api.voiceflow.com`.
    pub api_url: Url,
    pub connect_timeout: Duration,
    /// Total time for one request; `interact` may ask for less.
    pub timeout: Duration,
}

/// One assistant's credentials. `Debug` never shows the key.
#[derive(Debug, Clone)]
pub struct VoiceflowCredentials {
    /// A Dialog Manager API key (`VF.DM.…`).
    pub api_key: Secret<String>,
    /// `production`, `development`, or a 24-hex version id.
    pub version: String,
}

impl VoiceflowCredentials {
    pub fn new(api_key: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            api_key: Secret::new(api_key.into()),
            version: version.into(),
        }
    }
}

/// Body of the legacy `PUT /v2/transcripts` (reference §7.1). Optional fields are
/// sent only when set; `unread: true` is always added.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranscriptRequest {
    #[serde(rename = "projectID")]
    pub project_id: String,
    /// The real version id: Voiceflow's guide says aliases are not accepted here.
    #[serde(rename = "versionID")]
    pub version_id: String,
    /// Should equal the Dialog Manager `userID` of the conversation.
    #[serde(rename = "sessionID")]
    pub session_id: String,
    pub device: String,
    pub os: String,
    pub browser: String,
    pub user: TranscriptUser,
    #[serde(rename = "reportTags", skip_serializing_if = "Option::is_none")]
    pub report_tags: Option<Vec<String>>,
}

/// Who the transcript is with. `name` is shown in Voiceflow's UI: pass a masked
/// phone number or a contact name, never a full number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranscriptUser {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// What registration needs to know about an assistant, from its version export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub project_id: String,
    pub project_name: Option<String>,
    /// The real version id the alias resolved to.
    pub version_id: String,
    pub version_name: Option<String>,
    /// `chat` or `voice`, when the export says.
    pub project_type: Option<String>,
    pub platform: Option<String>,
}

/// A failed Voiceflow request. Messages never contain the API key.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VoiceflowError {
    /// 401: the key is wrong, revoked, or missing.
    #[error("Voiceflow refused the API key")]
    Unauthorized,

    /// The version or alias cannot be used: 404 (e.g. `development` never run),
    /// or a 400 saying the alias cannot be resolved or the project is not published.
    #[error("Voiceflow cannot use that version: {message}")]
    VersionNotFound { message: String },

    /// 429: the per-key rate limit.
    #[error("Voiceflow's rate limit was hit")]
    RateLimited { retry_after: Option<Duration> },

    /// Any other error status.
    #[error("Voiceflow answered HTTP {status}: {message}")]
    Upstream { status: u16, message: String },

    /// No complete answer within the timeout or deadline. The request may have
    /// reached Voiceflow (a turn may have run).
    #[error("Voiceflow did not answer in time")]
    Timeout {
        #[source]
        source: Arc<reqwest::Error>,
    },

    /// The connection could not be made: the request never reached Voiceflow.
    #[error("could not connect to Voiceflow")]
    Connect {
        #[source]
        source: Arc<reqwest::Error>,
    },

    /// The connection broke after it was made; the request may have reached Voiceflow.
    #[error("the connection to Voiceflow failed mid-request")]
    Transport {
        #[source]
        source: Arc<reqwest::Error>,
    },

    /// A 2xx answer we cannot read.
    #[error("Voiceflow answered a body we cannot read: {reason}")]
    Decode {
        reason: String,
        #[source]
        source: Option<Arc<serde_json::Error>>,
    },

    /// We refused to send the request (an unusable id, key or configuration).
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

impl VoiceflowError {
    /// Whether the same request may succeed later: 429, 5xx, 408, timeouts and
    /// connection failures. Not a licence to retry `interact`: see
    /// [`Self::may_have_been_applied`].
    pub fn retryable(&self) -> bool {
        match self {
            VoiceflowError::RateLimited { .. }
            | VoiceflowError::Timeout { .. }
            | VoiceflowError::Connect { .. }
            | VoiceflowError::Transport { .. } => true,
            VoiceflowError::Upstream { status, .. } => *status >= 500 || *status == 408,
            VoiceflowError::Unauthorized
            | VoiceflowError::VersionNotFound { .. }
            | VoiceflowError::Decode { .. }
            | VoiceflowError::Invalid { .. } => false,
        }
    }

    /// How long Voiceflow asked us to wait, when it did (429 `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            VoiceflowError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// Whether Voiceflow may have run the request despite the error. For
    /// `interact` this means the turn may have advanced the dialog: re-sending the
    /// same input could apply it twice.
    pub fn may_have_been_applied(&self) -> bool {
        match self {
            VoiceflowError::Timeout { .. }
            | VoiceflowError::Transport { .. }
            | VoiceflowError::Decode { .. } => true,
            VoiceflowError::Upstream { status, .. } => *status >= 500 || *status == 408,
            VoiceflowError::Unauthorized
            | VoiceflowError::VersionNotFound { .. }
            | VoiceflowError::RateLimited { .. }
            | VoiceflowError::Connect { .. }
            | VoiceflowError::Invalid { .. } => false,
        }
    }
}

/// The Voiceflow client. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct VoiceflowClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    runtime_url: Url,
    api_url: Url,
    timeout: Duration,
}

impl fmt::Debug for VoiceflowClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VoiceflowClient")
            .field("runtime_url", &self.inner.runtime_url.as_str())
            .field("api_url", &self.inner.api_url.as_str())
            .field("timeout", &self.inner.timeout)
            .finish()
    }
}

/// Whether a call may be sent a second time after a connect error or a 5xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    Never,
    OnceIfSafe,
}

#[derive(Serialize)]
struct InteractBody<'a> {
    action: Value,
    config: &'a InteractConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<StateBody<'a>>,
}

#[derive(Serialize)]
struct StateBody<'a> {
    variables: &'a Map<String, Value>,
}

#[derive(Serialize)]
struct TranscriptBody<'a> {
    #[serde(flatten)]
    transcript: &'a TranscriptRequest,
    unread: bool,
}

/// The body of an answer, as much of it as was read, and whether it was cut.
struct Answer {
    body: Vec<u8>,
    truncated: bool,
}

impl VoiceflowClient {
    /// Builds the client. Fails on URLs that are not http(s) bases or if the HTTP
    /// client cannot be built.
    pub fn new(cfg: VoiceflowClientConfig) -> Result<Self, VoiceflowError> {
        check_base_url("Voiceflow runtime URL", &cfg.runtime_url)?;
        check_base_url("Voiceflow API URL", &cfg.api_url)?;
        let http =
            http_client(cfg.connect_timeout, cfg.timeout).map_err(|e| VoiceflowError::Invalid {
                what: "HTTP client",
                reason: e.to_string(),
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                runtime_url: cfg.runtime_url,
                api_url: cfg.api_url,
                timeout: cfg.timeout,
            }),
        })
    }

    /// `POST {runtime}/state/user/{userID}/interact`: runs one turn and returns
    /// its traces. `variables`, when given, are merged into the user's state before
    /// the turn runs (the launch turn's callout variables). The request times out
    /// after `min(deadline, client timeout)` and is never retried.
    pub async fn interact(
        &self,
        creds: &VoiceflowCredentials,
        user_id: &str,
        request: &Request,
        variables: Option<&Map<String, Value>>,
        config: &InteractConfig,
        deadline: Duration,
    ) -> Result<Vec<Trace>, VoiceflowError> {
        self.interact_raw(creds, user_id, request, variables, config, deadline)
            .await
            .map(|(_, traces)| traces)
    }

    /// [`Self::interact`], also returning Voiceflow's answer as it came (the
    /// conversation tools show it next to what the gateway made of it).
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id, request = request.label()))]
    pub async fn interact_raw(
        &self,
        creds: &VoiceflowCredentials,
        user_id: &str,
        request: &Request,
        variables: Option<&Map<String, Value>>,
        config: &InteractConfig,
        deadline: Duration,
    ) -> Result<(Value, Vec<Trace>), VoiceflowError> {
        check_segment("Voiceflow user id", user_id)?;
        let url = endpoint(
            &self.inner.runtime_url,
            &["state", "user", user_id, "interact"],
        )?;
        let headers = runtime_headers(creds)?;
        let body = InteractBody {
            action: request.to_json(),
            config,
            state: variables.map(|variables| StateBody { variables }),
        };
        let timeout = deadline.min(self.inner.timeout);
        let answer = self
            .send(OP_INTERACT, creds, Retry::Never, MAX_BODY_BYTES, || {
                self.inner
                    .http
                    .post(url.clone())
                    .headers(headers.clone())
                    .json(&body)
                    .timeout(timeout)
            })
            .await?;
        let json = parse_json(&answer)?;
        let is_trace_list = json.is_array() || json.get("trace").is_some_and(Value::is_array);
        if !is_trace_list {
            return Err(VoiceflowError::Decode {
                reason: "the answer is JSON but not a list of traces".into(),
                source: None,
            });
        }
        let traces = Trace::parse_response(&json);
        log_traces(&traces);
        Ok((json, traces))
    }

    /// `POST {runtime}/v2/project/{projectID}/user/{userID}/interact/stream`
    /// (reference §3.2): one turn as Server-Sent Events, parsed by
    /// `eventsource-stream`. Each `trace` event is one whole trace (completion
    /// events are not asked for, so no trace arrives in pieces); the stream
    /// ends after `end`. A connection that closes without `end`, or breaks, ends
    /// it with an error; an event that is not a trace is yielded as
    /// [`StreamEvent::Malformed`] and the stream goes on. `deadline` bounds the
    /// whole turn (capped by the client timeout); never retried.
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id, request = request.label()))]
    pub async fn interact_stream(
        &self,
        creds: &VoiceflowCredentials,
        project_id: &str,
        user_id: &str,
        request: &Request,
        deadline: Duration,
    ) -> Result<
        impl futures::Stream<Item = Result<StreamEvent, VoiceflowError>> + Send + use<>,
        VoiceflowError,
    > {
        use eventsource_stream::Eventsource;
        check_segment("Voiceflow project id", project_id)?;
        check_segment("Voiceflow user id", user_id)?;
        let mut url = endpoint(
            &self.inner.runtime_url,
            &[
                "v2", "project", project_id, "user", user_id, "interact", "stream",
            ],
        )?;
        url.query_pairs_mut()
            .append_pair("environment", creds.version.trim())
            .append_pair("completion_events", "false");
        let mut headers = auth_headers(creds)?;
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        let body = serde_json::json!({ "action": request.to_json() });
        let started = Instant::now();
        let sent = self
            .inner
            .http
            .post(url)
            .headers(headers)
            .json(&body)
            .timeout(deadline.min(self.inner.timeout))
            .send()
            .await
            .map_err(send_error);
        let outcome = match &sent {
            Ok(r) => UpstreamResult::Status(r.status().as_u16()),
            Err(VoiceflowError::Timeout { .. }) => UpstreamResult::Timeout,
            Err(_) => UpstreamResult::Error,
        };
        record_upstream(UPSTREAM, OP_INTERACT_STREAM, started, outcome);
        let response = sent?;
        let status = response.status();
        if !status.is_success() {
            let headers = response.headers().clone();
            let (body, _) = read_body(response, 64 << 10).await?;
            return Err(status_error(status, &headers, &body, creds));
        }
        let events = response.bytes_stream().eventsource();
        Ok(futures::stream::unfold(Some(events), |events| async move {
            let mut events = events?;
            loop {
                let item = match futures::StreamExt::next(&mut events).await {
                    None => Err(VoiceflowError::Decode {
                        reason: "the stream ended without an `end` event".into(),
                        source: None,
                    }),
                    Some(Err(eventsource_stream::EventStreamError::Transport(e))) => {
                        Err(send_error(e))
                    }
                    Some(Err(e)) => Ok(StreamEvent::Malformed(e.to_string())),
                    Some(Ok(event)) => match event.event.as_str() {
                        "end" => return None,
                        "trace" => Ok(stream_trace(&event.data)),
                        // `state`, and anything newer: nothing to play.
                        _ => continue,
                    },
                };
                let next = item.is_ok().then_some(events);
                return Some((item, next));
            }
        }))
    }

    /// `GET {runtime}/state/user/{userID}`: the stored state (`{}` when none).
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    pub async fn get_state(
        &self,
        creds: &VoiceflowCredentials,
        user_id: &str,
    ) -> Result<Value, VoiceflowError> {
        check_segment("Voiceflow user id", user_id)?;
        let url = endpoint(&self.inner.runtime_url, &["state", "user", user_id])?;
        let headers = runtime_headers(creds)?;
        let answer = self
            .send(
                OP_GET_STATE,
                creds,
                Retry::OnceIfSafe,
                MAX_BODY_BYTES,
                || self.inner.http.get(url.clone()).headers(headers.clone()),
            )
            .await?;
        parse_json(&answer)
    }

    /// `PUT {runtime}/state/user/{userID}`: replaces the user's whole state
    /// with `state` (`{stack, storage, variables}`, see [`restorable_state`]).
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    pub async fn put_state(
        &self,
        creds: &VoiceflowCredentials,
        user_id: &str,
        state: &serde_json::value::RawValue,
    ) -> Result<(), VoiceflowError> {
        check_segment("Voiceflow user id", user_id)?;
        let url = endpoint(&self.inner.runtime_url, &["state", "user", user_id])?;
        let headers = runtime_headers(creds)?;
        self.send(
            OP_PUT_STATE,
            creds,
            Retry::OnceIfSafe,
            MAX_BODY_BYTES,
            || {
                self.inner
                    .http
                    .put(url.clone())
                    .headers(headers.clone())
                    .json(state)
            },
        )
        .await?;
        Ok(())
    }

    /// `DELETE {runtime}/state/user/{userID}`: forgets the user's conversation.
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    pub async fn delete_state(
        &self,
        creds: &VoiceflowCredentials,
        user_id: &str,
    ) -> Result<(), VoiceflowError> {
        check_segment("Voiceflow user id", user_id)?;
        let url = endpoint(&self.inner.runtime_url, &["state", "user", user_id])?;
        let headers = runtime_headers(creds)?;
        self.send(
            OP_DELETE_STATE,
            creds,
            Retry::OnceIfSafe,
            MAX_BODY_BYTES,
            || self.inner.http.delete(url.clone()).headers(headers.clone()),
        )
        .await?;
        Ok(())
    }

    /// `PATCH {runtime}/state/user/{userID}/variables` with the flat object:
    /// merges variables into the state and returns the state Voiceflow answers.
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id, count = variables.len()))]
    pub async fn patch_variables(
        &self,
        creds: &VoiceflowCredentials,
        user_id: &str,
        variables: &Map<String, Value>,
    ) -> Result<Value, VoiceflowError> {
        check_segment("Voiceflow user id", user_id)?;
        let url = endpoint(
            &self.inner.runtime_url,
            &["state", "user", user_id, "variables"],
        )?;
        let headers = runtime_headers(creds)?;
        let answer = self
            .send(
                OP_PATCH_VARIABLES,
                creds,
                Retry::OnceIfSafe,
                MAX_BODY_BYTES,
                || {
                    self.inner
                        .http
                        .patch(url.clone())
                        .headers(headers.clone())
                        .json(variables)
                },
            )
            .await?;
        parse_json_or_null(&answer)
    }

    /// `PUT {api}/v2/transcripts`: creates or updates the transcript of a session
    /// (an upsert on project + session) and returns Voiceflow's record.
    #[tracing::instrument(level = "debug", skip_all, fields(session_id = %transcript.session_id))]
    pub async fn save_transcript(
        &self,
        creds: &VoiceflowCredentials,
        transcript: &TranscriptRequest,
    ) -> Result<Value, VoiceflowError> {
        let url = endpoint(&self.inner.api_url, &["v2", "transcripts"])?;
        let headers = auth_headers(creds)?;
        let body = TranscriptBody {
            transcript,
            unread: true,
        };
        let answer = self
            .send(
                OP_SAVE_TRANSCRIPT,
                creds,
                Retry::OnceIfSafe,
                MAX_BODY_BYTES,
                || {
                    self.inner
                        .http
                        .put(url.clone())
                        .headers(headers.clone())
                        .json(&body)
                },
            )
            .await?;
        parse_json_or_null(&answer)
    }

    /// Checks that the key and version can run conversations: reads the state of a
    /// fresh random user, which goes through the runtime's key check and version
    /// alias resolution without starting a conversation.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn probe(&self, creds: &VoiceflowCredentials) -> Result<(), VoiceflowError> {
        let user_id = format!("ivr-gateway-probe-{}", uuid::Uuid::new_v4().simple());
        let url = endpoint(&self.inner.runtime_url, &["state", "user", &user_id])?;
        let headers = runtime_headers(creds)?;
        self.send(OP_PROBE, creds, Retry::OnceIfSafe, MAX_BODY_BYTES, || {
            self.inner.http.get(url.clone()).headers(headers.clone())
        })
        .await?;
        Ok(())
    }

    /// `GET {api}/v2/versions/{version}/export`: the project and version the
    /// credentials point at. An alias (`production`, `development`) needs
    /// `project_id` (sent as the `projectid` header). Reads at most a few MiB.
    #[tracing::instrument(level = "debug", skip_all, fields(version = %creds.version))]
    pub async fn export_version(
        &self,
        creds: &VoiceflowCredentials,
        project_id: Option<&str>,
    ) -> Result<VersionInfo, VoiceflowError> {
        check_segment("Voiceflow version", &creds.version)?;
        let url = endpoint(
            &self.inner.api_url,
            &["v2", "versions", &creds.version, "export"],
        )?;
        let mut headers = auth_headers(creds)?;
        if let Some(id) = project_id {
            let value = HeaderValue::from_str(id.trim()).map_err(|_| VoiceflowError::Invalid {
                what: "Voiceflow project id",
                reason: "it contains characters not allowed in an HTTP header".into(),
            })?;
            headers.insert(HeaderName::from_static("projectid"), value);
        }
        let answer = self
            .send(
                OP_EXPORT,
                creds,
                Retry::OnceIfSafe,
                MAX_EXPORT_BYTES,
                || self.inner.http.get(url.clone()).headers(headers.clone()),
            )
            .await?;
        version_info(&answer)
    }

    /// Sends a request built by `build` (called per attempt), returns the 2xx
    /// answer or the typed error; retries once when `retry` allows and the failure
    /// is a connect error or a 5xx.
    async fn send(
        &self,
        op: &'static str,
        creds: &VoiceflowCredentials,
        retry: Retry,
        max_bytes: usize,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Answer, VoiceflowError> {
        let first = self.send_once(op, creds, max_bytes, build()).await;
        match first {
            Err(e) if retry == Retry::OnceIfSafe && worth_one_retry(&e) => {
                let pause = Duration::from_millis(rand::rng().random_range(RETRY_PAUSE_MS));
                tracing::debug!(op, error = %e, pause_ms = pause.as_millis() as u64, "retrying Voiceflow once");
                tokio::time::sleep(pause).await;
                self.send_once(op, creds, max_bytes, build()).await
            }
            other => other,
        }
    }

    async fn send_once(
        &self,
        op: &'static str,
        creds: &VoiceflowCredentials,
        max_bytes: usize,
        request: RequestBuilder,
    ) -> Result<Answer, VoiceflowError> {
        let started = Instant::now();
        let result = async {
            let response = request.send().await.map_err(send_error)?;
            let status = response.status();
            let headers = response.headers().clone();
            // Error bodies are only read for their message.
            let limit = if status.is_success() {
                max_bytes
            } else {
                64 << 10
            };
            let (body, truncated) = read_body(response, limit).await?;
            Ok((status, headers, Answer { body, truncated }))
        }
        .await;
        let outcome = match &result {
            Ok((status, ..)) => UpstreamResult::Status(status.as_u16()),
            Err(VoiceflowError::Timeout { .. }) => UpstreamResult::Timeout,
            Err(_) => UpstreamResult::Error,
        };
        record_upstream(UPSTREAM, op, started, outcome);
        tracing::debug!(
            op,
            status = result.as_ref().ok().map(|(s, ..)| s.as_u16()),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Voiceflow request finished"
        );
        let (status, headers, answer) = result?;
        if status.is_success() {
            Ok(answer)
        } else {
            Err(status_error(status, &headers, &answer.body, creds))
        }
    }
}

/// One event of a streamed turn ([`VoiceflowClient::interact_stream`]).
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// A whole trace.
    Trace(Trace),
    /// A `trace` event whose data is not a trace (not JSON, no `type`), or a
    /// frame the SSE parser refused: skipped, logged and counted by the caller.
    Malformed(String),
}

/// A `trace` event's data: the trace object itself (reference §3.2).
fn stream_trace(data: &str) -> StreamEvent {
    match serde_json::from_str::<Value>(data) {
        Ok(v) if v.get("type").is_some_and(Value::is_string) => {
            StreamEvent::Trace(Trace::parse(&v))
        }
        _ => StreamEvent::Malformed(crate::net::log_safe(data, MAX_MESSAGE_CHARS)),
    }
}

/// What `PUT /state/user/{userID}` takes back of a state `GET` read: only
/// `stack`, `storage` and `variables` (the runtime's schema allows no other
/// property, and every stack frame needs a `diagramID`). `None` for a state
/// that cannot be put back (`{}` when the user has none, a malformed one).
pub fn restorable_state(state: &Value) -> Option<Box<serde_json::value::RawValue>> {
    let stack = state.get("stack")?.as_array()?;
    if !stack
        .iter()
        .all(|frame| frame.get("diagramID").is_some_and(Value::is_string))
    {
        return None;
    }
    let part = |key: &str| {
        state
            .get(key)
            .filter(|v| v.is_object())
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new()))
    };
    let kept = serde_json::json!({
        "stack": stack,
        "storage": part("storage"),
        "variables": part("variables"),
    });
    serde_json::value::to_raw_value(&kept).ok()
}

fn worth_one_retry(e: &VoiceflowError) -> bool {
    match e {
        VoiceflowError::Connect { .. } => true,
        VoiceflowError::Upstream { status, .. } => *status >= 500,
        _ => false,
    }
}

/// The typed error for a non-2xx answer.
fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    creds: &VoiceflowCredentials,
) -> VoiceflowError {
    let message = || error_message(status, body, creds);
    match status.as_u16() {
        401 => VoiceflowError::Unauthorized,
        404 => VoiceflowError::VersionNotFound { message: message() },
        429 => VoiceflowError::RateLimited {
            retry_after: crate::net::retry_after(headers),
        },
        400 if says_version_unusable(&message()) => {
            VoiceflowError::VersionNotFound { message: message() }
        }
        code => VoiceflowError::Upstream {
            status: code,
            message: message(),
        },
    }
}

/// The runtime's 400 VErrors for an alias that cannot be resolved or a project
/// that was never published (reference §9.1).
fn says_version_unusable(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("not published")
        || m.contains("cannot resolve")
        || m.contains("version alias")
        || m.contains("model not found")
        || m.contains("missing versionid")
}

/// A one-line message from an error body: the VError `message`, the `data` of
/// the runtime's `{code, status, data}` errors, or the start of a text body.
fn error_message(status: StatusCode, body: &[u8], creds: &VoiceflowCredentials) -> String {
    let raw = match serde_json::from_slice::<Value>(body) {
        Ok(json) => {
            let text = |key: &str| json.get(key).and_then(Value::as_str).map(str::to_owned);
            text("message")
                .or_else(|| text("data"))
                .or_else(|| text("error"))
                .or_else(|| {
                    json.get("error")
                        .and_then(|e| e.get("message"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .or_else(|| text("status"))
                .unwrap_or_default()
        }
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let raw = if raw.trim().is_empty() {
        status.canonical_reason().unwrap_or("no message").to_owned()
    } else {
        raw
    };
    redact_keys(
        &crate::net::log_safe(&raw, MAX_MESSAGE_CHARS),
        creds.api_key.expose().trim(),
    )
}

/// Removes the key itself and anything that looks like a Dialog Manager key.
fn redact_keys(text: &str, key: &str) -> String {
    let mut out = if key.is_empty() {
        text.to_owned()
    } else {
        text.replace(key, "[redacted]")
    };
    while let Some(start) = out.find("VF.DM.") {
        let end = out[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .map_or(out.len(), |n| start + n);
        out.replace_range(start..end, "[redacted]");
    }
    out
}

fn log_traces(traces: &[Trace]) {
    for trace in traces {
        match trace {
            Trace::Debug { message } => {
                tracing::debug!(message = %crate::net::log_safe(message, MAX_DEBUG_TRACE_CHARS), "Voiceflow debug trace");
            }
            // The payload may hold anything the designer put there: only the kind.
            Trace::CustomAction(action) => {
                tracing::debug!(kind = %action.name, "Voiceflow custom action trace");
            }
            Trace::Internal { kind, .. } => {
                tracing::debug!(kind = %kind, "Voiceflow trace with nothing to render");
            }
            _ => {}
        }
    }
}

fn parse_json(answer: &Answer) -> Result<Value, VoiceflowError> {
    if answer.truncated {
        return Err(VoiceflowError::Decode {
            reason: "the answer is larger than the client reads".into(),
            source: None,
        });
    }
    serde_json::from_slice(&answer.body).map_err(|e| VoiceflowError::Decode {
        reason: format!("the answer is not JSON: {e}"),
        source: Some(Arc::new(e)),
    })
}

/// Like [`parse_json`], but an empty body is `null` (some writes answer nothing).
fn parse_json_or_null(answer: &Answer) -> Result<Value, VoiceflowError> {
    if answer.body.iter().all(u8::is_ascii_whitespace) && !answer.truncated {
        return Ok(Value::Null);
    }
    parse_json(answer)
}

/// Extracts [`VersionInfo`] from the head of an export, tolerating a body cut at
/// the size limit and ids under `_id` or `id`.
fn version_info(answer: &Answer) -> Result<VersionInfo, VoiceflowError> {
    let mut project = None;
    let mut version = None;
    let mut de = serde_json::Deserializer::from_slice(&answer.body);
    let parsed = ExportHead {
        project: &mut project,
        version: &mut version,
    }
    .deserialize(&mut de);
    // A cut body, or our early stop, ends the parse with an error; what matters is
    // whether both objects were read before it.
    let (Some(project), Some(version)) = (project, version) else {
        let reason = match parsed {
            Err(e) if !answer.truncated => format!("the export is not JSON: {e}"),
            _ => "the export has no `project` and `version` objects (in the part read)".into(),
        };
        return Err(VoiceflowError::Decode {
            reason,
            source: None,
        });
    };
    let text = |v: &Value, key: &str| match v.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let id = |v: &Value| text(v, "_id").or_else(|| text(v, "id"));
    let missing = |what: &str| VoiceflowError::Decode {
        reason: format!("the export names no {what}"),
        source: None,
    };
    Ok(VersionInfo {
        project_id: id(&project)
            .or_else(|| text(&version, "projectID"))
            .ok_or_else(|| missing("project id"))?,
        project_name: text(&project, "name"),
        version_id: id(&version).ok_or_else(|| missing("version id"))?,
        version_name: text(&version, "name"),
        project_type: text(&project, "type"),
        platform: text(&project, "platform"),
    })
}

/// Reads the top-level `project` and `version` of an export and stops as soon as
/// it has both, so the (possibly huge, possibly cut) rest is never parsed.
struct ExportHead<'a> {
    project: &'a mut Option<Value>,
    version: &'a mut Option<Value>,
}

/// The error that stops [`ExportHead`] early; never shown.
const EXPORT_HEAD_DONE: &str = "export head read";

impl<'de> DeserializeSeed<'de> for ExportHead<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ExportHead<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Voiceflow version export object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "project" => *self.project = Some(map.next_value()?),
                "version" => *self.version = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            if self.project.is_some() && self.version.is_some() {
                return Err(de::Error::custom(EXPORT_HEAD_DONE));
            }
        }
        Ok(())
    }
}

/// `Authorization: <raw key>` (marked sensitive so no HTTP-level log prints it).
fn auth_headers(creds: &VoiceflowCredentials) -> Result<HeaderMap, VoiceflowError> {
    let mut key = HeaderValue::from_str(creds.api_key.expose().trim()).map_err(|_| {
        VoiceflowError::Invalid {
            what: "Voiceflow API key",
            reason: "it contains characters not allowed in an HTTP header".into(),
        }
    })?;
    key.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, key);
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    Ok(headers)
}

/// [`auth_headers`] plus `versionID`, for the runtime.
fn runtime_headers(creds: &VoiceflowCredentials) -> Result<HeaderMap, VoiceflowError> {
    let mut headers = auth_headers(creds)?;
    let version = creds.version.trim();
    let value = HeaderValue::from_str(version)
        .ok()
        .filter(|_| !version.is_empty())
        .ok_or_else(|| VoiceflowError::Invalid {
            what: "Voiceflow version",
            reason: "it is empty or contains characters not allowed in an HTTP header".into(),
        })?;
    headers.insert(HeaderName::from_static("versionid"), value);
    Ok(headers)
}

/// Classifies a failure to get a response. A connect timeout is a connect error
/// (the request never left), so `is_connect` is checked before `is_timeout`.
fn send_error(e: reqwest::Error) -> VoiceflowError {
    let kind = crate::net::send_failure(&e);
    let source = Arc::new(e);
    match kind {
        crate::net::SendFailure::Connect => VoiceflowError::Connect { source },
        crate::net::SendFailure::Timeout => VoiceflowError::Timeout { source },
        crate::net::SendFailure::Transport => VoiceflowError::Transport { source },
    }
}

/// Reads at most `limit` bytes of the body; says whether there was more.
async fn read_body(
    response: reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), VoiceflowError> {
    crate::net::read_capped(response, limit)
        .await
        .map_err(send_error)
}

fn endpoint(base: &Url, segments: &[&str]) -> Result<Url, VoiceflowError> {
    crate::net::endpoint(base, segments).ok_or_else(|| VoiceflowError::Invalid {
        what: "Voiceflow URL",
        reason: "it cannot take a path".into(),
    })
}

fn check_base_url(what: &'static str, url: &Url) -> Result<(), VoiceflowError> {
    match crate::net::base_url_problem(url) {
        Some(reason) => Err(VoiceflowError::Invalid { what, reason }),
        None => Ok(()),
    }
}

fn check_segment(what: &'static str, id: &str) -> Result<(), VoiceflowError> {
    match crate::net::segment_problem(id) {
        Some(reason) => Err(VoiceflowError::Invalid {
            what,
            reason: reason.into(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(v: &str) -> Answer {
        Answer {
            body: v.as_bytes().to_vec(),
            truncated: false,
        }
    }

    #[test]
    fn keys_are_redacted_even_when_not_ours() {
        let creds = VoiceflowCredentials::new("VF.DM.abc.def", "production");
        let msg = error_message(
            StatusCode::BAD_REQUEST,
            br#"{"message": "key VF.DM.abc.def and VF.DM.other.key-1, bye"}"#,
            &creds,
        );
        assert_eq!(msg, "key [redacted] and [redacted], bye");
    }

    #[test]
    fn unpublished_and_unresolvable_versions_are_recognised() {
        for m in [
            "Voiceflow project was not published to production",
            "Cannot resolve version alias",
            "Cannot resolve project version, please verify that your API key is correct.",
        ] {
            assert!(says_version_unusable(m), "{m}");
        }
        assert!(!says_version_unusable("payload.intent is required"));
    }

    #[test]
    fn export_head_is_read_from_a_cut_body() {
        let body = r#"{"_version":"1.2","project":{"_id":"p1","name":"Escalation","type":"voice","platform":"webchat"},"version":{"_id":"v1","name":"Initial"},"diagrams":{"d":{"nodes":[1,2,"#;
        let info = version_info(&Answer {
            body: body.as_bytes().to_vec(),
            truncated: true,
        })
        .unwrap();
        assert_eq!(
            info,
            VersionInfo {
                project_id: "p1".into(),
                project_name: Some("Escalation".into()),
                version_id: "v1".into(),
                version_name: Some("Initial".into()),
                project_type: Some("voice".into()),
                platform: Some("webchat".into()),
            }
        );
    }

    #[test]
    fn export_without_ids_or_json_is_a_decode_error() {
        assert!(matches!(
            version_info(&answer(r#"{"project":{"name":"x"},"version":{}}"#)),
            Err(VoiceflowError::Decode { .. })
        ));
        assert!(matches!(
            version_info(&answer("<html>")),
            Err(VoiceflowError::Decode { .. })
        ));
        let info = version_info(&answer(
            r#"{"version":{"id":"v2","projectID":"p2"},"project":{}}"#,
        ))
        .unwrap();
        assert_eq!(
            (info.project_id.as_str(), info.version_id.as_str()),
            ("p2", "v2")
        );
    }

    #[test]
    fn a_stream_event_is_a_whole_trace_or_malformed() {
        assert_eq!(
            stream_trace(r#"{"type":"text","payload":{"message":"Hi."},"time":1}"#),
            StreamEvent::Trace(Trace::Text {
                message: "Hi.".into()
            })
        );
        for bad in ["{not json", "[]", r#"{"payload":{}}"#, ""] {
            assert!(
                matches!(stream_trace(bad), StreamEvent::Malformed(_)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_restorable_state_keeps_only_what_put_takes() {
        let got = restorable_state(&serde_json::json!({
            "stack": [{"diagramID": "d", "nodeID": "n"}],
            "storage": {"noReplies": 1},
            "variables": {"x": 1},
            "updatedAt": 5,
        }))
        .unwrap();
        let got: Value = serde_json::from_str(got.get()).unwrap();
        assert_eq!(
            got,
            serde_json::json!({
                "stack": [{"diagramID": "d", "nodeID": "n"}],
                "storage": {"noReplies": 1},
                "variables": {"x": 1},
            })
        );
        // No state yet, or a frame the runtime would refuse.
        assert!(restorable_state(&serde_json::json!({})).is_none());
        assert!(restorable_state(&serde_json::json!({"stack": [{"nodeID": "n"}]})).is_none());
        // Missing storage or variables: empty objects.
        let bare = restorable_state(&serde_json::json!({"stack": []})).unwrap();
        assert_eq!(bare.get(), r#"{"stack":[],"storage":{},"variables":{}}"#);
    }

    #[test]
    fn interact_body_has_state_only_with_variables() {
        let config = InteractConfig::default();
        let vars = json!({"ticket": "4711"});
        let with = InteractBody {
            action: Request::Launch.to_json(),
            config: &config,
            state: vars.as_object().map(|variables| StateBody { variables }),
        };
        let without = InteractBody {
            action: Request::NoReply.to_json(),
            config: &config,
            state: None,
        };
        assert_eq!(
            serde_json::to_value(&with).unwrap()["state"],
            json!({"variables": {"ticket": "4711"}})
        );
        assert!(
            serde_json::to_value(&without)
                .unwrap()
                .get("state")
                .is_none()
        );
    }
}
