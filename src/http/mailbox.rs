//! The bounded subscriber SSE streams and long-polls give the hub, and the two
//! steps that subscribe one to its topics.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::error::HttpError;
use super::query::Wanted;
use crate::hub::{Hub, Pending, Sink, Subscription};
use crate::ops::Metrics;
use crate::protocol;
use crate::protocol::PushJson;
use crate::sync::lock;
use crate::topic::ErrorCode;
use crate::topic::{Positions, Push};

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
    /// Where an overflow is counted as a slow consumer.
    metrics: Option<Arc<Metrics>>,
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
            metrics: None,
        }
    }

    /// Counts its overflow, once, as a slow consumer in `metrics`.
    pub(crate) fn with_metrics(mut self, metrics: Option<&Arc<Metrics>>) -> Self {
        self.metrics = metrics.cloned();
        self
    }

    fn count_overflow(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.slow_consumer();
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
            self.count_overflow();
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
        let first = !std::mem::replace(&mut lock(&self.state).overflowed, true);
        if first {
            self.count_overflow();
        }
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
            .map_err(|err| HttpError::new(ErrorCode::Unavailable, err.to_string()))?;
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
    use crate::topic::Topic;

    fn push(offset: u64) -> Arc<Push> {
        let topic = Topic::new("t").unwrap_or_else(|e| panic!("{e}"));
        let epoch = crate::topic::Epoch::new("E").unwrap_or_else(|e| panic!("{e}"));
        Arc::new(Push::message(
            topic,
            epoch,
            offset,
            crate::topic::Data::text("x"),
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
}
