//! `GET /.well-known/mercure`: a subscriber. Its matchers (`match=`,
//! `match_exact=`, `match_urlpattern=`; 0.x: `topic=`) select updates of the
//! journal; its token (if any) lets it see private ones. The answer is one long
//! Server-Sent Events stream: what history holds after its `Last-Event-ID` (or
//! `last_event_id`, or `earliest`), then live updates, comment heartbeats, and a
//! farewell `retry:` when the server shuts down. The stream ends when its token
//! expires.
//!
//! Every update is decoded once ([`MercureEvent::of`]); each subscriber's
//! `Filtered` sink keeps those it may read before anything is queued, so a
//! subscriber of one topic holds nothing for the others.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::stream;
use http::{HeaderMap, HeaderName, HeaderValue, Uri, header};
use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};
use tokio_util::sync::CancellationToken;

use super::config::{MAX_MATCHERS, MercureConfig};
use super::context::{Mercure, hub_url};
use super::error::MercureError;
use super::event::{MercureEvent, generated_id, new_id, parse_generated_id};
use super::form;
use super::matcher::{MatchType, Matcher};
use super::token::Grants;
use crate::clock::until_millis;
use crate::hub::mailbox::{MAX_BUFFERED_BYTES, Mailbox};
use crate::hub::{Sink, Subscription};
use crate::ops::conn_log::ConnTally;
use crate::ops::{ConnectionGuard, Transport};
use crate::topic::{Position, Push};

/// The response header that tells a subscriber where its stream starts: the id
/// of the update just before the first one it is sent, or `earliest`.
pub const LAST_EVENT_ID_HEADER: HeaderName = HeaderName::from_static("mercure-last-event-id");

/// The `last_event_id` value that asks for everything history keeps.
pub const EARLIEST: &str = "earliest";

/// How many updates may wait for a slow subscriber before its stream ends (and at
/// most [`MAX_BUFFERED_BYTES`] of them).
const BUFFER: usize = 4096;

/// The most updates written in one chunk.
const BATCH: usize = 256;

/// The longest reconnection delay the farewell at shutdown asks for (as `/sse`
/// does): drawn between 0 and this, so that the subscribers of a node that shuts
/// down do not all come back in the same instant.
const FAREWELL_RETRY_MS: u64 = 1000;

/// What a subscription request brings besides the hub.
#[derive(Debug)]
pub struct SubscribeRequest {
    /// The request's URI (its query and, over HTTP/2, its authority).
    pub uri: Uri,
    /// Its headers.
    pub headers: HeaderMap,
    /// Who asked, for the connection log.
    pub peer: Option<SocketAddr>,
    /// Whether the server has TLS (the hub's URL is `https://…`).
    pub secure: bool,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
}

/// One subscriber: its matchers and what its token grants.
#[derive(Debug)]
pub struct Subscriber {
    /// Its id (`urn:uuid:…`), new for every stream.
    pub id: String,
    /// The topics it selects.
    pub matchers: Vec<Matcher>,
    /// Its token's grants (none for an anonymous subscriber).
    pub grants: Grants,
}

impl Subscriber {
    /// Whether `event` goes to this subscriber: one of its matchers selects one
    /// of the update's topics, and the update is public or the token grants
    /// `subscribe` on one of its topics.
    pub fn wants(&self, event: &MercureEvent) -> bool {
        let selected = event
            .topics
            .iter()
            .any(|topic| self.matchers.iter().any(|m| m.matches(topic)));
        selected
            && (!event.private
                || event
                    .topics
                    .iter()
                    .any(|topic| self.grants.may_subscribe(topic)))
    }
}

/// The sink of a subscriber: keeps the journal's updates it [wants](Subscriber::wants)
/// in a bounded [`Mailbox`], and nothing else.
struct Filtered {
    mailbox: Mailbox,
    subscriber: Arc<Subscriber>,
    namespace: Arc<str>,
}

impl Sink for Filtered {
    fn push(&self, push: &Arc<Push>) -> bool {
        match MercureEvent::of(push, &self.namespace) {
            Some(event) if self.subscriber.wants(event) => {
                self.mailbox.offer(push, event.sse.len())
            }
            _ => true,
        }
    }

    fn lagged(&self) {
        self.mailbox.overflow();
    }
}

/// Answers a subscription request: a refusal (before the stream starts) or the
/// stream.
pub async fn subscribe(
    mercure: &Mercure,
    request: SubscribeRequest,
) -> Result<Response, MercureError> {
    let SubscribeRequest {
        uri,
        headers,
        peer,
        secure,
        shutdown,
    } = request;
    let config = mercure.config();
    let query = form::pairs(uri.query().unwrap_or("").as_bytes())?;
    let base = hub_url(&uri, &headers, secure)?;
    let matchers = matchers(&query, config, &base)?;
    let last_event_id = last_event_id(&headers, &query, config)?;
    let grants = match mercure.grants(&headers, &query, &base)? {
        Some(grants) => grants,
        None if config.anonymous => Grants::default(),
        None => return Err(MercureError::NoToken),
    };
    let expires_at = grants.expires_at;
    let subscriber = Arc::new(Subscriber {
        id: new_id(),
        matchers,
        grants,
    });
    let hub = mercure.hub();
    let sink = Arc::new(Filtered {
        // The Mercure sink measures each update by its event's bytes (`offer`),
        // never through the mailbox's own measure.
        mailbox: Mailbox::new(BUFFER, MAX_BUFFERED_BYTES, |_| 0).with_metrics(hub.metrics()),
        subscriber: Arc::clone(&subscriber),
        namespace: Arc::from(mercure.namespace()),
    });
    // Live updates are buffered from here on; history is read after, so that
    // nothing falls between the two.
    let pending = hub
        .subscribe(
            mercure.journal().clone(),
            Arc::clone(&sink) as Arc<dyn Sink>,
            None,
            None,
        )
        .await
        .map_err(|err| MercureError::Unavailable(err.to_string()))?;
    let now = pending.recovery().position.clone();
    let kept = hub
        .kept(mercure.journal())
        .await
        .map_err(|err| MercureError::Unavailable(err.to_string()))?;
    let history: Vec<&Arc<Push>> = if kept.position.epoch == now.epoch {
        kept.messages
            .iter()
            .filter(|push| push.offset().is_some_and(|offset| offset <= now.offset))
            .collect()
    } else {
        Vec::new()
    };
    let namespace = mercure.namespace();
    let start = resolve(last_event_id.as_deref(), &history, &now, namespace);
    // A comment first (a block of its own), so that the headers and a first byte go
    // out at once: Firefox's `fetch` does not resolve on the headers of an event
    // stream alone.
    let mut first = BytesMut::from(&b":\n\n"[..]);
    let mut replayed = 0u64;
    for push in &history {
        if push.offset().is_some_and(|offset| offset > start.after)
            && let Some(event) = MercureEvent::of(push, namespace)
            && subscriber.wants(event)
        {
            first.put_slice(&event.sse);
            replayed += 1;
        }
    }
    // Fell behind before the stream began: send what there is, then end; the
    // subscriber's reconnect resumes.
    let subscription = pending.go_live().ok();
    let connection = ConnectionGuard::open(hub.metrics(), Transport::Mercure);
    tracing::debug!(subscriber = %subscriber.id, matchers = subscriber.matchers.len(), "mercure: subscribed");
    // Active subscriptions (when on): announced while the stream is live.
    let announced = match &subscription {
        Some(_) => {
            let Subscriber {
                id,
                matchers,
                grants,
            } = &*subscriber;
            super::subscriptions::announce(mercure, id, matchers, grants).await
        }
        None => None,
    };
    let state = State {
        log: ConnTally::open(Transport::Mercure, peer),
        first: Some((first.freeze(), replayed)),
        live: subscription.map(|subscription| Live {
            _announced: announced,
            connection,
            sink,
            _subscription: subscription,
            heartbeat: heartbeat(config.heartbeat),
            shutdown,
            expiry: expires_at.map(|at| Box::pin(tokio::time::sleep(until_millis(at)))),
        }),
    };
    let body = Body::from_stream(stream::unfold(state, next_chunk));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache, no-store"),
    );
    headers.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    if let Ok(value) = HeaderValue::from_bytes(start.id.as_bytes()) {
        headers.insert(LAST_EVENT_ID_HEADER, value);
    }
    Ok(response)
}

/// The request's matchers, in order.
fn matchers(
    query: &[(String, String)],
    config: &MercureConfig,
    base: &str,
) -> Result<Vec<Matcher>, MercureError> {
    let mut matchers = Vec::new();
    for (name, value) in query {
        let kind = match name.as_str() {
            "match" | "match_exact" => MatchType::Exact,
            "match_urlpattern" => MatchType::UrlPattern,
            "topic" if config.compat.is_some() => {
                if value.contains('{') {
                    MatchType::Template
                } else {
                    MatchType::Exact
                }
            }
            _ if name
                .as_bytes()
                .get(..5)
                .is_some_and(|start| start.eq_ignore_ascii_case(b"match")) =>
            {
                return Err(MercureError::InvalidRequest(format!(
                    "unknown matcher {:?}: use match, match_exact or match_urlpattern",
                    name.chars().take(64).collect::<String>()
                )));
            }
            _ => continue,
        };
        if value.is_empty() || value.chars().any(char::is_control) {
            return Err(MercureError::InvalidRequest(
                "a matcher is empty or holds control characters".into(),
            ));
        }
        if matchers.len() == MAX_MATCHERS {
            return Err(MercureError::InvalidRequest(format!(
                "at most {MAX_MATCHERS} matchers per subscription"
            )));
        }
        let matcher = Matcher::parse(kind, value, base)
            .map_err(|err| MercureError::InvalidRequest(format!("{}: {err}", kind.name())))?;
        matchers.push(matcher);
    }
    if matchers.is_empty() {
        let names = if config.compat.is_some() {
            "match, match_urlpattern or topic"
        } else {
            "match or match_urlpattern"
        };
        return Err(MercureError::InvalidRequest(format!(
            "no topic selected: add {names}"
        )));
    }
    Ok(matchers)
}

/// The id the subscriber resumes after: the `Last-Event-ID` header (an
/// `EventSource`'s reconnect), else the `last_event_id` query parameter (0.x:
/// `lastEventID` too). Empty means none.
fn last_event_id(
    headers: &HeaderMap,
    query: &[(String, String)],
    config: &MercureConfig,
) -> Result<Option<String>, MercureError> {
    if let Some(value) = headers.get("last-event-id") {
        let id = String::from_utf8(value.as_bytes().to_vec())
            .map_err(|_| MercureError::InvalidRequest("Last-Event-ID is not UTF-8".into()))?;
        return Ok(Some(id).filter(|id| !id.is_empty()));
    }
    let from_query = query.iter().rev().find(|(name, _)| {
        name == "last_event_id" || (config.compat.is_some() && name == "lastEventID")
    });
    Ok(from_query
        .map(|(_, id)| id.clone())
        .filter(|id| !id.is_empty()))
}

/// Where a stream starts: replay the history after offset `after`; `id` is what
/// `Mercure-Last-Event-ID` says.
#[derive(Debug, PartialEq, Eq)]
struct Start {
    after: u64,
    id: String,
}

/// Resolves the requested id in `history` (the journal's kept messages up to
/// `now`, in order): `earliest` replays all of it; an id replays what follows
/// its last occurrence; `urn:pushwire:{epoch}:{offset}` (the id of the newest
/// update when history keeps nothing else) is found by its position when history
/// covers everything after it; anything else (or nothing) starts now.
fn resolve(wanted: Option<&str>, history: &[&Arc<Push>], now: &Position, ns: &str) -> Start {
    let id_at = |offset: u64| -> String {
        if offset == 0 {
            return EARLIEST.to_owned();
        }
        history
            .iter()
            .find(|push| push.offset() == Some(offset))
            .and_then(|push| MercureEvent::of(push, ns).as_ref())
            .map_or_else(
                || generated_id(&now.epoch, offset),
                |event| event.id.clone(),
            )
    };
    let from_now = || Start {
        after: now.offset,
        id: id_at(now.offset),
    };
    let Some(wanted) = wanted else {
        return from_now();
    };
    if wanted == EARLIEST {
        return Start {
            after: 0,
            id: EARLIEST.to_owned(),
        };
    }
    let found = history.iter().rev().find(|push| {
        MercureEvent::of(push, ns)
            .as_ref()
            .is_some_and(|event| event.id == wanted)
    });
    if let Some(offset) = found.and_then(|push| push.offset()) {
        return Start {
            after: offset,
            id: wanted.to_owned(),
        };
    }
    // The oldest offset whose successors history still holds all of.
    let covered_from = history
        .first()
        .and_then(|push| push.offset())
        .map_or(now.offset, |first| first.saturating_sub(1));
    match parse_generated_id(wanted) {
        Some((epoch, offset))
            if epoch == now.epoch.as_str() && (covered_from..=now.offset).contains(&offset) =>
        {
            Start {
                after: offset,
                id: wanted.to_owned(),
            }
        }
        _ => from_now(),
    }
}

struct State {
    /// The stream's log lines; the close is logged when the body is dropped.
    log: ConnTally,
    /// The replayed updates and how many they are.
    first: Option<(Bytes, u64)>,
    live: Option<Live>,
}

struct Live {
    /// The subscriber's active subscriptions; dropped, they end.
    _announced: Option<super::subscriptions::Announced>,
    /// Counts the stream as an open connection while it runs.
    connection: ConnectionGuard,
    sink: Arc<Filtered>,
    /// Held for as long as the stream runs; dropped, it unsubscribes.
    _subscription: Subscription,
    heartbeat: Option<Interval>,
    shutdown: CancellationToken,
    /// When the token expires, if it does.
    expiry: Option<Pin<Box<Sleep>>>,
}

fn heartbeat(every: Duration) -> Option<Interval> {
    if every.is_zero() {
        return None;
    }
    let mut interval = tokio::time::interval_at(Instant::now() + every, every);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    Some(interval)
}

/// Resolves at the next heartbeat; never without heartbeats.
async fn beat(heartbeat: &mut Option<Interval>) {
    match heartbeat {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Resolves when `expiry` passes; never without one.
async fn expired(expiry: &mut Option<Pin<Box<Sleep>>>) {
    match expiry {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn next_chunk(mut state: State) -> Option<(Result<Bytes, Infallible>, State)> {
    if let Some((first, events)) = state.first.take()
        && !first.is_empty()
    {
        state.log.sent(events, first.len() as u64);
        return Some((Ok(first), state));
    }
    let live = state.live.as_mut()?;
    let (chunk, events) = tokio::select! {
        taken = live.sink.mailbox.take(BATCH) => {
            // `None`: the subscriber fell too far behind; end the stream.
            let pushes = taken?;
            let mut chunk = BytesMut::new();
            let mut events = 0;
            for push in &pushes {
                if let Some(event) = MercureEvent::of(push, &live.sink.namespace) {
                    chunk.put_slice(&event.sse);
                    events += 1;
                }
            }
            (chunk.freeze(), events)
        }
        () = beat(&mut live.heartbeat) => (Bytes::from_static(b":\n\n"), 0),
        () = live.shutdown.cancelled() => {
            // The server shuts down: the last chunk asks the subscriber to come
            // back (to another node, or to this one restarted) soon.
            state.live = None;
            let retry = rand::random_range(0..=FAREWELL_RETRY_MS);
            let farewell = Bytes::from(format!("retry: {retry}\n: service restart\n\n"));
            state.log.sent(0, farewell.len() as u64);
            return Some((Ok(farewell), state));
        }
        () = expired(&mut live.expiry) => {
            // The token expired: the stream ends; the subscriber reconnects with
            // a fresh one and resumes from its Last-Event-ID.
            if let Some(metrics) = live.connection.metrics() {
                metrics.token_expired();
            }
            return None;
        }
    };
    state.log.sent(events, chunk.len() as u64);
    Some((Ok(chunk), state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::journal;
    use crate::interop::envelope::Envelope;
    use crate::interop::mercure::topic::topic_of;
    use crate::topic::{Epoch, Topic};

    fn epoch() -> Epoch {
        Epoch::new("E").unwrap_or_else(|e| panic!("{e}"))
    }

    /// Journal pushes at offsets `from..=to`, the update at offset n with id `id-n`
    /// (offset 4 has none).
    fn history(from: u64, to: u64) -> Vec<Arc<Push>> {
        (from..=to)
            .map(|offset| {
                let mut envelope = Envelope::with_text("message", "x");
                envelope.id = (offset != 4).then(|| format!("id-{offset}"));
                let data = envelope.to_data().unwrap_or_else(|e| panic!("{e}"));
                let topic = topic_of("mercure", "a").unwrap_or_else(|e| panic!("{e}"));
                let journal_topic = Topic::new("mercure.journal").unwrap_or_else(|e| panic!("{e}"));
                Arc::new(Push::message(
                    journal_topic,
                    epoch(),
                    offset,
                    journal::entry(&topic, &data),
                ))
            })
            .collect()
    }

    fn start(wanted: Option<&str>, from: u64, to: u64) -> Start {
        let pushes = history(from, to);
        let refs: Vec<&Arc<Push>> = pushes.iter().collect();
        let now = Position {
            epoch: epoch(),
            offset: to,
        };
        resolve(wanted, &refs, &now, "mercure")
    }

    fn at(after: u64, id: &str) -> Start {
        Start {
            after,
            id: id.to_owned(),
        }
    }

    #[test]
    fn ids_resolve_to_what_follows_them() {
        assert_eq!(start(None, 1, 5), at(5, "id-5"));
        assert_eq!(start(Some("earliest"), 3, 5), at(0, "earliest"));
        assert_eq!(start(Some("id-2"), 1, 5), at(2, "id-2"));
        assert_eq!(start(Some("unknown"), 1, 5), at(5, "id-5"));
        // The generated id of an update without one.
        assert_eq!(start(None, 1, 4), at(4, "urn:pushwire:E:4"));
        assert_eq!(
            start(Some("urn:pushwire:E:4"), 1, 5),
            at(4, "urn:pushwire:E:4")
        );
        // Nothing published yet.
        let now = Position {
            epoch: epoch(),
            offset: 0,
        };
        assert_eq!(resolve(None, &[], &now, "mercure"), at(0, "earliest"));
    }

    #[test]
    fn a_generated_id_resolves_by_position_only_when_history_covers_the_gap() {
        // History keeps 3..=5: offset 2 is covered (3 follows it), 1 is not.
        assert_eq!(
            start(Some("urn:pushwire:E:2"), 3, 5),
            at(2, "urn:pushwire:E:2")
        );
        assert_eq!(start(Some("urn:pushwire:E:1"), 3, 5), at(5, "id-5"));
        assert_eq!(start(Some("urn:pushwire:X:2"), 3, 5), at(5, "id-5"));
        // Nothing kept: only the newest position itself.
        let now = Position {
            epoch: epoch(),
            offset: 9,
        };
        assert_eq!(
            resolve(Some("urn:pushwire:E:9"), &[], &now, "mercure"),
            at(9, "urn:pushwire:E:9")
        );
        assert_eq!(
            resolve(Some("urn:pushwire:E:8"), &[], &now, "mercure"),
            at(9, "urn:pushwire:E:9")
        );
    }

    #[test]
    fn other_match_names_and_missing_matchers_are_refused() {
        let config = MercureConfig::default();
        let query = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        let base = "http://h/.well-known/mercure";
        assert!(
            matchers(
                &query(&[("match", "a"), ("match_exact", "b")]),
                &config,
                base
            )
            .is_ok()
        );
        for bad in [
            query(&[("matchx", "a")]),
            query(&[("MATCH_URI", "a")]),
            query(&[("topic", "a")]),
            query(&[("match", "a\u{7}")]),
            query(&[]),
        ] {
            assert!(matches!(
                matchers(&bad, &config, base),
                Err(MercureError::InvalidRequest(_))
            ));
        }
        let many: Vec<(String, String)> = (0..=MAX_MATCHERS)
            .map(|n| ("match".to_owned(), n.to_string()))
            .collect();
        assert!(matchers(&many, &config, base).is_err());
    }
}
