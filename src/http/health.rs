//! Liveness, readiness and metrics.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::state::AppState;
use crate::telemetry::metrics as m;

/// The timer loop must go round at least this often to count as alive.
const STALL_AFTER: Duration = Duration::from_secs(30);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(schema_with = health_status_schema)]
    status: &'static str,
    timer_loop_age_ms: u64,
}

fn health_status_schema() -> utoipa::openapi::schema::Schema {
    crate::engine::view::string_enum(&["ok", "stalled"])
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    #[schema(schema_with = mode_schema)]
    mode: &'static str,
    #[schema(schema_with = readiness_status_schema)]
    status: &'static str,
    /// The store's kind.
    store: &'static str,
}

fn mode_schema() -> utoipa::openapi::schema::Schema {
    crate::engine::view::string_enum(&["sandbox", "live"])
}

fn readiness_status_schema() -> utoipa::openapi::schema::Schema {
    crate::engine::view::string_enum(&["ready", "draining", "store unreachable", "store timeout"])
}

/// Liveness: the process answers and its timer loop turns
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    security(()),
    responses(
        (status = 200, description = "Alive.", body = Health),
        (status = 503, description = "The timer loop is stalled.", body = Health),
    ),
)]
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let age = state.engine.timer_loop_age();
    let (code, status) = if age > STALL_AFTER.max(state.config.timer_poll * 50) {
        (StatusCode::SERVICE_UNAVAILABLE, "stalled")
    } else {
        (StatusCode::OK, "ok")
    };
    let timer_loop_age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
    (
        code,
        Json(Health {
            status,
            timer_loop_age_ms,
        }),
    )
}

/// Readiness: the store answers and the gateway is not shutting down
///
/// Configuration was validated at startup; an invalid one never gets this far.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    security(()),
    responses(
        (status = 200, description = "Ready.", body = Readiness),
        (status = 503, description = "Not ready (draining, or the store is unreachable).", body = Readiness),
    ),
)]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let mode = if state.config.is_sandbox() {
        "sandbox"
    } else {
        "live"
    };
    let store = state.engine.store.kind();
    let answer = |code, status| {
        (
            code,
            Json(Readiness {
                mode,
                status,
                store,
            }),
        )
    };
    if state.is_draining() {
        metrics::gauge!(m::READY).set(0.0);
        return answer(StatusCode::SERVICE_UNAVAILABLE, "draining");
    }
    match tokio::time::timeout(Duration::from_secs(2), state.engine.store.ping()).await {
        Ok(Ok(())) => {
            metrics::gauge!(m::READY).set(1.0);
            answer(StatusCode::OK, "ready")
        }
        Ok(Err(e)) => {
            metrics::gauge!(m::READY).set(0.0);
            tracing::warn!(error = %e, "readiness: store unreachable");
            answer(StatusCode::SERVICE_UNAVAILABLE, "store unreachable")
        }
        Err(_) => {
            metrics::gauge!(m::READY).set(0.0);
            answer(StatusCode::SERVICE_UNAVAILABLE, "store timeout")
        }
    }
}

/// Prometheus metrics (text exposition format)
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    security(()),
    responses((status = 200, description = "The metrics.", body = String, content_type = "text/plain")),
)]
pub(super) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.prometheus.render(),
    )
}
