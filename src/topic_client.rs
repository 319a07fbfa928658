//! A Rust client of the topic protocol (`/ws`, see `docs/protocol.md`): subscribe,
//! publish, ask who is present, and resume after a reconnect.
//!
//! A [`Client`] is one WebSocket connection to a pushwire server, opened with our own
//! WebSocket client ([`crate::ws::client`]). The protocol has two kinds of traffic on
//! that connection:
//!
//! - **replies**: every request ([`subscribe`](Client::subscribe),
//!   [`publish`](Client::publish), …) carries a fresh, increasing `id`, and the method
//!   waits for the reply with that id;
//! - **pushes**: messages and presence events of the topics the client is subscribed
//!   to, read with [`next_event`](Client::next_event).
//!
//! Pushes can arrive while a request waits for its reply (a subscriber that publishes
//! gets its own message first; recovered messages follow a `sub` reply at once).
//! The client keeps them, in order, and `next_event` hands them out before reading
//! anything newer, so nothing is lost or reordered by interleaving requests.
//!
//! ```no_run
//! use pushwire::topic_client::{Client, Event};
//! use pushwire::topic::Data;
//!
//! # async fn run() -> Result<(), pushwire::topic_client::ClientError> {
//! let mut client = Client::connect("ws://127.0.0.1:8888/ws").await?;
//! let reply = client.subscribe("news", None).await?;
//! println!("news is at offset {}", reply.position.offset);
//! client.publish("news", Data::text("hello")).await?;
//! while let Some(event) = client.next_event().await? {
//!     if let Event::Message { position, data, .. } = event {
//!         println!("{}: {}", position.offset, data.as_str());
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Over TLS, give `wss://host:port/ws` or `https://host:port`. The server's
//! certificate must be valid for the host and issued by an authority the operating
//! system trusts; a self-signed one (or a private authority's) is trusted by adding
//! it to [`ClientConfig::extra_roots`]:
//!
//! ```no_run
//! use pushwire::topic_client::{Client, ClientOptions};
//! use pushwire::certs::read_certificates;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut options = ClientOptions::default();
//! options.ws.extra_roots = read_certificates(std::path::Path::new("cert.pem"))?;
//! let client = Client::connect_with("https://127.0.0.1:8443", &options).await?;
//! # drop(client);
//! # Ok(())
//! # }
//! ```
//!
//! To resume after a disconnection, remember the [`Position`] of the last message of
//! each topic and pass it as `since` when subscribing again: the reply says whether
//! every missed message follows ([`SubscribeReply::recovered`]). A server that
//! restarts (it drains, `docs/operations.md`) closes the connection with 1012
//! ([`CloseCode::SERVICE_RESTART`], see [`Client::close_code`]) after every message
//! queued for it: that is the moment to connect again, soon, and resubscribe so
//! (`pushwire sub` does, for up to 30 s).
//!
//! Topic names are sent as given and checked by the server: a name outside the
//! grammar comes back as [`ClientError::Server`] with code 422.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use tokio::time::{Instant, timeout, timeout_at};

pub use crate::protocol::Event;
use crate::protocol::{ClientRequest, ServerFrame, server_frame};
use crate::topic::{Data, Member, Position, Topic};
use crate::ws::client::{ClientConfig, ConnectError};
use crate::ws::{CloseCode, Message, Socket};

/// The largest message a client accepts by default: the largest data a server can be
/// configured to allow (16 MiB) plus room for the envelope around it.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024 + 64 * 1024;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection could not be opened (bad URL, refused, handshake failed).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The server answered the request with an error (see the codes in
    /// `docs/protocol.md`).
    #[error("server error {code}: {message}")]
    Server {
        /// The code: 400, 403, 404, 405, 409, 413, 422, 429 or 503.
        code: u16,
        /// The server's explanation.
        message: String,
    },
    /// The connection is closed: the request could not be sent, or it closed before
    /// the reply came.
    #[error("the connection to the server is closed")]
    Closed,
    /// No reply came within [`ClientOptions::request_timeout`].
    #[error("no reply to {op} within {after:?}")]
    Timeout {
        /// The request's op (`sub`, `pub`, …), or `hello` while connecting.
        op: &'static str,
        /// How long the client waited.
        after: Duration,
    },
    /// The server sent something that is not the protocol.
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
}

/// How a [`Client`] connects and waits.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The WebSocket connection's settings, including the time allowed for connecting
    /// (which also bounds the wait for the server's hello).
    pub ws: ClientConfig,
    /// How long a request waits for its reply.
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        let mut ws = ClientConfig::default();
        ws.ws.max_message_size = DEFAULT_MAX_MESSAGE_SIZE;
        Self {
            ws,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// The reply to [`Client::subscribe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeReply {
    /// The topic.
    pub topic: Topic,
    /// Where the live stream continues from: live messages have larger offsets. With
    /// `recovered: Some(true)` the missed messages, up to and including this offset,
    /// come first.
    pub position: Position,
    /// `None` without `since`; `Some(true)` when every message after `since` follows;
    /// `Some(false)` when history cannot fill the gap (nothing from history follows,
    /// and the client should reload its state from its own source of truth).
    pub recovered: Option<bool>,
}

/// One connection to a pushwire server, speaking the topic protocol.
///
/// Methods take `&mut self`: one request is in flight at a time, and replies and
/// pushes are read in the order the server sent them. Dropping the client closes
/// the connection; [`close`](Client::close) does so and waits until the close frame
/// is on its way.
#[derive(Debug)]
pub struct Client {
    socket: Socket,
    client_id: Arc<str>,
    version: u32,
    next_id: u64,
    events: VecDeque<Event>,
    request_timeout: Duration,
    close_timeout: Duration,
}

impl Client {
    /// Connects to `url` with the default options and reads the server's hello.
    ///
    /// `url` is the WebSocket endpoint (`ws://host:port/ws`, or `wss://` over TLS)
    /// or the server (`http://host:port` or `https://host:port`, meaning its
    /// `/ws`); see [`ws_url`]. Over TLS the server's certificate must be trusted by
    /// the system, or be among [`ClientConfig::extra_roots`] (through
    /// [`connect_with`](Self::connect_with) and [`ClientOptions::ws`]).
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        Self::connect_with(url, &ClientOptions::default()).await
    }

    /// Connects to `url` with `options` and reads the server's hello.
    pub async fn connect_with(url: &str, options: &ClientOptions) -> Result<Self, ClientError> {
        let url = ws_url(url)?;
        let deadline = Instant::now() + options.ws.connect_timeout;
        let mut socket = crate::ws::client::connect_with(&url, &options.ws).await?;
        let first = match timeout_at(deadline, socket.recv()).await {
            Err(_) => {
                return Err(ClientError::Timeout {
                    op: "hello",
                    after: options.ws.connect_timeout,
                });
            }
            Ok(None) => return Err(ClientError::Closed),
            Ok(Some(message)) => message,
        };
        let hello = match read(&first) {
            Ok(ServerFrame::Hello { client, version }) => (client, version),
            _ => {
                return Err(ClientError::Protocol(format!(
                    "expected a hello, got {}",
                    excerpt(&first)
                )));
            }
        };
        Ok(Self {
            socket,
            client_id: hello.0,
            version: hello.1,
            next_id: 1,
            events: VecDeque::new(),
            request_timeout: options.request_timeout,
            close_timeout: options.ws.ws.close_timeout,
        })
    }

    /// The id the server gave this connection (shown in presence).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The protocol version the server announced in its hello.
    pub fn protocol_version(&self) -> u32 {
        self.version
    }

    /// Subscribes to `topic`. With `since` (the position of the last message the
    /// caller has), the messages after it follow if history still holds them; see
    /// [`SubscribeReply::recovered`].
    pub async fn subscribe(
        &mut self,
        topic: &str,
        since: Option<&Position>,
    ) -> Result<SubscribeReply, ClientError> {
        self.subscribe_with(topic, since, None).await
    }

    /// [`subscribe`](Self::subscribe) with `info`, a JSON value of at most 1 KiB
    /// shown to others in presence (on topics with presence).
    pub async fn subscribe_with(
        &mut self,
        topic: &str,
        since: Option<&Position>,
        info: Option<&Data>,
    ) -> Result<SubscribeReply, ClientError> {
        let ok = self
            .request(ClientRequest::Sub { topic, since, info })
            .await?;
        let (topic, position, recovered) =
            server_frame::read_position("sub", &ok).map_err(protocol_error)?;
        Ok(SubscribeReply {
            topic,
            position,
            recovered,
        })
    }

    /// Authenticates (or refreshes) with a connection token, on a server that
    /// requires tokens: `auth`. Answers the server's `{"user","expires"}` as JSON text.
    pub async fn authenticate(&mut self, token: &str) -> Result<String, ClientError> {
        self.request(ClientRequest::Auth { token }).await
    }

    /// Stops the subscription to `topic`. Pushes of the topic already received stay
    /// queued for [`next_event`](Self::next_event).
    pub async fn unsubscribe(&mut self, topic: &str) -> Result<(), ClientError> {
        self.request(ClientRequest::Unsub { topic }).await?;
        Ok(())
    }

    /// Publishes `data` on `topic` and answers the message's position.
    pub async fn publish(&mut self, topic: &str, data: Data) -> Result<Position, ClientError> {
        let ok = self
            .request(ClientRequest::Pub { topic, data: &data })
            .await?;
        let (_, position, _) = server_frame::read_position("pub", &ok).map_err(protocol_error)?;
        Ok(position)
    }

    /// Who is present on `topic` (the server answers 403 unless the topic's
    /// namespace has presence).
    pub async fn presence(&mut self, topic: &str) -> Result<Vec<Member>, ClientError> {
        let ok = self.request(ClientRequest::Presence { topic }).await?;
        server_frame::read_members(&ok).map_err(protocol_error)
    }

    /// The next push: first those that arrived while requests waited for their
    /// replies, in order, then whatever the server sends next.
    ///
    /// `Ok(None)` once the connection has closed and every push before has been
    /// handed out. An error means the server sent something that is not the
    /// protocol; the connection should be given up. Pushes of kinds this client does
    /// not know (from a newer server) are skipped.
    ///
    /// Cancel safe: if the future is dropped before it completes (a timeout, a
    /// `select!`), no push is lost.
    pub async fn next_event(&mut self) -> Result<Option<Event>, ClientError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(Some(event));
        }
        loop {
            let Some(message) = self.socket.recv().await else {
                return Ok(None);
            };
            match read(&message)? {
                ServerFrame::Event(event) => return Ok(Some(event)),
                // The reply to a request whose caller stopped waiting (timeout,
                // cancellation): nobody wants it any more.
                ServerFrame::Reply { .. } | ServerFrame::Ignored => {}
                ServerFrame::Hello { .. } => {
                    return Err(ClientError::Protocol("a second hello".into()));
                }
            }
        }
    }

    /// How the connection ended, once [`next_event`](Self::next_event) has
    /// reported its end: 1000 or 1001 for a normal close, 1012 when the server
    /// restarts (reconnect and resubscribe with `since`), 1008 for a slow consumer,
    /// 1006 when it broke without a close handshake. `None` while it is open.
    pub fn close_code(&self) -> Option<CloseCode> {
        self.socket.close_code()
    }

    /// Pushes already received and not yet handed out by
    /// [`next_event`](Self::next_event).
    pub fn queued_events(&self) -> usize {
        self.events.len()
    }

    /// Closes the connection normally (1000) and waits, at most the connection's
    /// close timeout, until the close frame has been written. Pushes not yet read are
    /// dropped.
    pub async fn close(mut self) {
        self.socket.sender().close(CloseCode::NORMAL, "");
        let drain = async { while self.socket.recv().await.is_some() {} };
        let _ = timeout(self.close_timeout, drain).await;
    }

    /// Sends a request and waits for the reply with its id; answers the `ok` value's
    /// JSON text. Pushes read meanwhile are queued for `next_event`.
    async fn request(&mut self, request: ClientRequest<'_>) -> Result<String, ClientError> {
        let op = request.op();
        let id = self.next_id;
        self.next_id += 1;
        let id_text = id.to_string();
        let text = request.encode(id);
        self.socket
            .send(text)
            .await
            .map_err(|_| ClientError::Closed)?;
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let message = match timeout_at(deadline, self.socket.recv()).await {
                Err(_) => {
                    return Err(ClientError::Timeout {
                        op,
                        after: self.request_timeout,
                    });
                }
                Ok(None) => return Err(ClientError::Closed),
                Ok(Some(message)) => message,
            };
            match read(&message)? {
                ServerFrame::Event(event) => self.events.push_back(event),
                // `null`: the server could not read the request's id. Requests are
                // answered in order and ours is the only one waiting, so it is ours.
                ServerFrame::Reply { id, result } if id == id_text || id == "null" => {
                    return result.map_err(|err| ClientError::Server {
                        code: err.code,
                        message: err.message,
                    });
                }
                ServerFrame::Reply { .. } | ServerFrame::Ignored => {}
                ServerFrame::Hello { .. } => {
                    return Err(ClientError::Protocol("a second hello".into()));
                }
            }
        }
    }
}

/// The WebSocket URL for `url`: a `ws://` or `wss://` URL as it is;
/// `http://host:port[/prefix]` becomes `ws://host:port[/prefix]/ws` (the server's
/// topic endpoint), keeping any query, and an `http://` URL whose path already ends
/// in `/ws` only changes its scheme; `https://` becomes `wss://` the same way (TLS,
/// port 443 unless given). Anything else (another scheme, no scheme, no host) is
/// refused.
pub fn ws_url(url: &str) -> Result<String, ClientError> {
    let bad = |reason: &str| {
        ClientError::Connect(ConnectError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        })
    };
    let uri: Uri = url
        .parse()
        .map_err(|err: http::uri::InvalidUri| bad(&format!("{err}; expected {EXPECTED_URL}")))?;
    let authority = match uri.authority() {
        Some(authority) if !authority.host().is_empty() => authority.as_str(),
        _ => return Err(bad(&format!("expected {EXPECTED_URL}"))),
    };
    let ws_scheme = match uri.scheme_str() {
        Some("ws" | "wss") => return Ok(url.to_owned()),
        Some("http") => "ws",
        Some("https") => "wss",
        _ => {
            return Err(bad("the scheme must be ws://, wss://, http:// or https://"));
        }
    };
    let path = uri.path().trim_end_matches('/');
    let endpoint = if path.ends_with("/ws") { "" } else { "/ws" };
    let query = uri.query().map_or(String::new(), |q| format!("?{q}"));
    Ok(format!("{ws_scheme}://{authority}{path}{endpoint}{query}"))
}

/// The forms [`ws_url`] takes, for its errors.
const EXPECTED_URL: &str =
    "ws://host:port/ws, wss://host:port/ws, http://host:port or https://host:port";

/// Reads one frame from the server.
fn read(message: &Message) -> Result<ServerFrame, ClientError> {
    let Some(text) = message.as_text() else {
        return Err(ClientError::Protocol("a binary message".into()));
    };
    server_frame::read(text).map_err(protocol_error)
}

fn protocol_error(err: server_frame::DecodeError) -> ClientError {
    ClientError::Protocol(err.0)
}

/// The start of a frame, for error messages.
fn excerpt(message: &Message) -> String {
    server_frame::excerpt(&String::from_utf8_lossy(message.payload()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_https_urls_mean_their_ws_and_wss_endpoints() {
        let cases = [
            ("ws://127.0.0.1:8888/ws", "ws://127.0.0.1:8888/ws"),
            ("http://127.0.0.1:8888", "ws://127.0.0.1:8888/ws"),
            ("http://127.0.0.1:8888/", "ws://127.0.0.1:8888/ws"),
            ("http://example.com/push/", "ws://example.com/push/ws"),
            ("http://[::1]:80/?k=v", "ws://[::1]:80/ws?k=v"),
            ("http://127.0.0.1:8888/ws", "ws://127.0.0.1:8888/ws"),
            ("http://h/push/ws/?k=v", "ws://h/push/ws?k=v"),
            ("wss://127.0.0.1:8443/ws", "wss://127.0.0.1:8443/ws"),
            ("https://127.0.0.1:8443", "wss://127.0.0.1:8443/ws"),
            ("https://push.example.com/", "wss://push.example.com/ws"),
            (
                "https://[::1]:8443/push/?k=v",
                "wss://[::1]:8443/push/ws?k=v",
            ),
            ("https://h/ws", "wss://h/ws"),
        ];
        for (given, expected) in cases {
            assert_eq!(ws_url(given).ok().as_deref(), Some(expected), "{given}");
        }
        for bad in [
            "ftp://x",
            "https://",
            "wss:///ws",
            "127.0.0.1:8888",
            "",
            "ws:///ws",
        ] {
            assert!(
                matches!(
                    ws_url(bad),
                    Err(ClientError::Connect(ConnectError::Url { .. }))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn broken_frames_are_protocol_errors() {
        for bad in [Message::from("nope".to_owned()), Message::from(vec![1u8])] {
            assert!(
                matches!(read(&bad), Err(ClientError::Protocol(_))),
                "{bad:?}"
            );
        }
    }
}
