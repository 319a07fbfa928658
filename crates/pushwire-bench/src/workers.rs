//! Worker processes, for more connections than one process may open.
//!
//! A process here may hold at most its hard limit of open files (20,000 on our
//! machines), so a scenario with more connections runs as several copies of
//! `pushwire bench`, each with a share of the connections and its own loopback
//! source addresses, driven by the first process over their standard input and
//! output, one JSON object per line:
//!
//! 1. each worker opens (and subscribes) its share and says `{"ready":…}`;
//! 2. the parent sends a command to every worker at once (`go`, `count`, `report`)
//!    and reads one answer from each;
//! 3. when its standard input closes, a worker closes its connections and exits.
//!
//! The parent merges the answers (sums, and latency histograms sent as
//! value/count pairs) into one report, as if one process had done it all.

use std::ffi::OsString;
use std::process::Stdio;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::BenchError;
use super::stats;

/// How many connections one process may hold: its file limit, less room for the
/// files every process has open anyway.
pub(crate) fn per_process() -> usize {
    (stats::raise_file_limit().saturating_sub(200) as usize).max(1)
}

/// Splits `total` into `parts` shares that differ by at most one.
pub(crate) fn shares(total: usize, parts: usize) -> Vec<usize> {
    let parts = parts.max(1);
    (0..parts)
        .map(|i| total / parts + usize::from(i < total % parts))
        .collect()
}

/// The flags a worker must not inherit from the parent's command line: the
/// parent's totals, output format and process roles.
const NOT_INHERITED: [&str; 6] = [
    "--connections",
    "--subscribers",
    "--workers",
    "--json",
    "--pid",
    "--worker-index",
];

/// The parent's arguments after `pushwire`, minus [`NOT_INHERITED`] (in both the
/// `--flag value` and the `--flag=value` form).
fn inherited_args() -> Vec<OsString> {
    let mut args = std::env::args_os().skip(1);
    let mut kept = Vec::new();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        let flag = text.split('=').next().unwrap_or_default();
        if NOT_INHERITED.contains(&flag) {
            let takes_value = flag != "--json";
            if takes_value && !text.contains('=') {
                args.next();
            }
            continue;
        }
        kept.push(arg);
    }
    kept
}

/// The running workers of one scenario.
pub(crate) struct Workers {
    children: Vec<Child>,
    inputs: Vec<ChildStdin>,
    outputs: Vec<Lines<BufReader<ChildStdout>>>,
}

impl Workers {
    /// Starts one worker per share; `count_flag` names the scenario's connection
    /// count (`--connections` or `--subscribers`).
    pub(crate) fn spawn(shares: &[usize], count_flag: &str) -> Result<Self, BenchError> {
        let exe = std::env::current_exe().map_err(|e| {
            BenchError::Run(format!("cannot find this program to start workers: {e}"))
        })?;
        let inherited = inherited_args();
        let mut workers = Self {
            children: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        for (index, share) in shares.iter().enumerate() {
            let mut child = tokio::process::Command::new(&exe)
                .args(&inherited)
                .arg(count_flag)
                .arg(share.to_string())
                .arg("--worker-index")
                .arg(index.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| BenchError::Run(format!("cannot start worker {index}: {e}")))?;
            let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
                return Err(BenchError::Run(format!("worker {index} has no pipes")));
            };
            workers.inputs.push(input);
            workers.outputs.push(BufReader::new(output).lines());
            workers.children.push(child);
        }
        Ok(workers)
    }

    /// How many workers there are.
    pub(crate) fn len(&self) -> usize {
        self.children.len()
    }

    /// The workers' process ids, to count their processor time.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.children.iter().filter_map(Child::id).collect()
    }

    /// Waits (at most `limit`) for every worker's first line: its connections are
    /// open.
    pub(crate) async fn ready(&mut self, limit: Duration) -> Result<Vec<Value>, BenchError> {
        match tokio::time::timeout(limit, self.read_all()).await {
            Ok(answers) => answers,
            Err(_) => Err(BenchError::Run(format!(
                "the workers' connections were not all open after {} (--connect-timeout)",
                humantime::format_duration(limit)
            ))),
        }
    }

    /// Sends `command` to every worker and reads one answer from each.
    pub(crate) async fn ask(&mut self, command: &str) -> Result<Vec<Value>, BenchError> {
        for (index, input) in self.inputs.iter_mut().enumerate() {
            input
                .write_all(format!("{command}\n").as_bytes())
                .await
                .map_err(|e| BenchError::Run(format!("worker {index} is gone: {e}")))?;
        }
        self.read_all().await
    }

    async fn read_all(&mut self) -> Result<Vec<Value>, BenchError> {
        let mut answers = Vec::with_capacity(self.outputs.len());
        for (index, output) in self.outputs.iter_mut().enumerate() {
            let line = output
                .next_line()
                .await
                .map_err(|e| BenchError::Run(format!("worker {index}: {e}")))?
                .ok_or_else(|| BenchError::Run(format!("worker {index} ended early")))?;
            let answer: Value = serde_json::from_str(&line)
                .map_err(|e| BenchError::Run(format!("worker {index} said {line:?}: {e}")))?;
            if let Some(error) = answer.get("error").and_then(Value::as_str) {
                return Err(BenchError::Run(format!("worker {index}: {error}")));
            }
            answers.push(answer);
        }
        Ok(answers)
    }

    /// Closes every worker's input (they close their connections and exit) and
    /// waits for them, at most `limit`; stragglers are killed.
    pub(crate) async fn finish(mut self, limit: Duration) {
        self.inputs.clear();
        for child in &mut self.children {
            if tokio::time::timeout(limit, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
    }
}

/// A worker's side of the conversation: commands from the parent, answers to it.
pub(crate) struct Parent {
    input: Lines<BufReader<tokio::io::Stdin>>,
}

impl Parent {
    pub(crate) fn new() -> Self {
        Self {
            input: BufReader::new(tokio::io::stdin()).lines(),
        }
    }

    /// Writes one answer line.
    pub(crate) fn answer(&self, value: &Value) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
        let _ = out.flush();
    }

    /// The next command; `None` when the parent is done (input closed).
    pub(crate) async fn command(&mut self) -> Option<String> {
        self.input.next_line().await.ok().flatten()
    }
}

/// A histogram as JSON: `[[value, count], …]` of its recorded values.
pub(crate) fn histogram_to_json(histogram: &Histogram<u64>) -> Value {
    let pairs: Vec<[u64; 2]> = histogram
        .iter_recorded()
        .map(|v| [v.value_iterated_to(), v.count_at_value()])
        .collect();
    json!(pairs)
}

/// Adds a histogram sent by [`histogram_to_json`] into `into`.
pub(crate) fn add_histogram_json(into: &mut Histogram<u64>, value: &Value) {
    for pair in value.as_array().into_iter().flatten() {
        if let (Some(v), Some(n)) = (
            pair.get(0).and_then(Value::as_u64),
            pair.get(1).and_then(Value::as_u64),
        ) {
            let _ = into.record_n(v.max(1), n);
        }
    }
}

/// The sum of `key` over the answers.
pub(crate) fn sum(answers: &[Value], key: &str) -> u64 {
    answers
        .iter()
        .filter_map(|a| a.get(key).and_then(Value::as_u64))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        assert_eq!(shares(10, 3), vec![4, 3, 3]);
        assert_eq!(shares(2, 4), vec![1, 1, 0, 0]);
        let split = shares(38_000, 2);
        assert_eq!(split, vec![19_000, 19_000]);
    }

    #[test]
    fn histograms_travel_as_value_count_pairs() {
        let mut sent = stats::histogram();
        for v in [1u64, 5, 5, 900, 12_345] {
            sent.record(v).unwrap_or_default();
        }
        let mut received = stats::histogram();
        add_histogram_json(&mut received, &histogram_to_json(&sent));
        assert_eq!(received.len(), 5);
        assert_eq!(received.max(), sent.max());
        assert_eq!(received.value_at_quantile(0.5), sent.value_at_quantile(0.5));
    }
}
