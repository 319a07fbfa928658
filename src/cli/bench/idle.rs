//! `pushwire bench idle`: what an idle WebSocket costs the server.

use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Map, json};

use super::stats::{self, Report};
use super::wire::Target;
use super::{BenchError, Common, check_file_limit, hold, open_all};

/// Flags of `pushwire bench idle`.
#[derive(Debug, Args)]
pub(crate) struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// How many connections to open and hold.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// How long to hold the connections after the last one opened.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    hold: Duration,
}

pub(crate) async fn run(args: IdleArgs) -> Result<(), BenchError> {
    let common = &args.common;
    let target = Target::parse(&common.url).map_err(BenchError::Usage)?;
    check_file_limit(args.connections)?;
    let before = common
        .pid
        .map(stats::vm_rss_kib)
        .transpose()
        .map_err(BenchError::Run)?;
    let cpu = stats::CpuMeter::start(common.pid);
    let started = Instant::now();
    let conns = open_all(common, &target, args.connections, |conn| async { Ok(conn) }).await?;
    let opened_in = started.elapsed();
    let negotiated = conns.iter().filter(|c| c.deflate).count();
    hold(args.hold, "holding").await;
    let after = common
        .pid
        .map(stats::vm_rss_kib)
        .transpose()
        .map_err(BenchError::Run)?;
    let (bench_cpu, server_cpu) = cpu.stop();
    let mut report = Report::new("idle", &common.label());
    report.param("connections", args.connections);
    report.param("deflate_offered", common.deflate);
    let mut row = Map::new();
    row.insert("connections".into(), json!(conns.len()));
    row.insert("deflate_negotiated".into(), json!(negotiated));
    row.insert(
        "opened_s".into(),
        json!(stats::round1(opened_in.as_secs_f64())),
    );
    if let (Some(before), Some(after)) = (before, after) {
        let per = (after.saturating_sub(before) * 1024) as f64 / conns.len().max(1) as f64;
        row.insert("rss_before_kib".into(), json!(before));
        row.insert("rss_after_kib".into(), json!(after));
        row.insert("bytes_per_conn".into(), json!(per.round()));
    }
    row.insert("bench_cpu_pct".into(), json!(bench_cpu));
    row.insert("server_cpu_pct".into(), json!(server_cpu));
    report.rows.push(row);
    report.print(common.json);
    drop(conns);
    Ok(())
}
