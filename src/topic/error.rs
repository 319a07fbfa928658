//! What a refused request is answered, whichever way it came in (a `/ws` request,
//! an SSE or long-poll query, the HTTP publish API, a token check): an
//! [`ErrorCode`] and a message for people, together an [`ErrorReply`].
//!
//! The codes are the ones `docs/protocol.md` lists; they borrow their numbers from
//! HTTP so that the HTTP endpoints can answer them as statuses. Each way in writes
//! the reply in its own format (the `/ws` codec is `crate::protocol`).

use std::fmt;

/// The code of an error reply, as listed in `docs/protocol.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// 400: not a JSON object, a field missing or of the wrong type, data nested too
    /// deeply, `auth` on a server without tokens.
    BadRequest = 400,
    /// 401: no token yet, or a token that is invalid or expired.
    Unauthorized = 401,
    /// 403: the operation is not allowed here, or the token does not permit it.
    Forbidden = 403,
    /// 404: `unsub` of a topic the connection is not subscribed to.
    NotSubscribed = 404,
    /// 405: an unknown `op`.
    UnknownOp = 405,
    /// 409: `sub` to a topic the connection is already subscribed to.
    AlreadySubscribed = 409,
    /// 413: `data` or `info` larger than allowed.
    TooLarge = 413,
    /// 422: a topic name or a `since` outside the grammar.
    Invalid = 422,
    /// 429: too many subscriptions on the connection, or requests over the rate.
    TooMany = 429,
    /// 503: the broker cannot serve the request now.
    Unavailable = 503,
}

impl ErrorCode {
    /// Every code, in increasing order.
    pub const ALL: [Self; 10] = [
        Self::BadRequest,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotSubscribed,
        Self::UnknownOp,
        Self::AlreadySubscribed,
        Self::TooLarge,
        Self::Invalid,
        Self::TooMany,
        Self::Unavailable,
    ];

    /// The number on the wire.
    pub fn number(self) -> u16 {
        self as u16
    }

    /// An error reply with this code and `message`.
    pub fn reply(self, message: impl Into<String>) -> ErrorReply {
        ErrorReply::new(self.number(), message)
    }

    /// The code with `number`, if it is one of the documented ones.
    pub fn from_number(number: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|code| code.number() == number)
    }
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> Self {
        code.number()
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// An error reply's code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// The code's number: one of [`ErrorCode`]'s (see [`ErrorReply::error_code`]).
    pub code: u16,
    /// What went wrong, for people.
    pub message: String,
}

impl ErrorReply {
    /// An error with the code numbered `code` and `message`; prefer
    /// [`ErrorCode::reply`], which names the code.
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The code as an [`ErrorCode`], if it is a documented one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::from_number(self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_documented_numbers() {
        let numbers: Vec<u16> = ErrorCode::ALL.into_iter().map(u16::from).collect();
        assert_eq!(numbers, [400, 401, 403, 404, 405, 409, 413, 422, 429, 503]);
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_number(code.number()), Some(code));
        }
        assert_eq!(ErrorCode::from_number(418), None);
    }
}
