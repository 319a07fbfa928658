//! Streaming UTF-8 validation: text arrives in pieces split anywhere (inside a frame,
//! between fragments, inside a multi-byte character), and an invalid byte must fail
//! the connection as soon as it arrives (RFC 6455 §8.1, "fail fast").

use super::error::ProtocolError;

/// Checks text piece by piece, carrying an incomplete character across pieces.
#[derive(Debug, Default, Clone)]
pub(crate) struct Utf8Check {
    carry: [u8; 4],
    /// Bytes used in `carry` (at most 3). A `u8`, so the check costs the connection
    /// five bytes.
    carry_len: u8,
}

/// The length of the sequence a lead byte starts (0 for a byte that cannot lead).
fn sequence_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

impl Utf8Check {
    /// Checks the next piece; fails at the first byte that no valid text could have.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Result<(), ProtocolError> {
        if self.carry_len > 0 {
            let have = usize::from(self.carry_len);
            let need = sequence_len(self.carry[0]);
            let take = (need - have).min(bytes.len());
            self.carry[have..have + take].copy_from_slice(&bytes[..take]);
            let have = have + take;
            self.carry_len = have as u8;
            bytes = &bytes[take..];
            let sequence = &self.carry[..have];
            if have < need {
                // Still incomplete: valid only if it is the start of some character.
                return match simdutf8::compat::from_utf8(sequence) {
                    Err(err) if err.error_len().is_some() => Err(ProtocolError::InvalidUtf8),
                    _ => Ok(()),
                };
            }
            simdutf8::basic::from_utf8(sequence).map_err(|_| ProtocolError::InvalidUtf8)?;
            self.carry_len = 0;
        }
        match simdutf8::compat::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(err) if err.error_len().is_some() => Err(ProtocolError::InvalidUtf8),
            Err(err) => {
                // An incomplete character: at most three bytes.
                let tail = &bytes[err.valid_up_to()..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carry_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// The text has ended: an incomplete character at its end is invalid.
    pub(crate) fn finish(&self) -> Result<(), ProtocolError> {
        if self.carry_len == 0 {
            Ok(())
        } else {
            Err(ProtocolError::InvalidUtf8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_split_everywhere(bytes: &[u8]) -> bool {
        let whole = std::str::from_utf8(bytes).is_ok();
        for a in 0..=bytes.len() {
            for b in a..=bytes.len() {
                let mut check = Utf8Check::default();
                let split = check
                    .feed(&bytes[..a])
                    .and_then(|()| check.feed(&bytes[a..b]))
                    .and_then(|()| check.feed(&bytes[b..]))
                    .and_then(|()| check.finish())
                    .is_ok();
                assert_eq!(split, whole, "{bytes:x?} split at {a}, {b}");
            }
        }
        whole
    }

    #[test]
    fn any_split_of_valid_text_is_valid() {
        assert!(check_split_everywhere("κόσμε €𝄞 ok".as_bytes()));
        assert!(check_split_everywhere(b""));
    }

    #[test]
    fn any_split_of_invalid_text_is_invalid() {
        for bad in [
            &b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"[..],
            b"\xc0\xaf",
            b"\xf4\x90\x80\x80",
            b"abc\xe0\x80",
            b"\xf0\x9f\x98",
            b"\x80",
        ] {
            assert!(!check_split_everywhere(bad));
        }
    }

    #[test]
    fn an_invalid_byte_fails_before_the_text_ends() {
        let mut check = Utf8Check::default();
        assert!(check.feed(b"\xce\xba").is_ok());
        assert!(check.feed(b"\xe1").is_ok());
        assert_eq!(check.feed(b"\x28"), Err(ProtocolError::InvalidUtf8));
    }
}
