//! `GET /audio/{name}`: the audio the gateway plays through Routee's `PLAY`
//! ([`crate::audio`]). Unauthenticated, since Routee fetches it without
//! credentials, but content-addressed: only a name that is the hash of a clip the
//! gateway holds answers, so nothing else can be read or probed through it, and
//! the answer is cacheable for ever.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(clip))
}

/// A clip the gateway plays through Routee's `PLAY` (the silence of a wait, or a
/// Voiceflow audio trace converted to 8 kHz WAV)
///
/// Content-addressed: the name is the hash of the bytes, so the answer never
/// changes and is cacheable for ever.
#[utoipa::path(get, path = "/audio/{name}", tag = "operations", operation_id = "audioClip", security(()),
    params(("name" = String, Path, description = "<16 hex digits of the clip's SHA-256>.wav", example = "56d4af65701c26df.wav")),
    responses(
        (status = 200, description = "The clip, 8 kHz mono 16-bit PCM WAV.", content((Vec<u8> = "audio/wav"))),
        (status = 404, description = "No such clip (code not_found).", body = ErrorBody),
    ))]
async fn clip(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let clip = match crate::audio::by_name(&name) {
        Some(clip) => clip,
        // Converted on another replica (Redis only).
        None if crate::audio::is_clip_name(&name) => {
            match state.engine.store.audio_clip(&name).await {
                Ok(Some(clip)) => clip,
                Ok(None) => return ApiError::not_found("no such audio").into_response(),
                Err(e) => return ApiError::from(e).into_response(),
            }
        }
        None => return ApiError::not_found("no such audio").into_response(),
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
        clip,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    /// The route's documented example (a literal in its annotation) names a
    /// clip that exists, for schemathesis and readers alike.
    #[test]
    fn the_documented_example_is_the_silence_clip() {
        assert_eq!("56d4af65701c26df.wav", crate::audio::silence().file_name());
    }
}
