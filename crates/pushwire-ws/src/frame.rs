//! Frame headers (RFC 6455 §5.2): parsing, encoding and masking.
//!
//! A frame on the wire is a 2–14 byte header followed by the payload:
//!
//! ```text
//!  FIN RSV1-3 opcode | MASK len7 | [len16 | len64] | [masking key] | payload
//! ```
//!
//! This module knows nothing about connections or messages; it turns bytes into
//! [`FrameHeader`]s and back, and rejects every header that the RFC forbids.

use super::error::ProtocolError;

/// The largest header a frame can have: 2 + 8 (64-bit length) + 4 (masking key).
pub const MAX_HEADER_LEN: usize = 14;

/// RSV1 in [`FrameHeader::rsv`]: set on the first frame of a compressed message
/// (RFC 7692 §6).
pub const RSV1: u8 = 0b100;

/// The largest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame's opcode (RFC 6455 §5.2, §11.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// Continues a fragmented message.
    Continuation,
    /// First frame of a UTF-8 text message.
    Text,
    /// First frame of a binary message.
    Binary,
    /// Close control frame.
    Close,
    /// Ping control frame.
    Ping,
    /// Pong control frame.
    Pong,
}

impl OpCode {
    /// Decodes the low four bits of a frame's first byte.
    pub fn from_bits(bits: u8) -> Result<Self, ProtocolError> {
        Ok(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            other => return Err(ProtocolError::ReservedOpCode(other)),
        })
    }

    /// The four bits this opcode has on the wire.
    pub fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Close, ping and pong are control frames: short, never fragmented.
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Final fragment of a message.
    pub fin: bool,
    /// The three reserved bits (RSV1 is bit 2, RSV3 bit 0); non-zero only with an extension.
    pub rsv: u8,
    /// What the frame carries.
    pub opcode: OpCode,
    /// The masking key; every frame from a client has one, no frame from a server does.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Parses a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` does not yet hold the whole header, and
    /// `Ok(Some((header, header_len)))` once it does. Headers that no valid
    /// frame can have (reserved opcodes, fragmented or oversized control frames,
    /// a 64-bit length with its top bit set) are errors.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, ProtocolError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0x07;
        let opcode = OpCode::from_bits(b0 & 0x0F)?;
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7F;
        let (payload_len, mut pos) = match len7 {
            126 => {
                let Some(bytes) = buf.get(2..4) else {
                    return Ok(None);
                };
                (u64::from(u16::from_be_bytes([bytes[0], bytes[1]])), 4)
            }
            127 => {
                let Some(bytes) = buf.get(2..10) else {
                    return Ok(None);
                };
                let mut be = [0u8; 8];
                be.copy_from_slice(bytes);
                let len = u64::from_be_bytes(be);
                if len >> 63 != 0 {
                    return Err(ProtocolError::LengthTopBitSet);
                }
                (len, 10)
            }
            short => (u64::from(short), 2),
        };
        if opcode.is_control() {
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlFrameTooLong(payload_len));
            }
        }
        let mask = if masked {
            let Some(bytes) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            pos += 4;
            Some([bytes[0], bytes[1], bytes[2], bytes[3]])
        } else {
            None
        };
        Ok(Some((
            Self {
                fin,
                rsv,
                opcode,
                mask,
                payload_len,
            },
            pos,
        )))
    }

    /// Writes this header into `out` and returns how many bytes it took
    /// (always the shortest length encoding, as RFC 6455 §5.2 requires).
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0x07) << 4) | self.opcode.bits();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut pos = match self.payload_len {
            len @ 0..=125 => {
                out[1] = mask_bit | len as u8;
                2
            }
            len @ 126..=0xFFFF => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            len => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&len.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            out[pos..pos + 4].copy_from_slice(&key);
            pos += 4;
        }
        pos
    }
}

/// XORs `data` with the masking `key` (RFC 6455 §5.3), in place.
///
/// `offset` is the position of `data[0]` within the frame's payload, so a payload
/// can be unmasked in pieces as it arrives.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let mut rotated = [0u8; 4];
    for (i, byte) in rotated.iter_mut().enumerate() {
        *byte = key[(offset + i) % 4];
    }
    let [r0, r1, r2, r3] = rotated;
    let wide = u64::from_ne_bytes([r0, r1, r2, r3, r0, r1, r2, r3]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let value = u64::from_ne_bytes(bytes) ^ wide;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= rotated[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(header: FrameHeader) {
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut out);
        let parsed = FrameHeader::parse(&out[..n]).unwrap().unwrap();
        assert_eq!(parsed, (header, n));
        for cut in 0..n {
            assert_eq!(FrameHeader::parse(&out[..cut]).unwrap(), None, "cut {cut}");
        }
    }

    #[test]
    fn headers_roundtrip_at_every_length_boundary() {
        for len in [0, 1, 125, 126, 127, 0xFFFF, 0x1_0000, u64::MAX >> 1] {
            for mask in [None, Some([1, 2, 3, 4])] {
                roundtrip(FrameHeader {
                    fin: true,
                    rsv: 0,
                    opcode: OpCode::Binary,
                    mask,
                    payload_len: len,
                });
            }
        }
    }

    #[test]
    fn shortest_length_encoding_is_used() {
        let mut out = [0u8; MAX_HEADER_LEN];
        let header = |len| FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Text,
            mask: None,
            payload_len: len,
        };
        assert_eq!(header(125).encode(&mut out), 2);
        assert_eq!(header(126).encode(&mut out), 4);
        assert_eq!(header(65_535).encode(&mut out), 4);
        assert_eq!(header(65_536).encode(&mut out), 10);
    }

    #[test]
    fn reserved_opcodes_are_rejected() {
        for bits in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            let err = FrameHeader::parse(&[0x80 | bits, 0x00]).unwrap_err();
            assert_eq!(err, ProtocolError::ReservedOpCode(bits));
        }
    }

    #[test]
    fn control_frames_must_be_final_and_short() {
        assert_eq!(
            FrameHeader::parse(&[0x09, 0x00]).unwrap_err(),
            ProtocolError::FragmentedControlFrame
        );
        assert_eq!(
            FrameHeader::parse(&[0x89, 126, 0, 126]).unwrap_err(),
            ProtocolError::ControlFrameTooLong(126)
        );
    }

    #[test]
    fn sixty_four_bit_length_with_top_bit_is_rejected() {
        let buf = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            FrameHeader::parse(&buf).unwrap_err(),
            ProtocolError::LengthTopBitSet
        );
    }

    #[test]
    fn masking_in_pieces_equals_masking_at_once() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let original: Vec<u8> = (0..100u8).collect();
        let mut whole = original.clone();
        apply_mask(&mut whole, key, 0);
        for (i, byte) in whole.iter().enumerate() {
            assert_eq!(*byte, original[i] ^ key[i % 4]);
        }
        let mut pieces = original.clone();
        let (a, b) = pieces.split_at_mut(13);
        apply_mask(a, key, 0);
        apply_mask(b, key, 13);
        assert_eq!(pieces, whole);
    }
}
