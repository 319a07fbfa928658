//! permessage-deflate (RFC 7692): negotiation, and compressing and inflating message
//! payloads.
//!
//! The server always answers an offer with `server_no_context_takeover` and
//! `client_no_context_takeover`. The first means a message's compressed form does not
//! depend on what was sent before on that connection, so one compressed payload is
//! valid for every subscriber of a publish. The second (which RFC 7692 §7.1.1.2 lets
//! a server add to any offer) means no connection keeps inflate state between
//! messages: an idle connection holds no zlib memory in either direction. Compressors
//! and inflaters live in small per-thread pools and are reset after each message.

use std::borrow::Cow;
use std::cell::RefCell;

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::error::ProtocolError;

/// The extension's token in `Sec-WebSocket-Extensions`.
pub const EXTENSION: &str = "permessage-deflate";

/// What the server answers to an offer without `server_max_window_bits`.
pub const SERVER_RESPONSE: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// The four bytes a sync flush ends with; stripped when sending, appended before
/// inflating (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The smallest window zlib can compress with; a peer that allows us less gets
/// uncompressed messages (always allowed: compression is per message).
const MIN_ZLIB_WINDOW: u8 = 9;

/// How compression is offered and used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Negotiate permessage-deflate at all.
    pub enabled: bool,
    /// Messages shorter than this are sent uncompressed.
    pub min_size: usize,
    /// zlib level, 0 (store) to 9 (smallest).
    pub level: u32,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_size: 64,
            level: 3,
        }
    }
}

/// What was agreed for one connection, seen from our side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The largest LZ77 window our compressor may use (8..=15).
    pub send_window_bits: u8,
    /// Whether the peer resets its compressor after each message (so we need no
    /// inflate state between messages).
    pub peer_no_context_takeover: bool,
}

impl Negotiated {
    /// Whether we can compress at all within the peer's window.
    pub fn can_compress(&self) -> bool {
        self.send_window_bits >= MIN_ZLIB_WINDOW
    }
}

/// One offer's parameters as the client wrote them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value.
    client_max_window_bits: Option<Option<u8>>,
}

/// An extension parameter: `key` or `key=value`.
type Param<'a> = (&'a str, Option<&'a str>);

/// Splits `name; a; b=1, other` into extensions and their parameters.
fn parse_extensions(header: &str) -> Vec<(&str, Vec<Param<'_>>)> {
    header
        .split(',')
        .filter(|ext| !ext.trim().is_empty())
        .map(|ext| {
            let mut parts = ext.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let params = parts
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((key, value)) => (key.trim(), Some(value.trim().trim_matches('"'))),
                    None => (p, None),
                })
                .collect();
            (name, params)
        })
        .collect()
}

fn window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || value.len() > 2 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

/// Parses one permessage-deflate offer; `None` if any parameter is unknown,
/// repeated, or has a bad value (such an offer is declined, RFC 7692 §7.1).
fn parse_offer(params: &[Param<'_>]) -> Option<Offer> {
    let mut offer = Offer::default();
    let mut seen = Vec::with_capacity(params.len());
    for &(key, value) in params {
        let key = key.to_ascii_lowercase();
        if seen.contains(&key) {
            return None;
        }
        match (key.as_str(), value) {
            ("server_no_context_takeover", None) => offer.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => offer.client_no_context_takeover = true,
            ("server_max_window_bits", Some(v)) => {
                offer.server_max_window_bits = Some(window_bits(v)?)
            }
            ("client_max_window_bits", None) => offer.client_max_window_bits = Some(None),
            ("client_max_window_bits", Some(v)) => {
                offer.client_max_window_bits = Some(Some(window_bits(v)?));
            }
            _ => return None,
        }
        seen.push(key);
    }
    Some(offer)
}

/// Picks the first acceptable permessage-deflate offer from the client's
/// `Sec-WebSocket-Extensions` values; returns what we agreed and the response header.
pub fn negotiate_server<'a>(
    offers: impl IntoIterator<Item = &'a str>,
) -> Option<(Negotiated, Cow<'static, str>)> {
    for header in offers {
        for (name, params) in parse_extensions(header) {
            if !name.eq_ignore_ascii_case(EXTENSION) {
                continue;
            }
            let Some(offer) = parse_offer(&params) else {
                continue;
            };
            // The usual answer is the same for every connection: no allocation.
            let (response, send_window_bits) = match offer.server_max_window_bits {
                Some(bits) => (
                    Cow::Owned(format!("{SERVER_RESPONSE}; server_max_window_bits={bits}")),
                    bits,
                ),
                None => (Cow::Borrowed(SERVER_RESPONSE), 15),
            };
            return Some((
                Negotiated {
                    send_window_bits,
                    peer_no_context_takeover: true,
                },
                response,
            ));
        }
    }
    None
}

/// The offer our client sends.
pub fn client_offer() -> String {
    format!("{EXTENSION}; client_max_window_bits")
}

/// Checks the server's answer to [`client_offer`]. `Ok(None)`: the server declined.
/// Anything we did not offer or cannot honour fails the handshake (RFC 7692 §7.1).
pub fn accept_client(responses: &[&str]) -> Result<Option<Negotiated>, String> {
    let mut accepted = None;
    for header in responses {
        for (name, params) in parse_extensions(header) {
            if !name.eq_ignore_ascii_case(EXTENSION) {
                return Err(format!(
                    "server answered with extension {name:?}, never offered"
                ));
            }
            if accepted.is_some() {
                return Err("server answered permessage-deflate twice".into());
            }
            let offer = parse_offer(&params)
                .ok_or_else(|| format!("invalid permessage-deflate response {header:?}"))?;
            let send_window_bits = match offer.client_max_window_bits {
                None => 15,
                Some(Some(bits)) => bits,
                Some(None) => return Err("client_max_window_bits without a value".into()),
            };
            accepted = Some(Negotiated {
                send_window_bits,
                peer_no_context_takeover: offer.server_no_context_takeover,
            });
        }
    }
    Ok(accepted)
}

thread_local! {
    /// One compressor per thread and window size, reset after every message.
    static COMPRESSORS: RefCell<Vec<(u8, u32, Compress)>> = const { RefCell::new(Vec::new()) };
    /// Inflaters waiting for a compressed message to arrive.
    // Boxed so an `Inflater` moves in and out of the pool without copying zlib state.
    #[allow(clippy::vec_box)]
    static INFLATERS: RefCell<Vec<Box<Decompress>>> = const { RefCell::new(Vec::new()) };
}

/// Most inflaters a thread keeps for reuse.
const POOLED_INFLATERS: usize = 4;

/// Compresses `payload` as one message, leaving `head_room` bytes free at the front
/// for the frame header. Returns `None` when compression would not pay off.
pub fn compress(
    payload: &[u8],
    window_bits: u8,
    level: u32,
    head_room: usize,
) -> Option<(Vec<u8>, usize)> {
    if window_bits < MIN_ZLIB_WINDOW {
        return None;
    }
    COMPRESSORS.with(|cell| {
        let mut pool = cell.borrow_mut();
        let index = match pool
            .iter()
            .position(|(w, l, _)| *w == window_bits && *l == level)
        {
            Some(index) => index,
            None => {
                pool.push((
                    window_bits,
                    level,
                    Compress::new_with_window_bits(
                        Compression::new(level.min(9)),
                        false,
                        window_bits,
                    ),
                ));
                pool.len() - 1
            }
        };
        let compressor = &mut pool[index].2;
        let mut out = Vec::with_capacity(head_room + payload.len() / 2 + 64);
        out.resize(head_room, 0);
        let start_in = compressor.total_in();
        let result = loop {
            let consumed = (compressor.total_in() - start_in) as usize;
            if out.len() == out.capacity() {
                out.reserve(payload.len() / 4 + 64);
            }
            match compressor.compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync) {
                Ok(_) => {}
                Err(_) => break None,
            }
            let consumed = (compressor.total_in() - start_in) as usize;
            if consumed == payload.len() && out.len() < out.capacity() {
                break Some(());
            }
        };
        compressor.reset();
        result?;
        if !out.ends_with(&TAIL) {
            return None;
        }
        out.truncate(out.len() - TAIL.len());
        let compressed_len = out.len() - head_room;
        (compressed_len < payload.len()).then_some((out, compressed_len))
    })
}

/// Inflates one message's payload as its frames arrive.
pub struct Inflater {
    /// Boxed: the zlib state is large, and most connections never need one.
    inner: Box<Decompress>,
    /// Return to the thread's pool when the message ends.
    pooled: bool,
}

impl Inflater {
    /// An inflater for one message (from the thread's pool).
    pub fn for_one_message() -> Self {
        let inner = INFLATERS
            .with(|cell| cell.borrow_mut().pop())
            .unwrap_or_else(|| Box::new(Decompress::new_with_window_bits(false, 15)));
        Self {
            inner,
            pooled: true,
        }
    }

    /// An inflater kept by one connection for its whole life (the peer keeps context).
    pub fn for_connection() -> Self {
        Self {
            inner: Box::new(Decompress::new_with_window_bits(false, 15)),
            pooled: false,
        }
    }

    /// Inflates `input` onto the end of `out`, failing once `out` would exceed `limit`.
    /// `last` marks the final fragment: the stripped sync-flush tail is fed after it.
    pub fn inflate(
        &mut self,
        input: &[u8],
        last: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), ProtocolError> {
        self.feed(input, out, limit)?;
        if last {
            self.feed(&TAIL, out, limit)?;
        }
        Ok(())
    }

    fn feed(
        &mut self,
        input: &[u8],
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), ProtocolError> {
        let start_in = self.inner.total_in();
        loop {
            let consumed = (self.inner.total_in() - start_in) as usize;
            let before = out.len();
            if before > limit {
                return Err(ProtocolError::MessageTooBig { limit });
            }
            // Room for what the rest of the input may inflate to (deflate rarely
            // exceeds 4:1 on the first pass; the loop grows it when it does).
            let guess = ((input.len() - consumed) * 4).clamp(1024, 64 * 1024);
            let room = guess.min(limit.saturating_add(1) - before).max(1);
            out.resize(before + room, 0);
            let before_out = self.inner.total_out();
            let status = self
                .inner
                .decompress(
                    &input[consumed..],
                    &mut out[before..],
                    FlushDecompress::Sync,
                )
                .map_err(|_| ProtocolError::InvalidCompressedData)?;
            let produced = (self.inner.total_out() - before_out) as usize;
            out.truncate(before + produced);
            if out.len() > limit {
                return Err(ProtocolError::MessageTooBig { limit });
            }
            let consumed = (self.inner.total_in() - start_in) as usize;
            let output_full = produced == room;
            if consumed == input.len() && !output_full {
                return Ok(());
            }
            if produced == 0
                && !output_full
                && matches!(status, Status::BufError | Status::StreamEnd)
            {
                // No progress possible: a final block before the end, or garbage.
                return Err(ProtocolError::InvalidCompressedData);
            }
        }
    }

    /// Ends a message: the per-message inflater goes back to the pool, reset.
    pub fn finish(mut self) {
        if self.pooled {
            self.inner.reset(false);
            INFLATERS.with(|cell| {
                let mut pool = cell.borrow_mut();
                if pool.len() < POOLED_INFLATERS {
                    pool.push(self.inner);
                }
            });
        }
    }

    /// Whether this inflater lives as long as its connection.
    pub fn is_persistent(&self) -> bool {
        !self.pooled
    }
}

/// Compresses a whole payload (no frame header room).
#[cfg(test)]
fn compressed_payload(payload: &[u8], window_bits: u8, level: u32) -> Option<bytes::Bytes> {
    compress(payload, window_bits, level, 0).map(|(out, _)| bytes::Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_answers_a_plain_offer_without_context_takeover_both_ways() {
        let (negotiated, response) = negotiate_server(["permessage-deflate"]).unwrap();
        assert_eq!(
            response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        assert_eq!(negotiated.send_window_bits, 15);
    }

    #[test]
    fn the_server_honours_server_max_window_bits_and_skips_bad_offers() {
        let (negotiated, response) = negotiate_server([
            "permessage-deflate; server_max_window_bits=16, permessage-deflate; unknown, \
             permessage-deflate; server_max_window_bits=10; client_max_window_bits",
        ])
        .unwrap();
        assert!(response.ends_with("; server_max_window_bits=10"));
        assert_eq!(negotiated.send_window_bits, 10);
        assert!(
            negotiate_server([
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover"
            ])
            .is_none()
        );
        assert!(negotiate_server(["permessage-deflate; client_no_context_takeover=1"]).is_none());
        assert!(negotiate_server(["x-webkit-deflate-frame"]).is_none());
    }

    #[test]
    fn the_client_rejects_what_it_never_offered() {
        assert!(accept_client(&["permessage-deflate; foo"]).is_err());
        assert!(accept_client(&["x-other"]).is_err());
        assert!(accept_client(&["permessage-deflate, permessage-deflate"]).is_err());
        let ok = accept_client(&[
            "permessage-deflate; client_max_window_bits=9; server_no_context_takeover",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(ok.send_window_bits, 9);
        assert!(ok.peer_no_context_takeover);
        assert_eq!(accept_client(&[]).unwrap(), None);
    }

    #[test]
    fn compressed_messages_inflate_back_in_pieces() {
        let text = "the quick brown fox jumps over the lazy dog; ".repeat(200);
        for window in [9u8, 12, 15] {
            let compressed = compressed_payload(text.as_bytes(), window, 3).unwrap();
            assert!(compressed.len() < text.len() / 4);
            let mut out = BytesMut::new();
            let mut inflater = Inflater::for_one_message();
            let (a, b) = compressed.split_at(compressed.len() / 3);
            inflater.inflate(a, false, &mut out, 1 << 20).unwrap();
            inflater.inflate(b, true, &mut out, 1 << 20).unwrap();
            inflater.finish();
            assert_eq!(&out[..], text.as_bytes());
        }
    }

    #[test]
    fn inflating_past_the_limit_fails_as_too_big() {
        let zeros = vec![0u8; 1 << 20];
        let compressed = compressed_payload(&zeros, 15, 3).unwrap();
        let mut out = BytesMut::new();
        let err = Inflater::for_one_message()
            .inflate(&compressed, true, &mut out, 1000)
            .unwrap_err();
        assert_eq!(err, ProtocolError::MessageTooBig { limit: 1000 });
        assert!(out.len() <= 1001 + 64 * 1024);
    }

    #[test]
    fn garbage_is_invalid_compressed_data() {
        let mut out = BytesMut::new();
        let err = Inflater::for_one_message()
            .inflate(&[0xff, 0xff, 0xff, 0xff, 0x00], true, &mut out, 1 << 20)
            .unwrap_err();
        assert_eq!(err, ProtocolError::InvalidCompressedData);
    }

    #[test]
    fn tiny_windows_are_never_compressed() {
        assert!(
            compress(
                b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                8,
                3,
                0
            )
            .is_none()
        );
    }
}
