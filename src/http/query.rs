//! Reading query strings and credentials: form-style decoding, the topics and
//! positions an SSE or long-poll request asks for, and where a token comes from.

use percent_encoding::percent_decode_str;

use super::error::HttpError;
use crate::protocol;
use crate::topic::ErrorCode;
use crate::topic::{Positions, Topic};

/// The most topics one SSE or long-poll request may name.
pub const MAX_TOPICS: usize = 100;

/// Decodes `a=1&b=x%20y` into pairs (`+` is a space, as in HTML forms).
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// What an SSE or long-poll request asks for.
#[derive(Debug)]
pub(crate) struct Wanted {
    pub(crate) topics: Vec<Topic>,
    pub(crate) since: Positions,
    /// Other parameters, for the transport to read.
    pub(crate) rest: Vec<(String, String)>,
}

/// Reads `topic=…` (1 to [`MAX_TOPICS`], no repeats) and `since=…` from a query.
pub(crate) fn wanted(query: Option<&str>) -> Result<Wanted, HttpError> {
    let mut topics: Vec<Topic> = Vec::new();
    let mut since = Positions::default();
    let mut rest = Vec::new();
    for (key, value) in query_pairs(query.unwrap_or("")) {
        match key.as_str() {
            "topic" => {
                let topic = Topic::new(&value)
                    .map_err(|err| HttpError::from(protocol::invalid_topic(&value, &err)))?;
                if topics.contains(&topic) {
                    return Err(HttpError::new(
                        ErrorCode::BadRequest,
                        format!("topic {topic:?} is named twice"),
                    ));
                }
                topics.push(topic);
            }
            "since" => {
                since = value.parse().map_err(|err| {
                    HttpError::new(ErrorCode::BadRequest, format!("invalid since: {err}"))
                })?;
            }
            _ => rest.push((key, value)),
        }
    }
    if topics.is_empty() {
        return Err(HttpError::new(
            ErrorCode::BadRequest,
            "name at least one topic: ?topic=…",
        ));
    }
    if topics.len() > MAX_TOPICS {
        return Err(HttpError::new(
            ErrorCode::BadRequest,
            format!(
                "at most {MAX_TOPICS} topics per request, not {}",
                topics.len()
            ),
        ));
    }
    Ok(Wanted {
        topics,
        since,
        rest,
    })
}

/// The `token=…` parameter of a query, if any.
pub(crate) fn query_token(query: Option<&str>) -> Option<Box<str>> {
    query_pairs(query?)
        .into_iter()
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_boxed_str())
}

/// The bearer token of `Authorization: Bearer …`, if any.
pub(crate) fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_like_forms() {
        assert_eq!(
            query_pairs("topic=chat%3Alobby&topic=a+b&x"),
            vec![
                ("topic".into(), "chat:lobby".into()),
                ("topic".into(), "a b".into()),
                ("x".into(), String::new()),
            ]
        );
    }

    #[test]
    fn wanted_needs_a_topic_and_valid_since() {
        assert_eq!(wanted(None).map(|_| ()).map_err(|e| e.reply.code), Err(400));
        assert_eq!(
            wanted(Some("topic=a%20b"))
                .map(|_| ())
                .map_err(|e| e.reply.code),
            Err(422)
        );
        assert_eq!(
            wanted(Some("topic=a&topic=a"))
                .map(|_| ())
                .map_err(|e| e.reply.code),
            Err(400)
        );
        assert_eq!(
            wanted(Some("topic=a&since=x"))
                .map(|_| ())
                .map_err(|e| e.reply.code),
            Err(400)
        );
        let ok = wanted(Some("topic=a&since=a%40E%3A3&timeout=5"));
        assert!(ok.is_ok_and(|w| w.since.0.len() == 1 && w.rest.len() == 1));
    }
}
