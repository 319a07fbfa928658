//! `pushwire bench idle`: what an idle WebSocket costs the server, or an idle
//! event stream when the URL is `http://…` (pushwire's `/sse?topic=…`, a Mercure
//! hub's `/.well-known/mercure?match=…`): each is a `GET` held open and read.

use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Map, json};

use super::stats::{self, Report};
use super::workers::{self, Workers};
use super::{BenchError, Common, Role, hold, open_all, open_all_sse, role};

/// Flags of `pushwire bench idle`.
#[derive(Debug, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// How many connections to open and hold.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// How long to hold the connections after the last one opened.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    hold: Duration,
    /// With an `http://` URL: a bearer token every stream's `GET` shows (a
    /// Mercure subscriber's).
    #[arg(long, env = "PUSHWIRE_BENCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// The connections a process holds: WebSockets or event streams.
enum Held {
    Sockets(Vec<super::conn::Conn>),
    Streams(Vec<super::sse::SseConn>),
}

impl Held {
    /// Opens `count` connections: event streams when the URLs are `http://`.
    async fn open(
        common: &Common,
        targets: &[super::conn::Target],
        count: usize,
        token: Option<&str>,
    ) -> Result<Self, BenchError> {
        if targets.iter().any(super::conn::Target::is_http) {
            let headers: Vec<(String, String)> = token
                .map(|token| vec![("Authorization".to_owned(), format!("Bearer {token}"))])
                .unwrap_or_default();
            let streams =
                open_all_sse(common, targets, count, &headers, |conn| async { Ok(conn) }).await?;
            return Ok(Self::Streams(streams));
        }
        let conns = open_all(common, targets, count, |conn| async { Ok(conn) }).await?;
        Ok(Self::Sockets(conns))
    }

    fn len(&self) -> usize {
        match self {
            Self::Sockets(conns) => conns.len(),
            Self::Streams(streams) => streams.len(),
        }
    }

    /// How many negotiated permessage-deflate.
    fn deflate(&self) -> usize {
        match self {
            Self::Sockets(conns) => conns.iter().filter(|c| c.deflate()).count(),
            Self::Streams(_) => 0,
        }
    }
}

pub(crate) async fn run(args: IdleArgs) -> Result<(), BenchError> {
    let common = &args.common;
    let targets = common.targets()?;
    let role = role(common, args.connections)?;
    let before = stats::servers_rss_kib(&common.pid).map_err(BenchError::Run)?;
    let started = Instant::now();
    // The connections, held here or by the workers until the end of this function.
    let (held, workers, opened, negotiated, cpu) = match role {
        Role::Worker(mut parent) => {
            let conns =
                Held::open(common, &targets, args.connections, args.token.as_deref()).await?;
            let negotiated = conns.deflate();
            parent.answer(&json!({ "ready": conns.len(), "deflate": negotiated }));
            // Hold them until the parent is done.
            while parent.command().await.is_some() {}
            return Ok(());
        }
        Role::Parent(shares) => {
            let mut workers = Workers::spawn(&shares, "--connections")?;
            let cpu = stats::CpuMeter::with_workers(&common.pid, workers.pids());
            let answers = workers.ready(common.connect_timeout).await?;
            let opened = workers::sum(&answers, "ready") as usize;
            let negotiated = workers::sum(&answers, "deflate") as usize;
            (None, Some(workers), opened, negotiated, cpu)
        }
        Role::Alone => {
            let cpu = stats::CpuMeter::start(&common.pid);
            let conns =
                Held::open(common, &targets, args.connections, args.token.as_deref()).await?;
            let negotiated = conns.deflate();
            let opened = conns.len();
            (Some(conns), None, opened, negotiated, cpu)
        }
    };
    let opened_in = started.elapsed();
    hold(args.hold, "holding").await;
    let after = stats::servers_rss_kib(&common.pid).map_err(BenchError::Run)?;
    let (bench_cpu, server_cpu) = cpu.stop();
    let mut report = Report::new("idle", &common.label());
    report.param("connections", args.connections);
    report.param("servers", common.url.len());
    report.param("deflate_offered", common.deflate);
    report.param(
        "transport",
        if targets.iter().any(super::conn::Target::is_http) {
            "sse"
        } else {
            "websocket"
        },
    );
    report.param("workers", workers.as_ref().map_or(1, Workers::len));
    let mut row = Map::new();
    row.insert("connections".into(), json!(opened));
    row.insert("deflate_negotiated".into(), json!(negotiated));
    row.insert(
        "opened_s".into(),
        json!(stats::round1(opened_in.as_secs_f64())),
    );
    if let (Some(before), Some(after)) = (before, after) {
        let per = (after.saturating_sub(before) * 1024) as f64 / opened.max(1) as f64;
        row.insert("rss_before_kib".into(), json!(before));
        row.insert("rss_after_kib".into(), json!(after));
        row.insert("bytes_per_conn".into(), json!(per.round()));
    }
    row.insert("bench_cpu_pct".into(), json!(bench_cpu));
    row.insert("server_cpu_pct".into(), json!(server_cpu));
    report.rows.push(row);
    report.print(common.json);
    drop(held);
    if let Some(workers) = workers {
        workers.finish(Duration::from_secs(10)).await;
    }
    Ok(())
}
