//! `Idempotency-Key` on `POST /v1/callouts`: a client that retries a creation
//! (a timeout, a dropped connection) gets the answer of the first request and
//! no second callout.
//!
//! The record of a key lives in the store (`P:idem:<digest>`, see
//! `store::keys`), named by the SHA-256 of the API key's fingerprint and the
//! client's key, so two API keys never share a key and no client text reaches a
//! Redis key name. A request first claims the key with the digest of its body
//! (content type and bytes), atomically: of two racing requests one runs, the
//! other is told the key is in use (409). The answer is then stored for
//! `IDEMPOTENCY_TTL_H` and replayed, byte for byte the same JSON, to every
//! retry with the same body; a different body under the same key is a 422. A
//! request that fails drops its claim, so the retry runs; a replica that dies
//! mid-request leaves a claim that expires with the request timeout.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::auth::KeyFingerprint;
use super::error::{ApiError, body_rejection};
use super::state::AppState;
use crate::store::IdempotentRequest;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The response header on a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";
/// Longest key a client may send.
pub const MAX_KEY_CHARS: usize = 255;

/// A claimed key: where its record is and what body it is for.
#[derive(Debug)]
pub struct Claim {
    record: String,
    digest: String,
}

/// What a request holding an `Idempotency-Key` does next.
#[derive(Debug)]
pub enum Begin {
    /// Create, then [`finish`] (or [`abandon`] on failure).
    Run(Claim, Box<Request>),
    /// A retry of an answered request: send this answer again.
    Replay(Value),
}

/// The client's `Idempotency-Key`, if any: 1 to 255 visible ASCII characters.
pub fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get(HEADER) else {
        return Ok(None);
    };
    match raw.to_str() {
        Ok(k)
            if (1..=MAX_KEY_CHARS).contains(&k.len())
                && k.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(k.to_owned()))
        }
        _ => Err(ApiError::bad_request(format!(
            "Idempotency-Key: 1 to {MAX_KEY_CHARS} visible ASCII characters"
        ))),
    }
}

/// Reads the body, then claims `key` for it or finds the answer to replay.
pub async fn begin(
    state: &AppState,
    caller: KeyFingerprint,
    key: &str,
    request: Request,
) -> Result<Begin, ApiError> {
    let (parts, body) = request.into_parts();
    let content_type = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    let bytes = Bytes::from_request(Request::new(body), state)
        .await
        .map_err(|e| body_rejection(&e, state.config.max_body_bytes))?;
    let digest = hex::encode(
        Sha256::new()
            .chain_update(&content_type)
            .chain_update(b"\n")
            .chain_update(&bytes)
            .finalize(),
    );
    let record = hex::encode(
        Sha256::new()
            .chain_update(caller.as_str())
            .chain_update(b"\n")
            .chain_update(key)
            .finalize(),
    );
    let claim = IdempotentRequest {
        digest: digest.clone(),
        answer: None,
    };
    // Held while the request runs; a replica that dies mid-request frees it
    // when the request would have timed out anyway.
    let pending_ttl = state.config.http_request_timeout + std::time::Duration::from_secs(30);
    let found = state
        .engine
        .store
        .claim_idempotency_key(&record, &claim, pending_ttl)
        .await
        .map_err(ApiError::from)?;
    match found {
        None => Ok(Begin::Run(
            Claim { record, digest },
            Box::new(Request::from_parts(parts, Body::from(bytes))),
        )),
        Some(f) if f.digest != digest => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request body: use a new key for a new callout",
        )),
        Some(IdempotentRequest {
            answer: Some(answer),
            ..
        }) => Ok(Begin::Replay(answer)),
        Some(_) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_in_use",
            "a request with this Idempotency-Key is still running: retry in a moment",
        )),
    }
}

/// Stores the answer of a claimed key for its retries.
pub async fn finish(state: &AppState, claim: Claim, answer: Value) {
    let record = IdempotentRequest {
        digest: claim.digest,
        answer: Some(answer),
    };
    if let Err(e) = state
        .engine
        .store
        .save_idempotency_key(&claim.record, &record, state.config.idempotency_ttl)
        .await
    {
        // The callout exists; its retries see "in use" until the claim expires.
        tracing::warn!(error = %e, "the answer of an idempotent request could not be stored");
    }
}

/// Drops the claim of a request that failed, so that its retry runs.
pub async fn abandon(state: &AppState, claim: Claim) {
    if let Err(e) = state
        .engine
        .store
        .forget_idempotency_key(&claim.record)
        .await
    {
        tracing::warn!(error = %e, "the claim of a failed idempotent request could not be dropped");
    }
}

/// Runs `create` (which answers the created resource as JSON) under the
/// request's `Idempotency-Key`, if it has one: the first request runs, a retry
/// with the same body gets the first answer again. Returns (answer, replayed).
pub async fn run<F, Fut>(
    state: &AppState,
    caller: KeyFingerprint,
    request: Request,
    create: F,
) -> Result<(Value, bool), ApiError>
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Result<Value, ApiError>>,
{
    let Some(key) = key_of(request.headers())? else {
        return Ok((create(request).await?, false));
    };
    let (claim, request) = match begin(state, caller, &key, request).await? {
        Begin::Replay(answer) => return Ok((answer, true)),
        Begin::Run(claim, request) => (claim, *request),
    };
    match create(request).await {
        Ok(answer) => {
            finish(state, claim, answer.clone()).await;
            Ok((answer, false))
        }
        Err(e) => {
            abandon(state, claim).await;
            Err(e)
        }
    }
}

/// The `201` of a creation answered by [`run`]: `Location` is `collection`
/// and the answer's `id`; a replay carries `Idempotent-Replayed: true`.
pub fn created(collection: &str, (answer, replayed): (Value, bool)) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    use axum::response::IntoResponse;
    let mut headers = HeaderMap::new();
    if let Some(id) = answer["id"].as_str()
        && let Ok(v) = HeaderValue::from_str(&format!("{collection}/{id}"))
    {
        headers.insert(header::LOCATION, v);
    }
    if replayed {
        headers.insert(REPLAYED, HeaderValue::from_static("true"));
    }
    (StatusCode::CREATED, headers, axum::Json(answer)).into_response()
}
