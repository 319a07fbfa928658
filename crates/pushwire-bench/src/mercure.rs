//! Mercure for the fan-out and idle scenarios (`--protocol mercure`): what a
//! Mercure 1.0 client sends, written from the protocol, not from the server.
//!
//! - Subscribers `GET /.well-known/mercure?match=<topic IRI>` and read the event
//!   stream (`sse::SseConn`); an update's data is the payload as published.
//! - The publisher `POST`s `application/x-www-form-urlencoded` forms
//!   (`topic=<IRI>&data=<payload>`) to the same path ([`form`]).
//! - Tokens: given whole (`--token`), or minted here ([`mint_token`]): an
//!   HS256 OAuth 2.0 access token (RFC 9068, `typ: at+jwt`) whose
//!   `authorization_details` (RFC 9396) grant `publish` and `subscribe` on every
//!   topic (`*`), as a Mercure 1.0 hub expects from a trusted issuer.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde_json::json;

use super::stats::now_micros;

/// The hub's path (Mercure's well-known URI).
pub(crate) const HUB_PATH: &str = "/.well-known/mercure";

/// The authorization detail type of Mercure 1.0.
const DETAIL_TYPE: &str = "https://mercure.rocks/authorization-detail";

/// How long a minted token is valid.
const TOKEN_LIFETIME_S: u64 = 24 * 3600;

/// The topic IRI for `--topic`: itself when it is absolute (holds a `:`), else
/// `https://example.com/{topic}`.
pub(crate) fn topic_iri(topic: &str) -> String {
    if topic.contains(':') {
        topic.to_owned()
    } else {
        format!("https://example.com/{topic}")
    }
}

/// The path and query a subscriber of `iri` asks for, on a hub at `path`
/// (empty or `/`: the well-known path).
pub(crate) fn subscriber_path(path: &str, iri: &str) -> String {
    let path = match path {
        "" | "/" => HUB_PATH,
        path => path,
    };
    if path.contains('?') {
        return path.to_owned();
    }
    format!("{path}?match={}", encode(iri))
}

/// The form that publishes `data` to `iri`.
pub(crate) fn form(iri: &str, data: &str) -> String {
    format!("topic={}&data={}", encode(iri), encode(data))
}

/// `application/x-www-form-urlencoded` encoding of one name or value: letters,
/// digits and `*-._` stay, a space is `+`, every other byte is `%XX`.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 15)]));
            }
        }
    }
    out
}

/// Mints an HS256 access token of `issuer` for `audience` (the hub's URL),
/// granting publish and subscribe on every topic, valid for a day.
pub(crate) fn mint_token(secret: &str, issuer: &str, audience: &str) -> String {
    let now = now_micros() / 1_000_000;
    let header = json!({ "alg": "HS256", "typ": "at+jwt" });
    let claims = json!({
        "iss": issuer,
        "sub": "pushwire-bench",
        "client_id": "pushwire-bench",
        "aud": audience,
        "iat": now,
        "exp": now + TOKEN_LIFETIME_S,
        "jti": format!("bench-{now}-{}", rand::random::<u64>()),
        "authorization_details": [{
            "type": DETAIL_TYPE,
            "actions": ["publish", "subscribe"],
            "topics": [{ "match": "*" }],
        }],
    });
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let signature = hmac::sign(&key, signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn forms_encode_as_browsers_do() {
        assert_eq!(
            form("https://example.com/books/1", "12 345 xx&y=z+é"),
            "topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&data=12+345+xx%26y%3Dz%2B%C3%A9"
        );
        assert_eq!(encode("a*b-c.d_e~"), "a*b-c.d_e%7E");
    }

    #[test]
    fn subscribers_match_the_topic_on_the_well_known_path() {
        assert_eq!(
            subscriber_path("", &topic_iri("bench")),
            "/.well-known/mercure?match=https%3A%2F%2Fexample.com%2Fbench"
        );
        assert_eq!(subscriber_path("/hub", "urn:x:1"), "/hub?match=urn%3Ax%3A1");
        assert_eq!(subscriber_path("/hub?match=a", "b"), "/hub?match=a");
    }

    fn part(token: &str, index: usize) -> Value {
        let part = token.split('.').nth(index).unwrap_or_default();
        let bytes = URL_SAFE_NO_PAD.decode(part).unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or_default()
    }

    #[test]
    fn minted_tokens_are_signed_access_tokens_granting_everything() {
        let token = mint_token(
            "s3cret",
            "bench-iss",
            "http://127.0.0.1:1/.well-known/mercure",
        );
        let (signed, signature) = token.rsplit_once('.').unwrap_or_default();
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"s3cret");
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap_or_default();
        assert!(hmac::verify(&key, signed.as_bytes(), &signature).is_ok());
        assert_eq!(part(&token, 0), json!({ "alg": "HS256", "typ": "at+jwt" }));
        let claims = part(&token, 1);
        assert_eq!(claims["iss"], "bench-iss");
        assert_eq!(claims["aud"], "http://127.0.0.1:1/.well-known/mercure");
        let lifetime = claims["exp"].as_u64().unwrap_or(0) - claims["iat"].as_u64().unwrap_or(0);
        assert_eq!(lifetime, TOKEN_LIFETIME_S);
        assert_eq!(
            claims["authorization_details"],
            json!([{
                "type": "https://mercure.rocks/authorization-detail",
                "actions": ["publish", "subscribe"],
                "topics": [{ "match": "*" }],
            }])
        );
    }
}
