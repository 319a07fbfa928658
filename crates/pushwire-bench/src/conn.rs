//! The generator's WebSockets, opened and read through `pushwire_ws::client`: the
//! same client, frame layer and permessage-deflate as every other client of the
//! crate, with the settings a load generator needs.
//!
//! - Each connection runs in the task that reads it
//!   (`client::connect_unspawned`): one task per connection, and a message wakes
//!   no other task. As with a bare socket, a connection is read, and the server's
//!   pings answered, only while its task waits in [`Conn::next`]; dropping a
//!   [`Conn`] drops the TCP connection without a close handshake.
//! - Connections are spread over loopback source addresses (127.0.0.1, .2, …;
//!   [`sources`], `ClientConfig::local_addr`) so that no address runs out of
//!   ephemeral ports.
//! - They hold no timer each: one registry per process, swept once a second,
//!   stands for all of them (`ClientConfig::registry`). The generator sends no
//!   pings and has no idle timeout (the server's pings are answered); a
//!   connection ends when the server closes it or the scenario drops it.
//! - A message may be as large as [`MAX_MESSAGE`]. With `--deflate` the
//!   generator offers permessage-deflate and inflates what the server compresses,
//!   but sends its own messages uncompressed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pushwire_ws::client::{ClientConfig, connect_unspawned};
use pushwire_ws::{CloseCode, Message, Outcome, Registry, Sender, Socket};

/// The largest message the generator accepts (inflated).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Where to connect: a `ws://host:port/path` URL, checked and resolved once.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    url: String,
    /// The first address the host resolves to.
    addr: SocketAddr,
}

impl Target {
    /// Checks and resolves `url`: `ws://host:port/path`, or `http://…` for the
    /// scenarios that read Server-Sent Events.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let rest = without_scheme(url).ok_or_else(|| {
            format!("invalid URL {url:?}: expected ws://host:port/path (or http://)")
        })?;
        let host = rest.split_once('/').map_or(rest, |(host, _)| host);
        let addr = std::net::ToSocketAddrs::to_socket_addrs(host)
            .map_err(|err| format!("cannot resolve {host:?}: {err}"))?
            .next()
            .ok_or_else(|| format!("{host:?} resolves to no address"))?;
        Ok(Self {
            url: url.to_owned(),
            addr,
        })
    }

    /// The path (and query) of the URL; empty when it has none.
    pub(crate) fn path(&self) -> &str {
        let rest = without_scheme(&self.url).unwrap_or(&self.url);
        rest.find('/').map_or("", |slash| &rest[slash..])
    }

    /// The same server at `path` instead of the URL's own path.
    pub(crate) fn with_path(&self, path: &str) -> Self {
        let rest = without_scheme(&self.url).unwrap_or(&self.url);
        let host = rest.split_once('/').map_or(rest, |(host, _)| host);
        let scheme = if self.is_http() { "http" } else { "ws" };
        Self {
            url: format!("{scheme}://{host}{path}"),
            addr: self.addr,
        }
    }

    /// Whether the URL is `http://` (Server-Sent Events), not `ws://`.
    pub(crate) fn is_http(&self) -> bool {
        self.url.starts_with("http://")
    }

    /// `host:port` as the URL spells it (for a `Host` header).
    pub(crate) fn authority(&self) -> &str {
        let rest = without_scheme(&self.url).unwrap_or(&self.url);
        rest.split_once('/').map_or(rest, |(host, _)| host)
    }

    /// The address the host resolved to.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `path` on the server at `addr`.
    pub(crate) fn at(addr: SocketAddr, path: &str) -> Self {
        Self {
            url: format!("ws://{addr}{path}"),
            addr,
        }
    }
}

/// The URL after `ws://` or `http://`; `None` for any other scheme.
fn without_scheme(url: &str) -> Option<&str> {
    url.strip_prefix("ws://")
        .or_else(|| url.strip_prefix("http://"))
}

/// Loopback source addresses to spread connections over (127.0.0.1, .2, …, after
/// the first `skip`), so that no source address runs out of ephemeral ports.
pub(crate) fn sources(count: usize, skip: usize, target: &Target) -> Vec<Option<IpAddr>> {
    if (count <= 1 && skip == 0) || !target.addr.ip().is_loopback() || !target.addr.is_ipv4() {
        return vec![None];
    }
    (skip + 1..=(skip + count.max(1)).min(250))
        .map(|i| Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, i as u8))))
        .collect()
}

/// The registry that keeps this process's connections, swept once a second by a
/// task started with the first connection.
fn registry() -> Arc<Registry> {
    static REGISTRY: OnceLock<Arc<Registry>> = OnceLock::new();
    Arc::clone(REGISTRY.get_or_init(|| {
        let registry = Arc::new(Registry::default());
        let sweeper = Arc::clone(&registry);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            loop {
                ticks.tick().await;
                sweeper.sweep();
            }
        });
        registry
    }))
}

/// How long [`Conn::close`] waits for the server's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The future that reads and writes one connection.
type Running = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// One open WebSocket, the future that runs it, and the message last read.
pub(crate) struct Conn {
    socket: Socket,
    /// Run by [`Conn::next`]; `None` once the connection has ended.
    running: Option<Running>,
    last: Message,
}

/// One message as read: its payload is valid until the next read.
pub(crate) enum Frame<'a> {
    /// A text or binary message.
    Data(&'a [u8]),
    /// The server closed the connection (its close code, 1006 without a close frame).
    Closed(u16),
}

impl Conn {
    /// Connects from `source` (any when `None`) and performs the handshake,
    /// offering permessage-deflate when `deflate`.
    pub(crate) async fn open(
        target: &Target,
        source: Option<IpAddr>,
        deflate: bool,
    ) -> Result<Self, String> {
        let mut config = ClientConfig {
            local_addr: source,
            registry: Some(registry()),
            // The scenarios bound the time all connections take.
            connect_timeout: Duration::from_secs(3600),
            ..ClientConfig::default()
        };
        config.ws.max_message_size = MAX_MESSAGE;
        config.ws.ping_interval = None;
        config.ws.idle_timeout = Duration::ZERO;
        config.ws.deflate.enabled = deflate;
        // What the generator sends stays uncompressed: only the server's messages
        // are inflated.
        config.ws.deflate.min_size = usize::MAX;
        let (socket, running) = connect_unspawned(&target.url, &config)
            .await
            .map_err(|err| err.to_string())?;
        Ok(Self {
            socket,
            running: Some(Box::pin(running)),
            last: Message::Text(Default::default()),
        })
    }

    /// Whether the server agreed to permessage-deflate.
    pub(crate) fn deflate(&self) -> bool {
        self.socket
            .extensions()
            .is_some_and(|extensions| extensions.contains("permessage-deflate"))
    }

    /// Sends one text message.
    pub(crate) async fn send_text(&mut self, text: String) -> Result<(), String> {
        self.socket
            .send(text)
            .await
            .map_err(|_| "the connection is closed".to_owned())
    }

    /// A handle that sends on this connection while another task reads it (and so
    /// runs it).
    pub(crate) fn sender(&self) -> Sender {
        self.socket.sender()
    }

    /// The next data message (pings and the close handshake are answered by the
    /// connection itself).
    pub(crate) async fn next(&mut self) -> Result<Frame<'_>, String> {
        // The last message shares its allocation with the bytes read with it: let
        // it go before waiting, so that a waiting connection holds none.
        self.last = Message::Text(Default::default());
        let received = match self.running.as_mut() {
            Some(running) => tokio::select! {
                biased;
                message = self.socket.recv() => message,
                _ = running => {
                    // Ended: what arrived before the end is still to be read.
                    self.running = None;
                    self.socket.recv().await
                }
            },
            None => self.socket.recv().await,
        };
        match received {
            Some(message) => {
                self.last = message;
                Ok(Frame::Data(self.last.payload()))
            }
            None => Ok(Frame::Closed(
                self.socket.close_code().unwrap_or(CloseCode::ABNORMAL).0,
            )),
        }
    }

    /// Closes with 1000 once everything queued is written, and waits (a while) for
    /// the server's answer.
    pub(crate) async fn close(self) {
        let Self {
            socket, running, ..
        } = self;
        socket.close(CloseCode::NORMAL, "");
        if let Some(running) = running {
            let _ = tokio::time::timeout(CLOSE_WAIT, running).await;
        }
    }
}
