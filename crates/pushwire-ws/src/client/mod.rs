//! The client role: open a WebSocket to a server (`ws://` and `wss://` URLs) and get
//! a [`Socket`], the same type a server handler gets.
//!
//! hyper performs the HTTP/1.1 upgrade; we check the server's answer (status, accept
//! key, extensions) and then run the same connection task as the server side, with
//! masking on and the client's rules for the close handshake.
//!
//! `wss://` runs the same upgrade inside TLS (rustls with the *ring* provider, ALPN
//! `http/1.1`, SNI from the URL's host). The server's certificate must be valid for
//! that host and issued by an authority the operating system trusts, or by one of
//! [`ClientConfig::extra_roots`] (a self-signed certificate is its own authority);
//! [`ClientConfig::tls`] replaces that policy with a whole rustls configuration. A
//! handshake that fails says why in [`ConnectError::Tls`].
//!
//! A client that holds many connections at once (a load generator) binds them to
//! several source addresses ([`ClientConfig::local_addr`]), keeps them alive from
//! one shared [`Registry`](crate::Registry) ([`ClientConfig::registry`]) instead
//! of a timer per connection, and runs each connection in the task that reads it
//! ([`connect_unspawned`]).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};

use crate::conn::Outcome;
use crate::deflate;
use crate::handshake::{VERSION, accept_key, has_token};
use crate::message::{Encoder, Role};
use crate::open::{Negotiation, open_connection};
use crate::queue::clock_ms;
use crate::socket::Socket;
use crate::stream::Stream;

mod config;
mod error;
mod tls;

pub use config::ClientConfig;
pub use error::{ConnectError, TlsFailure};

/// Connects to `url` (`ws://host:port/path?query`, or `wss://` for TLS) with the
/// default configuration.
pub async fn connect(url: &str) -> Result<Socket, ConnectError> {
    connect_with(url, &ClientConfig::default()).await
}

/// Connects to `url` with `config`. Everything, from the TCP connect through the
/// TLS and WebSocket handshakes, must finish within
/// [`connect_timeout`](ClientConfig::connect_timeout).
pub async fn connect_with(url: &str, config: &ClientConfig) -> Result<Socket, ConnectError> {
    let (socket, connection) = connect_unspawned(url, config).await?;
    let id = socket.id();
    tokio::spawn(async move {
        let outcome = connection.await;
        tracing::debug!(
            "client {id} closed: {} {:?} after {} messages",
            outcome.code,
            outcome.reason,
            outcome.messages_sent
        );
    });
    Ok(socket)
}

/// Connects like [`connect_with`] but leaves the connection for the caller to run,
/// as [`accept`](crate::server::accept) does for a server: returns the [`Socket`]
/// and the future that reads and writes the stream (the frame layer, with its
/// keepalive unless [`ClientConfig::registry`] keeps it). Nothing is read,
/// answered or written until that future is polled; it resolves with the
/// connection's [`Outcome`] once the connection ends, and dropping it drops the
/// connection without a close handshake.
///
/// A client holding thousands of connections runs each one's future in the task
/// that reads its socket (`tokio::select!` on [`Socket::recv`] and the future):
/// one task per connection instead of two, and no wake-up crosses tasks.
pub async fn connect_unspawned(
    url: &str,
    config: &ClientConfig,
) -> Result<(Socket, impl Future<Output = Outcome> + Send + 'static), ConnectError> {
    let target = Target::parse(url)?;
    let authority = target.authority.clone();
    let (upgraded, peer, negotiation) =
        tokio::time::timeout(config.connect_timeout, open(target, config))
            .await
            .map_err(|_| ConnectError::Timeout(authority))??;
    Ok(connection(upgraded, peer, config, negotiation))
}

struct Target {
    authority: String,
    host: String,
    port: u16,
    path: String,
    /// The name the server's certificate must be valid for, for `wss://`.
    tls: Option<ServerName<'static>>,
}

impl Target {
    fn parse(url: &str) -> Result<Self, ConnectError> {
        let bad = |reason: &str| ConnectError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|err: http::uri::InvalidUri| bad(&err.to_string()))?;
        let secure = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            _ => return Err(bad("the scheme must be ws:// or wss://")),
        };
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let tls = if secure {
            Some(tls::server_name(&host).map_err(|reason| bad(&reason))?)
        } else {
            None
        };
        Ok(Self {
            authority: authority.as_str().to_owned(),
            port: authority
                .port_u16()
                .unwrap_or(if secure { 443 } else { 80 }),
            host,
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
            tls,
        })
    }
}

/// What a finished handshake leaves: the upgraded stream, the peer, and what was
/// negotiated.
type Upgrade = (hyper::upgrade::Upgraded, SocketAddr, Negotiation);

async fn open(target: Target, config: &ClientConfig) -> Result<Upgrade, ConnectError> {
    let addr = format!("{}:{}", target.host, target.port);
    let tcp = connect_tcp(&target, config.local_addr)
        .await
        .map_err(|source| ConnectError::Connect {
            addr: addr.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let peer = tcp.peer_addr().map_err(|source| ConnectError::Connect {
        addr: addr.clone(),
        source,
    })?;
    match target.tls.clone() {
        None => upgrade(TokioIo::new(tcp), peer, &target, config).await,
        Some(name) => {
            let tls = tls::handshake(tcp, name, &addr, config).await?;
            upgrade(TokioIo::new(tls), peer, &target, config).await
        }
    }
}

/// The TCP connection to the target, from `local` when given (then to the first of
/// the host's addresses in the same family).
async fn connect_tcp(target: &Target, local: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(local) = local else {
        return TcpStream::connect((target.host.as_str(), target.port)).await;
    };
    let remote = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await?
        .find(|remote| remote.is_ipv4() == local.is_ipv4())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!("{} has no address of the family of {local}", target.host),
            )
        })?;
    let socket = if local.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(remote).await
}

/// The HTTP/1.1 upgrade on `io` (TCP, or TLS over TCP).
async fn upgrade<I>(
    io: TokioIo<I>,
    peer: SocketAddr,
    target: &Target,
    config: &ClientConfig,
) -> Result<Upgrade, ConnectError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.with_upgrades().await {
            tracing::debug!(error = %err, "client HTTP connection ended");
        }
    });

    let key = BASE64.encode(rand::random::<[u8; 16]>());
    let offer = config.ws.deflate.enabled.then(deflate::client_offer);
    let mut request = Request::get(target.path.as_str())
        .header(header::HOST, target.authority.as_str())
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_KEY, key.as_str())
        .header(header::SEC_WEBSOCKET_VERSION, VERSION);
    if let Some(offer) = &offer {
        request = request.header(header::SEC_WEBSOCKET_EXTENSIONS, offer.as_str());
    }
    if !config.ws.subprotocols.is_empty() {
        request = request.header(
            header::SEC_WEBSOCKET_PROTOCOL,
            config.ws.subprotocols.join(", "),
        );
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|err| ConnectError::Handshake(format!("cannot build the request: {err}")))?;
    let response = sender.send_request(request).await?;

    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(ConnectError::Refused(response.status()));
    }
    let headers = response.headers();
    if !has_token(headers, header::UPGRADE, "websocket")
        || !has_token(headers, header::CONNECTION, "upgrade")
    {
        return Err(ConnectError::Handshake(
            "missing Upgrade/Connection headers".into(),
        ));
    }
    let expected = accept_key(key.as_bytes());
    if headers.get(header::SEC_WEBSOCKET_ACCEPT)
        != Some(&HeaderValue::from_str(&expected).unwrap_or(HeaderValue::from_static("-")))
    {
        return Err(ConnectError::Handshake("wrong Sec-WebSocket-Accept".into()));
    }
    let mut chosen = headers.get_all(header::SEC_WEBSOCKET_PROTOCOL).iter();
    let protocol: Option<Arc<str>> = match (chosen.next(), chosen.next()) {
        (None, _) => None,
        (Some(value), None) => {
            let value = value.to_str().unwrap_or("").trim();
            if !config.ws.subprotocols.iter().any(|p| p == value) {
                return Err(ConnectError::Handshake(format!(
                    "the server chose subprotocol {value:?}, which was not offered"
                )));
            }
            Some(Arc::from(value))
        }
        (Some(_), Some(_)) => {
            return Err(ConnectError::Handshake(
                "more than one subprotocol chosen".into(),
            ));
        }
    };
    let extension_values: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{fffd}"))
        .collect();
    let negotiated = if offer.is_some() {
        deflate::accept_client(&extension_values).map_err(ConnectError::Handshake)?
    } else if extension_values.is_empty() {
        None
    } else {
        return Err(ConnectError::Handshake(
            "an extension was chosen but none was offered".into(),
        ));
    };
    let extensions =
        (!extension_values.is_empty()).then(|| Cow::Owned(extension_values.join(", ")));

    let upgraded = hyper::upgrade::on(response).await?;
    let encoder = Encoder {
        role: Role::Client,
        deflate: negotiated,
        level: config.ws.deflate.level,
        min_size: config.ws.deflate.min_size,
    };
    let negotiation = Negotiation {
        encoder,
        extensions,
        protocol,
    };
    Ok((upgraded, peer, negotiation))
}

/// The socket and the future that runs its connection, kept alive by the registry
/// or by a timer of its own.
fn connection(
    upgraded: hyper::upgrade::Upgraded,
    peer: SocketAddr,
    config: &ClientConfig,
    negotiation: Negotiation,
) -> (Socket, impl Future<Output = Outcome> + Send + 'static) {
    let (stream, prefix) = Stream::from_upgraded(upgraded);
    let (socket, frames) = open_connection(
        stream,
        prefix,
        peer,
        Arc::new(config.ws.clone()),
        negotiation,
    );
    let ticked_here = match &config.registry {
        Some(registry) => {
            // The registry's sweeper keeps it alive: the frames run alone.
            registry.add(&socket);
            None
        }
        None => Some(Arc::clone(socket.shared())),
    };
    let running = async move {
        let Some(shared) = ticked_here else {
            return frames.await;
        };
        // A client connection ends when its Socket is dropped or the server closes
        // it; its keepalive ticks beside it (servers use a shared sweeper instead).
        let keepalive = async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = ticks.tick() => shared.tick(clock_ms()),
                    () = std::future::poll_fn(|cx| shared.poll_closed(cx)) => return,
                }
            }
        };
        let (outcome, ()) = tokio::join!(frames, keepalive);
        outcome
    };
    (socket, running)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use tokio::net::TcpListener;

    use super::*;
    use crate::Registry;
    use crate::message::Message;

    /// Accepts one WebSocket on `listener` and echoes every message; sends the
    /// peer's address first.
    async fn echo_once(listener: TcpListener) {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let Ok((mut socket, frames)) = crate::server::accept(tcp, Arc::default()).await else {
            return;
        };
        tokio::spawn(frames);
        let _ = socket.send(socket.peer().ip().to_string()).await;
        while let Some(message) = socket.recv().await {
            if socket.send(message).await.is_err() {
                return;
            }
        }
    }

    async fn echo_server() -> String {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a port");
        let port = listener.local_addr().expect("a local address").port();
        tokio::spawn(echo_once(listener));
        format!("ws://127.0.0.1:{port}/")
    }

    #[tokio::test]
    async fn connects_from_the_local_address_it_is_given() {
        let url = echo_server().await;
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let config = ClientConfig {
            local_addr: Some(source),
            ..ClientConfig::default()
        };
        let mut socket = connect_with(&url, &config).await.expect("connect");
        let seen = socket.recv().await.expect("the server says whom it sees");
        assert_eq!(seen.as_text(), Some("127.0.0.2"));

        // An address of the other family than every one of the host's fails to connect.
        let config = ClientConfig {
            local_addr: Some(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)),
            ..ClientConfig::default()
        };
        let err = connect_with(&url, &config)
            .await
            .expect_err("no IPv6 address");
        assert!(matches!(err, ConnectError::Connect { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn an_unspawned_connection_runs_where_its_caller_polls_it() {
        let url = echo_server().await;
        let (mut socket, connection) = connect_unspawned(&url, &ClientConfig::default())
            .await
            .expect("connect");
        tokio::pin!(connection);
        // Nothing arrives unless the connection runs beside the reads.
        let first = tokio::select! {
            message = socket.recv() => message,
            outcome = &mut connection => panic!("the connection ended: {outcome:?}"),
        };
        assert_eq!(
            first
                .and_then(|m| m.as_text().map(str::to_owned))
                .as_deref(),
            Some("127.0.0.1")
        );
        socket.send("ping-pong").await.expect("send");
        let echo = tokio::select! {
            message = socket.recv() => message,
            outcome = &mut connection => panic!("the connection ended: {outcome:?}"),
        };
        assert_eq!(echo, Some(Message::from("ping-pong")));
        socket.close(crate::CloseCode::NORMAL, "done");
        let outcome = tokio::time::timeout(Duration::from_secs(10), connection)
            .await
            .expect("the close handshake ends the connection");
        assert_eq!(outcome.code, crate::CloseCode::NORMAL);
        assert_eq!(outcome.initiator, crate::Initiator::Local);
    }

    #[tokio::test]
    async fn a_registry_keeps_client_connections_and_forgets_closed_ones() {
        let url = echo_server().await;
        let registry = Arc::new(Registry::default());
        let mut config = ClientConfig {
            registry: Some(Arc::clone(&registry)),
            ..ClientConfig::default()
        };
        config.ws.ping_interval = Some(Duration::from_millis(1));
        let mut socket = connect_with(&url, &config).await.expect("connect");
        assert_eq!(registry.sweep(), 1);
        assert!(socket.recv().await.is_some(), "the server's first message");
        // A sweep raises the ping that is due; the server's pong keeps it open,
        // and messages go both ways as without a registry.
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(registry.sweep(), 1);
        socket.send("hello").await.expect("send");
        let echo = socket.recv().await.expect("the echo");
        assert_eq!(echo, Message::from("hello"));
        drop(socket);
        let mut live = 1;
        for _ in 0..200 {
            live = registry.sweep();
            if live == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(live, 0, "a closed connection leaves the registry");
    }
}
