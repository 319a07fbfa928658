//! The soak's publishers: one per topic, publishing one message after the other
//! (each waits for its answer) at the topic's share of `--rate`, over the publish
//! API for even topics and over `/ws` `pub` for odd ones.
//!
//! Topic names are new for each run, so the n-th message published on a topic
//! gets offset n: its data is the number n, and every subscriber checks that the
//! message at offset n carries n. A publish that fails (an error answer, a lost
//! connection) may or may not have happened; from then on the topic's data is no
//! longer checked (the offsets still are).

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
    stop: CancellationToken,
) {
    let topic = &shared.topics[index];
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
                topic.unclean_from.fetch_min(n, Ordering::SeqCst);
                shared.note_error(format!("publish {} #{n}: {reason}", topic.name));
                way.reset();
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

/// How a publisher reaches the server; connections are opened on first use and
/// after a failure.
enum Way {
    Api(Option<Client>),
    Ws(Option<Conn>),
}

impl Way {
    fn reset(&mut self) {
        match self {
            Self::Api(client) => *client = None,
            Self::Ws(conn) => *conn = None,
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
                    *slot = Some(Client::connect(shared.addr).await?);
                }
                let Some(client) = slot.as_mut() else {
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
                if status != http::StatusCode::OK {
                    return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
                }
                position_of(&body)
            }
            Self::Ws(slot) => {
                if slot.is_none() {
                    let target = Target::at(shared.addr, "/ws");
                    *slot = Some(Conn::open(&target, None, false).await?);
                }
                let Some(conn) = slot.as_mut() else {
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
