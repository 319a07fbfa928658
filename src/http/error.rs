//! The error answer of the HTTP routes: a status and a JSON body in the
//! protocol's error shape, `{"error":{"code":…,"message":…}}`. Every handler
//! returns `Result<_, HttpError>`; axum turns the error into its response.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::protocol::{self, ErrorReply};
use crate::topic::ErrorCode;

/// An error answered instead of the route's response (before a stream starts).
#[derive(Debug)]
pub(crate) struct HttpError {
    /// The code (an HTTP status) and the message.
    pub(crate) reply: ErrorReply,
    /// Whether to add `WWW-Authenticate: Bearer` (a 401 for a missing or wrong key).
    challenge: bool,
}

impl HttpError {
    /// An error with `code` (its number is the HTTP status) and `message`.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::from(code.reply(message))
    }

    /// 401 with `WWW-Authenticate: Bearer realm="pushwire"` (RFC 6750).
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            reply: ErrorCode::Unauthorized.reply(message),
            challenge: true,
        }
    }
}

impl From<ErrorReply> for HttpError {
    fn from(reply: ErrorReply) -> Self {
        Self {
            reply,
            challenge: false,
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.reply.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = format!("{{\"error\":{}}}", protocol::error_object(&self.reply));
        let mut response =
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"pushwire\""),
            );
        }
        response
    }
}
