//! One log line when a connection opens and one when it closes, on every
//! transport, with the fields an operator filters and sums by.
//!
//! The lines go to the `tracing` target [`TARGET`] (`pushwire::conn`) at `info`,
//! so `RUST_LOG=info,pushwire::conn=off` silences them. Their message is the line a
//! person reads (`Opened: c12 127.0.0.1:53012`, `Closed: c12 1000 "" after 5
//! messages`); their fields are what a machine reads (`--log-format json`):
//!
//! | field | on | what |
//! |---|---|---|
//! | `conn_id` | both | `c<n>`, unique in the process (one sequence for every transport) |
//! | `transport` | both | `ws` (the topic protocol), `socket` (an application route such as the counter's `/socket`), `sse`, `poll` |
//! | `peer` | open | the client's address and port (`-` when unknown) |
//! | `duration_ms` | close | from open to close |
//! | `messages_in`, `messages_out` | close | protocol messages received and sent (below) |
//! | `bytes_in`, `bytes_out` | close | bytes read and written |
//! | `close_code`, `close_reason` | close, WebSocket only | the close handshake's code and reason |
//!
//! What counts, per transport: a WebSocket counts data messages (every reply and
//! push is one) and the bytes on the TCP stream after the handshake (frame headers,
//! control frames, compression); an SSE stream counts the events it sent (each
//! `data:` line) and the bytes of its body; a long-poll is one connection per
//! request, from the moment it is subscribed until its answer is ready (or the
//! client went away), and counts the entries of its answer's `messages` and the
//! answer's bytes. `GET` requests carry nothing in, so SSE and long-poll count 0
//! in.

use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use super::labels::Transport;
use crate::ws::ConnId;

/// The `tracing` target of the connection lines.
pub const TARGET: &str = "pushwire::conn";

/// What one connection moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnCounts {
    /// Protocol messages received.
    pub messages_in: u64,
    /// Protocol messages sent.
    pub messages_out: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
}

/// An open connection as the log knows it: the `Opened:` line is written when it
/// is made, the `Closed:` line by [`ConnLog::closed`] or [`ConnLog::ended`].
/// Small (the id, the kind, the time), because every idle WebSocket holds one.
#[derive(Debug)]
pub struct ConnLog {
    id: ConnId,
    transport: Transport,
    opened: Instant,
}

impl ConnLog {
    /// Logs `Opened: <id> <peer>`.
    pub fn open(id: ConnId, transport: Transport, peer: Option<SocketAddr>) -> Self {
        let peer = Peer(peer);
        tracing::info!(
            target: TARGET,
            conn_id = %id,
            transport = %transport,
            peer = %peer,
            "Opened: {id} {peer}"
        );
        Self {
            id,
            transport,
            opened: Instant::now(),
        }
    }

    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Logs the close of a WebSocket: `Closed: <id> <code> "<reason>" after <n>
    /// messages` (n: messages sent).
    pub fn closed(self, code: u16, reason: &str, counts: &ConnCounts) {
        let id = self.id;
        tracing::info!(
            target: TARGET,
            conn_id = %id,
            transport = %self.transport,
            duration_ms = self.duration_ms(),
            messages_in = counts.messages_in,
            messages_out = counts.messages_out,
            bytes_in = counts.bytes_in,
            bytes_out = counts.bytes_out,
            close_code = code,
            close_reason = reason,
            "Closed: {id} {code} {reason:?} after {} messages",
            counts.messages_out
        );
    }

    /// Logs the end of a connection without a close handshake (SSE, long-poll):
    /// `Closed: <id> after <n> messages`.
    pub fn ended(self, counts: &ConnCounts) {
        let id = self.id;
        tracing::info!(
            target: TARGET,
            conn_id = %id,
            transport = %self.transport,
            duration_ms = self.duration_ms(),
            messages_in = counts.messages_in,
            messages_out = counts.messages_out,
            bytes_in = counts.bytes_in,
            bytes_out = counts.bytes_out,
            "Closed: {id} after {} messages",
            counts.messages_out
        );
    }

    fn duration_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A connection that counts what it sends as it goes and logs its close when
/// dropped, however it ends (the stream ran out, the client went away, the
/// server shut down): SSE streams and long-polls.
#[derive(Debug)]
pub struct ConnTally {
    /// `None` only once the close is logged.
    log: Option<ConnLog>,
    counts: ConnCounts,
}

impl ConnTally {
    /// Draws a new id and logs `Opened:`.
    pub fn open(transport: Transport, peer: Option<SocketAddr>) -> Self {
        Self {
            log: Some(ConnLog::open(ConnId::next(), transport, peer)),
            counts: ConnCounts::default(),
        }
    }

    /// Counts `messages` protocol messages in `bytes` bytes sent.
    pub fn sent(&mut self, messages: u64, bytes: u64) {
        self.counts.messages_out += messages;
        self.counts.bytes_out += bytes;
    }

    /// What was counted so far.
    pub fn counts(&self) -> ConnCounts {
        self.counts
    }
}

impl Drop for ConnTally {
    fn drop(&mut self) {
        if let Some(log) = self.log.take() {
            log.ended(&self.counts);
        }
    }
}

/// A peer address for the log: `-` when unknown.
struct Peer(Option<SocketAddr>);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// The number of events in a chunk of an SSE body: its `data:` lines (every event
/// has exactly one, and no data holds a line break).
pub fn sse_events(chunk: &[u8]) -> u64 {
    let mut events = 0;
    let mut line_start = true;
    for (i, &byte) in chunk.iter().enumerate() {
        if line_start && chunk[i..].starts_with(b"data:") {
            events += 1;
        }
        line_start = byte == b'\n';
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_counted_by_their_data_lines() {
        assert_eq!(sse_events(b": keepalive\n\n"), 0);
        assert_eq!(sse_events(b"retry: 1000\n\n"), 0);
        assert_eq!(
            sse_events(
                b"id: a\nevent: subscribed\ndata: {}\n\nid: b\ndata: {\"data\":\"data: x\"}\n\n"
            ),
            2
        );
        assert_eq!(sse_events(b"data: x\n\n"), 1);
    }

    #[test]
    fn a_tally_counts_what_it_sent() {
        let mut tally = ConnTally::open(Transport::Poll, None);
        tally.sent(2, 100);
        tally.sent(1, 10);
        assert_eq!(
            tally.counts(),
            ConnCounts {
                messages_in: 0,
                messages_out: 3,
                bytes_in: 0,
                bytes_out: 110
            }
        );
    }
}
