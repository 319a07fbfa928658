//! [`Metrics`]: one node's counters, gauges and histograms, in a registry of its
//! own (not a process-wide recorder: every `App` in a process, as in the tests,
//! reports only its own numbers), encoded in the Prometheus text format.
//!
//! Recording is cheap on purpose: fan-out counts its deliveries once per message
//! (not once per subscriber) and observes the latency once per message; every
//! recording is one to three relaxed atomic adds, never a lock.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::families::{CounterSet, DurationHistogram, GaugeSet};
use super::labels::{CloseLabel, Rejection, Transport};
use super::snapshot::{ConnectionCounts, HistogramSnapshot, MetricsSnapshot};

/// The upper bounds, in seconds, of the latency histograms: 50 µs to 5 s.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
];

const RECOVERED: [&str; 2] = ["true", "false"];

/// What became of the events of Pusher webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookOutcome {
    /// Posted and acknowledged (a 2xx answer).
    Sent,
    /// Given up after the last attempt.
    Failed,
    /// Dropped from a full queue (the oldest ones go first).
    Dropped,
}

impl WebhookOutcome {
    /// The label values: `sent`, `failed`, `dropped`.
    pub const LABELS: [&'static str; 3] = ["sent", "failed", "dropped"];
}

/// One node's metrics. Shared as `Arc<Metrics>` by the hub, the transports and the
/// `/metrics` route of one [`App`](crate::App).
pub struct Metrics {
    registry: Registry,
    connections: GaugeSet,
    subscriptions: Gauge<i64, AtomicI64>,
    topics: Gauge<i64, AtomicI64>,
    published: Counter,
    delivered: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
    latency: DurationHistogram,
    slow_consumers: Counter,
    closes: CounterSet,
    rejections: CounterSet,
    broker_latency: DurationHistogram,
    broker_errors: Counter,
    recoveries: CounterSet,
    token_expiries: Counter,
    webhook_events: CounterSet,
    webhook_retries: Counter,
    journal_failures: Counter,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The `Content-Type` of [`Metrics::encode`]'s text.
    pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

    /// A fresh set of metrics, every value 0, named `pushwire_…`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pushwire");
        let connections = GaugeSet::new("transport", &Transport::LABELS);
        registry.register(
            "connections",
            "Open client connections, by transport (ws, socket, sse, poll, pusher)",
            connections.clone(),
        );
        let subscriptions = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "subscriptions",
            "Subscriptions of this node's clients (live or still recovering)",
            subscriptions.clone(),
        );
        let topics = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "topics",
            "Topics with at least one subscriber on this node",
            topics.clone(),
        );
        let published = Counter::default();
        registry.register(
            "messages_published",
            "Messages published through this node (publish API and /ws)",
            published.clone(),
        );
        let delivered = Counter::default();
        registry.register(
            "messages_delivered",
            "Messages handed to this node's subscribers, one per subscriber",
            delivered.clone(),
        );
        let bytes_in = Counter::default();
        registry.register_with_unit(
            "published",
            "Bytes of message data published through this node",
            Unit::Bytes,
            bytes_in.clone(),
        );
        let bytes_out = Counter::default();
        registry.register_with_unit(
            "delivered",
            "Bytes of message data handed to this node's subscribers",
            Unit::Bytes,
            bytes_out.clone(),
        );
        let latency = DurationHistogram::new(&LATENCY_BUCKETS);
        registry.register_with_unit(
            "publish_latency",
            "From the broker handing a message to this node until every local subscriber's socket or stream has it queued",
            Unit::Seconds,
            latency.clone(),
        );
        let slow_consumers = Counter::default();
        registry.register(
            "slow_consumer_closes",
            "Clients closed or dropped because they could not keep up",
            slow_consumers.clone(),
        );
        let closes = CounterSet::new("code", &CloseLabel::VALUES);
        registry.register(
            "websocket_closes",
            "WebSocket connections closed, by close code (other for codes not listed)",
            closes.clone(),
        );
        let rejections = CounterSet::new("reason", &Rejection::LABELS);
        registry.register(
            "rejected_requests",
            "Requests refused, by reason",
            rejections.clone(),
        );
        let broker_latency = DurationHistogram::new(&LATENCY_BUCKETS);
        registry.register_with_unit(
            "broker_round_trip",
            "Time of each broker call (publish, recover) as the hub waits for it",
            Unit::Seconds,
            broker_latency.clone(),
        );
        let broker_errors = Counter::default();
        registry.register(
            "broker_errors",
            "Broker calls that failed",
            broker_errors.clone(),
        );
        let recoveries = CounterSet::new("recovered", &RECOVERED);
        registry.register(
            "recoveries",
            "Resubscribes from a position, by whether every missed message was recovered",
            recoveries.clone(),
        );
        let token_expiries = Counter::default();
        registry.register(
            "token_expiries",
            "Connections and subscriptions ended because their token expired",
            token_expiries.clone(),
        );
        let webhook_events = CounterSet::new("outcome", &WebhookOutcome::LABELS);
        registry.register(
            "pusher_webhook_events",
            "Events of Pusher webhooks, by outcome: sent, failed (after the last attempt), dropped (queue full)",
            webhook_events.clone(),
        );
        let webhook_retries = Counter::default();
        registry.register(
            "pusher_webhook_retries",
            "Pusher webhook posts that failed and were tried again",
            webhook_retries.clone(),
        );
        let journal_failures = Counter::default();
        registry.register(
            "journal_failures",
            "Publishes that reached their topic but could not be copied into its journal",
            journal_failures.clone(),
        );
        Self {
            registry,
            connections,
            subscriptions,
            topics,
            published,
            delivered,
            bytes_in,
            bytes_out,
            latency,
            slow_consumers,
            closes,
            rejections,
            broker_latency,
            broker_errors,
            recoveries,
            token_expiries,
            webhook_events,
            webhook_retries,
            journal_failures,
        }
    }

    /// The metrics in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; the metrics' own encoders do not.
        if let Err(err) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        {
            tracing::error!(error = %err, "metrics: encoding failed");
        }
        text
    }

    /// The current values, for pages that show them.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let level = |gauge: &Gauge<i64, AtomicI64>| u64::try_from(gauge.get()).unwrap_or(0);
        MetricsSnapshot {
            connections: ConnectionCounts {
                ws: self.connections.get(Transport::Ws.index()),
                socket: self.connections.get(Transport::Socket.index()),
                sse: self.connections.get(Transport::Sse.index()),
                poll: self.connections.get(Transport::Poll.index()),
                pusher: self.connections.get(Transport::Pusher.index()),
                mercure: self.connections.get(Transport::Mercure.index()),
            },
            subscriptions: level(&self.subscriptions),
            topics: level(&self.topics),
            published: self.published.get(),
            delivered: self.delivered.get(),
            bytes_in: self.bytes_in.get(),
            bytes_out: self.bytes_out.get(),
            latency: histogram(&self.latency),
            slow_consumer_closes: self.slow_consumers.get(),
            closes: self.closes.all(),
            rejections: self.rejections.all(),
            broker_latency: histogram(&self.broker_latency),
            broker_errors: self.broker_errors.get(),
            recovered: self.recoveries.get(0),
            not_recovered: self.recoveries.get(1),
            token_expiries: self.token_expiries.get(),
        }
    }

    /// Counts a connection on `transport` as open until the guard is dropped.
    pub fn connection(self: &Arc<Self>, transport: Transport) -> ConnectionGuard {
        self.connections.add(transport.index(), 1);
        ConnectionGuard {
            metrics: Some(Arc::clone(self)),
            transport,
        }
    }

    /// A subscription began (`1`) or ended (`-1`).
    pub fn subscriptions_add(&self, n: i64) {
        self.subscriptions.inc_by(n);
    }

    /// A topic got its first local subscriber (`1`) or lost its last (`-1`).
    pub fn topics_add(&self, n: i64) {
        self.topics.inc_by(n);
    }

    /// A message of `bytes` bytes of data was published.
    pub fn published(&self, bytes: usize) {
        self.published.inc();
        self.bytes_in.inc_by(to_u64(bytes));
    }

    /// One fan-out handed a message of `bytes` bytes to `subscribers` subscribers
    /// in `took`: counted once per message, not once per subscriber.
    pub fn delivered(&self, subscribers: usize, bytes: usize, took: Duration) {
        if subscribers > 0 {
            let n = to_u64(subscribers);
            self.delivered.inc_by(n);
            self.bytes_out.inc_by(n.saturating_mul(to_u64(bytes)));
        }
        self.latency.observe(took);
    }

    /// Messages handed to subscribers outside a fan-out (buffered while they were
    /// subscribing, or recovered from history): counted, no latency.
    pub fn delivered_late(&self, messages: usize, bytes: usize) {
        if messages > 0 {
            self.delivered.inc_by(to_u64(messages));
            self.bytes_out.inc_by(to_u64(bytes));
        }
    }

    /// A client was closed or dropped for not keeping up.
    pub fn slow_consumer(&self) {
        self.slow_consumers.inc();
    }

    /// A WebSocket closed with `code`.
    pub fn closed(&self, code: u16) {
        self.closes.add(CloseLabel::of(code).index(), 1);
    }

    /// A request was refused.
    pub fn rejected(&self, why: Rejection) {
        self.rejections.add(why.index(), 1);
    }

    /// A broker call took `took` and succeeded or failed.
    pub fn broker_call(&self, took: Duration, ok: bool) {
        self.broker_latency.observe(took);
        if !ok {
            self.broker_errors.inc();
        }
    }

    /// A resubscribe from a position recovered every missed message, or could not.
    pub fn recovery(&self, recovered: bool) {
        self.recoveries.add(usize::from(!recovered), 1);
    }

    /// `n` events of Pusher webhooks had `outcome`.
    pub fn webhook_events(&self, outcome: WebhookOutcome, n: usize) {
        self.webhook_events
            .add(outcome as usize, u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// A Pusher webhook post failed and is tried again.
    pub fn webhook_retry(&self) {
        self.webhook_retries.inc();
    }

    /// A published message reached its topic but not its journal.
    pub fn journal_failure(&self) {
        self.journal_failures.inc();
    }

    /// A connection or subscription ended because its token expired.
    pub fn token_expired(&self) {
        self.token_expiries.inc();
    }
}

fn histogram(histogram: &DurationHistogram) -> HistogramSnapshot {
    let (buckets, count, sum) = histogram.read();
    HistogramSnapshot {
        buckets,
        count,
        sum,
    }
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// An open connection, counted in [`Metrics`] until dropped. Holds nothing when
/// metrics are off.
#[derive(Debug)]
pub struct ConnectionGuard {
    metrics: Option<Arc<Metrics>>,
    transport: Transport,
}

impl ConnectionGuard {
    /// Counts a connection on `transport` when `metrics` is there; otherwise a
    /// guard that does nothing.
    pub fn open(metrics: Option<&Arc<Metrics>>, transport: Transport) -> Self {
        match metrics {
            Some(metrics) => metrics.connection(transport),
            None => Self {
                metrics: None,
                transport,
            },
        }
    }
}

impl ConnectionGuard {
    /// The metrics it counts in, if any: where the connection's other events go.
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some(metrics) = &self.metrics {
            metrics.connections.add(self.transport.index(), -1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions_and_every_metric_has_help() {
        let metrics = Arc::new(Metrics::new());
        let _ws = metrics.connection(Transport::Ws);
        metrics.published(10);
        metrics.delivered(3, 10, Duration::from_micros(70));
        metrics.closed(1008);
        metrics.closed(4321);
        metrics.rejected(Rejection::Unauthorized);
        metrics.recovery(false);
        let text = metrics.encode();
        for line in [
            "pushwire_connections{transport=\"ws\"} 1",
            "pushwire_connections{transport=\"sse\"} 0",
            "pushwire_messages_published_total 1",
            "pushwire_messages_delivered_total 3",
            "pushwire_published_bytes_total 10",
            "pushwire_delivered_bytes_total 30",
            "pushwire_publish_latency_seconds_bucket{le=\"5e-05\"} 0",
            "pushwire_publish_latency_seconds_bucket{le=\"0.0001\"} 1",
            "pushwire_publish_latency_seconds_bucket{le=\"+Inf\"} 1",
            "pushwire_publish_latency_seconds_count 1",
            "pushwire_websocket_closes_total{code=\"1008\"} 1",
            "pushwire_websocket_closes_total{code=\"other\"} 1",
            "pushwire_rejected_requests_total{reason=\"unauthorized\"} 1",
            "pushwire_recoveries_total{recovered=\"false\"} 1",
            "pushwire_recoveries_total{recovered=\"true\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!(types, 18);
        assert_eq!(helps, types);
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.connections.ws, 1);
        assert_eq!(snapshot.delivered, 3);
        assert_eq!(snapshot.latency.count, 1);
        assert_eq!(snapshot.not_recovered, 1);
    }

    #[test]
    fn a_dropped_guard_closes_its_connection() {
        let metrics = Arc::new(Metrics::new());
        let guard = ConnectionGuard::open(Some(&metrics), Transport::Sse);
        assert_eq!(metrics.snapshot().connections.sse, 1);
        drop(guard);
        assert_eq!(metrics.snapshot().connections.sse, 0);
        drop(ConnectionGuard::open(None, Transport::Sse));
    }
}
