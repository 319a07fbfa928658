//! The opening handshake (RFC 6455 §4): checking a client's upgrade request and
//! computing the server's `Sec-WebSocket-Accept`.
//!
//! HTTP itself is hyper's job; this module only reads the headers hyper parsed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, Method, Version, header};

/// The GUID that RFC 6455 §1.3 appends to the client's key.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version we speak (RFC 6455 §4.1).
pub const VERSION: &str = "13";

/// Why an HTTP request is not a valid WebSocket upgrade.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The request is not a GET.
    #[error("a WebSocket handshake must use GET, not {0}")]
    Method(Method),
    /// The request uses HTTP/1.0 or older.
    #[error("a WebSocket handshake needs HTTP/1.1")]
    HttpVersion,
    /// No `Upgrade: websocket` header: a plain HTTP request.
    #[error(
        "this is a WebSocket endpoint: connect with a WebSocket client (missing `Upgrade: websocket`)"
    )]
    NotUpgrade,
    /// `Connection` does not contain the `upgrade` token.
    #[error("missing `Connection: upgrade`")]
    ConnectionHeader,
    /// `Sec-WebSocket-Version` is absent or not 13.
    #[error("unsupported WebSocket version (this server speaks version 13)")]
    Version,
    /// `Sec-WebSocket-Key` is absent or not 16 bytes in base64.
    #[error("missing or malformed `Sec-WebSocket-Key`")]
    Key,
}

/// Checks a client's opening handshake and returns the `Sec-WebSocket-Accept` value
/// to answer it with.
pub fn check_request(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
) -> Result<String, HandshakeError> {
    if !has_token(headers, header::UPGRADE, "websocket") {
        return Err(HandshakeError::NotUpgrade);
    }
    if method != Method::GET {
        return Err(HandshakeError::Method(method.clone()));
    }
    if version < Version::HTTP_11 {
        return Err(HandshakeError::HttpVersion);
    }
    if !has_token(headers, header::CONNECTION, "upgrade") {
        return Err(HandshakeError::ConnectionHeader);
    }
    let versions: Vec<_> = headers
        .get_all(header::SEC_WEBSOCKET_VERSION)
        .iter()
        .collect();
    if versions.len() != 1 || versions[0].as_bytes().trim_ascii() != VERSION.as_bytes() {
        return Err(HandshakeError::Version);
    }
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let (Some(key), None) = (keys.next(), keys.next()) else {
        return Err(HandshakeError::Key);
    };
    let key = key.as_bytes().trim_ascii();
    match BASE64.decode(key) {
        Ok(decoded) if decoded.len() == 16 => Ok(accept_key(key)),
        _ => Err(HandshakeError::Key),
    }
}

/// The subprotocol to answer with: the first of `supported` (our preference order)
/// that the client offered in `Sec-WebSocket-Protocol`, compared exactly (RFC 6455
/// §4.2.2: the values are case-sensitive tokens).
pub fn select_subprotocol<'a>(headers: &HeaderMap, supported: &'a [String]) -> Option<&'a str> {
    let offered: Vec<&[u8]> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty())
        .collect();
    supported
        .iter()
        .find(|ours| offered.contains(&ours.as_bytes()))
        .map(String::as_str)
}

/// `base64(SHA-1(key ++ GUID))`, the value of `Sec-WebSocket-Accept` (RFC 6455 §4.2.2).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(key);
    sha1.update(ACCEPT_GUID.as_bytes());
    BASE64.encode(sha1.digest().bytes())
}

/// Whether any of the comma-separated values of header `name` equals `token`,
/// ignoring ASCII case (RFC 7230 §3.2.2 allows the list to span several lines).
pub(crate) fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|part| part.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn valid_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        headers.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        headers
    }

    #[test]
    fn rfc_example_key_gives_rfc_example_accept() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn the_first_supported_subprotocol_the_client_offers_is_chosen() {
        let mut headers = valid_headers();
        headers.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("chat, v2.pushwire"),
        );
        headers.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v1.pushwire"),
        );
        let ours = ["v1.pushwire".to_owned(), "v2.pushwire".to_owned()];
        assert_eq!(select_subprotocol(&headers, &ours), Some("v1.pushwire"));
        assert_eq!(
            select_subprotocol(&headers, &["V1.PUSHWIRE".to_owned()]),
            None
        );
        assert_eq!(select_subprotocol(&valid_headers(), &ours), None);
    }

    #[test]
    fn valid_request_is_accepted() {
        let accept = check_request(&Method::GET, Version::HTTP_11, &valid_headers()).unwrap();
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn each_missing_piece_is_named() {
        let get = |headers: &HeaderMap| check_request(&Method::GET, Version::HTTP_11, headers);
        let mut h = valid_headers();
        h.remove(header::UPGRADE);
        assert_eq!(get(&h), Err(HandshakeError::NotUpgrade));
        let mut h = valid_headers();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        assert_eq!(get(&h), Err(HandshakeError::ConnectionHeader));
        let mut h = valid_headers();
        h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        assert_eq!(get(&h), Err(HandshakeError::Version));
        let mut h = valid_headers();
        h.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("c2hvcnQ="),
        );
        assert_eq!(get(&h), Err(HandshakeError::Key));
        assert_eq!(
            check_request(&Method::POST, Version::HTTP_11, &valid_headers()),
            Err(HandshakeError::Method(Method::POST))
        );
        assert_eq!(
            check_request(&Method::GET, Version::HTTP_10, &valid_headers()),
            Err(HandshakeError::HttpVersion)
        );
    }
}
