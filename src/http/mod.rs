//! The HTTP edge: routes, layers and extractors (`GET /openapi.json` describes
//! the public part). Handlers stay short: extractors
//! authenticate (API keys) and verify webhook signatures before a handler runs.
//! The dispatcher console (`GET /console`, [`console`]) is a client of the same
//! API, served from here.

pub mod assistant_input;
pub mod assistant_views;
mod assistants;
mod audio;
pub mod auth;
pub mod callout_input;
mod callouts;
mod compose;
pub mod console;
pub mod error;
pub mod events;
mod guard;
mod health;
pub mod idempotency;
pub mod openapi;
mod sandbox;
pub mod schedules;
pub mod serve;
pub mod state;
pub mod teams;
pub mod webhooks;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use state::{AppState, SharedState};

use crate::telemetry::metrics as m;

/// The whole router. The public routes are registered with their OpenAPI
/// annotations, and the document served at `/openapi.json` is made from those
/// same registrations; the webhooks are the only routes outside it.
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let (public, api) = public_routes().split_for_parts();
    // Built once per state: a second router over the same state serves the same
    // (first) document, which these same registrations made.
    let _ = state.openapi.set(openapi::document(&api, &state.config));
    public
        .merge(webhooks::router())
        .fallback(|| async { error::ApiError::not_found("no such route") })
        // axum's own 405 has an empty body; every refusal carries our error body.
        .method_not_allowed_fallback(|| async {
            error::ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method (see the Allow header)",
            )
        })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            serve::request_timeout,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .layer(
            // Spans carry the route template, never the raw URI: webhook query
            // strings hold signatures.
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                // Field values are only evaluated when the span is enabled.
                tracing::debug_span!(
                    "http",
                    method = %req.method(),
                    route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str)
                )
            }),
        )
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a handler panicked");
            axum::response::IntoResponse::into_response(error::ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            ))
        }))
        .with_state(state)
}

/// What `METRICS_ADDR` serves: `GET /metrics` and nothing else, so a listener
/// opened for a scraper (often on a wider interface than `LISTEN_ADDR`) never
/// exposes the API, and its loopback exemption never applies there.
pub fn metrics_router(state: AppState) -> Router {
    // The same documented registration as on the main listener.
    let (metrics, _) = OpenApiRouter::new()
        .routes(utoipa_axum::routes!(health::metrics))
        .split_for_parts();
    metrics
        .fallback(|| async {
            error::ApiError::not_found("this listener (METRICS_ADDR) serves GET /metrics only")
        })
        .with_state(state)
}

/// The public routes with their documentation.
fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(callouts::router())
        .merge(teams::router())
        .merge(schedules::router())
        .merge(events::router())
        .merge(compose::router())
        .merge(sandbox::router())
        .merge(console::router())
        .merge(assistants::router())
        .merge(health::router())
        .merge(audio::router())
        .merge(openapi::router())
}

/// Counts API requests by route template, method and status class. Webhooks have
/// their own histogram, so only `/v1/` routes are counted (and only they allocate).
async fn count_requests(State(_state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .filter(|r| r.starts_with("/v1/"))
        .map(str::to_owned);
    let method = method_label(req.method());
    let response = next.run(req).await;
    if let Some(route) = route {
        metrics::counter!(
            m::API_REQUESTS,
            "route" => route,
            "method" => method,
            "status_class" => m::status_class(response.status().as_u16())
        )
        .increment(1);
    }
    response
}

/// A bounded label for a request method.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
