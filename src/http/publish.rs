//! The publish API: `POST /api/publish/{topic}` (the body is the data) and
//! `POST /api/publish` (a batch), for any backend that can make an HTTP request.
//!
//! Callers show the API key (`--api-key`) or, when tokens are configured, a
//! connection token (JWT) with `pub` permission on every topic they publish to;
//! both come as `Authorization: Bearer …`.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::HttpError;
use super::query::bearer;
use super::state::TopicsState;
use crate::auth::{self, Identity, Permission, TokenVerifier, same_secret};
use crate::hub::PublishError;
use crate::protocol;
use crate::topic::ErrorCode;
use crate::topic::{Data, Topic};

/// The largest batch body.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// The most entries in one batch.
pub const MAX_BATCH_ENTRIES: usize = 1000;

/// Who is publishing: a holder of the key (or a loopback client when there is no
/// key), or the holder of a token, who may publish where it grants `pub`.
enum Caller {
    Trusted,
    Token(Identity),
}

impl Caller {
    /// Who the caller is, or the refusal: the API key or, with tokens configured,
    /// a connection token (a JWT that is not the key) with `pub` permission.
    fn of(state: &TopicsState, peer: SocketAddr, headers: &HeaderMap) -> Result<Self, HttpError> {
        Self::with(
            state.api_key.as_deref(),
            state.auth.as_deref(),
            peer,
            headers,
        )
    }

    fn with(
        api_key: Option<&str>,
        auth: Option<&TokenVerifier>,
        peer: SocketAddr,
        headers: &HeaderMap,
    ) -> Result<Self, HttpError> {
        if let (Some(verifier), Some(given)) = (auth, bearer(headers))
            && given.split('.').count() == 3
            && !api_key.is_some_and(|key| same_secret(given.as_bytes(), key.as_bytes()))
        {
            return verifier
                .connection(given)
                .map(Caller::Token)
                .map_err(|err| HttpError::unauthorized(err.to_string()));
        }
        key_or_loopback(api_key, peer, headers, "publishing").map(|()| Self::Trusted)
    }

    fn may_publish(&self, topic: &Topic) -> Result<(), HttpError> {
        match self {
            Self::Trusted => Ok(()),
            Self::Token(identity) if identity.allows(topic.as_str(), Permission::Pub) => Ok(()),
            Self::Token(_) => Err(HttpError::from(auth::forbidden(topic, Permission::Pub))),
        }
    }
}

/// The check of trusted callers (the publish API, `/metrics`): with a key,
/// `Authorization: Bearer <key>` (compared in constant time); without one, loopback
/// peers only. `what` names what is refused ("publishing").
pub(crate) fn key_or_loopback(
    api_key: Option<&str>,
    peer: SocketAddr,
    headers: &HeaderMap,
    what: &str,
) -> Result<(), HttpError> {
    let Some(key) = api_key else {
        if peer.ip().is_loopback()
            || matches!(peer.ip(), std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
        {
            return Ok(());
        }
        return Err(HttpError::new(
            ErrorCode::Forbidden,
            format!("no API key is configured: {what} is allowed from loopback addresses only"),
        ));
    };
    match bearer(headers) {
        Some(given) if same_secret(given.as_bytes(), key.as_bytes()) => Ok(()),
        Some(_) => Err(HttpError::unauthorized("the API key is not valid")),
        None => Err(HttpError::unauthorized(
            "an API key is required: Authorization: Bearer <key>",
        )),
    }
}

/// `POST /api/publish/{topic}`: the body is the data (JSON with a JSON content
/// type, text otherwise); answers the message's position.
pub(crate) async fn single(
    State(state): State<TopicsState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(topic): Path<String>,
    request: Request,
) -> Result<Response, HttpError> {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let caller = Caller::of(&state, peer, &headers)?;
    let topic =
        Topic::new(&topic).map_err(|err| HttpError::from(protocol::invalid_topic(&topic, &err)))?;
    caller.may_publish(&topic)?;
    let max = state.hub.config().max_data_size;
    let bytes = read_body(body, &headers, max).await?;
    let data = if is_json(&headers) {
        Data::json(bytes).map_err(|err| HttpError::new(ErrorCode::BadRequest, err.to_string()))?
    } else {
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            HttpError::new(
                ErrorCode::BadRequest,
                "the body is not UTF-8 text (send JSON with Content-Type: application/json)",
            )
        })?;
        Data::text(text)
    };
    let position = state
        .hub
        .publish(&topic, data)
        .await
        .map_err(|err| publish_error(&err))?;
    Ok(json(protocol::position(&topic, &position, None)))
}

/// `POST /api/publish`: `[{"topic":…,"data":…},…]`, all checked, then published
/// in order; answers their positions.
pub(crate) async fn batch(
    State(state): State<TopicsState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Result<Response, HttpError> {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let caller = Caller::of(&state, peer, &headers)?;
    let bytes = read_body(body, &headers, MAX_BATCH_BYTES).await?;
    let entries: Vec<BatchEntry<'_>> = serde_json::from_slice(&bytes).map_err(|err| {
        HttpError::new(
            ErrorCode::BadRequest,
            format!("a batch is [{{\"topic\":…,\"data\":…}},…]: {err}"),
        )
    })?;
    if entries.is_empty() {
        return Err(HttpError::new(ErrorCode::BadRequest, "the batch is empty"));
    }
    if entries.len() > MAX_BATCH_ENTRIES {
        return Err(HttpError::new(
            ErrorCode::BadRequest,
            format!(
                "a batch has at most {MAX_BATCH_ENTRIES} entries, not {}",
                entries.len()
            ),
        ));
    }
    let max = state.hub.config().max_data_size;
    let mut checked = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let topic = Topic::new(&entry.topic).map_err(|err| {
            let mut reply = protocol::invalid_topic(&entry.topic, &err);
            reply.message = format!("entry {i}: {}", reply.message);
            HttpError::from(reply)
        })?;
        caller.may_publish(&topic)?;
        let size = entry.data.get().len();
        if size > max {
            return Err(HttpError::new(
                ErrorCode::TooLarge,
                format!("entry {i}: data is {size} bytes; at most {max} allowed"),
            ));
        }
        let data = Data::json(entry.data.get().as_bytes().to_vec())
            .map_err(|err| HttpError::new(ErrorCode::BadRequest, format!("entry {i}: {err}")))?;
        checked.push((topic, data));
    }
    let mut out = String::from("[");
    let total = checked.len();
    for (i, (topic, data)) in checked.into_iter().enumerate() {
        let position = state.hub.publish(&topic, data).await.map_err(|err| {
            let mut err = publish_error(&err);
            err.reply.message = format!(
                "{} (entries 0..{i} of {total} were published, the rest were not)",
                err.reply.message
            );
            err
        })?;
        if i > 0 {
            out.push(',');
        }
        out.push_str(&protocol::position(&topic, &position, None));
    }
    out.push(']');
    Ok(json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchEntry<'a> {
    topic: String,
    #[serde(borrow)]
    data: &'a RawValue,
}

fn publish_error(err: &PublishError) -> HttpError {
    match err {
        PublishError::TooLarge { .. } => HttpError::new(ErrorCode::TooLarge, err.to_string()),
        PublishError::Broker(err) => HttpError::new(ErrorCode::Unavailable, err.to_string()),
    }
}

fn json(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|mime| mime.trim().to_ascii_lowercase())
        .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"))
}

/// Reads the whole body, refusing (413) one larger than `max` bytes, before or
/// while reading it.
async fn read_body(body: Body, headers: &HeaderMap, max: usize) -> Result<Vec<u8>, HttpError> {
    let too_large = |size: String| {
        HttpError::new(
            ErrorCode::TooLarge,
            format!("the body is {size} bytes; at most {max} allowed"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if let Some(declared) = declared
        && declared > max as u64
    {
        return Err(too_large(declared.to_string()));
    }
    let mut out = Vec::with_capacity(declared.map_or(0, |d| d as usize));
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|err| {
            HttpError::new(
                ErrorCode::BadRequest,
                format!("cannot read the body: {err}"),
            )
        })?;
        if out.len() + chunk.len() > max {
            return Err(too_large(format!("more than {max}")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn without_a_key_only_loopback_peers_may_publish() {
        let headers = HeaderMap::new();
        for peer in ["127.0.0.1:9", "[::1]:9", "[::ffff:127.0.0.1]:9"] {
            let peer: SocketAddr = peer.parse().unwrap_or_else(|e| panic!("{e}"));
            let caller = Caller::with(None, None, peer, &headers);
            assert!(matches!(caller, Ok(Caller::Trusted)), "{peer}");
        }
        for peer in ["192.0.2.1:9", "[2001:db8::1]:9", "[::ffff:192.0.2.1]:9"] {
            let peer: SocketAddr = peer.parse().unwrap_or_else(|e| panic!("{e}"));
            let refused = Caller::with(None, None, peer, &headers)
                .err()
                .map(|e| e.reply.code);
            assert_eq!(refused, Some(StatusCode::FORBIDDEN.as_u16()), "{peer}");
        }
    }

    #[test]
    fn json_content_types_are_recognised() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        assert!(is_json(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.x+json"),
        );
        assert!(is_json(&headers));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!is_json(&headers));
    }
}
