//! Close codes and the protocol violations that lead to them.

use std::fmt;

/// A close status code (RFC 6455 §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigated away).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL: Self = Self(1002);
    /// 1003: a kind of data the endpoint does not accept.
    pub const UNSUPPORTED: Self = Self(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: the connection ended without a close frame (never sent on the wire).
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: a text message was not valid UTF-8.
    pub const INVALID_DATA: Self = Self(1007);
    /// 1008: a message violated the endpoint's policy (for example a slow consumer).
    pub const POLICY: Self = Self(1008);
    /// 1009: a message was too big to process.
    pub const TOO_BIG: Self = Self(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const EXTENSION: Self = Self(1010);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL: Self = Self(1011);
    /// 1012: the service is restarting; the client may reconnect (IANA registry). A
    /// draining server says this to every client it asks to come back.
    pub const SERVICE_RESTART: Self = Self(1012);

    /// Whether this code may appear in a close frame on the wire (RFC 6455 §7.4.1, §7.4.2 and
    /// the IANA registry): 1000–1003, 1007–1014 and 3000–4999.
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A violation of RFC 6455 by the peer. Each maps to the close code we answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Opcodes 3–7 and 11–15 are reserved.
    #[error("reserved opcode {0:#x}")]
    ReservedOpCode(u8),
    /// A control frame had FIN clear.
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// A control frame carried more than 125 bytes.
    #[error("control frame of {0} bytes (at most 125)")]
    ControlFrameTooLong(u64),
    /// The most significant bit of a 64-bit payload length must be 0.
    #[error("64-bit payload length with its top bit set")]
    LengthTopBitSet,
    /// RSV1–3 set without an extension that defines them.
    #[error("reserved bits set without a negotiated extension")]
    ReservedBitsSet,
    /// Every frame a client sends must be masked.
    #[error("unmasked frame from a client")]
    UnmaskedClientFrame,
    /// No frame a server sends may be masked.
    #[error("masked frame from a server")]
    MaskedServerFrame,
    /// A continuation frame arrived with no message in progress.
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// A new text/binary frame arrived while a fragmented message was in progress.
    #[error("new message started before the previous one finished")]
    ExpectedContinuation,
    /// A close frame's payload was a single byte.
    #[error("close frame with a one-byte payload")]
    CloseFrameOneByte,
    /// A close frame carried a code that may not be sent.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A text message (or close reason) was not valid UTF-8.
    #[error("invalid UTF-8 in text")]
    InvalidUtf8,
    /// A compressed message did not inflate (RFC 7692).
    #[error("invalid compressed data")]
    InvalidCompressedData,
    /// A message was larger than the configured limit.
    #[error("message larger than {limit} bytes")]
    MessageTooBig {
        /// The configured limit in bytes.
        limit: usize,
    },
}

impl ProtocolError {
    /// The close code an endpoint answers this violation with.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::InvalidUtf8 | Self::InvalidCompressedData => CloseCode::INVALID_DATA,
            Self::MessageTooBig { .. } => CloseCode::TOO_BIG,
            _ => CloseCode::PROTOCOL,
        }
    }
}
