//! `pushwire bench counter`: N connections, each expecting its own counter — the
//! original demo's `/socket` — "1", "2", … one per period.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Map, json};

use super::stats::{self, Latencies, Report};
use super::wire::{Frame, Target};
use super::{BenchError, Common, Stop, check_file_limit, hold, open_all};

/// Flags of `pushwire bench counter`.
#[derive(Debug, Args)]
pub(crate) struct CounterArgs {
    #[command(flatten)]
    common: Common,
    /// How many connections.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// How long to measure once every connection is open (after one period of
    /// warm-up).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// The server's counter period (the time between two numbers).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    period: Duration,
}

#[derive(Default)]
struct Totals {
    messages: AtomicU64,
    /// A number that was not the one after the previous.
    gaps: AtomicU64,
    /// A message that was not a number.
    garbled: AtomicU64,
    /// Connections that ended before the run did.
    dropped: AtomicU64,
}

pub(crate) async fn run(args: CounterArgs) -> Result<(), BenchError> {
    let common = &args.common;
    let target = Target::parse(&common.url).map_err(BenchError::Usage)?;
    if args.period.is_zero() {
        return Err(BenchError::Usage("--period must be more than 0".into()));
    }
    check_file_limit(args.connections)?;
    let conns = open_all(common, &target, args.connections, |conn| async { Ok(conn) }).await?;
    let totals = Arc::new(Totals::default());
    let jitter = Arc::new(Latencies::new());
    let stop: Stop = Arc::new(tokio::sync::Notify::new());
    let period_us = args.period.as_micros() as u64;
    // While the others were still connecting, the first connections' counters ran
    // on with nobody reading: those numbers wait in socket buffers and arrive in a
    // burst. One period of warm-up drains them before anything is measured.
    let warm_up = args.period + Duration::from_millis(100);
    let cpu = stats::CpuMeter::start(common.pid);
    let started = Instant::now();
    let measure_from = started + warm_up;
    let mut tasks = Vec::with_capacity(conns.len());
    for (index, mut conn) in conns.into_iter().enumerate() {
        let (totals, jitter, stop) = (Arc::clone(&totals), Arc::clone(&jitter), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let mut expected: Option<u64> = None;
            let mut last_arrival: Option<Instant> = None;
            let stopped = stop.notified();
            tokio::pin!(stopped);
            loop {
                let frame = tokio::select! {
                    () = &mut stopped => break,
                    frame = conn.next() => frame,
                };
                let number = match frame {
                    Ok(Frame::Data(payload)) => std::str::from_utf8(payload)
                        .ok()
                        .and_then(|t| t.trim().parse::<u64>().ok()),
                    Ok(Frame::Closed(_)) | Err(_) => {
                        totals.dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
                let now = Instant::now();
                let Some(number) = number else {
                    totals.garbled.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if expected.is_some_and(|e| e != number) {
                    totals.gaps.fetch_add(1, Ordering::Relaxed);
                }
                expected = Some(number + 1);
                if now < measure_from {
                    continue; // warm-up: order is checked, nothing is measured
                }
                totals.messages.fetch_add(1, Ordering::Relaxed);
                if let Some(last) = last_arrival {
                    let gap = now.duration_since(last).as_micros() as u64;
                    jitter.record(index, gap.abs_diff(period_us));
                }
                last_arrival = Some(now);
            }
            conn.close().await;
        }));
    }
    hold(warm_up + args.duration, "listening").await;
    let elapsed = started.elapsed().saturating_sub(warm_up);
    let (bench_cpu, server_cpu) = cpu.stop();
    stop.notify_waiters();
    for task in tasks {
        let _ = task.await;
    }
    let messages = totals.messages.load(Ordering::Relaxed);
    // Each connection owes one message per full period it listened.
    let owed = (elapsed.as_micros() as u64 / period_us) * args.connections as u64;
    let histogram = jitter.take();
    let mut report = Report::new("counter", &common.label());
    report.param("connections", args.connections);
    report.param("duration_s", args.duration.as_secs_f64());
    report.param("period_ms", args.period.as_millis() as u64);
    let mut row = Map::new();
    row.insert("messages".into(), json!(messages));
    row.insert(
        "owed_at_least".into(),
        json!(owed.saturating_sub(args.connections as u64)),
    );
    row.insert(
        "msgs_per_s".into(),
        json!(stats::round1(messages as f64 / elapsed.as_secs_f64())),
    );
    row.insert("gaps".into(), json!(totals.gaps.load(Ordering::Relaxed)));
    row.insert(
        "garbled".into(),
        json!(totals.garbled.load(Ordering::Relaxed)),
    );
    row.insert(
        "dropped".into(),
        json!(totals.dropped.load(Ordering::Relaxed)),
    );
    row.insert("jitter_ms".into(), stats::percentiles_ms(&histogram));
    row.insert("bench_cpu_pct".into(), json!(bench_cpu));
    row.insert("server_cpu_pct".into(), json!(server_cpu));
    report.rows.push(row);
    report.print(common.json);
    Ok(())
}
