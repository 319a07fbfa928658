//! `GET /sse?topic=…`: Server-Sent Events. One long response; each message is an
//! event whose `id:` holds the positions of all the request's topics, so the
//! browser's automatic reconnect (which sends `Last-Event-ID`) resumes them all.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{self, ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::stream;
use http::{HeaderMap, HeaderValue, header};
use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};
use tokio_util::sync::CancellationToken;

use super::access::{Access, authorize};
use super::error::HttpError;
use super::mailbox::{MAX_BUFFERED_BYTES, Mailbox, go_live, mailbox, subs_json, subscribe_all};
use super::presence;
use super::query::wanted;
use super::state::TopicsState;
use crate::auth::TokenVerifier;
use crate::clock::{unix_millis, until_millis};
use crate::hub::{Hub, Membership, Sink, Subscription};
use crate::ops::conn_log::{ConnTally, sse_events};
use crate::ops::{ConnectionGuard, Transport};
use crate::protocol::{self, Ended, PushJson};
use crate::topic::ErrorCode;
use crate::topic::{Positions, Push, PushKind, Topic};

/// A comment line this often keeps proxies from closing an idle stream.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// The longest reconnection delay a stream's farewell asks for: each stream ends
/// with a `retry:` drawn between 0 and this, so that the clients of a node that
/// shuts down do not all come back in the same instant.
pub const FAREWELL_RETRY_MS: u64 = 1000;

/// How many messages may wait for a slow SSE client before it is disconnected
/// (and at most [`MAX_BUFFERED_BYTES`] of them).
const BUFFER: usize = 4096;

/// The most messages written in one chunk.
const BATCH: usize = 256;

/// `GET /sse`: errors as JSON before the stream starts, then the stream.
pub(crate) async fn handle(
    extract::State(state): extract::State<TopicsState>,
    request: Request,
) -> Result<Response, HttpError> {
    // The body of a GET is not read.
    let (parts, _body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let TopicsState {
        hub,
        shutdown,
        auth,
        ..
    } = state;
    start(
        hub,
        shutdown,
        auth.as_deref(),
        &parts.headers,
        parts.uri.query(),
        peer,
    )
    .await
}

async fn start(
    hub: Hub,
    shutdown: CancellationToken,
    auth: Option<&TokenVerifier>,
    headers: &HeaderMap,
    query: Option<&str>,
    peer: Option<SocketAddr>,
) -> Result<Response, HttpError> {
    let mut wanted = wanted(query)?;
    if let Some(last) = headers.get("last-event-id") {
        let last = last
            .to_str()
            .map_err(|_| HttpError::new(ErrorCode::BadRequest, "Last-Event-ID is not text"))?;
        let positions: Positions = last.parse().map_err(|err| {
            HttpError::new(
                ErrorCode::BadRequest,
                format!("invalid Last-Event-ID: {err}"),
            )
        })?;
        // The browser's own reconnect wins over the `since` in the URL it reuses.
        for (topic, position) in positions.0 {
            wanted.since.set(&topic, position);
        }
    }
    // A stream with a token ends when the token does; the client reconnects with
    // a fresh one (and resumes from its Last-Event-ID). A topic held by a
    // subscription token ends alone, with an `unsub` event.
    let access = authorize(auth, hub.config(), headers, &mut wanted)?;
    let expiry = access
        .next_deadline()
        .map(|at| Box::pin(tokio::time::sleep(until_millis(at))));
    let mailbox = Arc::new(mailbox(BUFFER, MAX_BUFFERED_BYTES).with_metrics(hub.metrics()));
    let sink: Arc<dyn Sink> = Arc::clone(&mailbox) as Arc<dyn Sink>;
    let infos = presence::Infos::of(&wanted)?;
    let mut subscribed = subscribe_all(&hub, &wanted, &sink).await?;
    access.annotate(&wanted.topics, &mut subscribed.subs);
    // The stream is a presence member, like a `/ws` connection.
    let client = hub.new_client_id();
    let user = presence::token_user(auth, headers, &wanted);
    let mut positions = subscribed.positions;
    let mut first = BytesMut::with_capacity(256);
    first.put_slice(b"retry: 1000\n\n");
    write_event(
        &mut first,
        Some(&positions),
        Some("subscribed"),
        format!(
            "{{\"subs\":{},\"client\":\"{}\"}}",
            subs_json(&subscribed.subs),
            client
        )
        .as_bytes(),
    );
    for (topic, why) in &access.ended {
        write_unsub(&mut first, topic, *why);
    }
    for push in &subscribed.messages {
        write_push(&mut first, &mut positions, push);
    }
    // Nothing left to stream (every topic ended): send what there is, then end.
    let subscriptions = go_live(subscribed.pending).filter(|subs| !subs.is_empty());
    let state = State {
        log: ConnTally::open(Transport::Sse, peer),
        first: Some(first.freeze()),
        // Fell behind before the stream began: send what there is, then end; the
        // client's reconnect recovers.
        live: subscriptions.map(|subscriptions| Live {
            connection: ConnectionGuard::open(hub.metrics(), Transport::Sse),
            mailbox,
            positions,
            subscriptions,
            presence: presence::join_all(&hub, &wanted.topics, &client, user.as_ref(), &infos),
            keepalive: keepalive(),
            shutdown,
            access,
            expiry,
        }),
    };
    let body = Body::from_stream(stream::unfold(state, next_chunk));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                http::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        body,
    )
        .into_response())
}

struct State {
    /// The stream's log lines; the close is logged when the body is dropped.
    log: ConnTally,
    first: Option<Bytes>,
    live: Option<Live>,
}

struct Live {
    /// Counts the stream as an open connection while it runs.
    connection: ConnectionGuard,
    mailbox: Arc<Mailbox>,
    positions: Positions,
    /// Held for as long as the stream runs; dropped, they unsubscribe.
    subscriptions: Vec<Subscription>,
    /// The stream's presence on its topics; dropped (after the subscriptions, so
    /// the stream gets no event of its own leave), the member leaves.
    presence: Vec<Membership>,
    keepalive: Interval,
    shutdown: CancellationToken,
    /// The tokens' deadlines.
    access: Access,
    /// The next deadline of `access`, when there is one.
    expiry: Option<Pin<Box<Sleep>>>,
}

impl Live {
    /// A deadline passed: `None` when the connection token ended (the stream ends);
    /// else the `unsub` events of the topics whose subscription token ended, which
    /// are dropped (and the stream ends after them when none is left).
    fn expire(&mut self) -> Option<Bytes> {
        let now = unix_millis();
        if self.access.connection_ended(now) {
            if let Some(metrics) = self.connection.metrics() {
                metrics.token_expired();
            }
            return None;
        }
        let mut chunk = BytesMut::new();
        for topic in self.access.take_expired(now) {
            if let Some(metrics) = self.connection.metrics() {
                metrics.token_expired();
            }
            self.subscriptions.retain(|s| s.topic() != &topic);
            self.presence.retain(|m| m.topic() != &topic);
            self.positions.0.retain(|(t, _)| *t != topic);
            write_unsub(&mut chunk, &topic, Ended::Expired);
        }
        self.expiry = self
            .access
            .next_deadline()
            .map(|at| Box::pin(tokio::time::sleep(until_millis(at))));
        Some(chunk.freeze())
    }
}

/// Resolves when `expiry` passes; never without one.
async fn expired(expiry: &mut Option<Pin<Box<Sleep>>>) {
    match expiry {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}

fn keepalive() -> Interval {
    let mut interval = tokio::time::interval_at(Instant::now() + KEEPALIVE, KEEPALIVE);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

async fn next_chunk(mut state: State) -> Option<(Result<Bytes, Infallible>, State)> {
    if let Some(first) = state.first.take() {
        state.log.sent(sse_events(&first), first.len() as u64);
        return Some((Ok(first), state));
    }
    let live = state.live.as_mut()?;
    if live.subscriptions.is_empty() {
        return None;
    }
    let chunk = tokio::select! {
        taken = live.mailbox.take(BATCH) => {
            // `None`: the client fell too far behind; end the stream.
            let pushes = taken?;
            let mut chunk = BytesMut::new();
            for push in &pushes {
                write_push(&mut chunk, &mut live.positions, push);
            }
            chunk.freeze()
        }
        _ = live.keepalive.tick() => Bytes::from_static(b": keepalive\n\n"),
        () = live.shutdown.cancelled() => {
            // The server shuts down: the last chunk asks the client to come back
            // (to another node, or to this one restarted) soon; then the stream ends.
            state.live = None;
            let farewell = farewell();
            state.log.sent(sse_events(&farewell), farewell.len() as u64);
            return Some((Ok(farewell), state));
        }
        () = expired(&mut live.expiry) => live.expire()?,
    };
    state.log.sent(sse_events(&chunk), chunk.len() as u64);
    Some((Ok(chunk), state))
}

/// The last chunk of a stream that ends because the server shuts down: a
/// `retry:` of up to [`FAREWELL_RETRY_MS`] (EventSource reconnects after it, with
/// `Last-Event-ID`) and a comment that says why.
fn farewell() -> Bytes {
    let retry = rand::random_range(0..=FAREWELL_RETRY_MS);
    Bytes::from(format!("retry: {retry}\n: service restart\n\n"))
}

/// Appends one message (with the updated positions as its id) or presence event.
fn write_push(out: &mut BytesMut, positions: &mut Positions, push: &Arc<Push>) {
    match push.kind() {
        PushKind::Message { .. } => {
            if let Some(position) = push.position() {
                positions.set(push.topic(), position);
            }
            write_event(out, Some(positions), None, push.json().as_bytes());
        }
        PushKind::Join(_) | PushKind::Leave(_) => {
            write_event(out, None, Some("presence"), push.json().as_bytes());
        }
    }
}

/// Appends an `unsub` event: the server ended the subscription to `topic`.
fn write_unsub(out: &mut BytesMut, topic: &Topic, why: Ended) {
    write_event(
        out,
        None,
        Some("unsub"),
        protocol::unsub(topic, why).as_bytes(),
    );
}

/// Appends `id:`, `event:` and `data:` lines and the blank line that ends an event.
/// `data` is one line: pushes never hold a line break.
fn write_event(out: &mut BytesMut, id: Option<&Positions>, event: Option<&str>, data: &[u8]) {
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(id.to_string().as_bytes());
        out.put_u8(b'\n');
    }
    if let Some(event) = event {
        out.put_slice(b"event: ");
        out.put_slice(event.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_slice(b"data: ");
    out.put_slice(data);
    out.put_slice(b"\n\n");
}
