//! [`Outbox`]: one webhook's queue of notices, bounded; a full one drops its
//! oldest notice (and counts it).

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::interop::pusher::{Notice, Webhook};
use crate::sync::lock;

/// The notices waiting for one webhook of one app, and what posting needs.
pub(crate) struct Outbox {
    /// The webhook (URL and events).
    pub(crate) webhook: Webhook,
    /// The app's key (`X-Pusher-Key`).
    pub(crate) key: String,
    /// The app's secret (signs the body).
    pub(crate) secret: String,
    queue: Mutex<Queue>,
    ready: Notify,
    limit: usize,
}

struct Queue {
    notices: VecDeque<Notice>,
    /// Dropped since the sender last looked.
    dropped: usize,
}

impl Outbox {
    /// An empty outbox of at most `limit` notices.
    pub(crate) fn new(webhook: Webhook, key: String, secret: String, limit: usize) -> Self {
        Self {
            webhook,
            key,
            secret,
            queue: Mutex::new(Queue {
                notices: VecDeque::new(),
                dropped: 0,
            }),
            ready: Notify::new(),
            limit: limit.max(1),
        }
    }

    /// Queues `notice` (dropping the oldest when full) and wakes the sender.
    pub(crate) fn push(&self, notice: Notice) {
        {
            let mut queue = lock(&self.queue);
            if queue.notices.len() >= self.limit {
                queue.notices.pop_front();
                queue.dropped += 1;
            }
            queue.notices.push_back(notice);
        }
        self.ready.notify_one();
    }

    /// Waits until a notice is queued (at once if one is).
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.ready.notified();
            if !lock(&self.queue).notices.is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Takes up to `max` notices, oldest first, and how many were dropped since
    /// the last take.
    pub(crate) fn take(&self, max: usize) -> (Vec<Notice>, usize) {
        let mut queue = lock(&self.queue);
        let n = queue.notices.len().min(max);
        let notices = queue.notices.drain(..n).collect();
        (notices, std::mem::take(&mut queue.dropped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interop::pusher::{Channel, WebhookEvent};

    fn occupied(name: &str) -> Notice {
        Notice::ChannelOccupied {
            channel: Channel::parse(name).unwrap_or_else(|e| panic!("{e}")),
        }
    }

    #[test]
    fn a_full_outbox_drops_its_oldest_and_counts_them() {
        let webhook = Webhook {
            url: "http://127.0.0.1:9/".into(),
            events: WebhookEvent::ALL.to_vec(),
        };
        let outbox = Outbox::new(webhook, "k".into(), "s".into(), 2);
        for name in ["a", "b", "c", "d"] {
            outbox.push(occupied(name));
        }
        let (notices, dropped) = outbox.take(10);
        assert_eq!(notices, vec![occupied("c"), occupied("d")]);
        assert_eq!(dropped, 2);
        assert_eq!(outbox.take(10), (vec![], 0));
    }
}
