//! `GET /poll?topic=…&since=…`: long-polling. Each poll subscribes from `since`,
//! answers as soon as there is at least one message (or after the timeout), and
//! unsubscribes: the server keeps nothing between polls, so any node can answer any
//! poll.

use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::{BufMut, BytesMut};
use http::{HeaderValue, header};
use tokio_util::sync::CancellationToken;

use super::{
    HttpError, MAX_BUFFERED_BYTES, Mailbox, authorize, go_live, subs_json, subscribe_all, wanted,
};
use crate::auth::Verifier;
use crate::hub::{Hub, Push, Sink};

/// How long a poll waits for a message unless it says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(25);

/// The longest wait a poll may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// The most messages in one answer (and at most [`MAX_BUFFERED_BYTES`] of them,
/// or one larger message); the next poll gets the rest.
pub const MAX_MESSAGES: usize = 1000;

/// Answers a long-poll.
pub(crate) async fn respond(
    hub: Hub,
    shutdown: CancellationToken,
    auth: Option<Arc<Verifier>>,
    headers: http::HeaderMap,
    query: Option<String>,
) -> Response {
    match answer(hub, shutdown, auth.as_deref(), &headers, query.as_deref()).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn answer(
    hub: Hub,
    shutdown: CancellationToken,
    auth: Option<&Verifier>,
    headers: &http::HeaderMap,
    query: Option<&str>,
) -> Result<Response, HttpError> {
    let wanted = wanted(query)?;
    authorize(auth, headers, &wanted)?;
    let mut timeout = DEFAULT_TIMEOUT;
    for (key, value) in &wanted.rest {
        if key == "timeout" {
            let ms: u64 = value.parse().map_err(|_| {
                HttpError::new(400, format!("timeout is in milliseconds, not {value:?}"))
            })?;
            timeout = Duration::from_millis(ms);
            if timeout > MAX_TIMEOUT {
                return Err(HttpError::new(
                    400,
                    format!("timeout is at most {} ms", MAX_TIMEOUT.as_millis()),
                ));
            }
        }
    }
    let mailbox = Arc::new(Mailbox::new(MAX_MESSAGES, MAX_BUFFERED_BYTES));
    let sink: Arc<dyn Sink> = Arc::clone(&mailbox) as Arc<dyn Sink>;
    let subscribed = subscribe_all(&hub, &wanted, &sink).await?;
    let mut positions = subscribed.positions;
    let mut messages = subscribed.messages;
    messages.truncate(MAX_MESSAGES);
    // A topic without a position (the first poll, or a topic added since) needs
    // one at once: answer without waiting, with whatever the others recovered.
    let must_answer_now = wanted.topics.iter().any(|t| wanted.since.get(t).is_none());
    if !must_answer_now {
        // Held until the answer is built; then dropped, they unsubscribe.
        let _subscriptions = go_live(subscribed.pending);
        let room = MAX_MESSAGES - messages.len();
        if room > 0 {
            let more = if messages.is_empty() {
                tokio::select! {
                    taken = mailbox.take(room) => taken,
                    () = tokio::time::sleep(timeout) => Some(Vec::new()),
                    () = shutdown.cancelled() => Some(Vec::new()),
                }
            } else {
                mailbox.try_take(room).unwrap_or(Some(Vec::new()))
            };
            // `None`: more arrived than one answer holds; what was taken stands,
            // and the next poll continues from it.
            messages.extend(more.unwrap_or_default());
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
    body.put_slice(b"{\"since\":\"");
    for push in &messages {
        if let Some(position) = push.position() {
            positions.set(push.topic(), position);
        }
    }
    body.put_slice(positions.to_string().as_bytes());
    body.put_slice(b"\",\"subs\":");
    body.put_slice(subs_json(&subscribed.subs).as_bytes());
    body.put_slice(b",\"messages\":[");
    write_messages(&mut body, &messages);
    body.put_slice(b"]}");
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body.freeze(),
    )
        .into_response())
}

fn write_messages(out: &mut BytesMut, messages: &[Arc<Push>]) {
    for (i, push) in messages.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(push.json().as_bytes());
    }
}
