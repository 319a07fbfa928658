//! `pushwire bench`: load scenarios against a running server. Today: `idle`, the
//! memory an idle WebSocket costs a server.

use std::time::Duration;

use clap::{Args, Subcommand};
use futures_util::StreamExt as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Scenarios of `pushwire bench`.
#[derive(Debug, Subcommand)]
pub(crate) enum Scenario {
    /// Hold N idle WebSockets open and report the server's memory per connection.
    Idle(IdleArgs),
}

/// Flags of `pushwire bench idle`.
#[derive(Debug, Args)]
pub(crate) struct IdleArgs {
    /// The server's WebSocket URL (ws://host:port/path).
    #[arg(long)]
    url: String,
    /// How many connections to open and hold.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// The server's process id, to read its resident memory (VmRSS) before and after.
    #[arg(long)]
    pid: Option<u32>,
    /// How long to hold the connections after the last one opened.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    hold: Duration,
    /// Offer permessage-deflate in each handshake (as browsers do).
    #[arg(long)]
    deflate: bool,
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    /// The URL is not `ws://host:port/path`.
    #[error("invalid URL {0:?}: expected ws://host:port/path")]
    Url(String),
    /// Reading the server's memory failed.
    #[error("cannot read /proc/{pid}/status: {source}")]
    Proc {
        /// The process id given.
        pid: u32,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A connection failed.
    #[error("connection {index} failed: {reason}")]
    Connect {
        /// Which connection (0-based).
        index: usize,
        /// What went wrong.
        reason: String,
    },
    /// More connections than this process may open.
    #[error("{wanted} connections need more file descriptors than the limit of {limit}")]
    FileLimit {
        /// Connections asked for.
        wanted: usize,
        /// The soft limit on open files.
        limit: u64,
    },
}

pub(crate) async fn run(scenario: Scenario) -> Result<(), BenchError> {
    match scenario {
        Scenario::Idle(args) => idle(args).await,
    }
}

fn vm_rss_kib(pid: u32) -> Result<u64, BenchError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|source| BenchError::Proc { pid, source })?;
    Ok(status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0))
}

fn open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(1024)
}

async fn handshake(addr: &str, host: &str, path: &str, deflate: bool) -> Result<TcpStream, String> {
    let mut tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let extensions = if deflate {
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    } else {
        ""
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extensions}\r\n"
    );
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || tcp.read(&mut byte).await.map_err(|e| e.to_string())? == 0 {
            return Err("no complete handshake response".into());
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(format!("not upgraded: {}", String::from_utf8_lossy(&head)));
    }
    Ok(tcp)
}

async fn idle(args: IdleArgs) -> Result<(), BenchError> {
    let rest = args
        .url
        .strip_prefix("ws://")
        .ok_or_else(|| BenchError::Url(args.url.clone()))?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let limit = open_files_limit();
    if args.connections as u64 + 64 > limit {
        return Err(BenchError::FileLimit {
            wanted: args.connections,
            limit,
        });
    }
    let before = args.pid.map(vm_rss_kib).transpose()?;
    let started = std::time::Instant::now();
    let results: Vec<Result<TcpStream, String>> = futures_util::stream::iter(0..args.connections)
        .map(|_| handshake(host, host, &path, args.deflate))
        .buffered(64)
        .collect()
        .await;
    let mut held = Vec::with_capacity(results.len());
    for (index, result) in results.into_iter().enumerate() {
        held.push(result.map_err(|reason| BenchError::Connect { index, reason })?);
    }
    let opened_in = started.elapsed();
    tokio::time::sleep(args.hold).await;
    let after = args.pid.map(vm_rss_kib).transpose()?;
    println!(
        "idle: {} connections opened in {:.2} s{}",
        held.len(),
        opened_in.as_secs_f64(),
        if args.deflate {
            " (permessage-deflate offered)"
        } else {
            ""
        }
    );
    if let (Some(before), Some(after)) = (before, after) {
        let per = (after.saturating_sub(before) * 1024) as f64 / held.len().max(1) as f64;
        println!(
            "server VmRSS: {before} KiB before, {after} KiB after: {per:.0} bytes per idle connection"
        );
    }
    drop(held);
    Ok(())
}
