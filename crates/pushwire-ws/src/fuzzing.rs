//! Entry points for the fuzz targets in `fuzz/`: each runs one parser we own on
//! arbitrary bytes. Not part of the supported API.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::conn::{Config, Transport, drive};
use super::deflate::{self, Inflater, Negotiated};
use super::frame::{FrameHeader, MAX_HEADER_LEN};
use super::message::{Encoder, Role};
use super::socket::{ConnId, Socket};
use super::utf8::Utf8Check;

impl Transport for tokio::io::DuplexStream {}

thread_local! {
    static RUNTIME: Option<tokio::runtime::Runtime> =
        tokio::runtime::Builder::new_current_thread().enable_all().build().ok();
}

/// Feeds `input` to a connection as the peer's bytes (server role when `server`,
/// else client role; permessage-deflate negotiated when `deflate`), with an
/// application that echoes every message, and returns what the connection wrote.
pub fn connection(input: &[u8], server: bool, deflate: bool) -> Vec<u8> {
    RUNTIME.with(|runtime| {
        let Some(runtime) = runtime else {
            return Vec::new();
        };
        runtime.block_on(async {
            let (peer, ours) = tokio::io::duplex(1 << 20);
            let config = Arc::new(Config {
                max_message_size: 1 << 16,
                ..Config::default()
            });
            let encoder = Encoder {
                role: if server { Role::Server } else { Role::Client },
                deflate: deflate.then_some(Negotiated {
                    send_window_bits: 15,
                    peer_no_context_takeover: server,
                }),
                level: 1,
                min_size: 16,
            };
            let shared = config.shared();
            let peer_addr = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
            let mut socket = Socket::new(
                ConnId::next(),
                peer_addr,
                Arc::clone(&shared),
                encoder,
                None,
                None,
            );
            let echo = async move {
                while let Some(message) = socket.recv().await {
                    if socket.send(message).await.is_err() {
                        break;
                    }
                }
            };
            let (mut peer_reads, mut peer_writes) = tokio::io::split(peer);
            let feed = async move {
                let _ = peer_writes.write_all(input).await;
                // Let the connection and the application work through the input
                // before the peer hangs up (everything is in memory: no timers).
                for _ in 0..32 {
                    tokio::task::yield_now().await;
                }
                let _ = peer_writes.shutdown().await;
            };
            let frames = drive(ours, Bytes::new(), config, encoder, shared);
            let mut written = Vec::new();
            let read = peer_reads.read_to_end(&mut written);
            let _ = tokio::join!(frames, echo, feed, read);
            written
        })
    })
}

/// Parses a frame header and checks that encoding it again gives the same bytes.
pub fn frame_header(input: &[u8]) {
    if let Ok(Some((header, len))) = FrameHeader::parse(input) {
        let mut out = [0u8; MAX_HEADER_LEN];
        let encoded = header.encode(&mut out);
        // Only the shortest length encoding round-trips byte for byte.
        if encoded == len {
            assert_eq!(&out[..len], &input[..len]);
        }
        assert_eq!(
            FrameHeader::parse(&out[..encoded]),
            Ok(Some((header, encoded)))
        );
    }
}

/// Inflates `input` as one message, in two pieces split at `split`, bounded at 1 MiB;
/// then compresses the result and checks it inflates back to the same bytes.
pub fn inflate(input: &[u8], split: usize) {
    let split = split.min(input.len());
    let mut out = BytesMut::new();
    let mut inflater = Inflater::for_one_message();
    let result = inflater
        .inflate(&input[..split], false, &mut out, 1 << 20)
        .and_then(|()| inflater.inflate(&input[split..], true, &mut out, 1 << 20));
    inflater.finish();
    if result.is_ok()
        && let Some((compressed, len)) = deflate::compress(&out, 15, 1, 0)
    {
        let mut again = BytesMut::new();
        let mut inflater = Inflater::for_one_message();
        let back = inflater.inflate(&compressed[..len], true, &mut again, 1 << 21);
        inflater.finish();
        assert!(back.is_ok());
        assert_eq!(&again[..], &out[..]);
    }
}

/// Runs both sides of extension negotiation on arbitrary header text.
pub fn negotiation(input: &str) {
    if let Some((negotiated, response)) = deflate::negotiate_server([input]) {
        assert!((8..=15).contains(&negotiated.send_window_bits));
        // What the server answers, its own client role must accept.
        assert!(deflate::accept_client(&[response.as_ref()]).is_ok());
    }
    let _ = deflate::accept_client(&[input]);
}

/// Checks the streaming UTF-8 validator against the standard library, with the
/// input split at `a` and `b`.
pub fn utf8(input: &[u8], a: usize, b: usize) {
    let a = a.min(input.len());
    let b = b.clamp(a, input.len());
    let mut check = Utf8Check::default();
    let streamed = check
        .feed(&input[..a])
        .and_then(|()| check.feed(&input[a..b]))
        .and_then(|()| check.feed(&input[b..]))
        .and_then(|()| check.finish())
        .is_ok();
    assert_eq!(streamed, std::str::from_utf8(input).is_ok());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_text_frame_is_echoed_and_garbage_gets_a_close() {
        let key = [1u8, 2, 3, 4];
        let mut input = vec![0x81, 0x85];
        input.extend_from_slice(&key);
        input.extend(b"hello".iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        let written = connection(&input, true, false);
        assert!(written.starts_with(&[0x81, 5, b'h', b'e', b'l', b'l', b'o']));
        let written = connection(&[0xff; 64], true, true);
        assert_eq!(&written[..2], &[0x88, written[1]]);
    }

    #[test]
    fn the_other_entry_points_accept_anything() {
        frame_header(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
        inflate(&[0xff, 0x00, 0x12], 1);
        negotiation("permessage-deflate; server_max_window_bits=9");
        utf8("héllo".as_bytes(), 2, 3);
    }
}
