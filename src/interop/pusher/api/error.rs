//! [`ApiError`]: a refused Pusher HTTP API request, answered as Pusher does: a
//! status (400 malformed, 401 badly signed, 403 app disabled, 404 unknown app or
//! path, 413 too large, 503 the broker failed) and a plain-text message the SDKs
//! show their callers.

use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};

/// A refused API request: its status and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub(crate) struct ApiError {
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// What was wrong, for the caller.
    pub(crate) message: String,
}

impl ApiError {
    /// 400: the request is malformed.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::with(StatusCode::BAD_REQUEST, message)
    }

    /// 401: the request is not signed with the app's secret as it must be.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::with(StatusCode::UNAUTHORIZED, message)
    }

    /// 413: the body or an event's data is too large.
    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::with(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// An error with `status` and `message`.
    pub(crate) fn with(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.message;
        body.push('\n');
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response()
    }
}
