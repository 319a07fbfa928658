//! `pushwire bench fanout`: N subscribers on one topic and one publisher at R
//! messages per second of S bytes. Each payload carries a sequence number and the
//! time it was sent, so every subscriber checks order and measures
//! publish-to-receive latency. A list of rates (`--rates 100,200,500`) runs one step
//! per rate, on the same connections, and stops at the first step that falls
//! behind: that finds the sustained deliveries per second.
//!
//! `--protocol pusher` runs the same scenario over Pusher Channels: subscribers
//! on a Pusher channel of the app `--app-key` (the client protocol 7 at
//! `/app/{key}`), each message an event triggered through the app's HTTP API
//! (`POST /apps/{id}/events`, signed with `--app-secret`); the event's data is the
//! same payload, so delivery, order and latency are measured as over `/ws`.
//!
//! `--protocol mercure` runs it over Mercure: subscribers are event streams of
//! `GET /.well-known/mercure?match=<topic IRI>` (anonymous, or with `--token` or
//! a token minted from `--jwt-secret`), each message a form POSTed to the hub
//! (`topic`, and `data`: the payload). `--protocol sse` is the same over
//! pushwire's own `/sse?topic=…` and its publish API (`POST /api/publish/{topic}`),
//! so that the two compare at the same load. Both take `http://` URLs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::conn::{Conn, Frame, Target};
use super::mercure;
use super::post_publisher::{PostPublisher, PostTarget};
use super::pusher::{self, AppSigner, EventPublisher};
use super::queued::{Counts, Queued};
use super::sse::SseConn;
use super::stats::{self, Latencies, Report, now_micros};
use super::workers::{self, Workers};
use super::{BenchError, Common, Role, Stop, Subscriber, open_all, open_all_sse, role};
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::{Map, json};

/// Flags of `pushwire bench fanout`.
#[derive(Debug, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    /// How many subscribers.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Messages per second to publish; several (comma-separated) run one step each,
    /// stopping at the first that falls behind.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    rates: Vec<u64>,
    /// Payload size in bytes (at least 40: the sequence number and time take room).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// How long each step publishes.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// How long a step waits for its last messages after publishing stops.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    grace: Duration,
    /// A step falls behind when its p99 latency exceeds this.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    max_p99: Duration,
    /// The topic (protocol mode), or the Pusher channel (`--protocol pusher`).
    #[arg(long, default_value = "bench")]
    topic: String,
    /// Where the publisher connects (default: the first `--url`). With several
    /// `--url`s, one that no subscriber uses measures delivery across a cluster.
    /// With `--protocol pusher`, the server whose HTTP API takes the events
    /// (`ws://` or `http://`; its path is not used).
    #[arg(long)]
    publish_url: Option<String>,
    /// Speak no protocol: subscribers connect to the URL (a `/broadcast` endpoint)
    /// and the publisher sends plain text to it, as the peers in bench/peers/ expect.
    #[arg(long, conflicts_with = "protocol")]
    raw: bool,
    /// The protocol of subscribers and publisher: `topics` (pushwire's, at the
    /// URL's path, `/ws`) or `pusher` (the Pusher client protocol 7; a URL without
    /// a path gets `/app/{key}?protocol=7&client=bench&version=…`; events are
    /// published through the Pusher HTTP API, `POST /apps/{id}/events`).
    #[arg(long, value_enum, default_value_t = FanoutProtocol::Topics)]
    protocol: FanoutProtocol,
    /// The Pusher app's id (`--protocol pusher`).
    #[arg(long, env = "PUSHER_APP_ID")]
    app_id: Option<String>,
    /// The Pusher app's key (`--protocol pusher`).
    #[arg(long, env = "PUSHER_APP_KEY")]
    app_key: Option<String>,
    /// The Pusher app's secret, which signs the HTTP API requests (`--protocol pusher`).
    #[arg(long, env = "PUSHER_APP_SECRET", hide_env_values = true)]
    app_secret: Option<String>,
    /// A bearer token: the Mercure publisher's (and subscribers', unless
    /// `--anonymous`) with `--protocol mercure`; the publish API's key with
    /// `--protocol sse`.
    #[arg(long, env = "PUSHWIRE_BENCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Mint the Mercure token here: an HS256 access token (`typ: at+jwt`) signed
    /// with this secret, granting publish and subscribe on every topic.
    #[arg(
        long,
        env = "PUSHWIRE_BENCH_JWT_SECRET",
        hide_env_values = true,
        conflicts_with = "token"
    )]
    jwt_secret: Option<String>,
    /// The minted token's issuer (`iss`), one the hub trusts.
    #[arg(long, default_value = "bench")]
    jwt_issuer: String,
    /// The minted token's audience (`aud`); by default the hub's URL,
    /// `http://HOST:PORT/.well-known/mercure` of the publisher's server.
    #[arg(long)]
    jwt_audience: Option<String>,
    /// Mercure subscribers send no token (the hub must allow anonymous
    /// subscribers); only the publisher does.
    #[arg(long)]
    anonymous: bool,
}

/// The protocols `pushwire bench fanout` speaks besides `--raw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FanoutProtocol {
    /// pushwire's topic protocol (`/ws`): `sub` and `pub` requests.
    Topics,
    /// Pusher Channels: the client protocol 7 and the HTTP API.
    Pusher,
    /// Mercure: event streams of `/.well-known/mercure?match=…`, forms POSTed
    /// to the hub.
    Mercure,
    /// pushwire's own event streams (`/sse?topic=…`) and publish API.
    Sse,
}

#[derive(Default)]
struct Totals {
    delivered: AtomicU64,
    /// A sequence number other than the one after the previous.
    gaps: AtomicU64,
    /// Subscribers whose connection ended.
    dropped: AtomicU64,
}

/// The data inside a push, or the whole message in raw mode: `"<seq> <micros> x…"`.
fn parse_payload(message: &[u8], raw: bool) -> Option<(u64, u64)> {
    let text = if raw {
        message
    } else {
        let start = memfind(message, b"\"data\":\"")? + 8;
        &message[start..]
    };
    let mut fields = text.split(|&b| b == b' ');
    let seq = ascii_u64(fields.next()?)?;
    let micros = ascii_u64(fields.next()?)?;
    Some((seq, micros))
}

fn memfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn ascii_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// The text one message carries: sequence number, send time, padding to `size`.
fn payload(seq: u64, size: usize) -> String {
    let mut text = format!("{seq} {} ", now_micros());
    while text.len() < size {
        text.push('x');
    }
    text
}

/// How subscribers read what they receive.
#[derive(Clone, Copy)]
struct Reading {
    /// Plain text messages (`--raw`), not JSON.
    raw: bool,
    /// Pusher: answer `pusher:ping`.
    pusher: bool,
}

/// Subscriber connections being read, each by a task of its own.
struct Readers {
    totals: Arc<Totals>,
    latencies: Arc<Latencies>,
    stop: Stop,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Deliveries and gaps already reported by [`Readers::step`].
    reported: (u64, u64),
}

/// What the subscribers saw during one step (or a worker's share of it).
struct Step {
    delivered: u64,
    gaps: u64,
    /// Subscribers whose connection ended, since the start.
    dropped: u64,
    latency: Histogram<u64>,
}

impl Readers {
    fn spawn<C: Subscriber>(subscribers: Vec<C>, reading: Reading) -> Self {
        let totals = Arc::new(Totals::default());
        let latencies = Arc::new(Latencies::new());
        let stop: Stop = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::with_capacity(subscribers.len());
        for (index, mut conn) in subscribers.into_iter().enumerate() {
            let (totals, latencies, stop) = (
                Arc::clone(&totals),
                Arc::clone(&latencies),
                Arc::clone(&stop),
            );
            tasks.push(tokio::spawn(async move {
                let mut last_seq = 0u64;
                let stopped = stop.notified();
                tokio::pin!(stopped);
                loop {
                    let frame = tokio::select! {
                        () = &mut stopped => break,
                        frame = conn.read() => frame,
                    };
                    let mut pong = false;
                    match frame {
                        Ok(Frame::Data(message)) => {
                            let now = now_micros();
                            // Replies and presence events carry no payload of ours.
                            if let Some((seq, sent)) = parse_payload(message, reading.raw) {
                                if seq != last_seq + 1 && last_seq != 0 {
                                    totals.gaps.fetch_add(1, Ordering::Relaxed);
                                }
                                last_seq = seq;
                                totals.delivered.fetch_add(1, Ordering::Relaxed);
                                latencies.record(index, now.saturating_sub(sent));
                            } else {
                                pong = reading.pusher && pusher::is_ping(message);
                            }
                        }
                        Ok(Frame::Closed(_)) | Err(_) => {
                            totals.dropped.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                    if pong && conn.pong().await.is_err() {
                        totals.dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
                conn.finish().await;
            }));
        }
        Self {
            totals,
            latencies,
            stop,
            tasks,
            reported: (0, 0),
        }
    }

    fn delivered(&self) -> u64 {
        self.totals.delivered.load(Ordering::Relaxed)
    }

    /// What arrived since the last step.
    fn step(&mut self) -> Step {
        let delivered = self.delivered();
        let gaps = self.totals.gaps.load(Ordering::Relaxed);
        let step = Step {
            delivered: delivered - self.reported.0,
            gaps: gaps - self.reported.1,
            dropped: self.totals.dropped.load(Ordering::Relaxed),
            latency: self.latencies.take(),
        };
        self.reported = (delivered, gaps);
        step
    }

    async fn close(self) {
        self.stop.notify_waiters();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The subscribers, read here or by worker processes.
enum Receivers {
    Here(Readers),
    Workers(Workers),
}

impl Receivers {
    async fn delivered(&mut self) -> Result<u64, BenchError> {
        match self {
            Self::Here(readers) => Ok(readers.delivered()),
            Self::Workers(workers) => Ok(workers::sum(&workers.ask("count").await?, "delivered")),
        }
    }

    async fn step(&mut self) -> Result<Step, BenchError> {
        match self {
            Self::Here(readers) => Ok(readers.step()),
            Self::Workers(workers) => {
                let answers = workers.ask("report").await?;
                let mut latency = stats::histogram();
                for answer in &answers {
                    workers::add_histogram_json(&mut latency, &answer["latency"]);
                }
                Ok(Step {
                    delivered: workers::sum(&answers, "delivered"),
                    gaps: workers::sum(&answers, "gaps"),
                    dropped: workers::sum(&answers, "dropped"),
                    latency,
                })
            }
        }
    }

    async fn close(self) {
        match self {
            Self::Here(readers) => readers.close().await,
            Self::Workers(workers) => workers.finish(Duration::from_secs(10)).await,
        }
    }
}

/// Who publishes: a `/ws` (or raw) connection, or the Pusher HTTP API.
enum Publisher {
    /// Sends on a WebSocket that a task of its own drains.
    Socket {
        write: pushwire_ws::Sender,
        drain: tokio::task::JoinHandle<()>,
    },
    /// Triggers events through the HTTP API.
    Pusher(Box<Queued>),
    /// POSTs each message: Mercure forms, or the publish API.
    Post(Box<Queued>),
}

impl Publisher {
    /// Requests and answers so far, for the HTTP publishers.
    fn counts(&self) -> Option<Counts> {
        match self {
            Self::Pusher(queued) | Self::Post(queued) => Some(queued.counts()),
            Self::Socket { .. } => None,
        }
    }

    /// The first refusal or lost connection of the HTTP publishers.
    fn failure(&self) -> Option<String> {
        match self {
            Self::Pusher(queued) | Self::Post(queued) => queued.failure(),
            Self::Socket { .. } => None,
        }
    }
}

/// How the event-stream protocols (`mercure`, `sse`) subscribe and publish.
struct Streams {
    /// Mercure (else pushwire's `/sse`).
    mercure: bool,
    /// The Mercure topic IRI, or the pushwire topic.
    topic: String,
    /// Headers of every subscriber's `GET`.
    headers: Vec<(String, String)>,
    /// Where the publisher POSTs, and how.
    post: PostTarget,
}

impl Streams {
    /// Checks the URLs of `--protocol mercure|sse` and gives each subscriber
    /// target its path; mints or takes the token.
    fn new(
        args: &FanoutArgs,
        targets: &mut [Target],
        publish_to: &Target,
    ) -> Result<Self, BenchError> {
        let mercure = args.protocol == FanoutProtocol::Mercure;
        if let Some(ws) = targets.iter().chain([publish_to]).find(|t| !t.is_http()) {
            return Err(BenchError::Usage(format!(
                "--protocol {} takes http:// URLs, not a ws:// one ({})",
                if mercure { "mercure" } else { "sse" },
                ws.authority()
            )));
        }
        let topic = if mercure {
            mercure::topic_iri(&args.topic)
        } else {
            args.topic.clone()
        };
        for target in targets.iter_mut() {
            let path = if mercure {
                mercure::subscriber_path(target.path(), &topic)
            } else if target.path().is_empty() || target.path() == "/" {
                format!("/sse?topic={topic}")
            } else {
                target.path().to_owned()
            };
            *target = target.with_path(&path);
        }
        let token = match (&args.token, &args.jwt_secret) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(secret)) if mercure => {
                let audience = args.jwt_audience.clone().unwrap_or_else(|| {
                    format!("http://{}{}", publish_to.authority(), mercure::HUB_PATH)
                });
                Some(mercure::mint_token(secret, &args.jwt_issuer, &audience))
            }
            (None, Some(_)) => {
                return Err(BenchError::Usage(
                    "--jwt-secret mints Mercure tokens: --protocol mercure".into(),
                ));
            }
            (None, None) => None,
        };
        let authorization = token.map(|token| format!("Bearer {token}"));
        let mut headers = Vec::new();
        if let (true, false, Some(authorization)) = (mercure, args.anonymous, &authorization) {
            headers.push(("Authorization".to_owned(), authorization.clone()));
        }
        let post = if mercure {
            let path = publish_to.path().split('?').next().unwrap_or_default();
            PostTarget {
                addr: publish_to.addr(),
                path: if path.is_empty() || path == "/" {
                    mercure::HUB_PATH.to_owned()
                } else {
                    path.to_owned()
                },
                content_type: "application/x-www-form-urlencoded",
                authorization,
            }
        } else {
            PostTarget {
                addr: publish_to.addr(),
                path: format!("/api/publish/{topic}"),
                content_type: "application/json",
                authorization,
            }
        };
        Ok(Self {
            mercure,
            topic,
            headers,
            post,
        })
    }

    /// The request body that publishes `text`.
    fn body(&self, text: &str) -> String {
        if self.mercure {
            mercure::form(&self.topic, text)
        } else {
            // The payload is digits, spaces and `x`: a JSON string as it is.
            format!("\"{text}\"")
        }
    }
}

/// Subscribers as opened: WebSockets or event streams.
enum Opened {
    Sockets(Vec<Conn>),
    Streams(Vec<SseConn>),
}

impl Opened {
    fn len(&self) -> usize {
        match self {
            Self::Sockets(conns) => conns.len(),
            Self::Streams(conns) => conns.len(),
        }
    }

    /// How many negotiated permessage-deflate.
    fn deflate(&self) -> usize {
        match self {
            Self::Sockets(conns) => conns.iter().filter(|conn| conn.deflate()).count(),
            Self::Streams(_) => 0,
        }
    }

    fn read(self, reading: Reading) -> Readers {
        match self {
            Self::Sockets(conns) => Readers::spawn(conns, reading),
            Self::Streams(conns) => Readers::spawn(conns, reading),
        }
    }
}

/// Opens the `count` subscribers: event streams with `streams`, else WebSockets
/// that `subscribe` prepares.
async fn open_subscribers<F, Fut>(
    common: &Common,
    targets: &[Target],
    count: usize,
    streams: Option<&Streams>,
    subscribe: F,
) -> Result<Opened, BenchError>
where
    F: Fn(Conn) -> Fut,
    Fut: std::future::Future<Output = Result<Conn, String>>,
{
    let Some(streams) = streams else {
        return Ok(Opened::Sockets(
            open_all(common, targets, count, subscribe).await?,
        ));
    };
    let mercure = streams.mercure;
    let conns = open_all_sse(
        common,
        targets,
        count,
        &streams.headers,
        |mut conn| async move {
            // A Mercure hub subscribes before it answers; `/sse` says so in an event.
            if !mercure {
                loop {
                    if let Frame::Closed(_) = conn.next().await? {
                        return Err("the stream ended before `subscribed`".into());
                    }
                    if conn.event_type() == "subscribed" {
                        break;
                    }
                }
            }
            Ok(conn)
        },
    )
    .await?;
    Ok(Opened::Streams(conns))
}

/// The app's signer, with `--protocol pusher`.
fn pusher_signer(args: &FanoutArgs) -> Result<Option<AppSigner>, BenchError> {
    if args.protocol != FanoutProtocol::Pusher {
        return Ok(None);
    }
    let (Some(id), Some(key), Some(secret)) = (&args.app_id, &args.app_key, &args.app_secret)
    else {
        return Err(BenchError::Usage(
            "--protocol pusher needs --app-id, --app-key and --app-secret".into(),
        ));
    };
    pusher::check_channel(&args.topic).map_err(BenchError::Usage)?;
    AppSigner::new(id, key, secret)
        .map(Some)
        .map_err(BenchError::Usage)
}

pub(crate) async fn run(args: FanoutArgs) -> Result<(), BenchError> {
    let common = &args.common;
    let signer = pusher_signer(&args)?;
    let mut targets = common.targets()?;
    if let Some(signer) = &signer {
        // A URL without a path gets the app's.
        let path = pusher::subscriber_path(signer.key());
        for target in &mut targets {
            if target.path().is_empty() || target.path() == "/" {
                *target = target.with_path(&path);
            }
        }
    }
    let publish_to = match &args.publish_url {
        Some(url)
            if signer.is_some()
                && url.starts_with("http://")
                && !matches!(args.protocol, FanoutProtocol::Mercure | FanoutProtocol::Sse) =>
        {
            Target::parse(&url.replacen("http://", "ws://", 1)).map_err(BenchError::Usage)?
        }
        Some(url) => Target::parse(url).map_err(BenchError::Usage)?,
        None => targets
            .first()
            .cloned()
            .ok_or_else(|| BenchError::Usage("no --url".into()))?,
    };
    let streams = match args.protocol {
        FanoutProtocol::Mercure | FanoutProtocol::Sse if args.raw => {
            return Err(BenchError::Usage(
                "--raw is for WebSocket peers, not --protocol mercure|sse".into(),
            ));
        }
        FanoutProtocol::Mercure | FanoutProtocol::Sse => {
            Some(Streams::new(&args, &mut targets, &publish_to)?)
        }
        FanoutProtocol::Topics | FanoutProtocol::Pusher => None,
    };
    if args.size < 40 {
        return Err(BenchError::Usage("--size must be at least 40 bytes".into()));
    }
    if args.rates.is_empty() || args.rates.contains(&0) {
        return Err(BenchError::Usage("--rates must be positive".into()));
    }
    let topic = args.topic.clone();
    let reading = Reading {
        // A Mercure update's data is the payload as published.
        raw: args.raw || args.protocol == FanoutProtocol::Mercure,
        pusher: signer.is_some(),
    };
    let raw = args.raw;
    let subscribe = |mut conn: Conn| {
        let topic = topic.clone();
        async move {
            if raw {
                return Ok(conn);
            }
            if reading.pusher {
                pusher::subscribe(&mut conn, &topic).await?;
                return Ok(conn);
            }
            expect_hello(&mut conn).await?;
            let request = format!(r#"{{"op":"sub","id":1,"topic":"{topic}"}}"#);
            conn.send_text(request).await?;
            loop {
                match conn.next().await? {
                    Frame::Data(reply) if reply.starts_with(b"{\"id\":1,\"ok\"") => {
                        return Ok(conn);
                    }
                    Frame::Data(reply) if reply.starts_with(b"{\"id\":1,") => {
                        return Err(format!("sub refused: {}", String::from_utf8_lossy(reply)));
                    }
                    Frame::Data(_) => {}
                    Frame::Closed(code) => return Err(format!("closed with {code}")),
                }
            }
        }
    };
    // One more file for the publisher.
    let (mut receivers, negotiated, worker_pids) = match role(common, args.subscribers + 1)? {
        Role::Worker(parent) => {
            let subscribers = open_subscribers(
                common,
                &targets,
                args.subscribers,
                streams.as_ref(),
                subscribe,
            )
            .await?;
            let negotiated = subscribers.deflate();
            parent.answer(&json!({ "ready": subscribers.len(), "deflate": negotiated }));
            return serve_parent(parent, subscribers.read(reading)).await;
        }
        Role::Parent(shares) => {
            // The publisher stays here: the shares are of subscribers only.
            let shares = workers::shares(args.subscribers, shares.len());
            let mut workers = Workers::spawn(&shares, "--subscribers")?;
            let answers = workers.ready(common.connect_timeout).await?;
            let pids = workers.pids();
            (
                Receivers::Workers(workers),
                workers::sum(&answers, "deflate") as usize,
                pids,
            )
        }
        Role::Alone => {
            let subscribers = open_subscribers(
                common,
                &targets,
                args.subscribers,
                streams.as_ref(),
                subscribe,
            )
            .await?;
            let negotiated = subscribers.deflate();
            (
                Receivers::Here(subscribers.read(reading)),
                negotiated,
                Vec::new(),
            )
        }
    };
    let publisher_failed = |reason| BenchError::Connect {
        index: args.subscribers,
        reason,
    };
    let mut publisher = match (signer, &streams) {
        (_, Some(streams)) => Publisher::Post(Box::new(
            PostPublisher::connect(streams.post.clone())
                .await
                .map_err(publisher_failed)?,
        )),
        (Some(signer), None) => Publisher::Pusher(Box::new(
            EventPublisher::connect(publish_to.addr(), signer, &args.topic, pusher::EVENT)
                .await
                .map_err(publisher_failed)?,
        )),
        (None, None) => {
            let mut publisher = Conn::open(&publish_to, None, common.deflate)
                .await
                .map_err(publisher_failed)?;
            if !args.raw {
                expect_hello(&mut publisher)
                    .await
                    .map_err(BenchError::Run)?;
            }
            // The publisher's own incoming (replies, or its own broadcasts) is
            // drained by a task of its own, so it never backs up.
            Publisher::Socket {
                write: publisher.sender(),
                drain: tokio::spawn(drain(publisher)),
            }
        }
    };

    let mut report = Report::new(
        match (args.raw, args.protocol) {
            (true, _) => "fanout-raw",
            (false, FanoutProtocol::Pusher) => "fanout-pusher",
            (false, FanoutProtocol::Mercure) => "fanout-mercure",
            (false, FanoutProtocol::Sse) => "fanout-sse",
            (false, FanoutProtocol::Topics) => "fanout",
        },
        &common.label(),
    );
    if let Publisher::Pusher(_) = publisher {
        report.param("protocol", "pusher");
        report.param("channel", args.topic.clone());
    }
    if let Some(streams) = &streams {
        report.param("protocol", if streams.mercure { "mercure" } else { "sse" });
        report.param("topic", streams.topic.clone());
        report.param("publish_path", streams.post.path.clone());
        if streams.mercure {
            report.param("anonymous", streams.headers.is_empty());
        }
    }
    report.param("subscribers", args.subscribers);
    report.param("servers", common.url.len());
    report.param(
        "publish_url",
        args.publish_url
            .clone()
            .or_else(|| common.url.first().cloned())
            .unwrap_or_default(),
    );
    report.param("rates", args.rates.clone());
    report.param("size", args.size);
    report.param("duration_s", args.duration.as_secs_f64());
    report.param("deflate_offered", common.deflate);
    report.param("deflate_negotiated", negotiated);
    report.param("workers", worker_pids.len().max(1));
    let mut seq = 0u64;
    let mut failure = None;
    let mut api_before = publisher.counts().unwrap_or_default();
    for &rate in &args.rates {
        let cpu = stats::CpuMeter::with_workers(&common.pid, worker_pids.clone());
        let started = Instant::now();
        let bar = super::progress(args.duration.as_secs().max(1), &format!("{rate} msg/s"));
        let first_seq = seq + 1;
        let mut sent_this_step = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let delivered_before = receivers.delivered().await?;
        while started.elapsed() < args.duration {
            tick.tick().await;
            let due = (started.elapsed().as_micros() as u64 * rate / 1_000_000)
                .min(args.duration.as_micros() as u64 * rate / 1_000_000);
            while sent_this_step < due {
                seq += 1;
                sent_this_step += 1;
                let text = payload(seq, args.size);
                // Queued: the connection writes what is due in one go.
                let sent = match &mut publisher {
                    Publisher::Pusher(events) => events.publish(text),
                    Publisher::Post(posts) => {
                        let body = streams.as_ref().map(|s| s.body(&text)).unwrap_or_default();
                        posts.publish(body)
                    }
                    Publisher::Socket { write, .. } => {
                        let frame = if args.raw {
                            text
                        } else {
                            format!(
                                r#"{{"op":"pub","id":{seq},"topic":"{}","data":"{text}"}}"#,
                                args.topic
                            )
                        };
                        write
                            .send(frame)
                            .await
                            .map_err(|_| "the publisher's connection failed".to_owned())
                    }
                };
                if let Err(why) = sent {
                    failure = Some(why);
                    break;
                }
            }
            if failure.is_some() {
                break;
            }
            bar.set_position(started.elapsed().as_secs());
        }
        bar.finish_and_clear();
        let published_for = started.elapsed();
        let expected = sent_this_step * args.subscribers as u64;
        // Wait for the stragglers: until everything arrived or the grace is over.
        let grace_end = Instant::now() + args.grace;
        while receivers.delivered().await? - delivered_before < expected
            && Instant::now() < grace_end
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (bench_cpu, server_cpu) = cpu.stop();
        let step = receivers.step().await?;
        let p99_us = if step.latency.is_empty() {
            0
        } else {
            step.latency.value_at_quantile(0.99)
        };
        let behind = step.delivered < expected || p99_us > args.max_p99.as_micros() as u64;
        let mut row = Map::new();
        row.insert("rate".into(), json!(rate));
        row.insert("published".into(), json!(sent_this_step));
        row.insert("first_seq".into(), json!(first_seq));
        row.insert("expected".into(), json!(expected));
        row.insert("delivered".into(), json!(step.delivered));
        row.insert(
            "deliveries_per_s".into(),
            json!((step.delivered as f64 / published_for.as_secs_f64()).round()),
        );
        row.insert("gaps".into(), json!(step.gaps));
        row.insert("dropped".into(), json!(step.dropped));
        row.insert("latency_ms".into(), stats::percentiles_ms(&step.latency));
        row.insert("bench_cpu_pct".into(), json!(bench_cpu));
        row.insert("server_cpu_pct".into(), json!(server_cpu));
        if let Some(counts) = publisher.counts() {
            // Every event the HTTP API refused is a failure of the run.
            // This step's requests and answers.
            row.insert(
                "api_requests".into(),
                json!(counts.requests - api_before.requests),
            );
            row.insert(
                "api_accepted".into(),
                json!(counts.accepted - api_before.accepted),
            );
            row.insert(
                "api_refused".into(),
                json!(counts.refused - api_before.refused),
            );
            api_before = counts;
            if let Some(why) = publisher.failure() {
                failure.get_or_insert(why);
            }
        }
        row.insert("kept_up".into(), json!(!behind));
        report.rows.push(row);
        if behind || failure.is_some() {
            break;
        }
    }
    receivers.close().await;
    if let Publisher::Socket { drain, .. } = publisher {
        drain.abort();
    }
    report.print(common.json);
    match failure {
        Some(failure) => Err(BenchError::Run(failure)),
        None => Ok(()),
    }
}

/// A worker's loop: answers its parent's `count` and `report` until told to stop.
async fn serve_parent(mut parent: workers::Parent, mut readers: Readers) -> Result<(), BenchError> {
    while let Some(command) = parent.command().await {
        match command.trim() {
            "count" => parent.answer(&json!({ "delivered": readers.delivered() })),
            "report" => {
                let step = readers.step();
                parent.answer(&json!({
                    "delivered": step.delivered,
                    "gaps": step.gaps,
                    "dropped": step.dropped,
                    "latency": workers::histogram_to_json(&step.latency),
                }));
            }
            other => parent.answer(&json!({ "error": format!("unknown command {other:?}") })),
        }
    }
    readers.close().await;
    Ok(())
}

/// Reads the topic protocol's hello.
async fn expect_hello(conn: &mut Conn) -> Result<(), String> {
    match conn.next().await? {
        Frame::Data(hello) if hello.starts_with(b"{\"hello\"") => Ok(()),
        Frame::Data(other) => Err(format!(
            "expected a hello, got {}",
            String::from_utf8_lossy(&other[..other.len().min(80)])
        )),
        Frame::Closed(code) => Err(format!("closed with {code}")),
    }
}

/// Reads and discards everything: the publisher needs no replies.
async fn drain(mut publisher: Conn) {
    while let Ok(Frame::Data(_)) = publisher.next().await {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_back() {
        let text = payload(42, 64);
        assert_eq!(text.len(), 64);
        let (seq, _) = parse_payload(text.as_bytes(), true).unwrap_or_default();
        assert_eq!(seq, 42);
        let push = format!(r#"{{"topic":"bench","epoch":"E","offset":9,"data":"{text}"}}"#);
        assert_eq!(parse_payload(push.as_bytes(), false).map(|p| p.0), Some(42));
        assert_eq!(parse_payload(b"{\"id\":1,\"ok\":{}}", false), None);
        assert_eq!(parse_payload(b"hello", true), None);
    }
}
