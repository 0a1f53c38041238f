//! Liveness, readiness and metrics.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::state::AppState;
use crate::telemetry::metrics as m;

/// The timer loop must go round at least this often to count as alive.
const STALL_AFTER: Duration = Duration::from_secs(30);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Liveness: the process answers and its timer loop is not stalled.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let age = state.engine.timer_loop_age();
    if age > STALL_AFTER.max(state.config.timer_poll * 50) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "stalled", "timer_loop_age_ms": age.as_millis() as u64})),
        );
    }
    (
        StatusCode::OK,
        Json(json!({"status": "ok", "timer_loop_age_ms": age.as_millis() as u64})),
    )
}

/// Readiness: the store answers and we are not shutting down. (Configuration was
/// validated at startup; an invalid one never gets this far.)
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let mode = if state.config.is_sandbox() {
        "sandbox"
    } else {
        "live"
    };
    let store = state.engine.store.kind();
    if state.is_draining() {
        metrics::gauge!(m::READY).set(0.0);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining", "mode": mode, "store": store})),
        );
    }
    match tokio::time::timeout(Duration::from_secs(2), state.engine.store.ping()).await {
        Ok(Ok(())) => {
            metrics::gauge!(m::READY).set(1.0);
            (
                StatusCode::OK,
                Json(json!({"status": "ready", "mode": mode, "store": store})),
            )
        }
        Ok(Err(e)) => {
            metrics::gauge!(m::READY).set(0.0);
            tracing::warn!(error = %e, "readiness: store unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "store unreachable", "mode": mode, "store": store})),
            )
        }
        Err(_) => {
            metrics::gauge!(m::READY).set(0.0);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "store timeout", "mode": mode, "store": store})),
            )
        }
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.prometheus.render(),
    )
}
