//! `pushwire bench counter`: N connections, each expecting its own counter — the
//! original demo's `/socket` — "1", "2", … one per period.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};

use super::conn::{Conn, Frame};
use super::stats::{self, Latencies, Report};
use super::workers::{self, Workers};
use super::{BenchError, Common, Role, Stop, hold, open_all, role};

/// Flags of `pushwire bench counter`.
#[derive(Debug, Args)]
pub struct CounterArgs {
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

/// What one process measured: the whole run, or a worker's share of it.
struct Part {
    messages: u64,
    gaps: u64,
    garbled: u64,
    dropped: u64,
    /// How long the measurement lasted.
    elapsed_us: u64,
    jitter: Histogram<u64>,
}

impl Part {
    fn to_json(&self) -> Value {
        json!({
            "messages": self.messages,
            "gaps": self.gaps,
            "garbled": self.garbled,
            "dropped": self.dropped,
            "elapsed_us": self.elapsed_us,
            "jitter": workers::histogram_to_json(&self.jitter),
        })
    }

    /// The workers' parts as one.
    fn merge(answers: &[Value]) -> Self {
        let mut jitter = stats::histogram();
        for answer in answers {
            workers::add_histogram_json(&mut jitter, &answer["jitter"]);
        }
        Self {
            messages: workers::sum(answers, "messages"),
            gaps: workers::sum(answers, "gaps"),
            garbled: workers::sum(answers, "garbled"),
            dropped: workers::sum(answers, "dropped"),
            elapsed_us: answers
                .iter()
                .filter_map(|a| a["elapsed_us"].as_u64())
                .min()
                .unwrap_or(0),
            jitter,
        }
    }
}

pub(crate) async fn run(args: CounterArgs) -> Result<(), BenchError> {
    let common = &args.common;
    let targets = common.ws_targets()?;
    if args.period.is_zero() {
        return Err(BenchError::Usage("--period must be more than 0".into()));
    }
    let mut processes = 1;
    let (part, cpu) = match role(common, args.connections)? {
        Role::Parent(shares) => {
            processes = shares.len();
            let mut workers = Workers::spawn(&shares, "--connections")?;
            workers.ready(common.connect_timeout).await?;
            let cpu = stats::CpuMeter::with_workers(&common.pid, workers.pids());
            let listening = hold(args.period + WARM_UP_MARGIN + args.duration, "listening");
            let (answers, ()) = tokio::join!(workers.ask("go"), listening);
            let cpu = cpu.stop();
            workers.finish(Duration::from_secs(10)).await;
            (Part::merge(&answers?), cpu)
        }
        Role::Worker(mut parent) => {
            let conns = open_all(common, &targets, args.connections, |conn| async {
                Ok(conn)
            })
            .await?;
            parent.answer(&json!({ "ready": conns.len() }));
            if parent.command().await.is_none() {
                return Ok(());
            }
            let part = listen(conns, &args).await;
            parent.answer(&part.to_json());
            while parent.command().await.is_some() {}
            return Ok(());
        }
        Role::Alone => {
            let conns = open_all(common, &targets, args.connections, |conn| async {
                Ok(conn)
            })
            .await?;
            let cpu = stats::CpuMeter::start(&common.pid);
            let listening = hold(args.period + WARM_UP_MARGIN + args.duration, "listening");
            let (part, ()) = tokio::join!(listen(conns, &args), listening);
            (part, cpu.stop())
        }
    };
    let (bench_cpu, server_cpu) = cpu;
    let period_us = args.period.as_micros() as u64;
    // Each connection owes one message per full period it listened.
    let owed = (part.elapsed_us / period_us) * args.connections as u64;
    let mut report = Report::new("counter", &common.label());
    report.param("connections", args.connections);
    report.param("duration_s", args.duration.as_secs_f64());
    report.param("period_ms", args.period.as_millis() as u64);
    report.param("workers", processes);
    let mut row = Map::new();
    row.insert("messages".into(), json!(part.messages));
    row.insert(
        "owed_at_least".into(),
        json!(owed.saturating_sub(args.connections as u64)),
    );
    row.insert(
        "msgs_per_s".into(),
        json!(stats::round1(
            part.messages as f64 / (part.elapsed_us.max(1) as f64 / 1e6)
        )),
    );
    row.insert("gaps".into(), json!(part.gaps));
    row.insert("garbled".into(), json!(part.garbled));
    row.insert("dropped".into(), json!(part.dropped));
    row.insert("jitter_ms".into(), stats::percentiles_ms(&part.jitter));
    row.insert("bench_cpu_pct".into(), json!(bench_cpu));
    row.insert("server_cpu_pct".into(), json!(server_cpu));
    report.rows.push(row);
    report.print(common.json);
    Ok(())
}

/// Beyond one period of warm-up, how long to wait before measuring.
const WARM_UP_MARGIN: Duration = Duration::from_millis(100);

/// Reads every connection's counter for one period of warm-up and then
/// `--duration`, checking order throughout and measuring after the warm-up.
async fn listen(conns: Vec<Conn>, args: &CounterArgs) -> Part {
    let totals = Arc::new(Totals::default());
    let jitter = Arc::new(Latencies::new());
    let stop: Stop = Arc::new(tokio::sync::Notify::new());
    let period_us = args.period.as_micros() as u64;
    // While the others were still connecting, the first connections' counters ran
    // on with nobody reading: those numbers wait in socket buffers and arrive in a
    // burst. One period of warm-up drains them before anything is measured.
    let warm_up = args.period + WARM_UP_MARGIN;
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
    tokio::time::sleep_until((measure_from + args.duration).into()).await;
    let elapsed = started.elapsed().saturating_sub(warm_up);
    stop.notify_waiters();
    for task in tasks {
        let _ = task.await;
    }
    Part {
        messages: totals.messages.load(Ordering::Relaxed),
        gaps: totals.gaps.load(Ordering::Relaxed),
        garbled: totals.garbled.load(Ordering::Relaxed),
        dropped: totals.dropped.load(Ordering::Relaxed),
        elapsed_us: elapsed.as_micros() as u64,
        jitter: jitter.take(),
    }
}
