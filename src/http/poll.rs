//! `GET /poll?topic=…&since=…`: long-polling. Each poll subscribes from `since`,
//! answers as soon as there is at least one message (or after the timeout), and
//! unsubscribes: the server keeps nothing between polls, so any node can answer any
//! poll.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, BytesMut};
use http::{HeaderValue, header};
use tokio_util::sync::CancellationToken;

use super::access::authorize;
use super::error::HttpError;
use super::mailbox::{MAX_BUFFERED_BYTES, go_live, mailbox, subs_json, subscribe_all};
use super::presence::{self, PollMembers};
use super::query::wanted;
use super::state::TopicsState;
use crate::auth::TokenVerifier;
use crate::clock::{unix_millis, until_millis};
use crate::hub::{Hub, Sink};
use crate::ops::conn_log::ConnTally;
use crate::ops::{ConnectionGuard, Transport};
use crate::protocol::{self, Ended, PushJson};
use crate::topic::ErrorCode;
use crate::topic::{Push, Topic};

/// How long a poll waits for a message unless it says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(25);

/// The longest wait a poll may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// The most messages in one answer (and at most [`MAX_BUFFERED_BYTES`] of them,
/// or one larger message); the next poll gets the rest.
pub const MAX_MESSAGES: usize = 1000;

/// The `Retry-After` of the polls a shutting-down server answers: within a
/// second (the browser client waits a random time up to it).
const RETRY_AFTER: &str = "1";

/// `GET /poll`. A poll with `?client=` keeps its client present on its topics
/// through the state's poll members (see [`presence`]).
pub(crate) async fn handle(
    State(state): State<TopicsState>,
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
        poll_members,
        ..
    } = state;
    answer(
        hub,
        shutdown,
        auth.as_deref(),
        &parts.headers,
        parts.uri.query(),
        &poll_members,
        peer,
    )
    .await
}

async fn answer(
    hub: Hub,
    shutdown: CancellationToken,
    auth: Option<&TokenVerifier>,
    headers: &http::HeaderMap,
    query: Option<&str>,
    members: &PollMembers,
    peer: Option<SocketAddr>,
) -> Result<Response, HttpError> {
    let mut wanted = wanted(query)?;
    let mut access = authorize(auth, hub.config(), headers, &mut wanted)?;
    // A waiting poll is an open connection until it is answered.
    let _connection = ConnectionGuard::open(hub.metrics(), Transport::Poll);
    let key = presence::poll_key(&wanted)?;
    let infos = presence::Infos::of(&wanted)?;
    let mut timeout = DEFAULT_TIMEOUT;
    for (key, value) in &wanted.rest {
        if key == "timeout" {
            let ms: u64 = value.parse().map_err(|_| {
                HttpError::new(
                    ErrorCode::BadRequest,
                    format!("timeout is in milliseconds, not {value:?}"),
                )
            })?;
            timeout = Duration::from_millis(ms);
            if timeout > MAX_TIMEOUT {
                return Err(HttpError::new(
                    ErrorCode::BadRequest,
                    format!("timeout is at most {} ms", MAX_TIMEOUT.as_millis()),
                ));
            }
        }
    }
    let mailbox = Arc::new(mailbox(MAX_MESSAGES, MAX_BUFFERED_BYTES).with_metrics(hub.metrics()));
    let sink: Arc<dyn Sink> = Arc::clone(&mailbox) as Arc<dyn Sink>;
    let mut subscribed = subscribe_all(&hub, &wanted, &sink).await?;
    // One poll is one connection in the log, closed when this returns (or the
    // client goes away first).
    let mut log = ConnTally::open(Transport::Poll, peer);
    access.annotate(&wanted.topics, &mut subscribed.subs);
    // Held until the answer is built: the client is present while it polls.
    let lease = key.and_then(|key| {
        let user = presence::token_user(auth, headers, &wanted);
        members.begin(&hub, &shutdown, key, user, &wanted.topics, &infos)
    });
    let mut positions = subscribed.positions;
    let mut messages = subscribed.messages;
    messages.truncate(MAX_MESSAGES);
    // Topics resumed but no longer allowed end now, and so do those whose
    // subscription token ends while the poll waits.
    let mut ended: Vec<(Topic, Ended)> = std::mem::take(&mut access.ended);
    // A topic without a position (the first poll, or a topic added since) needs
    // one at once: answer without waiting, with whatever the others recovered.
    let must_answer_now = !ended.is_empty()
        || wanted.topics.is_empty()
        || wanted.topics.iter().any(|t| wanted.since.get(t).is_none());
    if !must_answer_now {
        // Held until the answer is built; then dropped, they unsubscribe.
        let _subscriptions = go_live(subscribed.pending);
        let room = MAX_MESSAGES - messages.len();
        if room > 0 {
            let more = if messages.is_empty() {
                // A token's end answers the poll, so that the next one carries a
                // fresh token (or learns that a topic ended).
                let deadline = access.next_deadline();
                tokio::select! {
                    taken = mailbox.take(room) => taken,
                    () = tokio::time::sleep(timeout) => Some(Vec::new()),
                    () = shutdown.cancelled() => Some(Vec::new()),
                    () = async {
                        match deadline {
                            Some(at) => tokio::time::sleep(until_millis(at)).await,
                            None => std::future::pending().await,
                        }
                    } => Some(Vec::new()),
                }
            } else {
                mailbox.try_take(room).unwrap_or(Some(Vec::new()))
            };
            // `None`: more arrived than one answer holds; what was taken stands,
            // and the next poll continues from it.
            messages.extend(more.unwrap_or_default());
        }
        for topic in access.take_expired(unix_millis()) {
            if let Some(metrics) = hub.metrics() {
                metrics.token_expired();
            }
            ended.push((topic, Ended::Expired));
        }
    }
    // At most MAX_BUFFERED_BYTES of messages (at least one): the answer is built
    // in memory, for a client that may be slow to read it.
    let mut bytes = 0;
    let fits = messages
        .iter()
        .position(|push| {
            bytes += push.json().as_bytes().len();
            bytes > MAX_BUFFERED_BYTES
        })
        .unwrap_or(messages.len())
        .max(1);
    messages.truncate(fits);
    let mut body = BytesMut::with_capacity(128 + messages.len() * 96);
    body.put_u8(b'{');
    if let Some(lease) = &lease {
        // The member id: letters, digits, '-' and '_' only.
        body.put_slice(b"\"client\":\"");
        body.put_slice(lease.client().as_bytes());
        body.put_slice(b"\",");
    }
    body.put_slice(b"\"since\":\"");
    for push in &messages {
        if let Some(position) = push.position() {
            positions.set(push.topic(), position);
        }
    }
    positions
        .0
        .retain(|(t, _)| !ended.iter().any(|(gone, _)| gone == t));
    body.put_slice(positions.to_string().as_bytes());
    body.put_slice(b"\",\"subs\":");
    body.put_slice(subs_json(&subscribed.subs).as_bytes());
    body.put_slice(b",\"messages\":[");
    write_messages(&mut body, &messages);
    for (i, (topic, why)) in ended.iter().enumerate() {
        if i > 0 || !messages.is_empty() {
            body.put_u8(b',');
        }
        body.put_slice(protocol::unsub(topic, *why).as_bytes());
    }
    body.put_slice(b"]}");
    log.sent((messages.len() + ended.len()) as u64, body.len() as u64);
    let mut response = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body.freeze(),
    )
        .into_response();
    if shutdown.is_cancelled() {
        // The server shuts down: poll again soon, through the load balancer (this
        // node no longer accepts connections).
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER));
    }
    Ok(response)
}

fn write_messages(out: &mut BytesMut, messages: &[Arc<Push>]) {
    for (i, push) in messages.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(push.json().as_bytes());
    }
}
