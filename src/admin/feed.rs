//! The admin page's data: once a second the node publishes an [`AdminSnapshot`] on
//! the system topic [`ADMIN_TOPIC`] (`$sys/admin`), delivered to this node's
//! subscribers only, which only a `/ws` connection opened with the admin
//! credential may be (see `docs/operations.md`, "Admin page"). The figures come
//! from the node's [`Metrics`], the topics from the hub, the nodes from the
//! heartbeat ([`super::nodes`]), the errors from the ring of [`crate::ops::errors`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::nodes::NodeList;
use crate::broker::NodeInfo;
use crate::clock::unix_millis;
use crate::hub::Hub;
use crate::ops::{ErrorEvent, Metrics, MetricsSnapshot, recent_errors};
use crate::topic::{Data, Topic};

/// The system topic the snapshots are published on.
pub const ADMIN_TOPIC: &str = "$sys/admin";

/// How often a snapshot is published.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

/// The most topics a snapshot lists (the most subscribed); `topic_count` counts
/// them all.
pub const MAX_LISTED_TOPICS: usize = 100;

/// The figures of a snapshot that come from the node's metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AdminNumbers {
    /// Open connections by transport: `ws` (our protocol), `sse`, `poll`,
    /// `socket` (the app's own WebSocket routes), `pusher` (Pusher Channels) and
    /// `mercure` (Mercure subscribers).
    pub connections: BTreeMap<String, u64>,
    /// Messages published since the start.
    pub published: u64,
    /// Messages delivered to subscribers since the start.
    pub delivered: u64,
    /// The publish-to-socket latency histogram: each bucket's upper bound in
    /// seconds and how many deliveries took at most that long (cumulative, as
    /// Prometheus counts them; the last bound is `+Inf`, written `null`).
    pub latency: Vec<LatencyBucket>,
}

impl From<&MetricsSnapshot> for AdminNumbers {
    fn from(metrics: &MetricsSnapshot) -> Self {
        let c = &metrics.connections;
        Self {
            connections: [
                ("ws", c.ws),
                ("sse", c.sse),
                ("poll", c.poll),
                ("socket", c.socket),
                ("pusher", c.pusher),
                ("mercure", c.mercure),
            ]
            .into_iter()
            .map(|(name, n)| (name.to_owned(), n))
            .collect(),
            published: metrics.published,
            delivered: metrics.delivered,
            latency: metrics
                .latency
                .buckets
                .iter()
                .map(|&(le, count)| LatencyBucket {
                    le: le.is_finite().then_some(le),
                    count,
                })
                .collect(),
        }
    }
}

/// One bucket of a cumulative histogram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyBucket {
    /// The upper bound in seconds; `None` for `+Inf`.
    pub le: Option<f64>,
    /// How many observations were at most `le`.
    pub count: u64,
}

/// A topic with local subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicCount {
    /// Its name.
    pub topic: String,
    /// How many subscribers it has on this node.
    pub subscribers: usize,
}

/// What the admin page shows, as published on [`ADMIN_TOPIC`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdminSnapshot {
    /// The node that published it.
    pub node: NodeInfo,
    /// When (Unix milliseconds).
    pub time: u64,
    /// The figures from the metrics (connections, totals, latency).
    #[serde(flatten)]
    pub numbers: AdminNumbers,
    /// Messages published per second over the last interval.
    pub published_per_second: f64,
    /// Messages delivered per second over the last interval.
    pub delivered_per_second: f64,
    /// How many topics have local subscribers.
    pub topic_count: usize,
    /// The most subscribed of them (at most [`MAX_LISTED_TOPICS`]).
    pub topics: Vec<TopicCount>,
    /// The nodes sharing the broker, this one included.
    pub nodes: Vec<NodeInfo>,
    /// The latest warn and error log events, oldest first.
    pub errors: Vec<ErrorEvent>,
}

/// Publishes a snapshot every [`SNAPSHOT_EVERY`] (while anyone subscribes) until
/// `stop` is cancelled; the figures come from `metrics` (zero without).
pub async fn publish_snapshots(
    hub: Hub,
    me: NodeInfo,
    nodes: NodeList,
    metrics: Option<Arc<Metrics>>,
    stop: CancellationToken,
) {
    let topic = match Topic::new_or_system(ADMIN_TOPIC) {
        Ok(topic) => topic,
        Err(err) => {
            tracing::error!(error = %err, "admin page: no system topic");
            return;
        }
    };
    let mut every = tokio::time::interval(SNAPSHOT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<(u64, AdminNumbers)> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let now = unix_millis();
        let figures = metrics
            .as_ref()
            .map(|metrics| AdminNumbers::from(&metrics.snapshot()))
            .unwrap_or_default();
        let (published_per_second, delivered_per_second) = match &last {
            Some((then, before)) if now > *then => {
                let secs = (now - then) as f64 / 1000.0;
                (
                    figures.published.saturating_sub(before.published) as f64 / secs,
                    figures.delivered.saturating_sub(before.delivered) as f64 / secs,
                )
            }
            _ => (0.0, 0.0),
        };
        last = Some((now, figures.clone()));
        if hub.subscriber_count(&topic) == 0 {
            continue;
        }
        let counts = hub.topic_counts(usize::MAX);
        let mut node = me.clone();
        node.seen = now;
        let snapshot = AdminSnapshot {
            node,
            time: now,
            numbers: figures,
            published_per_second,
            delivered_per_second,
            topic_count: counts.len(),
            topics: counts
                .into_iter()
                .take(MAX_LISTED_TOPICS)
                .map(|(topic, subscribers)| TopicCount {
                    topic: topic.to_string(),
                    subscribers,
                })
                .collect(),
            nodes: nodes.get(),
            errors: recent_errors(),
        };
        match serde_json::to_vec(&snapshot)
            .map_err(|err| err.to_string())
            .and_then(|json| Data::json(json).map_err(|err| err.to_string()))
        {
            Ok(data) => {
                hub.publish_system(&topic, data);
            }
            Err(err) => tracing::debug!(error = %err, "admin page: snapshot not encoded"),
        }
    }
}
