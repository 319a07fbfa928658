//! The publish API: `POST /api/publish/{topic}` (the body is the data) and
//! `POST /api/publish` (a batch), for any backend that can make an HTTP request.
//!
//! Callers show the API key (`--api-key`) or, when tokens are configured, a
//! connection token (JWT) with `pub` permission on every topic they publish to;
//! both come as `Authorization: Bearer …`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::auth::{self, Identity, Permission, TokenVerifier};
use crate::hub::{Data, Hub, PublishError, Topic};
use crate::protocol;
use crate::transport::{HttpError, bearer};

/// The largest batch body.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// The most entries in one batch.
pub const MAX_BATCH_ENTRIES: usize = 1000;

/// Who may publish: the holders of the key, or (without a key) loopback clients.
#[derive(Clone)]
pub(crate) struct PublishApi {
    pub(crate) hub: Hub,
    pub(crate) key: Option<Arc<str>>,
    /// When set, a JWT with `pub` permission is accepted besides the key.
    pub(crate) auth: Option<Arc<TokenVerifier>>,
}

/// Who is publishing: a holder of the key (or a loopback client when there is no
/// key), or the holder of a token, who may publish where it grants `pub`.
enum Caller {
    Trusted,
    Token(Identity),
}

impl Caller {
    fn may_publish(&self, topic: &Topic) -> Result<(), HttpError> {
        match self {
            Self::Trusted => Ok(()),
            Self::Token(identity) if identity.allows(topic.as_str(), Permission::Pub) => Ok(()),
            Self::Token(_) => Err(HttpError(auth::forbidden(topic, Permission::Pub))),
        }
    }
}

impl PublishApi {
    /// Who the caller is, or the refusal.
    fn caller(&self, peer: SocketAddr, headers: &HeaderMap) -> Result<Caller, Box<Response>> {
        if let (Some(verifier), Some(given)) = (&self.auth, bearer(headers))
            && given.split('.').count() == 3
            && !self
                .key
                .as_deref()
                .is_some_and(|key| same_key(given.as_bytes(), key.as_bytes()))
        {
            return verifier
                .connection(given)
                .map(Caller::Token)
                .map_err(|err| Box::new(unauthorized(&err.to_string())));
        }
        match self.refusal(peer, headers) {
            None => Ok(Caller::Trusted),
            Some(refused) => Err(Box::new(refused)),
        }
    }

    /// `None` when the request may publish; otherwise the refusal.
    fn refusal(&self, peer: SocketAddr, headers: &HeaderMap) -> Option<Response> {
        let Some(key) = &self.key else {
            if peer.ip().is_loopback()
                || matches!(peer.ip(), std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
            {
                return None;
            }
            return Some(
                HttpError::new(
                    403,
                    "no API key is configured: publishing is allowed from loopback addresses only",
                )
                .into_response(),
            );
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        match given {
            Some(given) if same_key(given.as_bytes(), key.as_bytes()) => None,
            Some(_) => Some(unauthorized("the API key is not valid")),
            None => Some(unauthorized(
                "an API key is required: Authorization: Bearer <key>",
            )),
        }
    }

    /// `POST /api/publish/{topic}`.
    pub(crate) async fn single(
        self,
        peer: SocketAddr,
        topic: &str,
        headers: HeaderMap,
        body: Body,
    ) -> Response {
        let caller = match self.caller(peer, &headers) {
            Ok(caller) => caller,
            Err(refused) => return *refused,
        };
        let topic = match Topic::new(topic) {
            Ok(topic) => topic,
            Err(err) => return HttpError(protocol::invalid_topic(topic, &err)).into_response(),
        };
        if let Err(refused) = caller.may_publish(&topic) {
            return refused.into_response();
        }
        let max = self.hub.config().max_data_size;
        let bytes = match read_body(body, &headers, max).await {
            Ok(bytes) => bytes,
            Err(err) => return err.into_response(),
        };
        let data = if is_json(&headers) {
            match Data::json(bytes) {
                Ok(data) => data,
                Err(err) => return HttpError::new(400, err.to_string()).into_response(),
            }
        } else {
            match std::str::from_utf8(&bytes) {
                Ok(text) => Data::text(text),
                Err(_) => {
                    return HttpError::new(
                        400,
                        "the body is not UTF-8 text (send JSON with Content-Type: application/json)",
                    )
                    .into_response();
                }
            }
        };
        match self.hub.publish(&topic, data).await {
            Ok(position) => json(protocol::position(&topic, &position, None)),
            Err(err) => publish_error(&err).into_response(),
        }
    }

    /// `POST /api/publish`: `[{"topic":…,"data":…},…]`, all checked, then published
    /// in order.
    pub(crate) async fn batch(self, peer: SocketAddr, headers: HeaderMap, body: Body) -> Response {
        let caller = match self.caller(peer, &headers) {
            Ok(caller) => caller,
            Err(refused) => return *refused,
        };
        let bytes = match read_body(body, &headers, MAX_BATCH_BYTES).await {
            Ok(bytes) => bytes,
            Err(err) => return err.into_response(),
        };
        let entries: Vec<BatchEntry<'_>> = match serde_json::from_slice(&bytes) {
            Ok(entries) => entries,
            Err(err) => {
                return HttpError::new(
                    400,
                    format!("a batch is [{{\"topic\":…,\"data\":…}},…]: {err}"),
                )
                .into_response();
            }
        };
        if entries.is_empty() {
            return HttpError::new(400, "the batch is empty").into_response();
        }
        if entries.len() > MAX_BATCH_ENTRIES {
            return HttpError::new(
                400,
                format!(
                    "a batch has at most {MAX_BATCH_ENTRIES} entries, not {}",
                    entries.len()
                ),
            )
            .into_response();
        }
        let max = self.hub.config().max_data_size;
        let mut checked = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let topic = match Topic::new(&entry.topic) {
                Ok(topic) => topic,
                Err(err) => {
                    let mut reply = protocol::invalid_topic(&entry.topic, &err);
                    reply.message = format!("entry {i}: {}", reply.message);
                    return HttpError(reply).into_response();
                }
            };
            if let Err(refused) = caller.may_publish(&topic) {
                return refused.into_response();
            }
            let size = entry.data.get().len();
            if size > max {
                return HttpError::new(
                    413,
                    format!("entry {i}: data is {size} bytes; at most {max} allowed"),
                )
                .into_response();
            }
            match Data::json(entry.data.get().as_bytes().to_vec()) {
                Ok(data) => checked.push((topic, data)),
                Err(err) => {
                    return HttpError::new(400, format!("entry {i}: {err}")).into_response();
                }
            }
        }
        let mut out = String::from("[");
        let total = checked.len();
        for (i, (topic, data)) in checked.into_iter().enumerate() {
            match self.hub.publish(&topic, data).await {
                Ok(position) => {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&protocol::position(&topic, &position, None));
                }
                Err(err) => {
                    let mut err = publish_error(&err);
                    err.0.message = format!(
                        "{} (entries 0..{i} of {total} were published, the rest were not)",
                        err.0.message
                    );
                    return err.into_response();
                }
            }
        }
        out.push(']');
        json(out)
    }
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
        PublishError::TooLarge { .. } => HttpError::new(413, err.to_string()),
        PublishError::Broker(err) => HttpError::new(503, err.to_string()),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response = HttpError::new(401, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"pushwire\""),
    );
    response
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
            413,
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
        let chunk =
            chunk.map_err(|err| HttpError::new(400, format!("cannot read the body: {err}")))?;
        if out.len() + chunk.len() > max {
            return Err(too_large(format!("more than {max}")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Compares two keys in time that depends only on their lengths.
fn same_key(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_key_only_loopback_peers_may_publish() {
        let api = PublishApi {
            hub: Hub::default(),
            key: None,
            auth: None,
        };
        let headers = HeaderMap::new();
        for peer in ["127.0.0.1:9", "[::1]:9", "[::ffff:127.0.0.1]:9"] {
            let peer: SocketAddr = peer.parse().unwrap_or_else(|e| panic!("{e}"));
            assert!(api.refusal(peer, &headers).is_none(), "{peer}");
        }
        for peer in ["192.0.2.1:9", "[2001:db8::1]:9", "[::ffff:192.0.2.1]:9"] {
            let peer: SocketAddr = peer.parse().unwrap_or_else(|e| panic!("{e}"));
            let refused = api.refusal(peer, &headers).map(|r| r.status());
            assert_eq!(refused, Some(StatusCode::FORBIDDEN), "{peer}");
        }
    }

    #[test]
    fn keys_compare_exactly() {
        assert!(same_key(b"secret", b"secret"));
        assert!(!same_key(b"secreT", b"secret"));
        assert!(!same_key(b"secret1", b"secret"));
        assert!(!same_key(b"", b"secret"));
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
