//! What every scenario measures besides its own numbers: latency histograms,
//! processor time (ours and the server's), resident memory, and the report.

use std::sync::Mutex;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};

/// A latency (or jitter) histogram in microseconds, sharded so that thousands of
/// connection tasks can record without fighting over one lock.
pub(crate) struct Latencies {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Latencies {
    pub(crate) fn new() -> Self {
        let shards = (0..64)
            .map(|_| {
                // 1 µs to 1 hour, three significant digits: cannot fail.
                Mutex::new(histogram())
            })
            .collect();
        Self { shards }
    }

    /// Records `micros` into the shard of connection `index`.
    pub(crate) fn record(&self, index: usize, micros: u64) {
        let shard = &self.shards[index % self.shards.len()];
        let mut histogram = shard.lock().unwrap_or_else(|p| p.into_inner());
        histogram.saturating_record(micros.max(1));
    }

    /// Everything recorded so far, merged; the shards are emptied.
    pub(crate) fn take(&self) -> Histogram<u64> {
        let mut merged = histogram();
        for shard in &self.shards {
            let mut histogram = shard.lock().unwrap_or_else(|p| p.into_inner());
            let _ = merged.add(&*histogram);
            histogram.reset();
        }
        merged
    }
}

/// An empty histogram of 1 µs to 1 hour with three significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    // Constant, valid bounds: this cannot fail.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// `p50`, `p99`, `p999` and `max` of a histogram, in milliseconds.
pub(crate) fn percentiles_ms(histogram: &Histogram<u64>) -> Value {
    let ms = |micros: u64| (micros as f64 / 1000.0 * 1000.0).round() / 1000.0;
    if histogram.is_empty() {
        return json!(null);
    }
    json!({
        "p50": ms(histogram.value_at_quantile(0.50)),
        "p99": ms(histogram.value_at_quantile(0.99)),
        "p999": ms(histogram.value_at_quantile(0.999)),
        "max": ms(histogram.max()),
    })
}

/// Processor time of a process (user + system), from `/proc/<pid>/stat`.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Processor time of the servers, summed; `None` without any.
fn servers_ticks(servers: &[u32]) -> Option<u64> {
    if servers.is_empty() {
        return None;
    }
    servers
        .iter()
        .map(|pid| cpu_ticks(&pid.to_string()))
        .sum::<Option<u64>>()
}

/// Processor time of this process and its `workers`.
fn ours_ticks(workers: &[u32]) -> Option<u64> {
    let mut total = cpu_ticks("self")?;
    for pid in workers {
        total += cpu_ticks(&pid.to_string())?;
    }
    Some(total)
}

/// The kernel's clock ticks per second for `/proc` times (100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// Measures the processor use of this process and, when given, the servers'
/// (summed). With worker processes, "ours" is this process and every worker
/// together.
pub(crate) struct CpuMeter {
    started: Instant,
    workers: Vec<u32>,
    ours: Option<u64>,
    servers: Vec<u32>,
    server: Option<u64>,
}

impl CpuMeter {
    pub(crate) fn start(servers: &[u32]) -> Self {
        Self::with_workers(servers, Vec::new())
    }

    /// Counts the processor time of `workers` as ours.
    pub(crate) fn with_workers(servers: &[u32], workers: Vec<u32>) -> Self {
        let ours = ours_ticks(&workers);
        Self {
            started: Instant::now(),
            workers,
            ours,
            servers: servers.to_vec(),
            server: servers_ticks(servers),
        }
    }

    /// Percent of one core used since `start` (100 = one core busy), ours and the
    /// server's.
    pub(crate) fn stop(&self) -> (Option<f64>, Option<f64>) {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        let percent = |before: Option<u64>, after: Option<u64>| {
            Some(((after? - before?) as f64 / TICKS_PER_SECOND / elapsed * 1000.0).round() / 10.0)
        };
        let ours = percent(self.ours, ours_ticks(&self.workers));
        let server = percent(self.server, servers_ticks(&self.servers));
        (ours, server)
    }
}

/// The servers' resident memory in KiB (`VmRSS`), summed; `None` without any.
pub(crate) fn servers_rss_kib(servers: &[u32]) -> Result<Option<u64>, String> {
    if servers.is_empty() {
        return Ok(None);
    }
    let mut total = 0;
    for pid in servers {
        total += vm_rss_kib(*pid)?;
    }
    Ok(Some(total))
}

/// The server's resident memory in KiB (`VmRSS`).
pub(crate) fn vm_rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    Ok(status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0))
}

/// Raises this process's soft limit on open files to its hard limit; answers the
/// limit now in force.
pub(crate) fn raise_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024),
    }
}

/// Microseconds since the Unix epoch: a clock every process on the machine shares.
pub(crate) fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// One scenario's results: what was asked, what was measured.
pub(crate) struct Report {
    pub(crate) scenario: &'static str,
    pub(crate) label: String,
    pub(crate) params: Map<String, Value>,
    pub(crate) rows: Vec<Map<String, Value>>,
}

impl Report {
    pub(crate) fn new(scenario: &'static str, label: &str) -> Self {
        Self {
            scenario,
            label: label.to_owned(),
            params: Map::new(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn param(&mut self, key: &str, value: impl Into<Value>) {
        self.params.insert(key.to_owned(), value.into());
    }

    /// Prints the report: JSON (one object) or a table, on stdout.
    pub(crate) fn print(&self, as_json: bool) {
        if as_json {
            let value = json!({
                "scenario": self.scenario,
                "label": self.label,
                "params": self.params,
                "results": self.rows,
            });
            println!("{value}");
            return;
        }
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", plain(v)))
            .collect();
        println!("{} [{}] {}", self.scenario, self.label, params.join(" "));
        let mut columns: Vec<&String> = Vec::new();
        for row in &self.rows {
            for key in row.keys() {
                if !columns.contains(&key) {
                    columns.push(key);
                }
            }
        }
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| {
                columns
                    .iter()
                    .map(|c| row.get(*c).map_or_else(String::new, plain))
                    .collect()
            })
            .collect();
        let widths: Vec<usize> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                cells
                    .iter()
                    .map(|r| r[i].len())
                    .chain([c.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |values: Vec<&str>| {
            values
                .iter()
                .zip(&widths)
                .map(|(v, w)| format!("{v:>w$}"))
                .collect::<Vec<_>>()
                .join("  ")
        };
        println!("{}", line(columns.iter().map(|c| c.as_str()).collect()));
        for row in &cells {
            println!("{}", line(row.iter().map(String::as_str).collect()));
        }
    }
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::from("-"),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k} {}", plain(v)))
            .collect::<Vec<_>>()
            .join(" / "),
        other => other.to_string(),
    }
}

/// Rounds to one decimal.
pub(crate) fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}
