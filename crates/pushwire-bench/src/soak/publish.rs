//! The soak's publishers: one per topic, publishing one message after the other
//! (each waits for its answer) at the topic's share of `--rate`, over the publish
//! API for even topics and over `/ws` `pub` for odd ones.
//!
//! Topic names are new for each run, so the n-th message published on a topic
//! gets offset n: its data is the number n, and every subscriber checks that the
//! message at offset n carries n. A publish that fails (an error answer, a lost
//! connection) may or may not have happened: the topic's position on a ready node
//! says which (one publisher per topic), and message n is sent again only if it
//! did not. When that cannot be learnt either, the topic's data is no longer
//! checked from then on (the offsets still are).
//!
//! With several nodes a publisher connects to a ready one and leaves it as soon
//! as it stops being ready (it drains), as a load balancer would.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::http::Client;
use super::{Shared, TopicState};
use crate::conn::{Conn, Frame, Target};

/// Publishes on topic `index` until `stop`; answers nothing: the topic's state
/// holds what was published.
pub(crate) async fn run(
    shared: Arc<Shared>,
    index: usize,
    per_second: f64,
    wait_for: u64,
    stop: CancellationToken,
) {
    let topic = &shared.topics[index];
    // `--exact`: not before every subscriber has subscribed (bounded: a subscriber
    // that never does shows at the end, missing messages).
    let waited = tokio::time::Instant::now();
    while shared.counters.first_subscribed.load(Ordering::Relaxed) < wait_for
        && waited.elapsed() < Duration::from_secs(60)
    {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    let mut way = if index.is_multiple_of(2) {
        Way::Api(None)
    } else {
        Way::Ws(None)
    };
    let period = Duration::from_secs_f64(1.0 / per_second.max(0.001));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        n += 1;
        if way.node().is_some_and(|node| !shared.is_ready(node)) {
            // Its node drains: new requests go elsewhere.
            way.reset();
        }
        let answer = tokio::time::timeout(Duration::from_secs(10), way.publish(&shared, topic, n))
            .await
            .unwrap_or_else(|_| Err("no answer within 10 s".into()));
        match answer {
            Ok((epoch, offset)) => acknowledged(&shared, topic, n, &epoch, offset),
            Err(reason) => {
                shared
                    .counters
                    .publish_errors
                    .fetch_add(1, Ordering::Relaxed);
                way.reset();
                match resolve(&shared, topic, n).await {
                    Some(Resolved::Published(epoch, offset)) => {
                        shared.note_error(format!(
                            "publish {} #{n}: {reason} (it was published: offset {offset})",
                            topic.name
                        ));
                        acknowledged(&shared, topic, n, &epoch, offset);
                        continue;
                    }
                    Some(Resolved::NotPublished) => {
                        shared.note_error(format!(
                            "publish {} #{n}: {reason} (not published: sent again)",
                            topic.name
                        ));
                        n -= 1;
                        continue;
                    }
                    None => {
                        topic.unclean_from.fetch_min(n, Ordering::SeqCst);
                        shared.note_error(format!("publish {} #{n}: {reason}", topic.name));
                    }
                }
                // Give a struggling server a moment.
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

/// Records an acknowledged publish and checks that its offset is the one due.
fn acknowledged(shared: &Shared, topic: &TopicState, n: u64, epoch: &str, offset: u64) {
    shared.counters.publishes.fetch_add(1, Ordering::Relaxed);
    {
        let mut last = topic.last.lock().unwrap_or_else(|p| p.into_inner());
        match &*last {
            Some((known, previous)) if known != epoch => {
                shared.violation(format!(
                    "publisher of {}: epoch changed from {known} (offset {previous}) to {epoch} \
                     (offset {offset})",
                    topic.name
                ));
            }
            Some((_, previous)) if offset <= *previous => {
                shared.violation(format!(
                    "publisher of {}: offset {offset} acknowledged after {previous}",
                    topic.name
                ));
            }
            _ => {}
        }
        *last = Some((epoch.to_owned(), offset));
    }
    topic.acked(epoch, offset);
    if topic.unclean_from.load(Ordering::SeqCst) > n && offset != n {
        shared.violation(format!(
            "publisher of {}: message #{n} got offset {offset} (every earlier publish succeeded)",
            topic.name
        ));
        topic.unclean_from.fetch_min(n, Ordering::SeqCst);
    }
}

/// What the topic's position on a ready node says of a publish whose answer
/// was lost.
enum Resolved {
    /// It happened: the epoch and offset it got.
    Published(String, u64),
    /// It did not: the topic is still at the message before.
    NotPublished,
}

/// Looks up whether message `n` of `topic` was published: the topic's position
/// (a long-poll with `timeout=0` on a ready node) is `n` or `n - 1`, since this
/// publisher is the topic's only one. `None` when no node answers that, or the
/// position is neither.
async fn resolve(shared: &Shared, topic: &TopicState, n: u64) -> Option<Resolved> {
    shared
        .counters
        .publishes_resolved
        .fetch_add(1, Ordering::Relaxed);
    for _ in 0..20 {
        let (_, addr) = shared.node();
        let lookup = async {
            let mut client = Client::connect(addr).await?;
            let path = format!("/poll?topic={}&timeout=0", topic.name);
            let (status, body) = client
                .fetch(http::Method::GET, &path, &[], String::new(), 64 * 1024)
                .await?;
            if status != http::StatusCode::OK {
                return Err(format!("{status}"));
            }
            let value: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            value
                .get("subs")
                .and_then(|subs| subs.get(0))
                .map(position_of_value)
                .unwrap_or_else(|| Err(format!("no subs in {value}")))
        };
        match tokio::time::timeout(Duration::from_secs(5), lookup).await {
            Ok(Ok((epoch, offset))) if offset == n => {
                return Some(Resolved::Published(epoch, offset));
            }
            Ok(Ok((_, offset))) if offset + 1 == n => return Some(Resolved::NotPublished),
            Ok(Ok(_)) => return None,
            Ok(Err(_)) | Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    None
}

/// How a publisher reaches the server: connections (to a ready node, whose
/// index they keep) are opened on first use and after a failure.
enum Way {
    Api(Option<(usize, Client)>),
    Ws(Option<(usize, Conn)>),
}

impl Way {
    fn reset(&mut self) {
        match self {
            Self::Api(client) => *client = None,
            Self::Ws(conn) => *conn = None,
        }
    }

    /// The node it is connected to.
    fn node(&self) -> Option<usize> {
        match self {
            Self::Api(client) => client.as_ref().map(|(node, _)| *node),
            Self::Ws(conn) => conn.as_ref().map(|(node, _)| *node),
        }
    }

    /// Publishes `n` on `topic`: its epoch and offset.
    async fn publish(
        &mut self,
        shared: &Shared,
        topic: &TopicState,
        n: u64,
    ) -> Result<(String, u64), String> {
        match self {
            Self::Api(slot) => {
                if slot.is_none() {
                    let (node, addr) = shared.node();
                    *slot = Some((node, Client::connect(addr).await?));
                }
                let Some((_, client)) = slot.as_mut() else {
                    return Err("no connection".into());
                };
                let path = format!("/api/publish/{}", topic.name);
                let (status, body) = client
                    .fetch(
                        http::Method::POST,
                        &path,
                        &[("content-type", "application/json")],
                        n.to_string(),
                        64 * 1024,
                    )
                    .await?;
                if client.closing() {
                    // The node closes this connection (it drains): a new one next.
                    *slot = None;
                }
                if status != http::StatusCode::OK {
                    return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
                }
                position_of(&body)
            }
            Self::Ws(slot) => {
                if slot.is_none() {
                    let (node, addr) = shared.node();
                    let target = Target::at(addr, "/ws");
                    *slot = Some((node, Conn::open(&target, None, false).await?));
                }
                let Some((_, conn)) = slot.as_mut() else {
                    return Err("no connection".into());
                };
                let request = format!(
                    r#"{{"op":"pub","id":{n},"topic":"{}","data":{n}}}"#,
                    topic.name
                );
                conn.send_text(request).await?;
                loop {
                    match conn.next().await? {
                        Frame::Data(text) => {
                            let value: Value = serde_json::from_slice(text)
                                .map_err(|e| format!("unreadable frame: {e}"))?;
                            if value.get("id").and_then(Value::as_u64) != Some(n) {
                                continue; // the hello
                            }
                            if let Some(ok) = value.get("ok") {
                                return position_of_value(ok);
                            }
                            return Err(format!("refused: {value}"));
                        }
                        Frame::Closed(code) => return Err(format!("closed with {code}")),
                    }
                }
            }
        }
    }
}

fn position_of(body: &[u8]) -> Result<(String, u64), String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("unreadable answer {:?}: {e}", String::from_utf8_lossy(body)))?;
    position_of_value(&value)
}

fn position_of_value(value: &Value) -> Result<(String, u64), String> {
    match (
        value.get("epoch").and_then(Value::as_str),
        value.get("offset").and_then(Value::as_u64),
    ) {
        (Some(epoch), Some(offset)) => Ok((epoch.to_owned(), offset)),
        _ => Err(format!("no position in {value}")),
    }
}
