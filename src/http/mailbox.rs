//! The bounded subscriber SSE streams and long-polls give the hub (a
//! [`Mailbox`] measuring messages by their JSON), and the two steps that
//! subscribe one to its topics.

use std::sync::Arc;

use super::error::HttpError;
use super::query::Wanted;
pub(crate) use crate::hub::mailbox::{MAX_BUFFERED_BYTES, Mailbox};
use crate::hub::{Hub, Pending, Sink, Subscription};
use crate::protocol;
use crate::protocol::PushJson;
use crate::topic::ErrorCode;
use crate::topic::{Positions, Push};

/// The mailbox of an SSE stream or long-poll: at most `limit` messages and
/// `max_bytes` bytes of their JSON (see [`Mailbox`]).
pub(crate) fn mailbox(limit: usize, max_bytes: usize) -> Mailbox {
    Mailbox::new(limit, max_bytes, |push| push.json().as_bytes().len())
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
        let mailbox = super::mailbox(3, MAX_BUFFERED_BYTES);
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
        let full = mailbox(100, json(1) + json(2));
        assert!(full.push(&push(1)));
        assert!(full.push(&push(2)));
        assert!(!full.push(&push(3)), "past the bytes: refused");
        assert_eq!(full.take(10).await.map(|taken| taken.len()), Some(2));
        assert!(full.take(10).await.is_none(), "then the overflow ends it");
        // A single message larger than the limit still gets through.
        let tiny = mailbox(100, 1);
        assert!(tiny.push(&push(1)));
        assert!(!tiny.push(&push(2)));
    }

    #[tokio::test]
    async fn take_waits_for_a_push() {
        let mailbox = Arc::new(mailbox(3, MAX_BUFFERED_BYTES));
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
