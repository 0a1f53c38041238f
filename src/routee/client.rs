//! The Routee Voice Conversation API client: OAuth2 client-credentials tokens,
//! conversation creation, live-call control and dial tracking.
//!
//! # Tokens
//!
//! One token is cached per client and shared by every clone. It is replaced 60 s
//! before `expires_in` runs out (at 80% of the lifetime when that is short), and
//! fetched *single-flight*: one async lock is held across the token request, so a
//! burst of callers that all need a token causes one request, and callers that
//! queued behind a failed request get its error instead of each sending another.
//! Callers whose token is due for refresh but not yet expired never queue: they
//! use it while someone else refreshes, and it stays in use if the refresh fails.
//! A 401 or 403 from the API drops the token (only if it is still the one that
//! was refused) and replays the request once with a fresh one, as Routee's docs
//! prescribe (reference §1); a second refusal is returned.
//!
//! # Errors
//!
//! Every request goes through one private exchange path, which records
//! `ivr_upstream_request_duration_seconds{upstream="routee"}` (one sample per HTTP
//! attempt, the token request included) and turns transport failures and error
//! bodies into [`RouteeError`]. Its three questions are what the engine needs:
//! [`RouteeError::retryable`], [`RouteeError::retry_after`], and
//! [`RouteeError::may_have_been_applied`]. The last matters for
//! `create_conversation`: a creation that timed out or failed with a 5xx may still
//! have placed the call (reference §6), so it must not be blindly re-placed.
//!
//! Logs never carry the application secret, the token or a full phone number.

use std::fmt;
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{ACCEPT, HeaderMap};
use reqwest::{RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::types::{
    CallAction, CallActionBody, ConversationCreated, CreateConversation, Destination, DialTracking,
    ErrorBody, TokenResponse,
};
use crate::config::Secret;
use crate::domain::phone::mask;
use crate::net::{UpstreamResult, http_client, record_upstream};

const UPSTREAM: &str = "routee";
const OP_TOKEN: &str = "token";
const OP_CREATE: &str = "create_conversation";
const OP_CONTROL: &str = "control_call";
const OP_DIAL_TRACKING: &str = "dial_tracking";

/// Routee's documented default when `expires_in` is missing (reference §1).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// How long before expiry a token is replaced.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Routee's answers are small JSON documents; anything bigger is not one of them.
const MAX_BODY_BYTES: usize = 1 << 20;
/// Error messages end up in logs and API answers: keep them to a line.
const MAX_MESSAGE_CHARS: usize = 300;

/// Where Routee is and who we are to it.
#[derive(Debug, Clone)]
pub struct RouteeClientConfig {
    /// API base, e.g. `https://connect.routee.net`.
    pub api_url: Url,
    /// Token endpoint, e.g. `https://auth.routee.net/oauth/token`.
    pub auth_url: Url,
    pub app_id: String,
    pub app_secret: Secret<String>,
    pub connect_timeout: Duration,
    /// Total time for one request, token requests included.
    pub timeout: Duration,
}

/// A failed Routee request.
///
/// `Clone` (sources are shared) so that one failed token request can be handed to
/// every caller that was waiting for it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RouteeError {
    /// The token endpoint refused our application credentials (or the auth URL
    /// points somewhere that is not a token endpoint). Retrying will not help; an
    /// operator has to fix `ROUTEE_APP_ID`/`ROUTEE_APP_SECRET`/`ROUTEE_AUTH_URL`.
    #[error("Routee refused the application credentials (HTTP {status}): {message}")]
    BadCredentials { status: u16, message: String },

    /// No token could be obtained for a transient reason (token endpoint
    /// unreachable, slow, 5xx, 429, or answering garbage). The API request itself
    /// was never sent.
    #[error("Routee's token endpoint is unavailable")]
    TokenUnavailable {
        #[source]
        cause: Box<RouteeError>,
    },

    /// Routee answered the API request with an error status.
    #[error("Routee answered HTTP {status}{}: {message}", code_suffix(code.as_deref()))]
    Api {
        status: u16,
        /// Routee's 9-digit code (`<status><module><number>`), when the body had one.
        code: Option<String>,
        message: String,
        retry_after: Option<Duration>,
    },

    /// No complete answer in time. The request may have reached Routee and been
    /// acted on.
    #[error("Routee did not answer in time (the request may have reached it)")]
    Timeout {
        #[source]
        source: Arc<reqwest::Error>,
    },

    /// The connection could not be made: the request never reached Routee.
    #[error("could not connect to Routee")]
    Connect {
        #[source]
        source: Arc<reqwest::Error>,
    },

    /// The connection broke after it was made (reset, protocol error, broken
    /// body). The request may have reached Routee.
    #[error("the connection to Routee failed mid-request (the request may have reached it)")]
    Transport {
        #[source]
        source: Arc<reqwest::Error>,
    },

    /// Routee answered with a status we accept but a body we cannot read. On a
    /// 2xx creation the call *was* placed.
    #[error("Routee answered HTTP {status} with a body we cannot read: {reason}")]
    Decode {
        status: u16,
        reason: String,
        #[source]
        source: Option<Arc<serde_json::Error>>,
    },

    /// We refused to send the request: an id unusable as a path segment, or an
    /// unusable client configuration.
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

fn code_suffix(code: Option<&str>) -> String {
    code.map(|c| format!(" ({c})")).unwrap_or_default()
}

impl RouteeError {
    /// Whether the same request may succeed later: 5xx, 408, 429, timeouts,
    /// connection failures and an unavailable token endpoint. Other 4xx, bad
    /// credentials and unreadable 2xx answers will not get better by retrying.
    ///
    /// This says nothing about *safety*: check [`Self::may_have_been_applied`]
    /// before retrying a creation.
    pub fn retryable(&self) -> bool {
        match self {
            RouteeError::Api { status, .. } => transient_status(*status),
            RouteeError::TokenUnavailable { .. }
            | RouteeError::Timeout { .. }
            | RouteeError::Connect { .. }
            | RouteeError::Transport { .. } => true,
            RouteeError::BadCredentials { .. }
            | RouteeError::Decode { .. }
            | RouteeError::Invalid { .. } => false,
        }
    }

    /// How long Routee asked us to wait (`Retry-After`, in seconds or as an
    /// HTTP-date), when it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RouteeError::Api { retry_after, .. } => *retry_after,
            RouteeError::TokenUnavailable { cause } => cause.retry_after(),
            _ => None,
        }
    }

    /// Whether Routee may have acted on the request despite the error: a timeout,
    /// a connection broken mid-request, a 5xx, or a 2xx we could not read. For
    /// `create_conversation` this means a call may exist (and ring someone), so it
    /// must be reconciled (e.g. through dial tracking or the status callback)
    /// rather than re-placed. False when the request provably never reached Routee
    /// or Routee refused it (connect errors, token failures, 4xx).
    pub fn may_have_been_applied(&self) -> bool {
        match self {
            RouteeError::Timeout { .. }
            | RouteeError::Transport { .. }
            | RouteeError::Decode { .. } => true,
            RouteeError::Api { status, .. } => *status >= 500,
            RouteeError::BadCredentials { .. }
            | RouteeError::TokenUnavailable { .. }
            | RouteeError::Connect { .. }
            | RouteeError::Invalid { .. } => false,
        }
    }

    /// The HTTP status Routee answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            RouteeError::Api { status, .. }
            | RouteeError::BadCredentials { status, .. }
            | RouteeError::Decode { status, .. } => Some(*status),
            RouteeError::TokenUnavailable { cause } => cause.status(),
            _ => None,
        }
    }
}

fn transient_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// The Routee client. Cheap to clone: clones share the connection pool and the
/// token cache.
#[derive(Clone)]
pub struct RouteeClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    api_url: Url,
    auth_url: Url,
    app_id: String,
    app_secret: Secret<String>,
    /// Only ever locked briefly, never across an `.await`.
    cache: std::sync::Mutex<TokenCache>,
    /// Held by the one caller fetching a token.
    fetching: tokio::sync::Mutex<()>,
}

impl fmt::Debug for RouteeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteeClient")
            .field("api_url", &self.inner.api_url.as_str())
            .field("auth_url", &self.inner.auth_url.as_str())
            .field("app_id", &self.inner.app_id)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct TokenCache {
    current: Option<Token>,
    /// The last failed token request and when it failed. Callers that were
    /// already waiting to fetch when it failed share its error.
    last_failure: Option<(Instant, RouteeError)>,
    generation: u64,
}

impl TokenCache {
    /// The cached token while it is not yet due for refresh.
    fn fresh(&self) -> Option<Token> {
        let now = Instant::now();
        self.current
            .as_ref()
            .filter(|t| now < t.refresh_at)
            .cloned()
    }

    /// The cached token while it has not expired (it may be due for refresh).
    fn unexpired(&self) -> Option<Token> {
        let now = Instant::now();
        self.current
            .as_ref()
            .filter(|t| now < t.expires_at)
            .cloned()
    }
}

#[derive(Clone)]
struct Token {
    value: Secret<Arc<str>>,
    /// Identifies this token so a 401 drops it only if nobody replaced it yet.
    generation: u64,
    refresh_at: Instant,
    expires_at: Instant,
}

/// How long a token is used before it is replaced: until 60 s before it expires,
/// or for 80% of its lifetime when the lifetime is under five minutes (a fixed
/// margin would eat most of a short lifetime, or all of it).
fn refresh_after(lifetime: Duration) -> Duration {
    if lifetime >= REFRESH_MARGIN * 5 {
        lifetime - REFRESH_MARGIN
    } else {
        lifetime.mul_f64(0.8)
    }
}

/// One complete HTTP exchange: status, headers and the whole (bounded) body.
struct Exchange {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl RouteeClient {
    /// Builds the client. Fails on URLs that cannot take a path or are not
    /// http(s), on an empty application id, or if the HTTP client cannot be built.
    pub fn new(cfg: RouteeClientConfig) -> Result<Self, RouteeError> {
        check_base_url("Routee API URL", &cfg.api_url)?;
        check_base_url("Routee auth URL", &cfg.auth_url)?;
        if cfg.app_id.trim().is_empty() {
            return Err(RouteeError::Invalid {
                what: "Routee application id",
                reason: "it is empty".into(),
            });
        }
        let http =
            http_client(cfg.connect_timeout, cfg.timeout).map_err(|e| RouteeError::Invalid {
                what: "HTTP client",
                reason: e.to_string(),
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                api_url: cfg.api_url,
                auth_url: cfg.auth_url,
                app_id: cfg.app_id,
                app_secret: cfg.app_secret,
                cache: std::sync::Mutex::new(TokenCache::default()),
                fetching: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// `POST /voice/conversation`: places a call. The body is sent exactly as
    /// [`CreateConversation`] serializes.
    ///
    /// On error, check [`RouteeError::may_have_been_applied`] before placing the
    /// call again.
    #[tracing::instrument(level = "debug", skip_all, fields(to = %masked_destination(&request.to)))]
    pub async fn create_conversation(
        &self,
        request: &CreateConversation,
    ) -> Result<ConversationCreated, RouteeError> {
        let url = self.api_endpoint(&["voice", "conversation"])?;
        let ex = self
            .authorized(OP_CREATE, |http| http.post(url.clone()).json(request))
            .await?;
        let created: ConversationCreated = decode(&ex)?;
        tracing::debug!(tracking_id = %created.tracking_id, "Routee conversation created");
        Ok(created)
    }

    /// `PUT /voice/conversation/{messageId}` with `{"action": "hangup"|"reject"}`:
    /// ends an answered call or refuses one still ringing. `message_id` is the
    /// call leg's id (from a callback), not the conversation's tracking id.
    #[tracing::instrument(level = "debug", skip_all, fields(message_id = %message_id, action = ?action))]
    pub async fn control_call(
        &self,
        message_id: &str,
        action: CallAction,
    ) -> Result<(), RouteeError> {
        check_segment("Routee message id", message_id)?;
        let url = self.api_endpoint(&["voice", "conversation", message_id])?;
        let body = CallActionBody { action };
        self.authorized(OP_CONTROL, |http| http.put(url.clone()).json(&body))
            .await?;
        Ok(())
    }

    /// `GET /voice/tracking/conversation/{conversationTrackingId}`: the call legs
    /// of a conversation with their statuses (the first page of them).
    #[tracing::instrument(level = "debug", skip_all, fields(conversation = %conversation_tracking_id))]
    pub async fn dial_tracking(
        &self,
        conversation_tracking_id: &str,
    ) -> Result<DialTracking, RouteeError> {
        check_segment("Routee conversation tracking id", conversation_tracking_id)?;
        let url = self.api_endpoint(&[
            "voice",
            "tracking",
            "conversation",
            conversation_tracking_id,
        ])?;
        let ex = self
            .authorized(OP_DIAL_TRACKING, |http| http.get(url.clone()))
            .await?;
        decode(&ex)
    }

    fn api_endpoint(&self, segments: &[&str]) -> Result<Url, RouteeError> {
        crate::net::endpoint(&self.inner.api_url, segments).ok_or_else(|| RouteeError::Invalid {
            what: "Routee API URL",
            reason: "it cannot take a path".into(),
        })
    }

    /// Sends an API request with the current token; on 401/403 replaces the token
    /// and replays once. `build` is called per attempt (bodies are rebuilt).
    async fn authorized(
        &self,
        op: &'static str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Exchange, RouteeError> {
        let mut token = self.token().await?;
        let mut replayed = false;
        loop {
            let request = build(&self.inner.http)
                .bearer_auth(token.value.expose())
                .header(ACCEPT, "application/json");
            let ex = self.exchange(op, request).await?;
            if ex.status.is_success() {
                return Ok(ex);
            }
            let refused = matches!(ex.status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
            if refused && !replayed {
                tracing::info!(
                    op,
                    status = ex.status.as_u16(),
                    "Routee refused the token; fetching a new one and replaying once"
                );
                self.invalidate(token.generation);
                token = self.token().await?;
                replayed = true;
                continue;
            }
            return Err(self.api_error(&ex, Some(&token)));
        }
    }

    /// A usable token: the cached one while fresh, else a new one (single-flight).
    async fn token(&self) -> Result<Token, RouteeError> {
        let asked_at = Instant::now();
        if let Some(token) = self.cache().fresh() {
            return Ok(token);
        }
        let _fetching = match self.inner.fetching.try_lock() {
            Ok(guard) => guard,
            // Someone is already fetching: a still-valid token beats waiting for it.
            Err(_) => {
                // A separate statement: a guard in the `match` scrutinee would
                // live across the `.await` below.
                let unexpired = self.cache().unexpired();
                match unexpired {
                    Some(token) => return Ok(token),
                    None => self.inner.fetching.lock().await,
                }
            }
        };
        {
            // Whoever held the lock before us may have fetched, or failed.
            let cache = self.cache();
            if let Some(token) = cache.fresh() {
                return Ok(token);
            }
            if let Some((failed_at, err)) = &cache.last_failure
                && *failed_at >= asked_at
            {
                return cache.unexpired().ok_or_else(|| err.clone());
            }
        }
        let fetched = self.fetch_token().await;
        let mut cache = self.cache();
        match fetched {
            Ok((value, lifetime, requested_at)) => {
                cache.generation += 1;
                let token = Token {
                    value,
                    generation: cache.generation,
                    // Counted from when we asked: the token's clock started no earlier.
                    refresh_at: requested_at + refresh_after(lifetime),
                    expires_at: requested_at + lifetime,
                };
                tracing::debug!(
                    generation = token.generation,
                    lifetime_s = lifetime.as_secs(),
                    "Routee token obtained"
                );
                cache.current = Some(token.clone());
                cache.last_failure = None;
                Ok(token)
            }
            Err(err) => {
                cache.last_failure = Some((Instant::now(), err.clone()));
                match cache.unexpired() {
                    Some(token) => {
                        tracing::warn!(
                            error = %err,
                            "could not refresh the Routee token; using the current one until it expires"
                        );
                        Ok(token)
                    }
                    None => Err(err),
                }
            }
        }
    }

    /// Drops the cached token if it is still the one that was refused (another
    /// caller may already have replaced it).
    fn invalidate(&self, generation: u64) {
        let mut cache = self.cache();
        if cache
            .current
            .as_ref()
            .is_some_and(|t| t.generation == generation)
        {
            cache.current = None;
        }
    }

    fn cache(&self) -> MutexGuard<'_, TokenCache> {
        // The cache is consistent after every statement, so a panic elsewhere
        // while it was locked leaves nothing half-written.
        self.inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// `POST auth_url` with Basic credentials and `grant_type=client_credentials`
    /// (no `scope`: the voice scope's name is unknown, reference §1).
    async fn fetch_token(&self) -> Result<(Secret<Arc<str>>, Duration, Instant), RouteeError> {
        let requested_at = Instant::now();
        let request = self
            .inner
            .http
            .post(self.inner.auth_url.clone())
            .basic_auth(&self.inner.app_id, Some(self.inner.app_secret.expose()))
            .header(ACCEPT, "application/json")
            .form(&[("grant_type", "client_credentials")]);
        let unavailable = |cause: RouteeError| RouteeError::TokenUnavailable {
            cause: Box::new(cause),
        };
        let ex = self
            .exchange(OP_TOKEN, request)
            .await
            .map_err(unavailable)?;
        let status = ex.status.as_u16();
        if !ex.status.is_success() {
            if transient_status(status) {
                return Err(unavailable(self.api_error(&ex, None)));
            }
            return Err(RouteeError::BadCredentials {
                status,
                message: self.message_of(&ex, None),
            });
        }
        // The serde error is not kept: its text could quote the body, which holds
        // the token.
        let parsed: TokenResponse = serde_json::from_slice(&ex.body).map_err(|e| {
            unavailable(RouteeError::Decode {
                status,
                reason: format!(
                    "the token response is not the expected JSON ({:?} error)",
                    e.classify()
                ),
                source: None,
            })
        })?;
        let access_token = parsed.access_token.trim();
        if access_token.is_empty() {
            return Err(unavailable(RouteeError::Decode {
                status,
                reason: "the token response has no access_token".into(),
                source: None,
            }));
        }
        let lifetime = parsed
            .expires_in
            .map(|s| Duration::from_secs(u64::from(s)))
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        Ok((Secret::new(Arc::from(access_token)), lifetime, requested_at))
    }

    /// Sends one request and reads the whole answer, timing it for the metrics.
    async fn exchange(
        &self,
        op: &'static str,
        request: RequestBuilder,
    ) -> Result<Exchange, RouteeError> {
        let started = Instant::now();
        let result = async {
            let response = request.send().await.map_err(send_error)?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = read_body(response, status).await?;
            Ok(Exchange {
                status,
                headers,
                body,
            })
        }
        .await;
        let outcome = match &result {
            Ok(ex) => UpstreamResult::Status(ex.status.as_u16()),
            Err(RouteeError::Timeout { .. }) => UpstreamResult::Timeout,
            Err(_) => UpstreamResult::Error,
        };
        record_upstream(UPSTREAM, op, started, outcome);
        tracing::debug!(
            op,
            status = result.as_ref().ok().map(|ex| ex.status.as_u16()),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Routee request finished"
        );
        result
    }

    /// The typed error for a non-2xx API answer.
    fn api_error(&self, ex: &Exchange, token: Option<&Token>) -> RouteeError {
        let code = serde_json::from_slice::<ErrorBody>(&ex.body)
            .ok()
            .map(|b| b.code.trim().to_owned())
            .filter(|c| !c.is_empty() && c.len() <= 32);
        RouteeError::Api {
            status: ex.status.as_u16(),
            code,
            message: self.message_of(ex, token),
            retry_after: crate::net::retry_after(&ex.headers),
        }
    }

    /// A one-line message for an error answer: Routee's `developerMessage` (plus
    /// the first validation `properties`), an OAuth `error_description`, or the
    /// start of a non-JSON body; with our secrets cut out in case they are echoed.
    fn message_of(&self, ex: &Exchange, token: Option<&Token>) -> String {
        let raw = match serde_json::from_slice::<Value>(&ex.body) {
            Ok(json) => message_from_json(&json),
            Err(_) => String::from_utf8_lossy(&ex.body).into_owned(),
        };
        let raw = if raw.trim().is_empty() {
            ex.status
                .canonical_reason()
                .unwrap_or("no message")
                .to_owned()
        } else {
            raw
        };
        let mut secrets: Vec<&str> = vec![self.inner.app_secret.expose().as_str()];
        if let Some(t) = token {
            secrets.push(t.value.expose());
        }
        one_line(&raw, &secrets)
    }
}

fn message_from_json(json: &Value) -> String {
    let text = |key: &str| json.get(key).and_then(Value::as_str).map(str::trim);
    let mut message = text("developerMessage")
        .or_else(|| text("error_description"))
        .or_else(|| text("message"))
        .or_else(|| text("error"))
        .unwrap_or("")
        .to_owned();
    if let Some(Value::Object(props)) = json.get("properties") {
        let details: Vec<String> = props
            .iter()
            .take(3)
            .map(|(field, v)| match v {
                Value::String(s) => format!("{field}: {s}"),
                other => format!("{field}: {other}"),
            })
            .collect();
        if !details.is_empty() {
            message = format!("{message} ({})", details.join("; "));
        }
    }
    message
}

fn decode<T: DeserializeOwned>(ex: &Exchange) -> Result<T, RouteeError> {
    serde_json::from_slice(&ex.body).map_err(|e| RouteeError::Decode {
        status: ex.status.as_u16(),
        reason: e.to_string(),
        source: Some(Arc::new(e)),
    })
}

/// Classifies a failure to get a response. A connect timeout is a connect error
/// (the request never left), so `is_connect` is checked before `is_timeout`.
fn send_error(e: reqwest::Error) -> RouteeError {
    let kind = crate::net::send_failure(&e);
    let source = Arc::new(e);
    match kind {
        crate::net::SendFailure::Connect => RouteeError::Connect { source },
        crate::net::SendFailure::Timeout => RouteeError::Timeout { source },
        crate::net::SendFailure::Transport => RouteeError::Transport { source },
    }
}

/// Reads at most [`MAX_BODY_BYTES`] of the body; a larger one is a decode error.
async fn read_body(response: reqwest::Response, status: StatusCode) -> Result<Bytes, RouteeError> {
    let (body, cut) = crate::net::read_capped(response, MAX_BODY_BYTES)
        .await
        .map_err(send_error)?;
    if cut {
        return Err(RouteeError::Decode {
            status: status.as_u16(),
            reason: format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            source: None,
        });
    }
    Ok(Bytes::from(body))
}

/// Cuts our secrets out, collapses whitespace and bounds the length.
fn one_line(raw: &str, secrets: &[&str]) -> String {
    let mut text = raw.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "[redacted]");
    }
    crate::net::log_safe(&text, MAX_MESSAGE_CHARS)
}

fn check_base_url(what: &'static str, url: &Url) -> Result<(), RouteeError> {
    match crate::net::base_url_problem(url) {
        Some(reason) => Err(RouteeError::Invalid { what, reason }),
        None => Ok(()),
    }
}

fn check_segment(what: &'static str, id: &str) -> Result<(), RouteeError> {
    match crate::net::segment_problem(id) {
        Some(reason) => Err(RouteeError::Invalid {
            what,
            reason: reason.into(),
        }),
        None => Ok(()),
    }
}

fn masked_destination(to: &Destination) -> String {
    match to {
        Destination::Phone(n) | Destination::Viber(n) => mask(n),
        Destination::Sip(uri) => mask(uri),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_a_minute_early_or_at_80_percent_when_short() {
        assert_eq!(
            refresh_after(Duration::from_secs(3600)),
            Duration::from_secs(3540)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(300)),
            Duration::from_secs(240)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(100)),
            Duration::from_secs(80)
        );
        assert_eq!(refresh_after(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn messages_are_one_bounded_line_without_secrets() {
        let long = format!("token tok123 rejected\n\n{}", "x".repeat(1000));
        let line = one_line(&long, &["tok123", ""]);
        assert!(line.starts_with("token [redacted] rejected x"));
        assert!(!line.contains('\n'));
        assert_eq!(line.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn routee_error_bodies_give_their_developer_message_and_properties() {
        let json = serde_json::json!({
            "code": "400013000", "developerMessage": "Invalid request",
            "properties": {"to.phone": "not a number"}
        });
        assert_eq!(
            message_from_json(&json),
            "Invalid request (to.phone: not a number)"
        );
        let oauth =
            serde_json::json!({"error": "invalid_client", "error_description": "Bad credentials"});
        assert_eq!(message_from_json(&oauth), "Bad credentials");
    }

    #[test]
    fn ids_that_would_change_the_path_are_refused() {
        for bad in ["", ".", "..", &"x".repeat(300)] {
            assert!(check_segment("id", bad).is_err(), "{bad:?}");
        }
        assert!(check_segment("id", "a/b?c#d").is_ok());
    }

    #[test]
    fn path_segments_are_percent_encoded_under_the_base_path() {
        let cfg = RouteeClientConfig {
            api_url: Url::parse("http://routee.test/prefix/").unwrap(),
            auth_url: Url::parse("http://routee.test/oauth/token").unwrap(),
            app_id: "app".into(),
            app_secret: Secret::new("s".into()),
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        };
        let client = RouteeClient::new(cfg).unwrap();
        let url = client
            .api_endpoint(&["voice", "conversation", "a/b c?d#e%"])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://routee.test/prefix/voice/conversation/a%2Fb%20c%3Fd%23e%25"
        );
    }

    fn client_for(auth_url: &str) -> RouteeClient {
        RouteeClient::new(RouteeClientConfig {
            api_url: Url::parse("http://127.0.0.1:9/").unwrap(),
            auth_url: Url::parse(auth_url).unwrap(),
            app_id: "app".into(),
            app_secret: Secret::new("s".into()),
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
        })
        .unwrap()
    }

    /// Caches a token that is due for refresh but valid for another minute.
    fn preload_stale_token(client: &RouteeClient, value: &str, generation: u64) {
        let now = Instant::now();
        let mut cache = client.cache();
        cache.generation = generation;
        cache.current = Some(Token {
            value: Secret::new(Arc::from(value)),
            generation,
            refresh_at: now.checked_sub(Duration::from_secs(1)).unwrap(),
            expires_at: now + Duration::from_secs(60),
        });
    }

    #[tokio::test]
    async fn a_token_due_for_refresh_is_still_used_when_the_refresh_fails() {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(wiremock::ResponseTemplate::new(503))
            .expect(1)
            .mount(&server)
            .await;
        let client = client_for(&server.uri());
        preload_stale_token(&client, "old", 1);

        let token = client.token().await.unwrap();
        assert_eq!(&**token.value.expose(), "old");
        assert!(client.cache().last_failure.is_some());
    }

    #[tokio::test]
    async fn callers_with_a_valid_token_do_not_wait_for_a_slow_refresh() {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(
                wiremock::ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"access_token": "new", "expires_in": 3600}))
                    .set_delay(Duration::from_millis(500)),
            )
            .expect(1)
            .mount(&server)
            .await;
        let client = client_for(&server.uri());
        preload_stale_token(&client, "old", 1);

        let refresher = tokio::spawn({
            let client = client.clone();
            async move { client.token().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let token = client.token().await.unwrap();
        assert_eq!(&**token.value.expose(), "old");
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );

        let refreshed = refresher.await.unwrap().unwrap();
        assert_eq!(&**refreshed.value.expose(), "new");
        assert_eq!(&**client.token().await.unwrap().value.expose(), "new");
    }

    #[test]
    fn a_refused_token_is_dropped_only_if_nobody_replaced_it() {
        let client = client_for("http://127.0.0.1:9/oauth/token");
        preload_stale_token(&client, "current", 2);
        client.invalidate(1);
        assert!(client.cache().current.is_some());
        client.invalidate(2);
        assert!(client.cache().current.is_none());
    }

    #[test]
    fn only_failures_that_may_have_reached_routee_count_as_maybe_applied() {
        let api = |status| RouteeError::Api {
            status,
            code: None,
            message: String::new(),
            retry_after: None,
        };
        assert!(api(503).may_have_been_applied() && api(503).retryable());
        assert!(!api(429).may_have_been_applied() && api(429).retryable());
        assert!(!api(400).may_have_been_applied() && !api(400).retryable());
        let token_down = RouteeError::TokenUnavailable {
            cause: Box::new(api(503)),
        };
        assert!(token_down.retryable() && !token_down.may_have_been_applied());
        let bad = RouteeError::BadCredentials {
            status: 401,
            message: String::new(),
        };
        assert!(!bad.retryable() && !bad.may_have_been_applied());
    }
}
