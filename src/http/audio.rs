//! `GET /audio/{name}`: the audio the gateway plays through Routee's `PLAY`
//! ([`crate::audio`]). Unauthenticated, since Routee fetches it without
//! credentials, but content-addressed: only a name that is the hash of a clip the
//! gateway holds answers, so nothing else can be read or probed through it, and
//! the answer is cacheable for ever.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::error::ApiError;
use super::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/audio/{name}", get(clip))
}

async fn clip(Path(name): Path<String>) -> Response {
    let Some(clip) = crate::audio::by_name(&name) else {
        return ApiError::not_found("no such audio").into_response();
    };
    let etag = format!("\"{}\"", name.trim_end_matches(".wav"));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("audio/wav")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
            (
                header::ETAG,
                HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"audio\"")),
            ),
        ],
        clip.bytes(),
    )
        .into_response()
}
