//! The one error type at the HTTP edge. Every 4xx names what is wrong with a stable
//! machine-readable `code` and, for validation, one `details` entry per bad field;
//! a 5xx never leaks internals and is logged once with its cause chain.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::FieldError;
use crate::engine::EngineError;
use crate::store::StoreError;

/// Most `details` entries an error lists.
pub const MAX_DETAILS: usize = 100;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<FieldError>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// 422 with every bad field, up to [`MAX_DETAILS`] of them.
    pub fn invalid(mut details: Vec<FieldError>) -> Self {
        let message = match details.as_slice() {
            [one] => one.to_string(),
            many => format!("{} problems in the request", many.len()),
        };
        // A 1 MiB body of one-byte contacts is half a million problems; echoing
        // each would answer tens of megabytes. The first ones are enough to fix
        // the input, and the answer stays small whatever was sent.
        if details.len() > MAX_DETAILS {
            details.truncate(MAX_DETAILS);
            details.push(FieldError::new(
                "request",
                format!("more problems not listed (only the first {MAX_DETAILS} are)"),
            ));
        }
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_request",
            message,
            details,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// A 500 whose cause is logged here, once, and not shown to the client.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

/// Every refusal: a stable code, a message, and one entry per bad field.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    #[schema(inline)]
    error: ErrorFields,
}

// The fields in the order they have always been written (a sorted map's).
#[derive(Serialize, ToSchema)]
struct ErrorFields {
    /// Stable and machine-readable, e.g. invalid_request, not_found, unauthorized.
    code: &'static str,
    /// One entry per bad field, at most [`MAX_DETAILS`] and one saying more were left out.
    #[schema(value_type = Vec<FieldErrorSchema>, max_items = 101)]
    details: Vec<FieldError>,
    message: String,
}

/// One problem with one field of the input.
// A [`FieldError`] as the document shows it.
#[derive(ToSchema)]
#[schema(as = FieldError)]
pub struct FieldErrorSchema {
    /// Where, e.g. contacts[3].phone.
    pub field: String,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let body = ErrorBody {
            error: ErrorFields {
                code: self.code,
                details: self.details,
                message: self.message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "store unavailable");
            ApiError::unavailable("the store is unavailable; retry shortly")
        } else if let StoreError::AssistantGone(_) = e {
            ApiError::invalid(vec![crate::domain::FieldError::new(
                "assistant",
                "the assistant was deleted while the callout was being created",
            )])
        } else {
            ApiError::internal(&e)
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(s) => s.into(),
            EngineError::NotFound => ApiError::not_found("no such callout"),
            EngineError::Callout(c) => ApiError::conflict("already_finished", c.to_string()),
            EngineError::Contention(_) => ApiError::unavailable(e.to_string()),
        }
    }
}

/// Maps axum's body rejections (too large, unreadable) to our error body.
pub fn body_rejection(e: &axum::extract::rejection::BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(format!("the body is larger than {limit} bytes"))
    } else {
        ApiError::bad_request(format!("the body could not be read: {e}"))
    }
}
