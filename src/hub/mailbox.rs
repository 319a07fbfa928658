//! [`Mailbox`]: a bounded [`Sink`] that keeps a subscriber's pushes until its
//! transport takes them (SSE streams, long-polls, Mercure streams).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::Sink;
use crate::ops::Metrics;
use crate::sync::lock;
use crate::topic::Push;

/// The most bytes of pushes one mailbox holds for its client by default, as a
/// `/ws` connection's outbound queue does (1 MiB).
pub(crate) const MAX_BUFFERED_BYTES: usize = 1024 * 1024;

/// How a mailbox counts the bytes of a push (the size of the form its transport
/// writes).
pub(crate) type Measure = fn(&Push) -> usize;

/// A subscriber that keeps its pushes until a transport takes them. Bounded: past
/// `limit` pushes or `max_bytes` bytes of them it refuses more, and the transport
/// ends (the client recovers when it comes back).
///
/// As a [`Sink`] it measures each push with the [`Measure`] it was made with; a
/// sink that wraps it (to filter, or to measure another way) offers pushes with
/// [`offer`](Self::offer) and reports overflows with [`overflow`](Self::overflow).
pub(crate) struct Mailbox {
    state: Mutex<MailboxState>,
    notify: Notify,
    limit: usize,
    max_bytes: usize,
    measure: Measure,
    /// Where an overflow is counted as a slow consumer.
    metrics: Option<Arc<Metrics>>,
}

#[derive(Default)]
struct MailboxState {
    /// The pushes and their sizes.
    queue: VecDeque<(Arc<Push>, usize)>,
    /// The sum of the sizes in `queue`.
    bytes: usize,
    overflowed: bool,
}

impl Mailbox {
    /// A mailbox for at most `limit` pushes and `max_bytes` bytes of them as
    /// `measure` counts them (one push is always let in, however large).
    pub(crate) fn new(limit: usize, max_bytes: usize, measure: Measure) -> Self {
        Self {
            state: Mutex::new(MailboxState::default()),
            notify: Notify::new(),
            limit,
            max_bytes,
            measure,
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

    /// Waits until there is something to take, then takes up to `max` pushes.
    /// `None` once it overflowed and everything it held was taken.
    pub(crate) async fn take(&self, max: usize) -> Option<Vec<Arc<Push>>> {
        loop {
            if let Some(taken) = self.try_take(max) {
                return taken;
            }
            self.notify.notified().await;
        }
    }

    /// Takes up to `max` pushes without waiting: `None` when it is empty,
    /// `Some(None)` when it is empty and overflowed. What it holds when it
    /// overflows is still handed out: a gapless prefix of what was published.
    pub(crate) fn try_take(&self, max: usize) -> Option<Option<Vec<Arc<Push>>>> {
        let mut state = lock(&self.state);
        if state.queue.is_empty() {
            return state.overflowed.then_some(None);
        }
        let n = state.queue.len().min(max);
        let mut bytes = 0;
        let taken: Vec<Arc<Push>> = state
            .queue
            .drain(..n)
            .map(|(push, size)| {
                bytes += size;
                push
            })
            .collect();
        state.bytes -= bytes;
        Some(Some(taken))
    }

    /// Queues `push`, counted as `size` bytes; `false` (and nothing more is
    /// queued) when that would pass the limits.
    pub(crate) fn offer(&self, push: &Arc<Push>, size: usize) -> bool {
        let mut state = lock(&self.state);
        if state.overflowed {
            return false;
        }
        let too_many_bytes = !state.queue.is_empty() && state.bytes + size > self.max_bytes;
        if state.queue.len() >= self.limit || too_many_bytes {
            state.overflowed = true;
            drop(state);
            self.count_overflow();
            self.notify.notify_one();
            return false;
        }
        state.bytes += size;
        state.queue.push_back((Arc::clone(push), size));
        drop(state);
        self.notify.notify_one();
        true
    }

    /// The subscriber fell behind: nothing more is queued, and the transport
    /// ends once it took what is there.
    pub(crate) fn overflow(&self) {
        let first = !std::mem::replace(&mut lock(&self.state).overflowed, true);
        if first {
            self.count_overflow();
        }
        self.notify.notify_one();
    }
}

impl Sink for Mailbox {
    fn push(&self, push: &Arc<Push>) -> bool {
        self.offer(push, (self.measure)(push))
    }

    fn lagged(&self) {
        self.overflow();
    }
}
