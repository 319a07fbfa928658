//! [`Data`]: a published value, validated as one JSON value that every subscriber
//! can read (nested at most [`MAX_DEPTH`] levels, on one line).

use std::fmt;

use bytes::Bytes;

/// Whether arrays and objects in `json` (valid JSON) nest deeper than `max`.
fn nesting_exceeds(json: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// A published value: the bytes of one valid JSON value, without line breaks.
///
/// Line breaks can only be insignificant whitespace in valid JSON; they are removed
/// so that a message is always one line (one SSE `data:` line, one line of
/// `pushwire sub`).
#[derive(Clone, PartialEq, Eq)]
pub struct Data(Bytes);

/// How deeply arrays and objects may nest in published data. Subscribers parse
/// what they get, and common parsers stop at 128 levels (serde_json) or run out of
/// stack; a message every subscriber can read is kept well below that.
pub const MAX_DEPTH: usize = 64;

/// The published bytes are not one JSON value that subscribers can read.
#[derive(Debug, thiserror::Error)]
pub enum InvalidJson {
    /// Not JSON.
    #[error("not valid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    /// Arrays and objects nested deeper than [`MAX_DEPTH`].
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl Data {
    /// Checks that `bytes` hold exactly one JSON value (surrounding whitespace
    /// allowed), nested at most [`MAX_DEPTH`] levels.
    pub fn json(bytes: impl Into<Bytes>) -> Result<Self, InvalidJson> {
        let bytes = bytes.into();
        serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)?;
        if nesting_exceeds(&bytes, MAX_DEPTH) {
            return Err(InvalidJson::TooDeep);
        }
        Ok(Self(one_line(bytes)))
    }

    /// Bytes known to be one valid JSON value on one line, taken as they are
    /// (no parsing, no nesting check): what the hub builds itself from values
    /// already checked, such as a journal entry wrapping a published value
    /// ([`crate::hub::journal::entry`]), which may nest one level deeper than
    /// [`MAX_DEPTH`].
    pub(crate) fn trusted(bytes: Bytes) -> Self {
        Self(bytes)
    }

    /// Checks bytes a broker kept (its history, its channel): one JSON value,
    /// nested at most [`MAX_DEPTH`] + 1 levels, since a journal entry wraps a
    /// checked value in one more object.
    pub(crate) fn stored(bytes: impl Into<Bytes>) -> Result<Self, InvalidJson> {
        let bytes = bytes.into();
        serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)?;
        if nesting_exceeds(&bytes, MAX_DEPTH + 1) {
            return Err(InvalidJson::TooDeep);
        }
        Ok(Self(one_line(bytes)))
    }

    /// A JSON string holding `text`.
    pub fn text(text: &str) -> Self {
        let mut out = Vec::with_capacity(text.len() + 2);
        // Serializing a str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, text);
        Self(Bytes::from(out))
    }

    /// The JSON text.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The JSON text as a string slice.
    pub fn as_str(&self) -> &str {
        // Validated as JSON, so valid UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty (never, for a valid value).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Valid JSON `bytes` without surrounding whitespace and line breaks (which can
/// only be insignificant whitespace).
fn one_line(bytes: Bytes) -> Bytes {
    let trimmed = bytes.trim_ascii();
    let start = trimmed.as_ptr() as usize - bytes.as_ptr() as usize;
    let bytes = bytes.slice(start..start + trimmed.len());
    if memchr_newline(&bytes) {
        let one_line: Vec<u8> = bytes
            .iter()
            .copied()
            .filter(|&b| b != b'\n' && b != b'\r')
            .collect();
        return Bytes::from(one_line);
    }
    bytes
}

fn memchr_newline(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b == b'\n' || b == b'\r')
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_may_nest_64_levels_and_no_more() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(Data::json(nested(64)).is_ok());
        assert!(matches!(Data::json(nested(65)), Err(InvalidJson::TooDeep)));
        let objects = format!("{}1{}", r#"{"a":"#.repeat(65), "}".repeat(65));
        assert!(matches!(Data::json(objects), Err(InvalidJson::TooDeep)));
        // Brackets inside strings (escaped quotes included) are not nesting.
        let in_string = format!(r#"["\"{}"]"#, "[".repeat(100));
        assert!(Data::json(in_string).is_ok());
    }

    #[test]
    fn stored_data_may_nest_one_level_more_for_the_journal() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(Data::stored(nested(65)).is_ok());
        assert!(matches!(
            Data::stored(nested(66)),
            Err(InvalidJson::TooDeep)
        ));
        assert!(Data::stored(&b"{"[..]).is_err());
        let kept = Data::stored(&b" [1,\n2] "[..]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kept.as_str(), "[1,2]");
    }

    #[test]
    fn text_becomes_a_json_string() {
        assert_eq!(Data::text("a \"b\"\n").as_str(), r#""a \"b\"\n""#);
    }

    #[test]
    fn invalid_json_is_refused() {
        for bad in [&b""[..], b"{", b"1 2", b"\xff", b"nul"] {
            assert!(Data::json(bad).is_err(), "{bad:?}");
        }
    }
}
