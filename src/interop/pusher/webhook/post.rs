//! One signed webhook post: the body with `X-Pusher-Key` and
//! `X-Pusher-Signature`, over HTTP/1.1: `http://` through the client's pool
//! (connections kept and reused), `https://` on a connection of its own (TLS,
//! see [`super::tls`]).

use std::time::Duration;

use axum::body::Body;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::POST_TIMEOUT;
use super::outbox::Outbox;
use super::tls;
use crate::interop::pusher::signature::sign;

/// The most of an answer's body that is read (and ignored).
const ANSWER_LIMIT: usize = 64 * 1024;

/// The HTTP client every sender of a server shares.
pub(crate) type HttpClient = Client<HttpConnector, Body>;

/// A client for `http://` URLs.
pub(crate) fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Why a post did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PostError {
    /// The request could not be made of the URL.
    #[error("invalid webhook URL: {0}")]
    Url(#[from] http::Error),
    /// The connection failed (refused, reset, …).
    #[error("request failed: {0}")]
    Request(#[from] hyper_util::client::legacy::Error),
    /// An `https://` connection failed (refused, or the TLS handshake: an
    /// untrusted certificate, …).
    #[error("connection failed: {0}")]
    Connect(#[from] std::io::Error),
    /// TLS could not be set up, or the host is no TLS server name.
    #[error("TLS: {0}")]
    Tls(String),
    /// The HTTP exchange on an `https://` connection failed.
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// The answer's body could not be read.
    #[error("reading the answer failed: {0}")]
    Answer(#[from] axum::Error),
    /// The receiver answered something else than 2xx.
    #[error("answered {0}")]
    Status(StatusCode),
    /// No whole answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Posts `body` to the outbox's webhook, signed with its app's secret.
pub(crate) async fn post(
    client: &HttpClient,
    outbox: &Outbox,
    body: &str,
) -> Result<(), PostError> {
    let uri: Uri = outbox.webhook.url.parse().map_err(http::Error::from)?;
    let request = Request::post(uri.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-Pusher-Key", outbox.key.as_str())
        .header("X-Pusher-Signature", sign(&outbox.secret, body))
        .body(Body::from(body.to_owned()))?;
    let exchange = async {
        let status = if uri.scheme_str() == Some("https") {
            exchange_tls(&uri, request).await?
        } else {
            let response = client.request(request).await?;
            read_answer(response).await?
        };
        if status.is_success() {
            Ok(())
        } else {
            Err(PostError::Status(status))
        }
    };
    tokio::time::timeout(POST_TIMEOUT, exchange)
        .await
        .map_err(|_| PostError::Timeout(POST_TIMEOUT))?
}

/// Reads the answer (so that its connection can be used again) and answers its
/// status.
async fn read_answer(response: http::Response<Incoming>) -> Result<StatusCode, PostError> {
    let status = response.status();
    axum::body::to_bytes(Body::new(response.into_body()), ANSWER_LIMIT).await?;
    Ok(status)
}

/// Sends `request` to the `https://` `uri` on a connection of its own.
async fn exchange_tls(uri: &Uri, mut request: Request<Body>) -> Result<StatusCode, PostError> {
    let authority = uri
        .authority()
        .ok_or_else(|| PostError::Tls(String::from("no host")))?
        .clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned())
        .map_err(|err| PostError::Tls(format!("{host:?}: {err}")))?;
    let connector = tls::connector().await.map_err(PostError::Tls)?;
    let tcp = TcpStream::connect((host, authority.port_u16().unwrap_or(443))).await?;
    let stream = connector.connect(name, tcp).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // A connection of its own: the request names only the path, the host goes in
    // `Host`.
    let host_header = HeaderValue::from_str(authority.as_str()).map_err(http::Error::from)?;
    request.headers_mut().insert(header::HOST, host_header);
    *request.uri_mut() = uri
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .parse()
        .map_err(http::Error::from)?;
    let exchange = async {
        let response = sender.send_request(request).await?;
        read_answer(response).await
    };
    tokio::pin!(connection);
    tokio::select! {
        status = exchange => status,
        ended = &mut connection => match ended {
            Ok(()) => Err(PostError::Tls(String::from("the connection ended before the answer"))),
            Err(err) => Err(PostError::Http(err)),
        },
    }
}
