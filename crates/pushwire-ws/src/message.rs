//! Messages as applications see them, and their encoding into frames.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

use super::deflate::{self, Negotiated};
use super::error::CloseCode;
use super::frame::{FrameHeader, MAX_HEADER_LEN, OpCode, RSV1, apply_mask};

/// Bytes that are known to be valid UTF-8: the payload of a text message.
///
/// Cloning is cheap (a reference count), so one text can be sent to many sockets.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Wraps a static string without copying it.
    pub const fn from_static(text: &'static str) -> Self {
        Self(Bytes::from_static(text.as_bytes()))
    }

    /// Validates `bytes` as UTF-8.
    pub fn try_from_bytes(bytes: Bytes) -> Result<Self, simdutf8::basic::Utf8Error> {
        simdutf8::basic::from_utf8(&bytes)?;
        Ok(Self(bytes))
    }

    /// Wraps bytes whose UTF-8 the caller has already checked, without checking
    /// again (a text built from `str` pieces, a payload whose every byte a streaming
    /// validator saw).
    ///
    /// # Safety
    ///
    /// `bytes` must be valid UTF-8: [`as_str`](Self::as_str) hands them out as a
    /// `str` unchecked. Debug builds assert it.
    pub unsafe fn from_validated(bytes: Bytes) -> Self {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Self(bytes)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor validates or starts from a `str`.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Utf8Bytes {
    fn from(text: String) -> Self {
        Self(Bytes::from(text))
    }
}

impl From<&'static str> for Utf8Bytes {
    fn from(text: &'static str) -> Self {
        Self::from_static(text)
    }
}

/// A complete WebSocket data message.
///
/// Control frames (ping, pong, close) are handled by the connection itself and never
/// reach the application as messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A UTF-8 text message.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// The payload bytes, whatever the kind.
    pub fn payload(&self) -> &Bytes {
        match self {
            Self::Text(text) => text.as_bytes(),
            Self::Binary(bytes) => bytes,
        }
    }

    /// The text, if this is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text.as_str()),
            Self::Binary(_) => None,
        }
    }

    pub(crate) fn opcode(&self) -> OpCode {
        match self {
            Self::Text(_) => OpCode::Text,
            Self::Binary(_) => OpCode::Binary,
        }
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Self::Text(text.into())
    }
}

impl From<&'static str> for Message {
    fn from(text: &'static str) -> Self {
        Self::Text(text.into())
    }
}

impl From<Utf8Bytes> for Message {
    fn from(text: Utf8Bytes) -> Self {
        Self::Text(text)
    }
}

impl From<Bytes> for Message {
    fn from(bytes: Bytes) -> Self {
        Self::Binary(bytes)
    }
}

impl From<Vec<u8>> for Message {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Binary(bytes.into())
    }
}

/// The code and reason of a close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// Why the connection is closing.
    pub code: CloseCode,
    /// A short human-readable reason (at most 123 bytes of UTF-8 on the wire).
    pub reason: String,
}

impl CloseFrame {
    /// A close frame with `code` and `reason`.
    pub fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    /// The frame's payload: the code in network order, then the reason cut to fit in a
    /// control frame (123 bytes) on a character boundary.
    pub(crate) fn payload(&self) -> BytesMut {
        let mut reason = self.reason.as_str();
        if reason.len() > 123 {
            let mut end = 123;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason = &reason[..end];
        }
        let mut out = BytesMut::with_capacity(2 + reason.len());
        out.put_u16(self.code.0);
        out.put_slice(reason.as_bytes());
        out
    }
}

/// Which end of the connection we are: it decides masking (RFC 6455 §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We accepted the connection: our frames are unmasked, the peer's masked.
    Server,
    /// We opened the connection: our frames are masked, the peer's unmasked.
    Client,
}

/// Turns messages into frames the way one connection needs them: masked or not,
/// compressed or not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Encoder {
    pub(crate) role: Role,
    pub(crate) deflate: Option<Negotiated>,
    pub(crate) level: u32,
    pub(crate) min_size: usize,
}

impl Encoder {
    /// The frame for a data message: compressed when negotiated and worthwhile.
    pub(crate) fn data(&self, message: &Message) -> Bytes {
        let payload = message.payload();
        if let Some(negotiated) = self.deflate
            && payload.len() >= self.min_size
            && let Some(frame) = compressed_frame(
                message.opcode(),
                payload,
                negotiated.send_window_bits,
                self.level,
                self.mask(),
            )
        {
            return frame;
        }
        encode_frame(message.opcode(), payload, self.mask())
    }

    /// A control frame (close, ping, pong).
    pub(crate) fn control(&self, opcode: OpCode, payload: &[u8]) -> Bytes {
        encode_frame(opcode, payload, self.mask())
    }

    fn mask(&self) -> Option<[u8; 4]> {
        match self.role {
            Role::Server => None,
            Role::Client => Some(rand::random()),
        }
    }
}

/// Encodes one final, uncompressed frame into a single buffer, masking it when `mask`
/// is given.
pub(crate) fn encode_frame(opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> Bytes {
    let header = FrameHeader {
        fin: true,
        rsv: 0,
        opcode,
        mask,
        payload_len: payload.len() as u64,
    };
    let mut head = [0u8; MAX_HEADER_LEN];
    let head_len = header.encode(&mut head);
    let mut out = BytesMut::with_capacity(head_len + payload.len());
    out.put_slice(&head[..head_len]);
    out.put_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[head_len..], key, 0);
    }
    out.freeze()
}

/// Compresses `payload` into one final frame with RSV1 set, written behind a header
/// in the same buffer; `None` when compression does not pay off.
pub(crate) fn compressed_frame(
    opcode: OpCode,
    payload: &[u8],
    window_bits: u8,
    level: u32,
    mask: Option<[u8; 4]>,
) -> Option<Bytes> {
    let (mut buffer, compressed_len) =
        deflate::compress(payload, window_bits, level, MAX_HEADER_LEN)?;
    let header = FrameHeader {
        fin: true,
        rsv: RSV1,
        opcode,
        mask,
        payload_len: compressed_len as u64,
    };
    let mut head = [0u8; MAX_HEADER_LEN];
    let head_len = header.encode(&mut head);
    let start = MAX_HEADER_LEN - head_len;
    buffer[start..MAX_HEADER_LEN].copy_from_slice(&head[..head_len]);
    if let Some(key) = mask {
        apply_mask(&mut buffer[MAX_HEADER_LEN..], key, 0);
    }
    Some(Bytes::from(buffer).slice(start..))
}

/// Encodes one unmasked, final frame (the server's way of sending).
#[cfg(test)]
pub(crate) fn encode_server_frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    encode_frame(opcode, payload, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reason_is_cut_on_a_char_boundary() {
        let frame = CloseFrame::new(CloseCode::NORMAL, "é".repeat(100));
        let payload = frame.payload();
        assert!(payload.len() <= 125);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
        assert_eq!(&payload[..2], &1000u16.to_be_bytes());
    }

    #[test]
    fn server_frames_are_unmasked_and_final() {
        let frame = encode_server_frame(OpCode::Text, b"42");
        assert_eq!(&frame[..], &[0x81, 2, b'4', b'2']);
    }
}
