//! pushwire-bench, the load generator behind `pushwire bench` (also installed as
//! the `pushwire-bench` binary): load scenarios against a running server — ours, or any peer
//! that offers the same endpoints — measured by the same tool.
//!
//! - `counter`: N connections, each expecting its own counter ("1", "2", … every
//!   period): messages per second, gaps, inter-arrival jitter;
//! - `fanout`: N subscribers on one topic and a publisher at R messages per second
//!   of S bytes: delivered/expected, deliveries per second, publish-to-receive
//!   latency (a timestamp travels in each payload); a list of rates finds where
//!   delivery falls behind;
//! - `echo`: C connections, each sending a message and waiting for it to come back:
//!   round trips per second and their latency;
//! - `idle`: N connections held open: the server's memory per connection.
//! - `soak`: connections churn on every transport while publishers run; every
//!   stream is checked for gaps and duplicates (see `scripts/soak`).
//!
//! With `--protocol pusher`, fanout's subscribers speak the Pusher client protocol
//! (version 7, at `/app/{key}`) and its publisher the Pusher HTTP API, signed as
//! Pusher's SDKs sign it: pushwire's Pusher side and other Pusher servers (soketi)
//! are measured alike.
//!
//! With `--protocol mercure`, fanout's subscribers are Server-Sent Events streams
//! of a Mercure hub (`GET /.well-known/mercure?match=…`) and its publisher POSTs
//! Mercure's forms; `--protocol sse` is the same over pushwire's own `/sse` and
//! publish API. `idle` holds event streams instead of WebSockets when its URL is
//! `http://…`: the server's memory per idle SSE (or Mercure) subscriber.
//!
//! With `--raw`, fanout speaks no protocol: subscribers connect to a `/broadcast`
//! endpoint and the publisher sends plain text to it, which is what the peers in
//! `bench/peers/` offer. Every scenario reports the processor time it used itself
//! next to the server's (with `--pid`), since both share the machine.

mod conn;
mod counter;
mod echo;
mod fanout;
mod idle;
mod mercure;
mod post_publisher;
mod pusher;
mod queued;
mod soak;
mod sse;
mod stats;
mod workers;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use futures_util::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};

use self::conn::{Conn, Frame, Target};
use self::sse::SseConn;

/// Scenarios of `pushwire bench`.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// N connections each expecting its own 1 Hz counter (the demo's /socket).
    Counter(counter::CounterArgs),
    /// N subscribers on a topic, a publisher at R msg/s: delivery and latency.
    // Boxed: its flags are many, and the other scenarios should not pay for them.
    Fanout(Box<fanout::FanoutArgs>),
    /// C connections ping-ponging with an echo server: round trips and latency.
    Echo(echo::EchoArgs),
    /// Hold N idle WebSockets open and report the server's memory per connection.
    Idle(idle::IdleArgs),
    /// Churn connections on every transport while publishers run; check every
    /// stream for gaps and duplicates; sample the server's memory.
    Soak(soak::SoakArgs),
}

/// Flags every scenario shares.
#[derive(Debug, Clone, Args)]
pub(crate) struct Common {
    /// The server's WebSocket URL; its path is the scenario's endpoint. Repeat it to
    /// spread the connections over several servers (the nodes of a cluster), in turn.
    #[arg(long, required = true)]
    url: Vec<String>,
    /// The server's process id: its memory and processor time are reported too.
    /// Repeat it for several servers: their figures are summed.
    #[arg(long)]
    pid: Vec<u32>,
    /// Offer permessage-deflate in each handshake (as browsers do).
    #[arg(long)]
    deflate: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// A name for the server in the report (default: the URL).
    #[arg(long)]
    label: Option<String>,
    /// Spread connections over this many loopback source addresses (127.0.0.1,
    /// .2, …); by default one per 20,000 connections.
    #[arg(long)]
    sources: Option<usize>,
    /// How many handshakes may be in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Give up when the connections are not all open (and subscribed) after this long.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// Spread the connections over this many processes (each within its file
    /// limit, each with its own source addresses); by default as many as the
    /// file limit requires.
    #[arg(long)]
    workers: Option<usize>,
    /// Run as worker N of a parent `pushwire bench` (set by the parent).
    #[arg(long, hide = true)]
    worker_index: Option<usize>,
}

impl Common {
    fn label(&self) -> String {
        self.label.clone().unwrap_or_else(|| self.url.join(" "))
    }

    /// The WebSocket servers to connect to (`ws://` URLs only), in the order
    /// connections take them.
    fn ws_targets(&self) -> Result<Vec<Target>, BenchError> {
        if let Some(url) = self.url.iter().find(|url| !url.starts_with("ws://")) {
            return Err(BenchError::Usage(format!(
                "invalid URL {url:?}: expected ws://host:port/path (this scenario speaks WebSocket)"
            )));
        }
        self.targets()
    }

    /// The servers to connect to, in the order connections take them.
    fn targets(&self) -> Result<Vec<Target>, BenchError> {
        self.url
            .iter()
            .map(|url| Target::parse(url).map_err(BenchError::Usage))
            .collect()
    }
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag's value cannot work.
    #[error("{0}")]
    Usage(String),
    /// A connection failed.
    #[error("connection {index} failed: {reason}")]
    Connect {
        /// Which connection (0-based).
        index: usize,
        /// What went wrong.
        reason: String,
    },
    /// More connections than this process may open.
    #[error(
        "{wanted} connections need more file descriptors than this process's limit of {limit} \
         (use more --workers)"
    )]
    FileLimit {
        /// Connections asked for.
        wanted: usize,
        /// The limit on open files.
        limit: u64,
    },
    /// The run failed after it started.
    #[error("{0}")]
    Run(String),
}

pub async fn run(scenario: Scenario) -> Result<(), BenchError> {
    match scenario {
        Scenario::Counter(args) => counter::run(args).await,
        Scenario::Fanout(args) => fanout::run(*args).await,
        Scenario::Echo(args) => echo::run(args).await,
        Scenario::Idle(args) => idle::run(args).await,
        Scenario::Soak(args) => soak::run(args).await,
    }
}

/// Checks that `connections` fit under the file limit (raised to the hard one).
fn check_file_limit(connections: usize) -> Result<u64, BenchError> {
    let limit = stats::raise_file_limit();
    if connections as u64 + 64 > limit {
        return Err(BenchError::FileLimit {
            wanted: connections,
            limit,
        });
    }
    Ok(limit)
}

/// Who holds a scenario's connections.
enum Role {
    /// This process, alone.
    Alone,
    /// Worker processes, one per share; this process drives them.
    Parent(Vec<usize>),
    /// This process is a worker, driven by its parent.
    Worker(workers::Parent),
}

/// Decides who holds `connections`, from `--workers` and the file limit.
fn role(common: &Common, connections: usize) -> Result<Role, BenchError> {
    if common.worker_index.is_some() {
        check_file_limit(connections)?;
        return Ok(Role::Worker(workers::Parent::new()));
    }
    let count = common
        .workers
        .unwrap_or_else(|| connections.div_ceil(workers::per_process()))
        .max(1);
    if count == 1 {
        check_file_limit(connections)?;
        return Ok(Role::Alone);
    }
    let shares = workers::shares(connections, count);
    let limit = stats::raise_file_limit();
    if let Some(&largest) = shares.first()
        && largest as u64 + 64 > limit
    {
        return Err(BenchError::FileLimit {
            wanted: largest,
            limit,
        });
    }
    Ok(Role::Parent(shares))
}

/// A progress bar on standard error (hidden when it is not a terminal).
fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({elapsed})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// A connection a scenario reads: a WebSocket ([`Conn`]) or an event stream
/// ([`SseConn`]).
pub(crate) trait Subscriber: Send + Sized + 'static {
    /// The next message (an event's data, for a stream).
    fn read(&mut self) -> impl Future<Output = Result<Frame<'_>, String>> + Send;
    /// Answers a Pusher server's `pusher:ping` (a stream has nothing to answer).
    fn pong(&mut self) -> impl Future<Output = Result<(), String>> + Send;
    /// Ends the connection.
    fn finish(self) -> impl Future<Output = ()> + Send;
}

impl Subscriber for Conn {
    async fn read(&mut self) -> Result<Frame<'_>, String> {
        self.next().await
    }

    async fn pong(&mut self) -> Result<(), String> {
        self.send_text(pusher::PONG.to_owned()).await
    }

    async fn finish(self) {
        self.close().await;
    }
}

impl Subscriber for SseConn {
    async fn read(&mut self) -> Result<Frame<'_>, String> {
        self.next().await
    }

    async fn pong(&mut self) -> Result<(), String> {
        Ok(())
    }

    async fn finish(self) {}
}

/// Opens `count` WebSockets to the `targets` in turn, `concurrency` handshakes at a
/// time, spread over the source addresses; `prepare` runs on each (to subscribe, for
/// one) before it counts as open.
async fn open_all<F, Fut>(
    common: &Common,
    targets: &[Target],
    count: usize,
    prepare: F,
) -> Result<Vec<Conn>, BenchError>
where
    F: Fn(Conn) -> Fut,
    Fut: std::future::Future<Output = Result<Conn, String>>,
{
    if let Some(http) = targets.iter().find(|target| target.is_http()) {
        return Err(BenchError::Usage(format!(
            "{} is http://: this scenario speaks WebSocket (ws://)",
            http.path()
        )));
    }
    let deflate = common.deflate;
    open_each(
        common,
        targets,
        count,
        move |target, source| async move { Conn::open(&target, source, deflate).await },
        prepare,
    )
    .await
}

/// Opens `count` event streams (`GET` with `headers`) to the `targets` in turn, as
/// [`open_all`] opens WebSockets.
async fn open_all_sse<F, Fut>(
    common: &Common,
    targets: &[Target],
    count: usize,
    headers: &[(String, String)],
    prepare: F,
) -> Result<Vec<SseConn>, BenchError>
where
    F: Fn(SseConn) -> Fut,
    Fut: std::future::Future<Output = Result<SseConn, String>>,
{
    open_each(
        common,
        targets,
        count,
        |target, source| async move { SseConn::open(&target, source, headers).await },
        prepare,
    )
    .await
}

/// Opens `count` connections with `open`, to the `targets` in turn, `concurrency`
/// at a time, spread over the source addresses; `prepare` runs on each before it
/// counts as open.
async fn open_each<C, O, OFut, F, Fut>(
    common: &Common,
    targets: &[Target],
    count: usize,
    open: O,
    prepare: F,
) -> Result<Vec<C>, BenchError>
where
    C: Subscriber,
    O: Fn(Target, Option<IpAddr>) -> OFut,
    OFut: std::future::Future<Output = Result<C, String>>,
    F: Fn(C) -> Fut,
    Fut: std::future::Future<Output = Result<C, String>>,
{
    let per_worker = common.sources.unwrap_or(count.div_ceil(20_000));
    let skip = common.worker_index.unwrap_or(0) * per_worker.max(1);
    let Some(first) = targets.first() else {
        return Err(BenchError::Usage("no --url".into()));
    };
    let sources: Vec<Option<IpAddr>> = conn::sources(per_worker, skip, first);
    let bar = progress(count as u64, "connecting");
    let (open, prepare) = (&open, &prepare);
    // Connections already open are kept alive while the others open: a task per
    // connection answers the server's pings (a server may close a connection it
    // has heard nothing from, and opening tens of thousands can take minutes).
    let (release, released) = tokio::sync::watch::channel(false);
    let opening = futures_util::stream::iter(0..count)
        .map(|i| {
            let source = sources[i % sources.len()];
            let target = &targets[i % targets.len()];
            let bar = bar.clone();
            let released = released.clone();
            async move {
                let conn = open(target.clone(), source).await?;
                let conn = prepare(conn).await?;
                bar.inc(1);
                Ok::<_, String>(tokio::spawn(keep_alive(conn, released)))
            }
        })
        .buffered(common.concurrency.max(1))
        .collect::<Vec<Result<_, String>>>();
    let results = tokio::time::timeout(common.connect_timeout, opening).await;
    let opened = bar.position();
    bar.finish_and_clear();
    let _ = release.send(true);
    let Ok(results) = results else {
        return Err(BenchError::Run(format!(
            "only {opened} of {count} connections were open after {} (--connect-timeout)",
            humantime::format_duration(common.connect_timeout)
        )));
    };
    let mut conns = Vec::with_capacity(count);
    for (index, result) in results.into_iter().enumerate() {
        let kept = result.map_err(|reason| BenchError::Connect {
            index,
            reason: reason.clone(),
        })?;
        let conn = kept
            .await
            .map_err(|e| e.to_string())
            .and_then(|kept| kept)
            .map_err(|reason| BenchError::Connect {
                index,
                reason: format!("closed while the others opened: {reason}"),
            })?;
        conns.push(conn);
    }
    Ok(conns)
}

/// Reads `conn` (which answers pings, and a Pusher server's `pusher:ping`; data is
/// dropped: nothing is measured yet) until `released`, then hands it back.
async fn keep_alive<C: Subscriber>(
    mut conn: C,
    mut released: tokio::sync::watch::Receiver<bool>,
) -> Result<C, String> {
    loop {
        let frame = tokio::select! {
            biased;
            _ = released.wait_for(|released| *released) => return Ok(conn),
            frame = conn.read() => frame,
        };
        // A Pusher server pings a quiet connection and closes it without a pong.
        let ping = match frame? {
            Frame::Data(message) => pusher::is_ping(message),
            Frame::Closed(code) => return Err(format!("the server closed it ({code})")),
        };
        if ping {
            conn.pong().await?;
        }
    }
}

/// A stop signal shared by every connection task.
type Stop = Arc<tokio::sync::Notify>;

/// Waits `duration` with a progress bar.
async fn hold(duration: Duration, what: &str) {
    let bar = progress(duration.as_secs().max(1), what);
    let step = Duration::from_millis(250);
    let started = std::time::Instant::now();
    while started.elapsed() < duration {
        tokio::time::sleep(step.min(duration.saturating_sub(started.elapsed()))).await;
        bar.set_position(started.elapsed().as_secs());
    }
    bar.finish_and_clear();
}
