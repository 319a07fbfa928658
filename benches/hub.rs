//! Micro-benchmarks of the topic path: encoding a publish once (the push JSON and
//! its WebSocket frame), reading a request, and the hub's fan-out to many local
//! subscribers (what one publish costs per subscriber, without the network), with
//! metrics off and on.
//!
//!     cargo bench --bench hub

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use pushwire::hub::{Hub, HubConfig, Sink, Subscription};
use pushwire::protocol::PushJson;
use pushwire::topic::{Data, Epoch, Push, Topic};

/// A subscriber that only counts: the hub's own cost, nothing else.
struct Counting(AtomicU64);

impl Sink for Counting {
    fn push(&self, _push: &Arc<Push>) -> bool {
        self.0.fetch_add(1, Ordering::Relaxed);
        true
    }
    fn lagged(&self) {}
}

fn topic(name: &str) -> Topic {
    Topic::new(name).unwrap_or_else(|e| panic!("{e}"))
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    let data = Data::json(&br#"{"price":101.25,"symbol":"ACME","seq":123456}"#[..])
        .unwrap_or_else(|e| panic!("{e}"));
    let epoch = Epoch::new("k3J9x0aB").unwrap_or_else(|e| panic!("{e}"));
    let news = topic("market:ACME");
    group.bench_function("push JSON (64 B data)", |b| {
        b.iter(|| {
            let push = Push::message(news.clone(), epoch.clone(), black_box(42), data.clone());
            black_box(push.json().as_str().len());
        })
    });
    group.bench_function("push JSON + WebSocket frame", |b| {
        b.iter(|| {
            let push = Push::message(news.clone(), epoch.clone(), black_box(42), data.clone());
            black_box(push.frame());
        })
    });
    let request =
        r#"{"op":"pub","id":17,"topic":"market:ACME","data":{"price":101.25,"symbol":"ACME"}}"#;
    group.bench_function("parse a pub request", |b| {
        b.iter(|| {
            pushwire::protocol::parse(black_box(request), 65536)
                .1
                .is_ok()
        })
    });
    group.bench_function("validate 64 B of published JSON", |b| {
        b.iter(|| {
            Data::json(black_box(
                &br#"{"price":101.25,"symbol":"ACME","seq":123456}"#[..],
            ))
        })
    });
    group.finish();
}

fn fanout(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("fanout");
    // The same publish with the hub recording into metrics (what `pushwire
    // serve` does by default): the difference is what recording costs.
    for (subscribers, metrics) in [
        (1usize, false),
        (1, true),
        (100, false),
        (100, true),
        (10_000, false),
        (10_000, true),
    ] {
        let hub = Hub::new(HubConfig {
            history: pushwire::topic::HistoryConfig {
                size: 0,
                ..Default::default()
            },
            ..HubConfig::default()
        });
        if metrics {
            hub.attach_metrics(Arc::new(pushwire::ops::Metrics::new()));
        }
        let sink = Arc::new(Counting(AtomicU64::new(0)));
        let t = topic("bench");
        let _subscriptions: Vec<Subscription> = runtime.block_on(async {
            let mut subs = Vec::with_capacity(subscribers);
            for _ in 0..subscribers {
                let pending = hub
                    .subscribe(t.clone(), sink.clone(), None, None)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                subs.push(pending.go_live().unwrap_or_else(|e| panic!("{e}")));
            }
            subs
        });
        let data = Data::text("0123456789012345678901234567890123456789012345678901234567");
        group.throughput(Throughput::Elements(subscribers as u64));
        let name = if metrics {
            format!("publish to {subscribers} subscribers, metrics on")
        } else {
            format!("publish to {subscribers} subscribers")
        };
        group.bench_function(name, |b| {
            b.iter_batched(
                || data.clone(),
                |data| runtime.block_on(hub.publish(&t, data)),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, encode, fanout);
criterion_main!(benches);
