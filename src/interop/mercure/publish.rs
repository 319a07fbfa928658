//! `POST /.well-known/mercure`: an update, as an `application/x-www-form-urlencoded`
//! form: `topic` (one or more: the first canonical, the rest alternates), `data`,
//! `id`, `private`, `type`, `retry`. It is kept in its canonical topic as an
//! [`Envelope`] (the hub copies it to the journal), or, when private, in the
//! journal only, so that no `/ws`, SSE or long-poll subscriber of the topic gets
//! it. The answer is the update's id, as `text/plain`.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Uri, header};
use percent_encoding::percent_decode_str;

use super::context::{Mercure, PATH, hub_url};
use super::error::MercureError;
use super::event::new_id;
use super::form;
use super::topic::topic_of;
use crate::hub::PublishError;
use crate::interop::envelope::{DEFAULT_EVENT, Envelope};

/// The update type the hub keeps for its own events (subscription events).
pub const RESERVED_TYPE: &str = "mercure";

/// The largest publish body for a hub whose largest data is `max_data_size`
/// bytes: room for that much data percent-encoded, and the other fields.
pub fn max_body(max_data_size: usize) -> usize {
    max_data_size.saturating_mul(3).saturating_add(64 * 1024)
}

/// What a publish request brings besides the hub.
#[derive(Debug)]
pub struct PublishRequest {
    /// The request's URI (its query and, over HTTP/2, its authority).
    pub uri: Uri,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body, read whole (at most [`max_body`] bytes).
    pub body: Bytes,
    /// Whether the server has TLS (the hub's URL is `https://…`).
    pub secure: bool,
}

/// One update, read from a form.
#[derive(Debug, Default, PartialEq, Eq)]
struct Update {
    topics: Vec<String>,
    data: String,
    id: Option<String>,
    private: bool,
    kind: Option<String>,
    retry: Option<u64>,
}

/// Answers a publish request: the id (200 `text/plain`) or the refusal.
pub async fn publish(mercure: &Mercure, request: PublishRequest) -> Result<Response, MercureError> {
    let PublishRequest {
        uri,
        headers,
        body,
        secure,
    } = request;
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(MercureError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        ));
    }
    let query = form::pairs(uri.query().unwrap_or("").as_bytes())?;
    let base = hub_url(&uri, &headers, secure)?;
    let grants = mercure
        .grants(&headers, &query, &base)?
        .ok_or(MercureError::NoToken)?;
    let update = read(&form::pairs(&body)?)?;
    if let Some(topic) = update.topics.iter().find(|topic| reserved(topic)) {
        return Err(MercureError::Forbidden(format!(
            "{:?} is the hub's own: topics under {PATH} cannot be published to",
            topic.chars().take(64).collect::<String>()
        )));
    }
    if let Some(topic) = update.topics.iter().find(|t| !grants.may_publish(t)) {
        return Err(MercureError::InsufficientScope(format!(
            "the token does not grant publish on {:?}",
            topic.chars().take(64).collect::<String>()
        )));
    }
    let Some((canonical, alternates)) = update.topics.split_first() else {
        return Err(MercureError::InvalidRequest("no topic".into()));
    };
    let topic = topic_of(mercure.namespace(), canonical)
        .map_err(|err| MercureError::InvalidRequest(err.to_string()))?;
    let id = update.id.clone().unwrap_or_else(new_id);
    let mut envelope = Envelope::with_text(
        update.kind.as_deref().unwrap_or(DEFAULT_EVENT),
        &update.data,
    );
    envelope.id = Some(id.clone());
    envelope.retry = update.retry;
    envelope.topics = alternates.to_vec();
    envelope.private = update.private;
    let data = envelope
        .to_data()
        .map_err(|err| MercureError::InvalidRequest(err.to_string()))?;
    let hub = mercure.hub();
    let published = if update.private {
        hub.publish_journal(mercure.journal(), &topic, data).await
    } else {
        hub.publish(&topic, data).await
    };
    match published {
        Ok(_) => {}
        Err(PublishError::TooLarge { size, max }) => {
            return Err(MercureError::TooLarge(format!(
                "the update is {size} bytes; at most {max} allowed"
            )));
        }
        Err(PublishError::Broker(err)) => return Err(MercureError::Unavailable(err.to_string())),
    }
    tracing::debug!(topic = %topic, private = update.private, "mercure: published");
    let mut response = id.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// The update a form holds; unknown fields are ignored.
fn read(fields: &[(String, String)]) -> Result<Update, MercureError> {
    let bad = |why: &str| MercureError::InvalidRequest(why.to_owned());
    let mut update = Update::default();
    for (name, value) in fields {
        match name.as_str() {
            "topic" => {
                if value.is_empty() || value.chars().any(char::is_control) {
                    return Err(bad("a topic is empty or holds control characters"));
                }
                update.topics.push(value.clone());
            }
            "data" => value.clone_into(&mut update.data),
            "id" if value.is_empty() => {}
            "id" => {
                if value.starts_with('#') || value.contains(['\r', '\n', '\0']) {
                    return Err(bad("an id must not start with # nor hold CR, LF or NUL"));
                }
                update.id = Some(value.clone());
            }
            "private" => update.private = true,
            "type" if value.is_empty() => {}
            "type" => {
                if value.contains(['\r', '\n', '\0']) {
                    return Err(bad("a type must not hold CR, LF or NUL"));
                }
                if value == RESERVED_TYPE {
                    return Err(bad("the type mercure is reserved"));
                }
                update.kind = Some(value.clone());
            }
            "retry" => {
                let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
                let retry = value.parse::<u64>().ok().filter(|_| digits);
                update.retry = Some(retry.ok_or_else(|| bad("retry must be a number of ms"))?);
            }
            _ => {}
        }
    }
    if update.topics.is_empty() {
        return Err(bad("an update needs at least one topic"));
    }
    Ok(update)
}

/// Whether `topic`, resolved against the hub's URL, is the hub's path or under
/// it (`/.well-known/mercure…`): those are the hub's own (subscription events).
fn reserved(topic: &str) -> bool {
    let path = match url_path(topic) {
        Some(path) => path,
        None => return false,
    };
    let decoded = percent_decode_str(&path).decode_utf8_lossy();
    let normal = remove_dot_segments(&decoded);
    normal == PATH || normal.starts_with(&format!("{PATH}/"))
}

/// The path of `topic` as a URL reference resolved against the hub's URL; `None`
/// for a URI that has no hierarchical path (`urn:…`).
fn url_path(topic: &str) -> Option<String> {
    let end = topic.find(['?', '#']).unwrap_or(topic.len());
    let reference = &topic[..end];
    let scheme_end = reference.find(':').filter(|&at| {
        let scheme = &reference[..at];
        scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let rest = match scheme_end {
        Some(at) => &reference[at + 1..],
        None => reference,
    };
    if let Some(after) = rest.strip_prefix("//") {
        let path_start = after.find('/').unwrap_or(after.len());
        return Some(after[path_start..].to_owned());
    }
    if scheme_end.is_some() {
        // `scheme:path` without an authority: a path only when it starts with `/`.
        return rest.starts_with('/').then(|| rest.to_owned());
    }
    if rest.starts_with('/') {
        return Some(rest.to_owned());
    }
    // A relative path: merged with the hub's path, whose last segment it replaces.
    let base_dir = &PATH[..=PATH.rfind('/').unwrap_or(0)];
    Some(format!("{base_dir}{rest}"))
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            other => out.push(other),
        }
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn a_form_is_read_with_its_alternates_and_fields() {
        let update = read(&form(&[
            ("topic", "https://e.com/a"),
            ("topic", "https://e.com/b"),
            ("data", "d"),
            ("id", "x"),
            ("private", ""),
            ("type", "t"),
            ("retry", "10"),
            ("other", "ignored"),
        ]));
        assert_eq!(
            update.ok(),
            Some(Update {
                topics: vec!["https://e.com/a".into(), "https://e.com/b".into()],
                data: "d".into(),
                id: Some("x".into()),
                private: true,
                kind: Some("t".into()),
                retry: Some(10),
            })
        );
    }

    #[test]
    fn bad_fields_are_refused() {
        for bad in [
            form(&[("data", "d")]),
            form(&[("topic", "a"), ("id", "#x")]),
            form(&[("topic", "a"), ("id", "a\nb")]),
            form(&[("topic", "a"), ("type", "mercure")]),
            form(&[("topic", "a"), ("type", "a\rb")]),
            form(&[("topic", "a"), ("retry", "-1")]),
            form(&[("topic", "a"), ("retry", "1.5")]),
            form(&[("topic", "a"), ("retry", "")]),
            form(&[("topic", "")]),
        ] {
            assert!(
                matches!(read(&bad), Err(MercureError::InvalidRequest(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_hubs_own_path_is_reserved_however_it_is_written() {
        for topic in [
            "https://example.com/.well-known/mercure",
            "https://example.com/.well-known/mercure/subscriptions/x",
            "/.well-known/mercure/subscriptions",
            "mercure/subscriptions",
            "./mercure",
            "../.well-known/mercure?x",
            "/.well-known/%6Dercure/x",
            "/a/../.well-known/mercure",
        ] {
            assert!(reserved(topic), "{topic}");
        }
        for topic in [
            "https://example.com/.well-known/mercurex",
            "https://example.com/books/1",
            "urn:isbn:1",
            "subscriptions",
            "/.well-known/other",
            "https://example.com/?q=/.well-known/mercure",
        ] {
            assert!(!reserved(topic), "{topic}");
        }
    }

    #[test]
    fn bodies_have_room_for_encoded_data() {
        assert!(max_body(64 * 1024) > 3 * 64 * 1024);
    }
}
