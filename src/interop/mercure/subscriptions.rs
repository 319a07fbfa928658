//! Active subscriptions (off unless [`MercureConfig::subscriptions`]): every
//! subscription of a subscriber (one per matcher) is announced when its stream
//! starts and when it ends, and the subscriptions API lists those active now.
//!
//! - **Events.** Each subscription is a private update of type `mercure` (SSE
//!   `event: mercure`) on the topic
//!   `/.well-known/mercure/subscriptions/{match_type}/{match}/{subscriber}`
//!   (`match` and `subscriber` percent-encoded once), whose data is its
//!   [`ActiveSubscription`] document: `active: true` when the stream starts,
//!   `false` when it ends. Like every private update it goes to the journal only
//!   ([`Hub::publish_journal`](crate::hub::Hub::publish_journal)), so only
//!   subscribers whose matchers select that topic and whose token grants
//!   `subscribe` on it receive it.
//! - **Listing.** Each subscriber joins presence on
//!   [`MercureConfig::subscriptions_topic`] with its documents as member info,
//!   so every node (through the broker) lists every node's subscribers; the member
//!   leaves when the stream ends.
//! - **API.** `GET /.well-known/mercure/subscriptions[/{match_type}[/{match}[/{subscriber}]]]`
//!   answers `application/json`: `{"id", "type": "Subscriptions", "lastEventID",
//!   "subscriptions": […]}` (the documents under that path), or with all three
//!   segments the one document (404 when there is none). The request needs a
//!   token granting `subscribe` on the requested path (as written, relative):
//!   401 without one, 403 `insufficient_scope` when it does not grant it.
//!   `lastEventID` is the id of the journal's newest update, read *before* the
//!   list: subscribing from it misses no change after the listing.

use std::collections::HashSet;

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::MercureConfig;
use super::context::{Mercure, hub_url};
use super::error::MercureError;
use super::event::MercureEvent;
use super::form;
use super::matcher::Matcher;
use super::token::Grants;
use super::topic::topic_of;
use crate::hub::Membership;
use crate::interop::envelope::Envelope;
use crate::topic::{Data, Member};

/// Where the subscriptions API is served, and the prefix of subscription topics.
pub const SUBSCRIPTIONS_PATH: &str = "/.well-known/mercure/subscriptions";

/// The event type of subscription updates (reserved: publishers may not use it).
pub const SUBSCRIPTION_EVENT: &str = "mercure";

/// The `lastEventID` of a hub that has published nothing yet (what a
/// subscriber's `last_event_id` asks for everything with).
const EARLIEST: &str = "earliest";

/// What a path segment keeps unencoded: the URL's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One subscription as its events and the API show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveSubscription {
    /// Its topic (and id):
    /// `/.well-known/mercure/subscriptions/{match_type}/{match}/{subscriber}`.
    pub id: String,
    /// Always `Subscription`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The matcher's kind: `exact`, `urlpattern` (0.x: `uritemplate`).
    pub match_type: String,
    /// The matcher as the subscriber wrote it.
    #[serde(rename = "match")]
    pub matcher: String,
    /// The subscriber: its token's `sub`, or a `urn:uuid:` made for its stream.
    pub subscriber: String,
    /// Whether the subscription is active (false in the event of its end).
    pub active: bool,
    /// The payload of the token's grant that covers the matcher, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

/// The id (and topic) of a subscription: `match` and `subscriber` percent-encoded
/// once, everything but unreserved characters encoded.
pub fn subscription_id(match_type: &str, matcher: &str, subscriber: &str) -> String {
    format!(
        "{SUBSCRIPTIONS_PATH}/{match_type}/{}/{}",
        utf8_percent_encode(matcher, SEGMENT),
        utf8_percent_encode(subscriber, SEGMENT)
    )
}

/// The subscriber id the events and the API show: the token's `sub`, else the
/// stream's own id (`stream`, a `urn:uuid:`).
pub fn subscriber_id<'a>(grants: &'a Grants, stream: &'a str) -> &'a str {
    grants
        .subject
        .as_deref()
        .filter(|sub| !sub.is_empty())
        .unwrap_or(stream)
}

/// The documents of a subscriber's subscriptions, one per matcher, active: the
/// stream `stream` with `matchers` and a token granting `grants`.
pub fn documents(stream: &str, matchers: &[Matcher], grants: &Grants) -> Vec<ActiveSubscription> {
    let id = subscriber_id(grants, stream);
    matchers
        .iter()
        .map(|matcher| {
            let match_type = matcher.kind().name();
            ActiveSubscription {
                id: subscription_id(match_type, matcher.text(), id),
                kind: "Subscription".to_owned(),
                match_type: match_type.to_owned(),
                matcher: matcher.text().to_owned(),
                subscriber: id.to_owned(),
                active: true,
                payload: grants
                    .payload_for(matcher.text())
                    .and_then(|raw| serde_json::from_str(raw.get()).ok()),
            }
        })
        .collect()
}

/// A subscriber's subscriptions while its stream runs: present on the
/// subscriptions topic; dropped, it leaves and announces `active: false` for
/// each.
pub struct Announced {
    mercure: Mercure,
    documents: Vec<ActiveSubscription>,
    _membership: Option<Membership>,
}

impl std::fmt::Debug for Announced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announced")
            .field("documents", &self.documents)
            .finish_non_exhaustive()
    }
}

/// Announces a subscriber's subscriptions (when the hub has active
/// subscriptions on): the stream `stream` (its `urn:uuid:`) with `matchers` and
/// a token granting `grants` joins the subscriptions topic with them and
/// publishes `active: true` for each. Hold the answer as long as the stream runs.
pub async fn announce(
    mercure: &Mercure,
    stream: &str,
    matchers: &[Matcher],
    grants: &Grants,
) -> Option<Announced> {
    let config = mercure.config();
    if !config.subscriptions {
        return None;
    }
    let documents = documents(stream, matchers, grants);
    let membership = config.subscriptions_topic().ok().and_then(|topic| {
        let info = serde_json::to_vec(&documents)
            .ok()
            .and_then(|bytes| Data::json(bytes).ok());
        let member = Member {
            client: mercure.hub().new_client_id(),
            user: grants.subject.as_deref().map(Into::into),
            info,
        };
        mercure.hub().join(&topic, member)
    });
    if membership.is_none() {
        tracing::warn!(
            "mercure: the subscriptions topic tracks no presence; subscriptions are not listed"
        );
    }
    for document in &documents {
        publish(mercure, document).await;
    }
    Some(Announced {
        mercure: mercure.clone(),
        documents,
        _membership: membership,
    })
}

impl Drop for Announced {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mercure = self.mercure.clone();
        let mut documents = std::mem::take(&mut self.documents);
        runtime.spawn(async move {
            for document in &mut documents {
                document.active = false;
                publish(&mercure, document).await;
            }
        });
    }
}

/// Publishes `document` as a private `mercure` update on its own topic.
async fn publish(mercure: &Mercure, document: &ActiveSubscription) {
    let Ok(topic) = topic_of(mercure.namespace(), &document.id) else {
        tracing::warn!(id = %document.id, "mercure: a subscription's topic is too long to announce");
        return;
    };
    let text = match serde_json::to_string(document) {
        Ok(text) => text,
        Err(err) => {
            tracing::warn!(error = %err, "mercure: a subscription does not serialize");
            return;
        }
    };
    // No id of its own: the update's id is its journal position
    // (`urn:pushwire:{epoch}:{offset}`), unique and the same on every node.
    let mut envelope = Envelope::with_text(SUBSCRIPTION_EVENT, &text);
    envelope.private = true;
    let data = match envelope.to_data() {
        Ok(data) => data,
        Err(err) => {
            tracing::warn!(error = %err, "mercure: a subscription update is not valid data");
            return;
        }
    };
    let hub = mercure.hub();
    if let Err(err) = hub.publish_journal(mercure.journal(), &topic, data).await {
        tracing::warn!(id = %document.id, error = %err, "mercure: a subscription update was not published");
    }
}

/// What a subscriptions API request brings.
#[derive(Debug)]
pub struct SubscriptionsRequest {
    /// The request's URI: its path selects, its query may hold a 0.x token.
    pub uri: Uri,
    /// Its headers (the token).
    pub headers: HeaderMap,
    /// Whether the server has TLS (the hub's URL is `https://…`).
    pub secure: bool,
}

/// The API's list answer.
#[derive(Debug, Serialize)]
struct Listing<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "lastEventID")]
    last_event_id: String,
    subscriptions: Vec<ActiveSubscription>,
}

/// Answers `GET /.well-known/mercure/subscriptions[/{match_type}[/{match}[/{subscriber}]]]`.
pub async fn subscriptions(
    mercure: &Mercure,
    request: SubscriptionsRequest,
) -> Result<Response, MercureError> {
    let SubscriptionsRequest {
        uri,
        headers,
        secure,
    } = request;
    let config = mercure.config();
    let path = uri.path();
    let Some(selector) = selector(config, path)? else {
        return Ok(not_found());
    };
    let query = form::pairs(uri.query().unwrap_or("").as_bytes())?;
    let base = hub_url(&uri, &headers, secure)?;
    let Some(grants) = mercure.grants(&headers, &query, &base)? else {
        return Err(MercureError::NoToken);
    };
    if !grants.may_subscribe(path) {
        return Err(MercureError::InsufficientScope(format!(
            "the token does not grant subscribe on {path}"
        )));
    }
    let hub = mercure.hub();
    let unavailable = |err: crate::broker::BrokerError| MercureError::Unavailable(err.to_string());
    // The newest update first: whoever subscribes from it sees every change
    // after the list below.
    let kept = hub.kept(mercure.journal()).await.map_err(unavailable)?;
    let last_event_id = match kept.messages.last() {
        Some(push) => MercureEvent::of(push, mercure.namespace())
            .as_ref()
            .map(|event| event.id.clone())
            .unwrap_or_else(|| {
                format!(
                    "urn:pushwire:{}:{}",
                    kept.position.epoch, kept.position.offset
                )
            }),
        None if kept.position.offset == 0 => EARLIEST.to_owned(),
        None => format!(
            "urn:pushwire:{}:{}",
            kept.position.epoch, kept.position.offset
        ),
    };
    let topic = config
        .subscriptions_topic()
        .map_err(|err| MercureError::Unavailable(err.to_string()))?;
    let members = hub.members(&topic).await.map_err(unavailable)?;
    let mut seen = HashSet::new();
    let mut found: Vec<ActiveSubscription> = members
        .iter()
        .filter_map(|member| member.info.as_ref())
        .filter_map(|info| serde_json::from_str::<Vec<ActiveSubscription>>(info.as_str()).ok())
        .flatten()
        .filter(|document| selector.selects(document))
        .filter(|document| seen.insert(document.id.clone()))
        .collect();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    if selector.subscriber.is_some() {
        return Ok(match found.into_iter().next() {
            Some(document) => json(&document),
            None => not_found(),
        });
    }
    Ok(json(&Listing {
        id: path,
        kind: "Subscriptions",
        last_event_id,
        subscriptions: found,
    }))
}

/// Which subscriptions a path selects (each segment decoded).
#[derive(Debug, Default, PartialEq, Eq)]
struct Selector {
    match_type: Option<String>,
    matcher: Option<String>,
    subscriber: Option<String>,
}

impl Selector {
    fn selects(&self, document: &ActiveSubscription) -> bool {
        self.match_type
            .as_ref()
            .is_none_or(|t| *t == document.match_type)
            && self.matcher.as_ref().is_none_or(|m| *m == document.matcher)
            && self
                .subscriber
                .as_ref()
                .is_none_or(|s| *s == document.subscriber)
    }
}

/// The selector of an API path; `None` (404) when active subscriptions are off
/// or the path is not under the API.
fn selector(config: &MercureConfig, path: &str) -> Result<Option<Selector>, MercureError> {
    if !config.subscriptions {
        return Ok(None);
    }
    let Some(rest) = path.strip_prefix(SUBSCRIPTIONS_PATH) else {
        return Ok(None);
    };
    let rest = match rest.strip_prefix('/') {
        Some(rest) => rest,
        None if rest.is_empty() => "",
        None => return Ok(None),
    };
    let mut segments = Vec::new();
    if !rest.is_empty() {
        for segment in rest.split('/') {
            let decoded = percent_decode_str(segment)
                .decode_utf8()
                .map_err(|_| MercureError::InvalidRequest("a path segment is not UTF-8".into()))?;
            segments.push(decoded.into_owned());
        }
    }
    if segments.len() > 3 || segments.iter().any(String::is_empty) {
        return Ok(None);
    }
    let mut segments = segments.into_iter();
    Ok(Some(Selector {
        match_type: segments.next(),
        matcher: segments.next(),
        subscriber: segments.next(),
    }))
}

fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("private, no-cache"),
                ),
            ],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such subscription\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interop::mercure::matcher::MatchType;

    const BASE: &str = "http://h/.well-known/mercure";

    fn subscriber(sub: Option<&str>, matchers: &[(MatchType, &str)]) -> Vec<ActiveSubscription> {
        let matchers: Vec<Matcher> = matchers
            .iter()
            .map(|(kind, text)| Matcher::parse(*kind, text, BASE).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let grants = Grants {
            subject: sub.map(str::to_owned),
            ..Grants::default()
        };
        documents("urn:uuid:0", &matchers, &grants)
    }

    #[test]
    fn ids_encode_the_match_and_the_subscriber_once() {
        assert_eq!(
            subscription_id("exact", "https://example.com/a b", "urn:uuid:1"),
            "/.well-known/mercure/subscriptions/exact/https%3A%2F%2Fexample.com%2Fa%20b/urn%3Auuid%3A1"
        );
        assert_eq!(
            subscription_id("urlpattern", "/books/:id", "a-b_c.d~e"),
            "/.well-known/mercure/subscriptions/urlpattern/%2Fbooks%2F%3Aid/a-b_c.d~e"
        );
    }

    #[test]
    fn each_matcher_is_one_subscription_of_the_tokens_subject_or_the_stream() {
        let docs = subscriber(None, &[(MatchType::Exact, "https://e.com/a")]);
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].subscriber, "urn:uuid:0");
        assert_eq!(docs[0].match_type, "exact");
        assert!(docs[0].active);
        let json = serde_json::to_value(&docs[0]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            json,
            serde_json::json!({
                "id": "/.well-known/mercure/subscriptions/exact/https%3A%2F%2Fe.com%2Fa/urn%3Auuid%3A0",
                "type": "Subscription",
                "match_type": "exact",
                "match": "https://e.com/a",
                "subscriber": "urn:uuid:0",
                "active": true
            })
        );
        let docs = subscriber(
            Some("alice"),
            &[(MatchType::Exact, "a"), (MatchType::UrlPattern, "/b/:id")],
        );
        assert_eq!(docs.len(), 2);
        assert!(docs.iter().all(|d| d.subscriber == "alice"));
        assert_eq!(
            docs[1].id,
            "/.well-known/mercure/subscriptions/urlpattern/%2Fb%2F%3Aid/alice"
        );
    }

    #[test]
    fn paths_select_by_segment_and_decode_them() {
        let on = MercureConfig {
            subscriptions: true,
            ..MercureConfig::default()
        };
        let get = |path: &str| selector(&on, path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(get(SUBSCRIPTIONS_PATH), Some(Selector::default()));
        assert_eq!(
            get("/.well-known/mercure/subscriptions/"),
            Some(Selector::default())
        );
        assert_eq!(
            get("/.well-known/mercure/subscriptions/exact/https%3A%2F%2Fe.com%2Fa/urn%3Auuid%3A0"),
            Some(Selector {
                match_type: Some("exact".into()),
                matcher: Some("https://e.com/a".into()),
                subscriber: Some("urn:uuid:0".into()),
            })
        );
        assert_eq!(get("/.well-known/mercure/subscriptions/a/b/c/d"), None);
        assert_eq!(get("/.well-known/mercure/subscriptionsX"), None);
        assert_eq!(get("/.well-known/mercure/subscriptions/exact//x"), None);
        assert!(selector(&on, "/.well-known/mercure/subscriptions/%FF").is_err());
        assert_eq!(
            selector(&MercureConfig::default(), SUBSCRIPTIONS_PATH).ok(),
            Some(None),
            "off by default"
        );
    }
}
