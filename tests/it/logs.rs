//! The binary's logs: one line when a connection opens and one when it closes, on
//! every transport, as human lines by default and as JSON with `--log-format
//! json`; filters from `--log` (or the settings file) win over `RUST_LOG`.
//!
//! Each test starts the real binary, scripts an exchange with independent clients
//! (tokio-tungstenite, reqwest), stops the server with SIGTERM and reads what it
//! wrote on standard error.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Instant;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::STEP;
use crate::common::binary::{Process, pushwire};

/// A running `pushwire`, its address, and the thread that collects its stderr.
struct Server {
    process: Process,
    addr: SocketAddr,
    stderr: std::thread::JoinHandle<String>,
}

impl Server {
    /// Starts `command` (a `pushwire` on port 0) and reads the address it prints.
    fn start(command: &mut Command) -> Self {
        let mut child = command
            .env("PUSHWIRE_PORT", "0")
            // Stops at the first SIGTERM: the drain delay (5 s by default) is not
            // what these tests look at (tests/it/drain.rs is).
            .env("PUSHWIRE_DRAIN_DELAY", "0s")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pushwire");
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let process = Process(child);
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(STEP).expect("no address printed");
        let addr = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("http://"))
            .and_then(|rest| rest.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Self {
            process,
            addr,
            stderr,
        }
    }

    /// SIGTERM, a bounded wait for the exit, and everything it wrote on stderr.
    fn stop(mut self) -> String {
        let pid = self.process.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + STEP;
        while self.process.0.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "no exit within {STEP:?}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.stderr.join().expect("stderr reader")
    }
}

/// Bytes of a frame with `payload` bytes on the wire: header (masked: +4).
fn frame_len(payload: usize, masked: bool) -> u64 {
    let header = match payload {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    };
    (header + if masked { 4 } else { 0 } + payload) as u64
}

async fn publish(addr: SocketAddr, topic: &str, data: Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/api/publish/{topic}"))
        .json(&data)
        .timeout(STEP)
        .send()
        .await
        .expect("publish");
    assert_eq!(response.status(), 200);
}

async fn poll(addr: SocketAddr, query: &[(&str, &str)]) -> String {
    let query: Vec<String> = query
        .iter()
        .map(|(k, v)| {
            let v = percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC);
            format!("{k}={v}")
        })
        .collect();
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/poll?{}", query.join("&")))
        .timeout(STEP)
        .send()
        .await
        .expect("poll");
    assert_eq!(response.status(), 200);
    response.text().await.expect("poll body")
}

/// The connection lines (target `pushwire::conn`) of a JSON log, checking on the
/// way that every line of it is a JSON object.
fn conn_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{log}"))
        })
        .filter(|v| v["target"] == "pushwire::conn")
        .collect()
}

fn field(line: &Value, name: &str) -> u64 {
    line[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {name} in {line}"))
}

#[tokio::test]
async fn json_lines_pair_each_open_with_its_close_and_count_exactly() {
    let server = Server::start(pushwire().args(["--log-format", "json"]));
    let addr = server.addr;

    // A /ws client: hello, a sub and its reply, two pushes, a close from the client.
    let (mut ws, _) = tokio::time::timeout(
        STEP,
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    )
    .await
    .expect("in time")
    .expect("handshake");
    let ws_peer = match ws.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp.local_addr().expect("local"),
        _ => panic!("plain TCP expected"),
    };
    // Bytes each way, counted as the frames go: text unmasked from the server,
    // masked from the client; a keepalive ping (and the pong tungstenite answers)
    // counts too, should one come.
    let mut ws_out = 0;
    let mut ws_in = 0;
    let sub = json!({"op": "sub", "id": 1, "topic": "logs-ws"}).to_string();
    let mut texts = 0;
    while texts < 4 {
        if texts == 1 {
            ws.send(Message::text(sub.clone())).await.expect("send");
            ws_in += frame_len(sub.len(), true);
        }
        if texts == 2 {
            publish(addr, "logs-ws", json!({"n": 1})).await;
            publish(addr, "logs-ws", json!({"n": 2})).await;
        }
        let message = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("a message");
        match message {
            // The hello, the reply, two pushes.
            Message::Text(text) => {
                ws_out += frame_len(text.len(), false);
                texts += 1;
            }
            Message::Ping(payload) => {
                ws_out += frame_len(payload.len(), false);
                ws_in += frame_len(payload.len(), true);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    })))
    .await
    .expect("close");
    ws_in += frame_len(2, true);
    // The server's echo (code only), then the end.
    loop {
        match tokio::time::timeout(STEP, ws.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Close(_))) => ws_out += frame_len(2, false),
            Some(Ok(other)) => panic!("after the close: {other:?}"),
            Some(Err(_)) | None => break,
        }
    }

    // An SSE stream: the subscribed event, then two messages.
    let mut sse = reqwest::Client::new()
        .get(format!("http://{addr}/sse?topic=logs-sse"))
        .send()
        .await
        .expect("sse");
    assert_eq!(sse.status(), 200);
    let mut sse_body = Vec::new();
    let data_lines = |body: &[u8]| {
        String::from_utf8_lossy(body)
            .lines()
            .filter(|l| l.starts_with("data:"))
            .count()
    };
    let mut published = 0;
    while data_lines(&sse_body) < 3 {
        if data_lines(&sse_body) == 1 + published && published < 2 {
            published += 1;
            publish(addr, "logs-sse", json!({"n": published})).await;
        }
        let chunk = tokio::time::timeout(STEP, sse.chunk())
            .await
            .expect("an SSE chunk in time")
            .expect("stream")
            .expect("not ended");
        sse_body.extend_from_slice(&chunk);
    }

    // Two long-polls: the first answers the position, the second one message.
    let first = poll(addr, &[("topic", "logs-poll")]).await;
    let since = serde_json::from_str::<Value>(&first).expect("JSON")["since"]
        .as_str()
        .expect("since")
        .to_owned();
    publish(addr, "logs-poll", json!({"n": 1})).await;
    let second = poll(
        addr,
        &[
            ("topic", "logs-poll"),
            ("since", &since),
            ("timeout", "5000"),
        ],
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&second).expect("JSON")["messages"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{second}"
    );

    // Stop the server (which ends the SSE stream) and read the rest of the stream.
    let log = tokio::task::spawn_blocking(move || server.stop())
        .await
        .expect("stop");
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout(STEP, sse.chunk()).await {
        sse_body.extend_from_slice(&chunk);
    }

    let lines = conn_lines(&log);
    // Every id opens once and closes once, in that order; ids are unique.
    let mut ids: Vec<String> = Vec::new();
    for line in &lines {
        let id = line["conn_id"].as_str().expect("conn_id").to_owned();
        let message = line["message"].as_str().expect("message");
        if message.starts_with("Opened: ") {
            assert!(!ids.contains(&id), "{id} opened twice: {log}");
            assert_eq!(
                message,
                format!("Opened: {id} {}", line["peer"].as_str().expect("peer"))
            );
            ids.push(id);
        } else {
            assert!(message.starts_with(&format!("Closed: {id} ")), "{line}");
            assert_eq!(
                lines
                    .iter()
                    .filter(|l| l["conn_id"] == id.as_str()
                        && l["message"]
                            .as_str()
                            .is_some_and(|m| m.starts_with("Closed")))
                    .count(),
                1,
                "{id} closed once: {log}"
            );
            assert!(ids.contains(&id), "{id} closed before it opened: {log}");
        }
    }
    let of = |transport: &str| -> Vec<(Value, Value)> {
        lines
            .iter()
            .filter(|l| {
                l["transport"] == transport
                    && l["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("Opened"))
            })
            .map(|open| {
                let close = lines
                    .iter()
                    .find(|l| {
                        l["conn_id"] == open["conn_id"]
                            && l["message"]
                                .as_str()
                                .is_some_and(|m| m.starts_with("Closed"))
                    })
                    .unwrap_or_else(|| panic!("no close for {open}: {log}"))
                    .clone();
                (open.clone(), close)
            })
            .collect()
    };

    let ws_lines = of("ws");
    assert_eq!(ws_lines.len(), 1, "{log}");
    let (open, close) = &ws_lines[0];
    assert_eq!(open["peer"], ws_peer.to_string());
    assert_eq!(open["level"], "INFO");
    assert_eq!(close["transport"], "ws");
    assert_eq!(field(close, "close_code"), 1000);
    assert_eq!(close["close_reason"], "");
    assert_eq!(field(close, "messages_in"), 1, "{close}");
    assert_eq!(field(close, "messages_out"), 4, "{close}");
    assert_eq!(field(close, "bytes_in"), ws_in, "{close}");
    assert_eq!(field(close, "bytes_out"), ws_out, "{close}");
    assert!(close["duration_ms"].is_u64(), "{close}");
    assert_eq!(
        close["message"],
        format!(
            "Closed: {} 1000 \"\" after 4 messages",
            open["conn_id"].as_str().unwrap_or_default()
        )
    );

    let sse_lines = of("sse");
    assert_eq!(sse_lines.len(), 1, "{log}");
    let (open, close) = &sse_lines[0];
    assert!(
        open["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{open}"
    );
    assert_eq!(field(close, "messages_in"), 0);
    assert_eq!(
        field(close, "messages_out"),
        data_lines(&sse_body) as u64,
        "{close}"
    );
    assert_eq!(field(close, "messages_out"), 3, "{close}");
    assert_eq!(field(close, "bytes_in"), 0);
    assert_eq!(field(close, "bytes_out"), sse_body.len() as u64, "{close}");

    let poll_lines = of("poll");
    assert_eq!(poll_lines.len(), 2, "a poll is one connection: {log}");
    for ((_, close), body, messages) in [(&poll_lines[0], &first, 0), (&poll_lines[1], &second, 1)]
    {
        assert_eq!(field(close, "messages_out"), messages, "{close}");
        assert_eq!(field(close, "bytes_out"), body.len() as u64, "{close}");
        assert_eq!(field(close, "bytes_in"), 0);
    }
}

#[tokio::test]
async fn human_lines_keep_the_counters_opened_and_closed() {
    let server = Server::start(pushwire().args(["--interval", "100ms"]));
    let addr = server.addr;
    let mut counter = crate::common::connect(&format!("ws://{addr}/socket")).await;
    assert_eq!(crate::common::next_text(&mut counter).await, "1");
    counter.close(None).await.expect("close");
    drop(counter);
    let log = tokio::task::spawn_blocking(move || server.stop())
        .await
        .expect("stop");
    let opened = log
        .lines()
        .find(|l| l.contains("Opened: c"))
        .unwrap_or_else(|| panic!("no Opened line: {log}"));
    assert!(opened.contains(" 127.0.0.1:"), "{opened}");
    assert!(opened.contains("transport=socket"), "{opened}");
    let closed = log
        .lines()
        .find(|l| l.contains("Closed: c"))
        .unwrap_or_else(|| panic!("no Closed line: {log}"));
    assert!(
        closed.contains(" after ") && closed.contains(" messages"),
        "{closed}"
    );
    for name in [
        "duration_ms=",
        "messages_in=0",
        "messages_out=",
        "bytes_in=",
        "bytes_out=",
    ] {
        assert!(closed.contains(name), "{name} in {closed}");
    }
    assert!(!log.trim_start().starts_with('{'), "human, not JSON: {log}");
}

#[tokio::test]
async fn the_settings_file_sets_format_and_filter_over_rust_log() {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(
        &mut file,
        b"log-format = \"json\"\nlog = \"info,pushwire::conn=off\"\n",
    )
    .expect("write");
    let path = file.path().display().to_string();
    let server = Server::start(pushwire().env("RUST_LOG", "debug").args([
        "--config",
        &path,
        "--interval",
        "100ms",
    ]));
    let addr = server.addr;
    let mut counter = crate::common::connect(&format!("ws://{addr}/socket")).await;
    assert_eq!(crate::common::next_text(&mut counter).await, "1");
    drop(counter);
    let log = tokio::task::spawn_blocking(move || server.stop())
        .await
        .expect("stop");
    assert!(conn_lines(&log).is_empty(), "pushwire::conn is off: {log}");
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("settings from"))),
        "info lines are written: {log}"
    );
    assert!(
        lines.iter().all(|l| l["level"] != "DEBUG"),
        "the file's filter wins over RUST_LOG=debug: {log}"
    );
}
