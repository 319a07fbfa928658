//! The HTTP transports for clients that cannot use `/ws`: Server-Sent Events
//! ([`sse`]) and long-polling ([`poll`]). Both take their topics and positions from
//! the query string, subscribe through the same two steps as a WebSocket session,
//! and deliver the same JSON objects in the same order. (`/ws` itself is
//! `crate::session` on top of the WebSocket layer.)

pub(crate) mod poll;
pub(crate) mod presence;
pub(crate) mod sse;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use percent_encoding::percent_decode_str;
use tokio::sync::Notify;

use crate::auth::{Permission, TokenError, TokenVerifier};
use crate::http::Asset;
use crate::hub::{Hub, Pending, Positions, Push, Sink, Subscription, Topic};
use crate::protocol::{self, Ended, ErrorReply};
use crate::sync::lock;

/// The browser client, served by [`App::topics`](crate::App::topics).
pub(crate) const CLIENT_SCRIPTS: &[Asset] = &[
    Asset {
        path: "pushwire.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/pushwire.js"),
    },
    Asset {
        path: "pushwire.mjs",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/pushwire.mjs"),
    },
    Asset {
        path: "pushwire.d.ts",
        content_type: "application/typescript; charset=utf-8",
        body: include_bytes!("../../web/pushwire.d.ts"),
    },
];

/// The most topics one SSE or long-poll request may name.
pub const MAX_TOPICS: usize = 100;

/// An error answered before a stream starts: the status and a JSON body
/// `{"error":{"code":…,"message":…}}`.
#[derive(Debug)]
pub(crate) struct HttpError(pub(crate) ErrorReply);

impl HttpError {
    pub(crate) fn new(code: u16, message: impl Into<String>) -> Self {
        Self(ErrorReply::new(code, message))
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = format!("{{\"error\":{}}}", protocol::error_object(&self.0));
        (
            status,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

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
                    .map_err(|err| HttpError(protocol::invalid_topic(&value, &err)))?;
                if topics.contains(&topic) {
                    return Err(HttpError::new(
                        400,
                        format!("topic {topic:?} is named twice"),
                    ));
                }
                topics.push(topic);
            }
            "since" => {
                since = value
                    .parse()
                    .map_err(|err| HttpError::new(400, format!("invalid since: {err}")))?;
            }
            _ => rest.push((key, value)),
        }
    }
    if topics.is_empty() {
        return Err(HttpError::new(400, "name at least one topic: ?topic=…"));
    }
    if topics.len() > MAX_TOPICS {
        return Err(HttpError::new(
            400,
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

/// Checks that an SSE or long-poll request may subscribe to every topic it names:
/// its connection token comes from `?token=` or `Authorization: Bearer`, its
/// subscription tokens from `?sub_token=` (repeatable). Without `auth` everything
/// is allowed. A topic the request resumes (it has a position for it) that it may
/// no longer receive is not refused: it is taken out of `wanted` and answered in
/// [`Access::ended`], to be ended with an `unsub` event; any other topic it may not
/// receive refuses the request (401 or 403).
pub(crate) fn authorize(
    auth: Option<&TokenVerifier>,
    headers: &http::HeaderMap,
    wanted: &mut Wanted,
) -> Result<Access, HttpError> {
    let Some(verifier) = auth else {
        return Ok(Access::default());
    };
    let token = wanted
        .rest
        .iter()
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.as_str())
        .or_else(|| bearer(headers));
    let identity = match token {
        Some(token) => Some(verifier.connection(token).map_err(|err| {
            tracing::debug!(error = %err, "token refused");
            HttpError(err.reply())
        })?),
        None => None,
    };
    // Subscription tokens, by topic: (`exp`, expired). Each costs a signature
    // check: no more of them than topics.
    let given = wanted
        .rest
        .iter()
        .filter(|(key, _)| key == "sub_token")
        .count();
    if given > MAX_TOPICS {
        return Err(HttpError::new(
            400,
            format!("at most {MAX_TOPICS} subscription tokens per request, not {given}"),
        ));
    }
    let mut held: Vec<(String, u64, bool)> = Vec::new();
    for (_, token) in wanted.rest.iter().filter(|(key, _)| key == "sub_token") {
        let (grant, expired) = verifier
            .subscription_even_expired(token)
            .map_err(|err| HttpError(err.reply()))?;
        let Some(identity) = &identity else {
            return Err(HttpError::new(
                401,
                "a subscription token needs a connection token (token=…) too",
            ));
        };
        if *identity.user != *grant.user {
            return Err(HttpError::new(
                403,
                "the subscription token is for another user",
            ));
        }
        held.push((grant.topic, grant.expires, expired));
    }
    let leeway = verifier.leeway().as_secs();
    let mut access = Access {
        expires: identity
            .as_ref()
            .map(|identity| identity.expires.saturating_add(leeway)),
        ..Access::default()
    };
    let mut kept = Vec::with_capacity(wanted.topics.len());
    for topic in std::mem::take(&mut wanted.topics) {
        let token = held
            .iter()
            .filter(|(t, _, _)| t == topic.as_str())
            .max_by_key(|(_, exp, _)| *exp);
        let decision = verifier.decide(identity.as_ref(), &topic, Permission::Sub);
        match (token, decision) {
            // The connection allows it: a subscription token adds nothing.
            (_, Ok(())) => kept.push(topic),
            (Some((_, exp, false)), Err(_)) => {
                access.grants.push(Held {
                    topic: topic.clone(),
                    expires: *exp,
                    ends_at: exp.saturating_add(leeway).saturating_mul(1000),
                });
                kept.push(topic);
            }
            (token, Err(err)) => {
                if wanted.since.get(&topic).is_none() {
                    return Err(HttpError(match token {
                        Some(_) => TokenError::Expired.reply(),
                        None => err,
                    }));
                }
                let why = match token {
                    Some(_) => Ended::Expired,
                    None => Ended::Withdrawn,
                };
                access.ended.push((topic, why));
            }
        }
    }
    wanted.topics = kept;
    Ok(access)
}

/// What an SSE or long-poll request may receive, and until when.
#[derive(Debug, Default)]
pub(crate) struct Access {
    /// When the whole request must end (Unix seconds: the connection token's
    /// expiry plus the allowed clock skew), if a token was given.
    pub(crate) expires: Option<u64>,
    /// Topics held by a subscription token (the connection token does not allow
    /// them by itself).
    pub(crate) grants: Vec<Held>,
    /// Topics the request resumes but may no longer receive, and why.
    pub(crate) ended: Vec<(Topic, Ended)>,
}

/// A topic held by a subscription token.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) topic: Topic,
    /// The token's `exp` (Unix seconds), as the `subs` entry says.
    pub(crate) expires: u64,
    /// When the topic ends without a fresh token (Unix milliseconds).
    pub(crate) ends_at: u64,
}

impl Access {
    /// The next moment something ends (Unix milliseconds): the connection token
    /// or a subscription token.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.grants
            .iter()
            .map(|held| held.ends_at)
            .chain(self.expires.map(|at| at.saturating_mul(1000)))
            .min()
    }

    /// Whether the connection token has ended (at Unix milliseconds `now`).
    pub(crate) fn connection_ended(&self, now: u64) -> bool {
        self.expires
            .is_some_and(|at| at.saturating_mul(1000) <= now)
    }

    /// Takes out the topics whose subscription token ended by `now` (Unix ms).
    pub(crate) fn take_expired(&mut self, now: u64) -> Vec<Topic> {
        let (gone, kept): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.grants)
            .into_iter()
            .partition(|held| held.ends_at <= now);
        self.grants = kept;
        gone.into_iter().map(|held| held.topic).collect()
    }

    /// Adds `"expires"` to the `subs` entries of topics held by a subscription
    /// token (`subs` in the order of `topics`).
    pub(crate) fn annotate(&self, topics: &[Topic], subs: &mut [String]) {
        for (topic, entry) in topics.iter().zip(subs.iter_mut()) {
            if let Some(held) = self.grants.iter().find(|held| held.topic == *topic) {
                entry.pop();
                entry.push_str(&format!(",\"expires\":{}}}", held.expires));
            }
        }
    }
}

/// The most bytes of messages one SSE stream or long-poll holds for its client,
/// as a `/ws` connection's outbound queue does (1 MiB).
pub(crate) const MAX_BUFFERED_BYTES: usize = 1024 * 1024;

/// A subscriber that keeps its messages until a transport takes them: what SSE
/// streams and long-polls give the hub. Bounded: past `limit` messages or
/// `max_bytes` bytes of them it refuses more, and the transport ends (the client
/// recovers when it comes back).
pub(crate) struct Mailbox {
    state: Mutex<MailboxState>,
    notify: Notify,
    limit: usize,
    max_bytes: usize,
}

#[derive(Default)]
struct MailboxState {
    queue: VecDeque<Arc<Push>>,
    /// The JSON bytes of the messages in `queue`.
    bytes: usize,
    overflowed: bool,
}

impl Mailbox {
    /// A mailbox for at most `limit` messages and `max_bytes` bytes of them (one
    /// message is always let in, however large).
    pub(crate) fn new(limit: usize, max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(MailboxState::default()),
            notify: Notify::new(),
            limit,
            max_bytes,
        }
    }

    /// Waits until there is something to take, then takes up to `max` messages.
    /// `None` once it overflowed and everything it held was taken.
    pub(crate) async fn take(&self, max: usize) -> Option<Vec<Arc<Push>>> {
        loop {
            if let Some(taken) = self.try_take(max) {
                return taken;
            }
            self.notify.notified().await;
        }
    }

    /// Takes up to `max` messages without waiting: `None` when it is empty,
    /// `Some(None)` when it is empty and overflowed. What it holds when it overflows
    /// is still handed out: a gapless prefix of what was published.
    pub(crate) fn try_take(&self, max: usize) -> Option<Option<Vec<Arc<Push>>>> {
        let mut state = lock(&self.state);
        if state.queue.is_empty() {
            return state.overflowed.then_some(None);
        }
        let n = state.queue.len().min(max);
        let taken: Vec<Arc<Push>> = state.queue.drain(..n).collect();
        state.bytes -= taken
            .iter()
            .map(|push| push.json().as_bytes().len())
            .sum::<usize>();
        Some(Some(taken))
    }
}

impl Sink for Mailbox {
    fn push(&self, push: &Arc<Push>) -> bool {
        let mut state = lock(&self.state);
        if state.overflowed {
            return false;
        }
        let size = push.json().as_bytes().len();
        let too_many_bytes = !state.queue.is_empty() && state.bytes + size > self.max_bytes;
        if state.queue.len() >= self.limit || too_many_bytes {
            state.overflowed = true;
            drop(state);
            self.notify.notify_one();
            return false;
        }
        state.bytes += size;
        state.queue.push_back(Arc::clone(push));
        drop(state);
        self.notify.notify_one();
        true
    }

    fn lagged(&self) {
        lock(&self.state).overflowed = true;
        self.notify.notify_one();
    }
}

/// The outcome of subscribing a transport to its topics.
pub(crate) struct Subscribed {
    /// Where each topic's client stands now: `since` where recovered, else the
    /// topic's current position.
    pub(crate) positions: Positions,
    /// `{"subs":[…]}`-style entries, as in the `sub` reply.
    pub(crate) subs: Vec<String>,
    /// The recovered messages, topic after topic, each topic in order.
    pub(crate) messages: Vec<Arc<Push>>,
    pub(crate) pending: Vec<Pending>,
}

/// Step 1 for every topic of `wanted` (see [`Hub::subscribe`]).
pub(crate) async fn subscribe_all(
    hub: &Hub,
    wanted: &Wanted,
    sink: &Arc<dyn Sink>,
) -> Result<Subscribed, HttpError> {
    let mut out = Subscribed {
        positions: Positions::default(),
        subs: Vec::with_capacity(wanted.topics.len()),
        messages: Vec::new(),
        pending: Vec::with_capacity(wanted.topics.len()),
    };
    for topic in &wanted.topics {
        let since = wanted.since.get(topic).cloned();
        let mut pending = hub
            .subscribe(topic.clone(), Arc::clone(sink), since.clone(), None)
            .await
            .map_err(|err| HttpError::new(503, err.to_string()))?;
        let recovery = pending.recovery();
        out.subs.push(protocol::position(
            topic,
            &recovery.position,
            recovery.recovered,
        ));
        let now = match (recovery.recovered, since) {
            (Some(true), Some(since)) => since,
            _ => recovery.position.clone(),
        };
        out.positions.set(topic, now);
        out.messages.extend(pending.take_messages());
        out.pending.push(pending);
    }
    Ok(out)
}

/// Step 2 for every pending subscription; `None` if one fell behind already.
pub(crate) fn go_live(pending: Vec<Pending>) -> Option<Vec<Subscription>> {
    pending
        .into_iter()
        .map(|p| p.go_live().ok())
        .collect::<Option<Vec<_>>>()
}

/// `{"subs":[…]}` from the entries of [`Subscribed::subs`].
pub(crate) fn subs_json(subs: &[String]) -> String {
    format!("[{}]", subs.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(offset: u64) -> Arc<Push> {
        let topic = Topic::new("t").unwrap_or_else(|e| panic!("{e}"));
        let epoch = crate::hub::Epoch::new("E").unwrap_or_else(|e| panic!("{e}"));
        Arc::new(Push::message(
            topic,
            epoch,
            offset,
            crate::hub::Data::text("x"),
        ))
    }

    #[tokio::test]
    async fn a_full_mailbox_hands_out_its_prefix_then_reports_the_overflow() {
        let mailbox = Mailbox::new(3, MAX_BUFFERED_BYTES);
        for offset in 1..=3 {
            assert!(mailbox.push(&push(offset)));
        }
        assert!(!mailbox.push(&push(4)), "a full mailbox refuses");
        assert!(!mailbox.push(&push(5)), "and keeps refusing");
        let taken = mailbox.take(2).await.unwrap_or_default();
        assert_eq!(
            taken.iter().filter_map(|p| p.offset()).collect::<Vec<_>>(),
            vec![1, 2]
        );
        let taken = mailbox.take(10).await.unwrap_or_default();
        assert_eq!(
            taken.iter().filter_map(|p| p.offset()).collect::<Vec<_>>(),
            vec![3]
        );
        assert!(
            mailbox.take(10).await.is_none(),
            "then the overflow ends it"
        );
    }

    #[tokio::test]
    async fn a_mailbox_overflows_at_its_byte_limit_but_takes_one_large_message() {
        let json = |offset: u64| push(offset).json().as_bytes().len();
        // Room for two messages' bytes.
        let mailbox = Mailbox::new(100, json(1) + json(2));
        assert!(mailbox.push(&push(1)));
        assert!(mailbox.push(&push(2)));
        assert!(!mailbox.push(&push(3)), "past the bytes: refused");
        assert_eq!(mailbox.take(10).await.map(|taken| taken.len()), Some(2));
        assert!(
            mailbox.take(10).await.is_none(),
            "then the overflow ends it"
        );
        // A single message larger than the limit still gets through.
        let tiny = Mailbox::new(100, 1);
        assert!(tiny.push(&push(1)));
        assert!(!tiny.push(&push(2)));
    }

    #[tokio::test]
    async fn take_waits_for_a_push() {
        let mailbox = Arc::new(Mailbox::new(3, MAX_BUFFERED_BYTES));
        let waiter = tokio::spawn({
            let mailbox = Arc::clone(&mailbox);
            async move { mailbox.take(10).await }
        });
        tokio::task::yield_now().await;
        assert!(mailbox.push(&push(1)));
        let taken = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
            .unwrap_or_default();
        assert_eq!(taken.len(), 1);
    }

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
        assert_eq!(wanted(None).map(|_| ()).map_err(|e| e.0.code), Err(400));
        assert_eq!(
            wanted(Some("topic=a%20b"))
                .map(|_| ())
                .map_err(|e| e.0.code),
            Err(422)
        );
        assert_eq!(
            wanted(Some("topic=a&topic=a"))
                .map(|_| ())
                .map_err(|e| e.0.code),
            Err(400)
        );
        assert_eq!(
            wanted(Some("topic=a&since=x"))
                .map(|_| ())
                .map_err(|e| e.0.code),
            Err(400)
        );
        let ok = wanted(Some("topic=a&since=a%40E%3A3&timeout=5"));
        assert!(ok.is_ok_and(|w| w.since.0.len() == 1 && w.rest.len() == 1));
    }
}
