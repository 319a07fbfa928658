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

use std::borrow::Cow;
use std::net::SocketAddr;
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
use tokio::net::TcpStream;

use crate::conn::Config;
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
    let target = Target::parse(url)?;
    let authority = target.authority.clone();
    tokio::time::timeout(config.connect_timeout, open(target, config))
        .await
        .map_err(|_| ConnectError::Timeout(authority))?
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

async fn open(target: Target, config: &ClientConfig) -> Result<Socket, ConnectError> {
    let addr = format!("{}:{}", target.host, target.port);
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
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

/// The HTTP/1.1 upgrade on `io` (TCP, or TLS over TCP), and the connection task.
async fn upgrade<I>(
    io: TokioIo<I>,
    peer: SocketAddr,
    target: &Target,
    config: &ClientConfig,
) -> Result<Socket, ConnectError>
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
    Ok(spawn_connection(upgraded, peer, &config.ws, negotiation))
}

fn spawn_connection(
    upgraded: hyper::upgrade::Upgraded,
    peer: SocketAddr,
    config: &Config,
    negotiation: Negotiation,
) -> Socket {
    let (stream, prefix) = Stream::from_upgraded(upgraded);
    let (socket, frames) =
        open_connection(stream, prefix, peer, Arc::new(config.clone()), negotiation);
    let shared = Arc::clone(socket.shared());
    let id = socket.id();
    tokio::spawn(async move {
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
        tracing::debug!(
            "client {id} closed: {} {:?} after {} messages",
            outcome.code,
            outcome.reason,
            outcome.messages_sent
        );
    });
    socket
}
