//! A real Prometheus server (the Debian `prometheus` package, installed by
//! `scripts/test`) scraping a pushwire node every second: started on a free
//! loopback port with its own config file and storage in a temporary folder,
//! queried over its HTTP API, killed (and reaped) when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::STEP;
use super::redis::free_port;

/// How long Prometheus may take to start, and a value to show up in it.
pub const PATIENCE: Duration = Duration::from_secs(40);

/// The `prometheus` binary; fails the test loudly when it is not installed.
pub fn binary() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("prometheus"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "the prometheus binary is not installed: install the Debian package \
             `prometheus` (./scripts/test does); the metrics tests need a real Prometheus"
        )
    })
}

/// The `promtool` binary (shipped with the `prometheus` package).
pub fn promtool() -> PathBuf {
    let prometheus = binary();
    let promtool = prometheus.with_file_name("promtool");
    assert!(
        promtool.is_file(),
        "promtool is not installed beside {}: install the Debian package `prometheus`",
        prometheus.display()
    );
    promtool
}

/// A Prometheus child process.
pub struct Prometheus {
    pub addr: SocketAddr,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts one scraping `target`'s `/metrics` every second (with
    /// `Authorization: Bearer <key>` when `key` is given) and waits until it is
    /// ready.
    pub async fn start(target: SocketAddr, key: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let authorization = key
            .map(|key| format!("    authorization:\n      credentials: {key:?}\n"))
            .unwrap_or_default();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: pushwire\n    scrape_interval: 1s\n    \
             scrape_timeout: 1s\n    metrics_path: /metrics\n{authorization}    \
             static_configs:\n      - targets: [\"{target}\"]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let binary = binary();
        for _ in 0..5 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let logs = if std::env::var_os("PUSHWIRE_TEST_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            };
            let child = Command::new(&binary)
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(logs)
                .spawn()
                .expect("start prometheus");
            let mut child = child;
            if ready(&mut child, addr).await {
                return Self {
                    addr,
                    child: Some(child),
                    _dir: dir,
                };
            }
            // The port was taken meanwhile, or it failed: try another.
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("prometheus did not get ready on any of 5 free ports");
    }

    /// Runs `expr` at the current time through `/api/v1/query`: the `data` of a
    /// success, or the error Prometheus gave (a PromQL parse error, say).
    pub async fn query(&self, expr: &str) -> Result<Value, String> {
        let url = format!("http://{}/api/v1/query?query={}", self.addr, encode(expr));
        let response = tokio::time::timeout(STEP, reqwest::Client::new().get(url).send())
            .await
            .map_err(|_| format!("query {expr:?} timed out"))?
            .map_err(|err| format!("query {expr:?} failed: {err}"))?;
        let body: Value = response
            .json()
            .await
            .map_err(|err| format!("query {expr:?}: not JSON: {err}"))?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(format!(
                "query {expr:?}: {}: {}",
                body["errorType"], body["error"]
            ))
        }
    }

    /// The value of a query that answers one series, or `None` when it answers
    /// none.
    pub async fn scalar(&self, expr: &str) -> Option<f64> {
        let data = self.query(expr).await.unwrap_or_else(|err| panic!("{err}"));
        let result = data["result"].as_array()?;
        assert!(result.len() <= 1, "{expr} answered many series: {data}");
        result
            .first()
            .and_then(|series| series["value"][1].as_str())
            .and_then(|value| value.parse().ok())
    }

    /// Waits (up to [`PATIENCE`]) until `expr` has the value `want`; fails the
    /// test with the last value seen otherwise.
    pub async fn wait_for(&self, expr: &str, want: f64) {
        let deadline = Instant::now() + PATIENCE;
        let mut last = None;
        while Instant::now() < deadline {
            last = self.scalar(expr).await;
            if last == Some(want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("Prometheus: {expr} is {last:?}, not {want}, after {PATIENCE:?}");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `text` percent-encoded for a query string (every byte but `A-Z a-z 0-9 - _ . ~`).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Waits (up to [`PATIENCE`]) until `/-/ready` on `addr` answers 200; `false`
/// when the process exited or never got ready.
async fn ready(child: &mut Child, addr: SocketAddr) -> bool {
    let deadline = Instant::now() + PATIENCE;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/-/ready");
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(Ok(response)) = tokio::time::timeout(STEP, client.get(&url).send()).await
            && response.status() == 200
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.kill();
    }
}
