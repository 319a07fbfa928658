//! [`MetricsSnapshot`]: the current values of a node's metrics as a plain struct,
//! for pages that show them (the admin page) rather than scrape them.

/// Open connections per transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionCounts {
    /// `/ws` clients of our protocol.
    pub ws: u64,
    /// Clients of the app's own WebSocket routes (`App::socket`).
    pub socket: u64,
    /// Open SSE streams.
    pub sse: u64,
    /// Waiting long-polls.
    pub poll: u64,
    /// Pusher Channels clients (`/app/{key}`).
    pub pusher: u64,
    /// Mercure subscribers' streams (`/.well-known/mercure`).
    pub mercure: u64,
}

impl ConnectionCounts {
    /// All of them together.
    pub fn total(&self) -> u64 {
        self.ws
            .saturating_add(self.socket)
            .saturating_add(self.sse)
            .saturating_add(self.poll)
            .saturating_add(self.pusher)
            .saturating_add(self.mercure)
    }
}

/// A histogram's state: cumulative counts per upper bound (seconds; the last bound
/// is `f64::INFINITY` and its count equals `count`), the count and the sum.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations at or below it)`, bounds increasing.
    pub buckets: Vec<(f64, u64)>,
    /// Observations.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum: f64,
}

/// The current values of a node's metrics ([`crate::ops::Metrics::snapshot`]).
/// Counters count since the node started; fields may be added, none renamed.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Open connections per transport.
    pub connections: ConnectionCounts,
    /// Live and starting subscriptions on this node.
    pub subscriptions: u64,
    /// Topics with at least one subscriber on this node.
    pub topics: u64,
    /// Messages published through this node.
    pub published: u64,
    /// Messages handed to this node's subscribers (one per subscriber).
    pub delivered: u64,
    /// Bytes of message data published through this node.
    pub bytes_in: u64,
    /// Bytes of message data handed to this node's subscribers.
    pub bytes_out: u64,
    /// From the broker handing a message to this node until every local
    /// subscriber has it queued.
    pub latency: HistogramSnapshot,
    /// Clients closed or dropped because they could not keep up.
    pub slow_consumer_closes: u64,
    /// WebSocket closes per close code label (`"1000"`, …, `"other"`).
    pub closes: Vec<(&'static str, u64)>,
    /// Refused requests per reason label (`"unauthorized"`, …).
    pub rejections: Vec<(&'static str, u64)>,
    /// Broker calls (publish, recover) and how long they took.
    pub broker_latency: HistogramSnapshot,
    /// Broker calls that failed.
    pub broker_errors: u64,
    /// Resubscribes that recovered every missed message.
    pub recovered: u64,
    /// Resubscribes that could not.
    pub not_recovered: u64,
    /// Connections and subscriptions ended because their token expired.
    pub token_expiries: u64,
}
