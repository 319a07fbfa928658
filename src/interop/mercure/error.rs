//! The hub's refusals ([`MercureError`]), answered as RFC 6750 says: 401 with a
//! `WWW-Authenticate: Bearer` challenge when no token came, 401 `invalid_token`,
//! 403 `insufficient_scope`, 400 `invalid_request`; and 413 for what is too large,
//! 503 when the broker cannot be reached. The body is the description as plain
//! text.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// Why the hub refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MercureError {
    /// No token came and the request needs one: 401 with a bare
    /// `WWW-Authenticate: Bearer` challenge (no error code).
    #[error("a token is required")]
    NoToken,
    /// A token came but cannot be used (bad signature, expired, wrong `typ`,
    /// `aud` or `iss`, malformed grants): 401 `invalid_token`.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// A valid token does not grant what was asked: 403 `insufficient_scope`.
    #[error("insufficient scope: {0}")]
    InsufficientScope(String),
    /// The request is malformed: 400 `invalid_request`.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A topic in the hub's reserved namespace (`/.well-known/mercure…`) was
    /// published to: 403.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The request or one of its fields is too large: 413.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The broker cannot be reached: 503.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl MercureError {
    /// The status the error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoToken | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope(_) | Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3), when the error has one.
    pub fn challenge(&self) -> Option<String> {
        let (code, description) = match self {
            Self::NoToken => return Some(String::from("Bearer realm=\"mercure\"")),
            Self::InvalidToken(why) => ("invalid_token", why),
            Self::InsufficientScope(why) => ("insufficient_scope", why),
            Self::InvalidRequest(why) => ("invalid_request", why),
            Self::Forbidden(_) | Self::TooLarge(_) | Self::Unavailable(_) => return None,
        };
        Some(format!(
            "Bearer realm=\"mercure\", error=\"{code}\", error_description=\"{}\"",
            quoted_string(description)
        ))
    }
}

/// `text` as the inside of an HTTP quoted-string: `"` and `\` escaped, and
/// anything outside printable ASCII replaced (RFC 6750 allows only
/// %x20-21 / %x23-5B / %x5D-7E in error descriptions).
fn quoted_string(text: &str) -> String {
    text.chars()
        .take(200)
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

impl IntoResponse for MercureError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), format!("{self}\n")).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(challenge) = self.challenge()
            && let Ok(value) = HeaderValue::from_str(&challenge)
        {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(error: MercureError) -> Option<String> {
        let response = error.into_response();
        response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    #[test]
    fn no_token_is_a_bare_bearer_challenge() {
        assert_eq!(MercureError::NoToken.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge(MercureError::NoToken).as_deref(),
            Some("Bearer realm=\"mercure\"")
        );
    }

    #[test]
    fn errors_carry_their_rfc_6750_codes() {
        let invalid = MercureError::InvalidToken("the token \"expired\"\n".into());
        assert_eq!(invalid.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge(invalid).as_deref(),
            Some(
                "Bearer realm=\"mercure\", error=\"invalid_token\", error_description=\"the token 'expired'?\""
            )
        );
        let scope = MercureError::InsufficientScope("publish on x".into());
        assert_eq!(scope.status(), StatusCode::FORBIDDEN);
        assert!(challenge(scope).is_some_and(|c| c.contains("error=\"insufficient_scope\"")));
        let request = MercureError::InvalidRequest("bad".into());
        assert_eq!(request.status(), StatusCode::BAD_REQUEST);
        assert!(challenge(request).is_some_and(|c| c.contains("error=\"invalid_request\"")));
        assert_eq!(challenge(MercureError::TooLarge("x".into())), None);
    }
}
