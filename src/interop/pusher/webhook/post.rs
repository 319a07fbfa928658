//! One signed webhook post: the body with `X-Pusher-Key` and
//! `X-Pusher-Signature`, over plain HTTP/1.1 (connections kept and reused by the
//! client's pool).

use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::POST_TIMEOUT;
use super::outbox::Outbox;
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
    let request = Request::post(outbox.webhook.url.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-Pusher-Key", outbox.key.as_str())
        .header("X-Pusher-Signature", sign(&outbox.secret, body))
        .body(Body::from(body.to_owned()))?;
    let exchange = async {
        let response = client.request(request).await?;
        let status = response.status();
        // Read the answer so that the connection can be used again.
        axum::body::to_bytes(Body::new(response.into_body()), ANSWER_LIMIT).await?;
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
