//! `pushwire bench soak`: connections churn on every transport while publishers
//! run, and every subscriber checks that its stream has no gap and no duplicate.
//!
//! - **Publishers**: one per topic (`--topics`), together `--rate` messages per
//!   second, half over the publish API and half over `/ws` `pub`; the n-th message
//!   of a topic carries the number n, which is also its offset (topic names are
//!   new for each run).
//! - **Subscribers** (`--connections`), spread over `/ws`, `/sse` and `/poll`: each
//!   subscribes to a few topics, reads for a random lifetime, closes, pauses and
//!   reconnects from its last positions (`since`, `Last-Event-ID`); over `/ws` it
//!   also unsubscribes and resubscribes one topic within a connection. Now and
//!   then one starts afresh with other topics, and now and then one pauses longer
//!   than history covers, so that `recovered: false` happens too.
//! - **Checks** ([`check`]): every answer to a subscription and every message
//!   follows from the subscriber's last position: `recovered: true` and exactly the
//!   next offsets, or `recovered: false` (counted, not a failure); a gap, a
//!   duplicate, a message carrying another message's data, a wrong SSE `id:` or
//!   long-poll `since` is a failure, reported with its details.
//! - **At the end** the publishers stop and every subscriber reconnects once more
//!   and must catch up to the last offset of each of its topics.
//! - **Stalls** are reported, not judged: a `/ws` or `/sse` stream that lacks a
//!   message acknowledged more than 5 s before its connection closed.
//! - **Samples**: with `--pid`, the server's resident memory and open files every
//!   `--sample`, one table row each, with the counters at that time.
//!
//! - **Several nodes** (`--url A,B,C`): each connection goes to a node that
//!   answers 200 on `/readyz`, as a load balancer that checks it would send it
//!   (every node is checked every 100 ms); a publisher leaves a node that stops
//!   being ready. A node that shuts down tells its clients to reconnect (close
//!   1012, an SSE stream's end after `retry:`, a poll answered with `Retry-After`):
//!   counted, not an error, and the subscriber comes back to a ready node. A
//!   publish whose answer was lost is looked up (the topic's position on a ready
//!   node) and sent again only if it did not happen, so every message stays exact.
//! - **`--exact`** (for rolling restarts, `tests/it/drain.rs`): every subscriber
//!   subscribes before the publishers start and keeps its topics; no long pauses;
//!   `recovered: false` is a violation; and at the end each subscriber must have
//!   received exactly every message of each of its topics, from offset 1 on.
//!
//! The run passes when nothing was violated; timing and memory are reported, never
//! judged.

mod check;
mod churn;
pub(crate) mod http;
mod publish;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use tokio_util::sync::CancellationToken;

use super::BenchError;
use super::stats;

/// Flags of `pushwire bench soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// The server's base URL (`http://127.0.0.1:8080`); several (comma-separated
    /// or repeated) for nodes that share a broker: each connection goes to one
    /// that answers 200 on /readyz.
    #[arg(long, value_delimiter = ',', required = true)]
    url: Vec<String>,
    /// Every subscriber gets every message: subscribers subscribe before the
    /// publishers start and keep their topics, no long pauses, `recovered: false`
    /// is a violation, and each must end with every message of its topics.
    #[arg(long)]
    exact: bool,
    /// The server's process id: its memory and open files are sampled.
    #[arg(long)]
    pid: Option<u32>,
    /// How long the churn and the publishers run.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// How many subscribers churn (each holds at most one connection at a time).
    #[arg(long, default_value_t = 240)]
    connections: usize,
    /// The transports the subscribers use, in turn.
    #[arg(long, value_delimiter = ',', default_value = "ws,sse,poll")]
    transports: Vec<Transport>,
    /// How many topics.
    #[arg(long, default_value_t = 6)]
    topics: usize,
    /// At most this many topics per subscriber (each picks 1 to this many).
    #[arg(long, default_value_t = 3)]
    topics_per_subscriber: usize,
    /// Messages published per second, over all topics.
    #[arg(long, default_value_t = 30.0)]
    rate: f64,
    /// The shortest time a connection stays open.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    min_lifetime: Duration,
    /// The longest time a connection stays open.
    #[arg(long, default_value = "8s", value_parser = humantime::parse_duration)]
    max_lifetime: Duration,
    /// The longest pause between two connections of a subscriber.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    max_pause: Duration,
    /// Every this many sessions a subscriber pauses `--long-pause` instead (0: never).
    #[arg(long, default_value_t = 25)]
    long_pause_every: u64,
    /// A pause longer than the server's history covers (its `--history-size`
    /// messages at the topic's rate), so that `recovered: false` is exercised.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    long_pause: Duration,
    /// One session in this many starts afresh, with other topics and no position
    /// (0: never).
    #[arg(long, default_value_t = 10)]
    fresh_every: u64,
    /// The longest a long-poll waits.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    poll_timeout: Duration,
    /// How long the subscribers have to catch up after the publishers stop.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    final_timeout: Duration,
    /// How often the server's memory and open files are sampled.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    sample: Duration,
    /// Print a sample row only every this many samples (all are kept for the
    /// summary).
    #[arg(long, default_value_t = 1)]
    print_every: u64,
}

/// A way in for subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Transport {
    /// WebSocket, `/ws`.
    Ws = 0,
    /// Server-Sent Events, `/sse`.
    Sse = 1,
    /// Long-polling, `/poll`.
    Poll = 2,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Self::Ws => "ws",
            Self::Sse => "sse",
            Self::Poll => "poll",
        }
    }
}

/// What the subscribers need of the flags.
pub(crate) struct Settings {
    topics_per_subscriber: usize,
    min_lifetime: Duration,
    max_lifetime: Duration,
    max_pause: Duration,
    long_pause_every: u64,
    long_pause: Duration,
    fresh_every: u64,
    poll_timeout: Duration,
    final_timeout: Duration,
    exact: bool,
}

/// One topic of the run.
pub(crate) struct TopicState {
    /// Its name.
    name: String,
    /// The first message number whose publish failed: from there on, data is not
    /// checked against offsets (`u64::MAX`: every publish succeeded).
    unclean_from: AtomicU64,
    /// The last acknowledged position.
    last: Mutex<Option<(String, u64)>>,
    /// When the recent publishes were acknowledged: (time, epoch, offset), the
    /// newest last, at most [`ACKS_KEPT`].
    acks: Mutex<std::collections::VecDeque<(tokio::time::Instant, String, u64)>>,
}

/// How many acknowledgements each topic remembers, for the stall report.
const ACKS_KEPT: usize = 512;

impl TopicState {
    fn last(&self) -> Option<(String, u64)> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Remembers that `epoch:offset` was acknowledged now.
    fn acked(&self, epoch: &str, offset: u64) {
        let mut acks = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        if acks.len() == ACKS_KEPT {
            acks.pop_front();
        }
        acks.push_back((tokio::time::Instant::now(), epoch.to_owned(), offset));
    }

    /// The newest position acknowledged between `from` and `to`.
    fn acked_between(
        &self,
        from: tokio::time::Instant,
        to: tokio::time::Instant,
    ) -> Option<(String, u64)> {
        let acks = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        acks.iter()
            .rev()
            .find(|(at, _, _)| *at >= from && *at <= to)
            .map(|(_, epoch, offset)| (epoch.clone(), *offset))
    }
}

/// Counters of the whole run.
#[derive(Default)]
pub(crate) struct Counters {
    sessions: [AtomicU64; 3],
    /// Sessions the server ended by asking the client to reconnect (it shuts down).
    told_to_reconnect: [AtomicU64; 3],
    /// Subscribers whose first subscriptions were all answered.
    first_subscribed: AtomicU64,
    /// Publishes whose answer was lost, found done (or not) on a ready node.
    publishes_resolved: AtomicU64,
    open: [AtomicU64; 3],
    fresh: AtomicU64,
    recovered: AtomicU64,
    not_recovered: AtomicU64,
    unsubscribes: AtomicU64,
    messages: AtomicU64,
    publishes: AtomicU64,
    publish_errors: AtomicU64,
    dropped: AtomicU64,
    long_pauses: AtomicU64,
    caught_up: AtomicU64,
    stalls: AtomicU64,
    violations: AtomicU64,
}

/// One server of the run.
pub(crate) struct Node {
    addr: SocketAddr,
    /// Its `/readyz` answered 200 at the last check.
    ready: std::sync::atomic::AtomicBool,
}

/// What every task shares.
pub(crate) struct Shared {
    nodes: Vec<Node>,
    topics: Vec<TopicState>,
    counters: Counters,
    /// The first violations, with details.
    violations: Mutex<Vec<String>>,
    /// The first errors that are not violations (refused connections, …).
    errors: Mutex<Vec<String>>,
    /// When the run started.
    started: Instant,
}

/// How many violations and errors are kept with their details.
const KEPT: usize = 50;

impl Shared {
    /// A node to connect to: a ready one at random (any one when none is ready);
    /// its index and address.
    fn node(&self) -> (usize, SocketAddr) {
        let ready: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.is_ready(i))
            .collect();
        let i = if ready.is_empty() {
            rand::random_range(0..self.nodes.len())
        } else {
            ready[rand::random_range(0..ready.len())]
        };
        (i, self.nodes[i].addr)
    }

    /// Whether node `i` answered 200 on `/readyz` at the last check.
    fn is_ready(&self, i: usize) -> bool {
        self.nodes[i].ready.load(Ordering::Relaxed)
    }

    /// Records a failure of the protocol's promise.
    fn violation(&self, what: String) {
        self.counters.violations.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.violations.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < KEPT {
            // At once too, so that a run that is cut short still tells.
            eprintln!(
                "soak: {:.0}s: FAULT: {what}",
                self.started.elapsed().as_secs_f64()
            );
            kept.push(what);
        }
    }

    /// Records something that went wrong without breaking a promise.
    fn note_error(&self, what: String) {
        let mut kept = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < KEPT {
            eprintln!(
                "soak: {:.0}s: error: {what}",
                self.started.elapsed().as_secs_f64()
            );
            kept.push(what);
        }
    }
}

/// One sample of the server.
#[derive(Debug, Clone, Copy)]
struct Sample {
    seconds: f64,
    rss_kib: u64,
    fds: u64,
}

pub(crate) async fn run(args: SoakArgs) -> Result<(), BenchError> {
    let nodes = args
        .url
        .iter()
        .map(|url| {
            base_addr(url).map(|addr| Node {
                addr,
                ready: std::sync::atomic::AtomicBool::new(true),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if args.topics == 0 || args.connections == 0 || args.transports.is_empty() {
        return Err(BenchError::Usage(
            "--topics, --connections and --transports must not be empty".into(),
        ));
    }
    if args.rate.is_nan() || args.rate <= 0.0 {
        return Err(BenchError::Usage("--rate must be positive".into()));
    }
    if args.min_lifetime > args.max_lifetime {
        return Err(BenchError::Usage(
            "--min-lifetime must not exceed --max-lifetime".into(),
        ));
    }
    stats::raise_file_limit();
    let run_id: String = (0..6)
        .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
        .collect();
    let shared = Arc::new(Shared {
        nodes,
        topics: (0..args.topics)
            .map(|i| TopicState {
                name: format!("soak-{run_id}-{i}"),
                unclean_from: AtomicU64::new(u64::MAX),
                last: Mutex::new(None),
                acks: Mutex::new(std::collections::VecDeque::new()),
            })
            .collect(),
        counters: Counters::default(),
        violations: Mutex::new(Vec::new()),
        errors: Mutex::new(Vec::new()),
        started: Instant::now(),
    });
    let settings = Arc::new(Settings {
        topics_per_subscriber: args.topics_per_subscriber,
        min_lifetime: args.min_lifetime,
        max_lifetime: args.max_lifetime,
        max_pause: args.max_pause,
        long_pause_every: if args.exact { 0 } else { args.long_pause_every },
        long_pause: args.long_pause,
        fresh_every: if args.exact { 0 } else { args.fresh_every },
        poll_timeout: args.poll_timeout,
        final_timeout: args.final_timeout,
        exact: args.exact,
    });
    println!(
        "soak: {} subscribers over {} churning for {}, {} topics (soak-{run_id}-*), {} msg/s, \
         server {}{}",
        args.connections,
        args.transports
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join("/"),
        humantime::format_duration(args.duration),
        args.topics,
        args.rate,
        args.url.join(","),
        args.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    );

    let stop = CancellationToken::new();
    let balancer_stop = CancellationToken::new();
    let balancer = tokio::spawn(check_nodes(Arc::clone(&shared), balancer_stop.clone()));
    let (finals_tx, finals_rx) = tokio::sync::watch::channel(false);
    let per_topic = args.rate / args.topics as f64;
    let everyone = if args.exact {
        args.connections as u64
    } else {
        0
    };
    let publishers: Vec<_> = (0..args.topics)
        .map(|i| {
            tokio::spawn(publish::run(
                Arc::clone(&shared),
                i,
                per_topic,
                everyone,
                stop.clone(),
            ))
        })
        .collect();
    let churners: Vec<_> = (0..args.connections)
        .map(|i| {
            let transport = args.transports[i % args.transports.len()];
            let deflate = (i / args.transports.len()) % 2 == 1;
            let churner = churn::Churner::new(
                Arc::clone(&shared),
                Arc::clone(&settings),
                transport,
                deflate,
            );
            tokio::spawn(churner.run(stop.clone(), finals_rx.clone()))
        })
        .collect();

    let started = Instant::now();
    let mut samples = Vec::new();
    print_header();
    let mut tick = tokio::time::interval(args.sample.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut taken = 0u64;
    while started.elapsed() < args.duration {
        tick.tick().await;
        let sample = take_sample(args.pid, started);
        if taken.is_multiple_of(args.print_every.max(1)) {
            print_row(&sample, &shared);
        }
        taken += 1;
        samples.push(sample);
    }

    // The end: publishers stop, then every subscriber catches up once more.
    stop.cancel();
    for publisher in publishers {
        let _ = publisher.await;
    }
    let _ = finals_tx.send(true);
    let catching_up = started.elapsed();
    println!(
        "soak: publishers stopped after {}; subscribers catching up",
        humantime::format_duration(Duration::from_secs(catching_up.as_secs()))
    );
    let mut all = futures_util::future::join_all(churners);
    let joined = loop {
        tokio::select! {
            joined = &mut all => break joined,
            _ = tick.tick() => {
                let sample = take_sample(args.pid, started);
                print_row(&sample, &shared);
                samples.push(sample);
            }
        }
    };
    balancer_stop.cancel();
    let _ = balancer.await;
    let panicked = joined.iter().filter(|j| j.is_err()).count();
    if panicked > 0 {
        shared.violation(format!("{panicked} subscriber tasks panicked"));
    }
    // The server after everyone left.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let last = take_sample(args.pid, started);
    print_row(&last, &shared);
    samples.push(last);

    summarize(&args, &shared, &samples)
}

/// Checks every node's `/readyz` every 100 ms until `stop`, as a load balancer
/// does: a node is ready while it answers 200 (within a second).
async fn check_nodes(shared: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut clients: Vec<Option<http::Client>> = shared.nodes.iter().map(|_| None).collect();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        for (i, node) in shared.nodes.iter().enumerate() {
            let check = async {
                if clients[i].is_none() {
                    clients[i] = Some(http::Client::connect(node.addr).await?);
                }
                let Some(client) = clients[i].as_mut() else {
                    return Err(String::from("no connection"));
                };
                let (status, _) = client
                    .fetch(::http::Method::GET, "/readyz", &[], String::new(), 1024)
                    .await?;
                Ok(status == ::http::StatusCode::OK)
            };
            let ready = match tokio::time::timeout(Duration::from_secs(1), check).await {
                Ok(Ok(ready)) => ready,
                Ok(Err(_)) | Err(_) => {
                    clients[i] = None;
                    false
                }
            };
            node.ready.store(ready, Ordering::Relaxed);
        }
    }
}

/// The address in `http://host:port`.
fn base_addr(url: &str) -> Result<SocketAddr, BenchError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| BenchError::Usage(format!("--url {url:?}: expected http://host:port")))?;
    let host = rest.trim_end_matches('/');
    std::net::ToSocketAddrs::to_socket_addrs(host)
        .map_err(|e| BenchError::Usage(format!("cannot resolve {host:?}: {e}")))?
        .next()
        .ok_or_else(|| BenchError::Usage(format!("{host:?} resolves to no address")))
}

fn take_sample(pid: Option<u32>, started: Instant) -> Sample {
    let (rss_kib, fds) = match pid {
        Some(pid) => (
            stats::vm_rss_kib(pid).unwrap_or(0),
            std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count() as u64),
        ),
        None => (0, 0),
    };
    Sample {
        seconds: started.elapsed().as_secs_f64(),
        rss_kib,
        fds,
    }
}

fn print_header() {
    println!(
        "{:>7}  {:>9}  {:>6}  {:>13}  {:>8}  {:>9}  {:>7}  {:>9}  {:>8}  {:>5}  {:>6}",
        "time",
        "rss_MiB",
        "fds",
        "open ws/sse/p",
        "sessions",
        "messages",
        "pubs",
        "recovered",
        "not_rec",
        "drops",
        "FAULTS"
    );
}

fn print_row(sample: &Sample, shared: &Shared) {
    use std::io::Write;
    let c = &shared.counters;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let open = format!(
        "{}/{}/{}",
        load(&c.open[0]),
        load(&c.open[1]),
        load(&c.open[2])
    );
    let sessions: u64 = c.sessions.iter().map(load).sum();
    println!(
        "{:>6}s  {:>9.1}  {:>6}  {:>13}  {:>8}  {:>9}  {:>7}  {:>9}  {:>8}  {:>5}  {:>6}",
        sample.seconds.round() as u64,
        sample.rss_kib as f64 / 1024.0,
        sample.fds,
        open,
        sessions,
        load(&c.messages),
        load(&c.publishes),
        load(&c.recovered),
        load(&c.not_recovered),
        load(&c.dropped),
        load(&c.violations),
    );
    let _ = std::io::stdout().flush();
}

fn summarize(args: &SoakArgs, shared: &Shared, samples: &[Sample]) -> Result<(), BenchError> {
    let c = &shared.counters;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!();
    println!(
        "sessions: ws {}, sse {}, poll {}; subscriptions: {} fresh, {} recovered, {} not \
         recovered (after {} long pauses); {} unsubscribes over /ws",
        load(&c.sessions[0]),
        load(&c.sessions[1]),
        load(&c.sessions[2]),
        load(&c.fresh),
        load(&c.recovered),
        load(&c.not_recovered),
        load(&c.long_pauses),
        load(&c.unsubscribes)
    );
    println!(
        "messages: {} published ({} publish errors), {} delivered and checked; {} of {} \
         subscribers caught up at the end; {} sessions ended by an error",
        load(&c.publishes),
        load(&c.publish_errors),
        load(&c.messages),
        load(&c.caught_up),
        args.connections,
        load(&c.dropped)
    );
    if c.told_to_reconnect.iter().any(|n| load(n) > 0) || shared.nodes.len() > 1 {
        println!(
            "told to reconnect by a node shutting down: ws {}, sse {}, poll {}; {} publishes \
             whose answer was lost were looked up",
            load(&c.told_to_reconnect[0]),
            load(&c.told_to_reconnect[1]),
            load(&c.told_to_reconnect[2]),
            load(&c.publishes_resolved)
        );
    }
    println!(
        "live delivery: {} stalls (a /ws or /sse stream without a message that was \
         acknowledged more than {} before its connection closed; reported, not judged)",
        load(&c.stalls),
        humantime::format_duration(churn::STALL_GRACE)
    );
    if let (Some(first), Some(last)) = (samples.first(), samples.last())
        && args.pid.is_some()
    {
        let peak = samples.iter().max_by_key(|s| s.rss_kib).unwrap_or(first);
        let peak_fds = samples.iter().map(|s| s.fds).max().unwrap_or(0);
        println!(
            "server RSS: start {:.1} MiB, peak {:.1} MiB (at {}s), end {:.1} MiB; open files: \
             start {}, peak {}, end {}",
            first.rss_kib as f64 / 1024.0,
            peak.rss_kib as f64 / 1024.0,
            peak.seconds.round() as u64,
            last.rss_kib as f64 / 1024.0,
            first.fds,
            peak_fds,
            last.fds
        );
    }
    let errors = shared.errors.lock().unwrap_or_else(|p| p.into_inner());
    if !errors.is_empty() {
        println!("errors (not failures; the first {}):", errors.len());
        for error in errors.iter() {
            println!("  {error}");
        }
    }
    let violations = shared.violations.lock().unwrap_or_else(|p| p.into_inner());
    let faults = load(&c.violations);
    if faults == 0 && load(&c.caught_up) == args.connections as u64 {
        println!(
            "soak: PASS: {} messages checked on {} sessions, no gap, no duplicate",
            load(&c.messages),
            c.sessions.iter().map(load).sum::<u64>()
        );
        println!("test result: ok. 1 passed; 0 failed (soak: zero loss)");
        return Ok(());
    }
    println!("failures (the first {}):", violations.len());
    for violation in violations.iter() {
        println!("  {violation}");
    }
    println!("test result: FAILED. 0 passed; 1 failed (soak: zero loss)");
    Err(BenchError::Run(format!(
        "soak: FAIL: {faults} violations; {} of {} subscribers caught up",
        load(&c.caught_up),
        args.connections
    )))
}
