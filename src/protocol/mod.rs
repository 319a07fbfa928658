//! Our wire protocol on `/ws` (see `docs/protocol.md`), both ways, and the session
//! that speaks it.
//!
//! - [`request`]: requests: the server reads them ([`parse`], once per request),
//!   a client writes them ([`ClientRequest`]);
//! - [`reply`]: what the server answers: the hello, `ok` and `error` replies, the
//!   `unsub` push that says why a subscription ended;
//! - [`push`]: a [`Push`](crate::topic::Push) as JSON and as a WebSocket frame,
//!   encoded once and shared by every subscriber ([`PushJson`]); SSE and long-poll
//!   deliver the same JSON;
//! - [`server_frame`]: what a client reads from the server ([`ServerFrame`],
//!   [`Event`]), for the Rust client (`crate::topic_client`);
//! - [`session`]: one `/ws` connection as a sans-IO state machine ([`Session`]):
//!   events in, actions out; no socket, no hub, no clock inside. The tokio task
//!   that drives it is `crate::session`.
//!
//! The error codes replies carry are [`ErrorCode`], in the topic vocabulary
//! (`crate::topic`), because every way in (this protocol, SSE, long-poll, the HTTP
//! API, token checks) answers the same codes.

pub mod push;
pub mod reply;
pub mod request;
pub mod server_frame;
pub mod session;

pub use push::PushJson;
pub use reply::{Ended, PositionReply, error, error_object, hello, members, ok, position, unsub};
pub use request::{ClientRequest, MAX_ID_LEN, Request, invalid_topic, parse};
pub use server_frame::{Event, ServerFrame};
pub use session::Session;

pub use crate::topic::{ErrorCode, ErrorReply};

use crate::topic::{Data, Positions};

/// The most bytes of JSON a subscriber's presence `info` may hold.
pub const MAX_INFO_SIZE: usize = 1024;

/// The protocol version in the hello.
pub const VERSION: u32 = 1;

/// Fuzzing entry point (`fuzz/fuzz_targets/protocol.rs`): reads `data` as a
/// request, as positions and as published JSON, and checks that whatever comes out
/// is well-formed: every reply is valid JSON with the id echoed, every accepted
/// value is valid JSON without line breaks, positions print back to what parses
/// to the same.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (id, request) = parse(text, 256);
    let reply = match &request {
        Ok(_) => ok(&id, "{}"),
        Err(err) => error(&id, err),
    };
    let value: serde_json::Value =
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("reply {reply:?} is not JSON: {e}"));
    assert!(value.get("id").is_some(), "reply without id: {reply}");
    if let Ok(Request::Pub { data, .. })
    | Ok(Request::Sub {
        info: Some(data), ..
    }) = &request
    {
        assert!(serde_json::from_slice::<serde::de::IgnoredAny>(data.as_bytes()).is_ok());
        assert!(!data.as_bytes().iter().any(|&b| b == b'\n' || b == b'\r'));
    }
    if let Ok(positions) = text.parse::<Positions>() {
        let printed = positions.to_string();
        assert_eq!(printed.parse::<Positions>().ok(), Some(positions));
    }
    if let Ok(data) = Data::json(data.to_vec()) {
        assert!(serde_json::from_slice::<serde::de::IgnoredAny>(data.as_bytes()).is_ok());
    }
}
