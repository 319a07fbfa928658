//! `pushwire bench echo`: C connections, each sending a message to an echo server
//! and waiting for it to come back before sending the next: round trips per second
//! and their latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Map, json};

use super::conn::Frame;
use super::stats::{self, Latencies, Report};
use super::{BenchError, Common, Stop, check_file_limit, hold, open_all};

/// Flags of `pushwire bench echo`.
#[derive(Debug, Args)]
pub struct EchoArgs {
    #[command(flatten)]
    common: Common,
    /// How many connections ping-pong at once.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// How long to run once every connection is open.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
}

pub(crate) async fn run(args: EchoArgs) -> Result<(), BenchError> {
    let common = &args.common;
    let targets = common.ws_targets()?;
    check_file_limit(args.connections)?;
    let conns = open_all(common, &targets, args.connections, |conn| async {
        Ok(conn)
    })
    .await?;
    let round_trips = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Latencies::new());
    let stop: Stop = Arc::new(tokio::sync::Notify::new());
    let message = "x".repeat(args.size);
    let cpu = stats::CpuMeter::start(&common.pid);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(conns.len());
    for (index, mut conn) in conns.into_iter().enumerate() {
        let (round_trips, wrong, failed, latencies, stop) = (
            Arc::clone(&round_trips),
            Arc::clone(&wrong),
            Arc::clone(&failed),
            Arc::clone(&latencies),
            Arc::clone(&stop),
        );
        let message = message.clone();
        tasks.push(tokio::spawn(async move {
            let stopped = stop.notified();
            tokio::pin!(stopped);
            loop {
                let sent = Instant::now();
                let round_trip = async {
                    conn.send_text(message.clone()).await?;
                    match conn.next().await? {
                        Frame::Data(echo) => Ok(echo.len() == message.len()),
                        Frame::Closed(code) => Err(format!("closed with {code}")),
                    }
                };
                let result = tokio::select! {
                    () = &mut stopped => break,
                    result = round_trip => result,
                };
                match result {
                    Ok(same) => {
                        if !same {
                            wrong.fetch_add(1, Ordering::Relaxed);
                        }
                        round_trips.fetch_add(1, Ordering::Relaxed);
                        latencies.record(index, sent.elapsed().as_micros() as u64);
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
            conn.close().await;
        }));
    }
    hold(args.duration, "ping-pong").await;
    let elapsed = started.elapsed();
    let (bench_cpu, server_cpu) = cpu.stop();
    stop.notify_waiters();
    for task in tasks {
        let _ = task.await;
    }
    let histogram = latencies.take();
    let total = round_trips.load(Ordering::Relaxed);
    let mut report = Report::new("echo", &common.label());
    report.param("connections", args.connections);
    report.param("size", args.size);
    report.param("duration_s", args.duration.as_secs_f64());
    let mut row = Map::new();
    row.insert("round_trips".into(), json!(total));
    row.insert(
        "round_trips_per_s".into(),
        json!((total as f64 / elapsed.as_secs_f64()).round()),
    );
    row.insert("wrong_size".into(), json!(wrong.load(Ordering::Relaxed)));
    row.insert("failed".into(), json!(failed.load(Ordering::Relaxed)));
    row.insert("latency_ms".into(), stats::percentiles_ms(&histogram));
    row.insert("bench_cpu_pct".into(), json!(bench_cpu));
    row.insert("server_cpu_pct".into(), json!(server_cpu));
    report.rows.push(row);
    report.print(common.json);
    Ok(())
}
