//! More of the bad-input corpus (issue 15): slow frames, floods, bombs, smuggling
//! and clients that never read, on every transport, over real sockets. Like
//! `tests/it/hostile.rs`, each test throws one family of bad input at a running demo
//! server, checks the answer `docs/security.md` promises, then checks that a
//! subscriber present the whole time got every message in order and that a new
//! client is served. `memory_stays_bounded_under_hostile_input` runs the real
//! binary and reads its resident memory.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::binary::{Process, spawn_with_first_line};
use common::corpus::{
    Watcher, a_normal_client_is_served, demo, error_code, flood, publish, start_with,
};
use common::topics::{next_json, send, send_text};
use common::{Running, STEP, read_close, read_frame, start, write_frame};
use pushwire::config::ServeConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads one HTTP response from `tcp`: its head (lower-cased) and a body of
/// `Content-Length` bytes (or, without one, everything until EOF).
async fn read_response(tcp: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let read = async {
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|l| l.trim().parse::<usize>().ok());
                if let Some(length) = length
                    && response.len() >= end + 4 + length
                {
                    let body = response[end + 4..end + 4 + length].to_vec();
                    return (head, body);
                }
            }
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let end = response
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .unwrap_or(response.len());
                    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
                    let body = response.get(end + 4..).unwrap_or_default().to_vec();
                    return (head, body);
                }
                Ok(n) => response.extend_from_slice(&buf[..n]),
            }
        }
    };
    let (head, body) = tokio::time::timeout(STEP, read)
        .await
        .expect("response timed out");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {head:?}"));
    (status, head, body)
}

/// The status, head and body of `request` sent on a fresh connection.
async fn raw_request(addr: SocketAddr, request: &[u8]) -> (u16, String, Vec<u8>) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request).await.expect("write");
    read_response(&mut tcp).await
}

/// A raw `/ws` connection past its hello.
async fn raw_ws_past_hello(addr: SocketAddr) -> TcpStream {
    let mut tcp = common::raw_ws(addr, "/ws").await;
    let (_, hello) = read_frame(&mut tcp).await;
    assert!(hello.starts_with(b"{\"hello\""));
    tcp
}

/// Writes `bytes` in pieces of at most 64 KiB; stops quietly once the server has
/// closed the connection (it may close before reading everything).
async fn write_until_closed(tcp: &mut TcpStream, bytes: &[u8]) {
    for piece in bytes.chunks(64 * 1024) {
        match tokio::time::timeout(STEP, tcp.write_all(piece)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => panic!("the server stopped reading without closing"),
        }
    }
}

#[tokio::test]
async fn a_message_in_100000_empty_fragments_is_answered_like_any_other() {
    let server = start_with(ServeConfig::default()).await;
    let watcher = Watcher::new(server.addr, "news").await;
    let mut tcp = raw_ws_past_hello(server.addr).await;
    let request = json!({"op":"sub","id":"frag","topic":"fragments"}).to_string();
    let (head, tail) = request.split_at(10);
    let mut bytes = common::masked_frame(0x01, head.as_bytes());
    for _ in 0..99_998 {
        bytes.extend_from_slice(&common::masked_frame(0x00, b""));
    }
    bytes.extend_from_slice(&common::masked_frame(0x80, tail.as_bytes()));
    let started = std::time::Instant::now();
    write_until_closed(&mut tcp, &bytes).await;
    let (op, reply) = read_frame(&mut tcp).await;
    eprintln!("100,000 fragments answered in {:?}", started.elapsed());
    assert_eq!(op, 0x81, "{}", String::from_utf8_lossy(&reply));
    let reply: Value = serde_json::from_slice(&reply).expect("JSON");
    assert_eq!(reply["id"], "frag");
    assert!(reply["ok"].is_object(), "{reply}");
    publish(server.addr, "news", 0).await;
    watcher.expect_all(1).await;
    a_normal_client_is_served(server.addr).await;
    server.stop_with(&mut [&mut tcp]).await;
}

#[tokio::test]
async fn a_message_in_100000_one_byte_fragments_is_closed_with_1009_at_the_limit() {
    let server = start_with(ServeConfig::default()).await;
    let watcher = Watcher::new(server.addr, "news").await;
    let mut tcp = raw_ws_past_hello(server.addr).await;
    // 100,000 bytes of one request (more than the 64 KiB + envelope a message may
    // hold), one byte per frame.
    let request = format!(
        r#"{{"op":"pub","id":1,"topic":"x","data":"{}"}}"#,
        "y".repeat(100_000 - 40)
    );
    let mut bytes = Vec::with_capacity(request.len() * 7);
    for (i, byte) in request.bytes().enumerate() {
        let first = match (i, i + 1 == request.len()) {
            (0, _) => 0x01,
            (_, true) => 0x80,
            _ => 0x00,
        };
        bytes.extend_from_slice(&common::masked_frame(first, &[byte]));
    }
    write_until_closed(&mut tcp, &bytes).await;
    let (code, reason) = read_close(&mut tcp).await;
    assert_eq!(code, 1009, "{reason}");
    publish(server.addr, "news", 0).await;
    watcher.expect_all(1).await;
    a_normal_client_is_served(server.addr).await;
    server.stop().await;
}

/// `payload` compressed as one permessage-deflate message (RFC 7692 §7.2.1: a raw
/// deflate stream, sync-flushed, without its last four bytes).
fn deflate_message(payload: &[u8]) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut compressor = Compress::new(Compression::best(), false);
    let mut out = Vec::with_capacity(payload.len() / 100 + 1024);
    loop {
        let consumed = compressor.total_in() as usize;
        if out.len() == out.capacity() {
            out.reserve(64 * 1024);
        }
        compressor
            .compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync)
            .expect("compress");
        if compressor.total_in() as usize == payload.len() && out.len() < out.capacity() {
            break;
        }
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

#[tokio::test]
async fn a_deflate_bomb_is_closed_with_1009_and_never_inflated() {
    let server = start_with(ServeConfig::default()).await;
    let watcher = Watcher::new(server.addr, "news").await;
    // 16 MB of spaces inflate from about 16 KB: one frame, and the same bomb
    // spread over fragments.
    let bomb = deflate_message(&vec![b' '; 16 * 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    for (n, fragments) in [1usize, 16].into_iter().enumerate() {
        let (mut tcp, head) = common::raw_ws_with(
            server.addr,
            "/ws",
            "Sec-WebSocket-Extensions: permessage-deflate\r\n",
        )
        .await;
        assert!(
            head.to_ascii_lowercase().contains("permessage-deflate"),
            "{head}"
        );
        let (_, _hello) = read_frame(&mut tcp).await;
        let size = bomb.len().div_ceil(fragments);
        let pieces: Vec<&[u8]> = bomb.chunks(size).collect();
        let mut bytes = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let last = i + 1 == pieces.len();
            // RSV1 on the first frame only (RFC 7692 §6.1).
            let first = match (i, last) {
                (0, true) => 0xC1,
                (0, false) => 0x41,
                (_, true) => 0x80,
                _ => 0x00,
            };
            bytes.extend_from_slice(&common::masked_frame(first, piece));
        }
        write_until_closed(&mut tcp, &bytes).await;
        let (code, reason) = read_close(&mut tcp).await;
        assert_eq!(code, 1009, "{fragments} fragments: {reason}");
        publish(server.addr, "news", n as u64).await;
    }
    watcher.expect_all(2).await;
    a_normal_client_is_served(server.addr).await;
    server.stop().await;
}

#[tokio::test]
async fn header_floods_are_refused_with_431() {
    let server = start_with(ServeConfig::default()).await;
    let watcher = Watcher::new(server.addr, "news").await;
    let addr = server.addr;
    // Many small headers (more than 100), on a page and on a WebSocket upgrade.
    let many: String = (0..101).map(|i| format!("X-Flood-{i}: {i}\r\n")).collect();
    for (n, path) in ["/", "/ws", "/sse?topic=news"].into_iter().enumerate() {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{many}Upgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        let (status, head, _) = raw_request(addr, request.as_bytes()).await;
        assert_eq!(status, 431, "{path}: {head}");
        publish(server.addr, "news", n as u64).await;
    }
    // A few huge ones: past the head limit.
    let huge: String = (0..4)
        .map(|i| format!("X-Huge-{i}: {}\r\n", "h".repeat(8000)))
        .collect();
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n{huge}\r\n");
    let (status, head, _) = raw_request(addr, request.as_bytes()).await;
    assert_eq!(status, 431, "{head}");
    // Exactly 100 headers (98, Host and Connection) are fine.
    let hundred: String = (0..98).map(|i| format!("X-Ok-{i}: {i}\r\n")).collect();
    let request =
        format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n{hundred}Connection: close\r\n\r\n");
    let (status, head, _) = raw_request(addr, request.as_bytes()).await;
    assert_eq!(status, 200, "{head}");
    publish(server.addr, "news", 3).await;
    watcher.expect_all(4).await;
    a_normal_client_is_served(server.addr).await;
    server.stop().await;
}

/// The demo server with a short idle timeout (the time a `/ws` peer has to send a
/// complete message, or any frame between messages).
async fn start_with_idle_timeout(idle: Duration) -> Running {
    let ws = pushwire::ws::Config {
        idle_timeout: idle,
        ping_interval: Some(idle / 4),
        ..pushwire::ws::Config::default()
    };
    start(demo(ServeConfig::default()).ws_config(ws)).await
}

#[tokio::test]
async fn a_slowloris_on_frames_is_closed_with_1008_after_the_idle_timeout() {
    let server = start_with_idle_timeout(Duration::from_secs(2)).await;
    let watcher = Watcher::new(server.addr, "news").await;
    // (what the slow client keeps sending, a byte every 200 ms or so)
    // 1. one frame, announced at 1,000 bytes, trickled a byte at a time;
    // 2. a message in empty fragments, with pings between them, forever.
    for (n, fragments) in [false, true].into_iter().enumerate() {
        let mut tcp = raw_ws_past_hello(server.addr).await;
        let started = tokio::time::Instant::now();
        let frame = common::masked_frame(0x81, &[b' '; 1000]);
        let mut sent = 0;
        let closed = loop {
            assert!(
                started.elapsed() < STEP * 2,
                "a slow sender was kept for {:?}",
                started.elapsed()
            );
            let bytes = if fragments {
                let first = if sent == 0 { 0x01 } else { 0x00 };
                let mut bytes = common::masked_frame(first, b"");
                bytes.extend_from_slice(&common::masked_frame(0x89, b"alive"));
                bytes
            } else {
                frame[sent..sent + 1].to_vec()
            };
            sent += 1;
            if tcp.write_all(&bytes).await.is_err() {
                // Closed while we wrote: the close frame came before.
                break Some(read_close(&mut tcp).await);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            // Pongs (for the pings) and the server's pings may come; a close ends it.
            let mut first = [0u8; 1];
            let seen = loop {
                match tokio::time::timeout(Duration::from_millis(1), tcp.peek(&mut first)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break Some(None),
                    Ok(Ok(_)) if first[0] == 0x8A || first[0] == 0x89 => {
                        let _pong_or_ping = read_frame(&mut tcp).await;
                    }
                    Ok(Ok(_)) => break Some(Some(read_close(&mut tcp).await)),
                    Err(_) => break None,
                }
            };
            if let Some(close) = seen {
                break close;
            }
        };
        let (code, reason) = closed.expect("closed without a close frame");
        assert_eq!(
            (code, reason.as_str()),
            (1008, "no complete message in 2 s"),
            "case {n}"
        );
        // Closed after the idle timeout (the sweeper looks once a second).
        assert!(started.elapsed() >= Duration::from_secs(2));
        publish(server.addr, "news", n as u64).await;
    }
    // A client that sends a whole frame every 400 ms is not cut off, for longer
    // than the idle timeout.
    let mut patient = raw_ws_past_hello(server.addr).await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        write_frame(&mut patient, 0x89, b"ping").await;
        // The server's own pings may come first.
        let pong = loop {
            let (op, payload) = read_frame(&mut patient).await;
            if op != 0x89 {
                break (op, payload);
            }
        };
        assert_eq!(pong, (0x8A, b"ping".to_vec()));
    }
    watcher.expect_all(2).await;
    a_normal_client_is_served(server.addr).await;
    server.stop_with(&mut [&mut patient]).await;
}

/// The demo server whose HTTP connections give up on a write after `limit`
/// without progress.
async fn start_with_write_timeout(limit: Duration) -> Running {
    start_with(ServeConfig {
        http_limits: pushwire::HttpLimits {
            write_timeout: limit,
            ..pushwire::HttpLimits::default()
        },
        ..ServeConfig::default()
    })
    .await
}

/// `addr` as `/proc/net/tcp` writes it: `0100007F:1F90`.
fn proc_net_address(addr: SocketAddr) -> String {
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 only: {addr}");
    };
    let ip = u32::from_le_bytes(v4.ip().octets());
    format!("{ip:08X}:{:04X}", v4.port())
}

/// Whether the server still holds its end of the connection from `client` open
/// (state ESTABLISHED in `/proc/net/tcp`). Seen from outside, without reading a
/// byte: reading would let a stalled write go on.
fn server_end_established(server: SocketAddr, client: SocketAddr) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let (local, remote) = (proc_net_address(server), proc_net_address(client));
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() > 3 && fields[1] == local && fields[2] == remote && fields[3] == "01"
    })
}

/// Waits (bounded) until the server has given up on the connection from `client`.
async fn wait_until_server_drops(server: SocketAddr, client: SocketAddr) {
    let deadline = tokio::time::Instant::now() + STEP * 3;
    while server_end_established(server, client) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server still holds a client that reads nothing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Publishes `count` messages of 60 KB on `topic` through the API.
async fn publish_bulk(addr: SocketAddr, topic: &str, count: u64) {
    flood(addr, topic, &"x".repeat(60_000), count, None).await;
}

#[tokio::test]
async fn an_sse_client_that_never_reads_is_dropped_and_the_rest_get_everything() {
    let server = start_with_write_timeout(Duration::from_secs(1)).await;
    let watcher = Watcher::new(server.addr, "news").await;
    let mut stalled = TcpStream::connect(server.addr).await.expect("connect");
    let request = format!(
        "GET /sse?topic=bulk HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        server.addr
    );
    stalled.write_all(request.as_bytes()).await.expect("write");
    // 18 MB: more than the socket buffers and the stream's own buffer hold.
    for n in 0..3 {
        publish_bulk(server.addr, "bulk", 100).await;
        publish(server.addr, "news", n).await;
    }
    wait_until_server_drops(server.addr, stalled.local_addr().expect("addr")).await;
    watcher.expect_all(3).await;
    a_normal_client_is_served(server.addr).await;
    server.stop().await;
}

#[tokio::test]
async fn a_long_poll_client_that_never_reads_is_dropped_and_the_rest_get_everything() {
    let server = start_with_write_timeout(Duration::from_secs(1)).await;
    let watcher = Watcher::new(server.addr, "news").await;
    publish_bulk(server.addr, "bulk", 100).await;
    // The topic's epoch, from a poll that is read.
    let (status, _, body) = raw_request(
        server.addr,
        format!(
            "GET /poll?topic=bulk&timeout=0 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            server.addr
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&body).expect("JSON");
    let epoch = answer["subs"][0]["epoch"]
        .as_str()
        .expect("epoch")
        .to_owned();
    // Thirty polls for the whole history (each answered with up to 1 MiB),
    // pipelined on one connection, and not one answer read.
    let mut stalled = TcpStream::connect(server.addr).await.expect("connect");
    let poll = format!(
        "GET /poll?topic=bulk&since=bulk%40{epoch}%3A0 HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    );
    for _ in 0..30 {
        stalled.write_all(poll.as_bytes()).await.expect("write");
    }
    publish(server.addr, "news", 0).await;
    wait_until_server_drops(server.addr, stalled.local_addr().expect("addr")).await;
    watcher.expect_all(1).await;
    a_normal_client_is_served(server.addr).await;
    server.stop().await;
}

#[tokio::test]
async fn a_long_poll_answer_holds_at_most_a_mebibyte_and_the_next_poll_continues() {
    let server = start_with(ServeConfig::default()).await;
    publish_bulk(server.addr, "bulk", 40).await;
    let poll = |since: String| {
        let addr = server.addr;
        async move {
            let (status, _, body) = raw_request(
                addr,
                format!(
                    "GET /poll?topic=bulk&timeout=0&since={since} HTTP/1.1\r\nHost: {addr}\r\n\
                     Connection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await;
            assert_eq!(status, 200);
            assert!(body.len() < 1024 * 1024 + 64 * 1024, "{} bytes", body.len());
            serde_json::from_slice::<Value>(&body).expect("JSON")
        }
    };
    let first = poll(String::from("bulk%40x%3A0")).await;
    let epoch = first["subs"][0]["epoch"]
        .as_str()
        .expect("epoch")
        .to_owned();
    let mut since = format!("bulk%40{epoch}%3A0");
    let mut offsets = Vec::new();
    for _ in 0..10 {
        let answer = poll(since.clone()).await;
        let messages = answer["messages"].as_array().expect("messages");
        if messages.is_empty() {
            break;
        }
        assert!(messages.len() <= 18, "{} messages", messages.len());
        offsets.extend(messages.iter().filter_map(|m| m["offset"].as_u64()));
        since = answer["since"]
            .as_str()
            .expect("since")
            .replace('@', "%40")
            .replace(':', "%3A");
    }
    assert_eq!(offsets, (1..=40).collect::<Vec<u64>>(), "gapless, in order");
    server.stop().await;
}

/// `text` percent-encoded for a URL path segment or query value.
fn pct(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn invalid_and_non_ascii_topic_names_get_422_on_every_transport() {
    let server = start_with(ServeConfig::default()).await;
    let watcher = Watcher::new(server.addr, "news").await;
    let (mut client, _) = common::topics::ws(&server).await;
    let names = [
        "café",
        "日本語",
        "emoji😀",
        "right\u{202e}txet",
        "zero\u{200b}width",
        "ａｂｃ",
        "tab\there",
        "line\nbreak",
        "quote\"d",
        "back\\slash",
        "semi;colon",
        "a b",
        "",
        &"t".repeat(257),
    ];
    let http = reqwest::Client::new();
    for (n, name) in names.iter().enumerate() {
        for op in ["sub", "pub"] {
            let request = json!({"op": op, "id": n, "topic": name, "data": 1}).to_string();
            assert_eq!(
                error_code(&mut client, &request).await,
                422,
                "{op} {name:?}"
            );
        }
        for path in ["/sse", "/poll"] {
            let (status, _, body) = raw_request(
                server.addr,
                format!(
                    "GET {path}?topic={}&timeout=0 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    pct(name),
                    server.addr
                )
                .as_bytes(),
            )
            .await;
            assert_eq!(status, 422, "{path} {name:?}");
            let body = String::from_utf8(body).expect("UTF-8");
            assert!(body.contains("invalid topic"), "{body}");
            // The name comes back escaped: no raw control or direction characters.
            assert!(
                !body.contains(['\u{202e}', '\u{200b}', '\n', '\t']),
                "{body:?}"
            );
        }
        let batch = json!([{"topic": name, "data": 1}]);
        let response = http
            .post(server.url("/api/publish"))
            .json(&batch)
            .timeout(STEP)
            .send()
            .await
            .expect("batch");
        assert_eq!(response.status(), 422, "batch {name:?}");
        if !name.is_empty() {
            let response = http
                .post(server.url(&format!("/api/publish/{}", pct(name))))
                .body("1")
                .timeout(STEP)
                .send()
                .await
                .expect("publish");
            assert_eq!(response.status(), 422, "publish {name:?}");
        }
        publish(server.addr, "news", n as u64).await;
    }
    // Bytes that are not UTF-8 at all.
    let (status, _, _) = raw_request(
        server.addr,
        format!(
            "POST /api/publish/%FF%FE HTTP/1.1\r\nHost: {}\r\nContent-Length: 1\r\n\
             Connection: close\r\n\r\n1",
            server.addr
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status, 400);
    for path in ["/sse", "/poll"] {
        let (status, _, _) = raw_request(
            server.addr,
            format!(
                "GET {path}?topic=%FF%FE HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                server.addr
            )
            .as_bytes(),
        )
        .await;
        assert_eq!(status, 422, "{path}");
    }
    watcher.expect_all(names.len() as u64).await;
    a_normal_client_is_served(server.addr).await;
    server.stop_with(&mut [&mut client]).await;
}

#[tokio::test]
async fn deeply_nested_and_huge_json_is_refused_on_every_way_in() {
    let server = start_with(ServeConfig::default()).await;
    let watcher = Watcher::new(server.addr, "news").await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: String| {
        http.post(server.url(path))
            .header("content-type", "application/json")
            .body(body)
            .timeout(STEP)
            .send()
    };
    let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let deep_objects = |depth: usize| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    // Nesting: 64 levels are data, 65 and 100,000 are not.
    let (mut client, _) = common::topics::ws(&server).await;
    for (body, status) in [
        (deep(64), 200),
        (deep(65), 400),
        (deep_objects(65), 400),
        (deep(30_000), 400),
    ] {
        let response = post("/api/publish/nested", body.clone())
            .await
            .expect("post");
        assert_eq!(response.status(), status, "API, {} bytes", body.len());
        let batch = format!(r#"[{{"topic":"nested","data":{body}}}]"#);
        let response = post("/api/publish", batch).await.expect("post");
        assert_eq!(response.status(), status, "batch, {} bytes", body.len());
        let request = format!(r#"{{"op":"pub","id":1,"topic":"nested","data":{body}}}"#);
        send_text(&mut client, &request).await;
        let reply = next_json(&mut client).await;
        match status {
            200 => assert!(reply["ok"].is_object(), "{reply}"),
            _ => assert_eq!(reply["error"]["code"], 400, "{reply}"),
        }
    }
    publish(server.addr, "news", 0).await;
    // A 100,000-deep request on /ws is past the size limit anyway: 1009.
    // Huge: over the data limit (413), the batch limit (413), the message limit (1009).
    let huge = format!("[{}0]", "0,".repeat(40_000));
    let response = post("/api/publish/huge", huge.clone()).await.expect("post");
    assert_eq!(response.status(), 413);
    let many = format!(
        "[{}]",
        vec![
            r#"{"topic":"huge","data":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
            20_000
        ]
        .join(",")
    );
    let response = post("/api/publish", many).await.expect("post");
    assert_eq!(response.status(), 413);
    // A JSON body of 100 MB is refused without being read whole.
    let response = post("/api/publish/huge", "[".repeat(100 * 1024 * 1024))
        .await
        .map(|r| r.status().as_u16());
    assert!(
        matches!(response, Ok(413) | Err(_)),
        "a 100 MB body: {response:?}"
    );
    let mut tcp = raw_ws_past_hello(server.addr).await;
    write_until_closed(
        &mut tcp,
        &common::masked_frame(
            0x81,
            format!(r#"{{"op":"pub","id":1,"data":{}}}"#, deep(100_000)).as_bytes(),
        ),
    )
    .await;
    assert_eq!(read_close(&mut tcp).await.0, 1009);
    // Answers the close (the server may have closed the connection already).
    let _ = tcp.write_all(&common::masked_frame(0x88, b"")).await;
    publish(server.addr, "news", 1).await;
    // Many small values within the limits are fine.
    let wide = format!("[{}0]", "0,".repeat(15_000));
    let response = post("/api/publish/wide", wide).await.expect("post");
    assert_eq!(response.status(), 200);
    publish(server.addr, "news", 2).await;
    watcher.expect_all(3).await;
    a_normal_client_is_served(server.addr).await;
    server.stop_with(&mut [&mut client]).await;
}

#[tokio::test]
async fn content_length_with_chunked_is_read_as_chunked_and_the_connection_closed() {
    let server = start_with(ServeConfig::default()).await;
    let watcher = Watcher::new(server.addr, "news").await;
    let (mut smuggled, _) = common::topics::ws(&server).await;
    send(&mut smuggled, json!({"op":"sub","id":1,"topic":"smuggle"})).await;
    assert!(next_json(&mut smuggled).await["ok"].is_object());
    let addr = server.addr;
    // Both headers, in either order: the chunked body wins (RFC 9112 §6.3), the
    // request behind it is never answered, and the connection is closed.
    for (n, headers) in [
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 40\r\n",
    ]
    .into_iter()
    .enumerate()
    {
        let request = format!(
            "POST /api/publish/smuggle HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\n\
             {headers}\r\n5\r\nhello\r\n0\r\n\r\n\
             POST /api/publish/smuggle HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 8\r\n\r\nsmuggled"
        );
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(request.as_bytes()).await.expect("write");
        let (status, head, _) = read_response(&mut tcp).await;
        assert_eq!(status, 200, "{head}");
        assert!(head.contains("connection: close"), "{head}");
        let mut rest = Vec::new();
        tokio::time::timeout(STEP, tcp.read_to_end(&mut rest))
            .await
            .expect("the connection stays open")
            .ok();
        assert!(
            rest.is_empty(),
            "a second answer: {:?}",
            String::from_utf8_lossy(&rest)
        );
        let push = next_json(&mut smuggled).await;
        assert_eq!(push["data"], "hello", "{push}");
        publish(server.addr, "news", n as u64).await;
    }
    // What hyper refuses outright: 400, nothing published.
    let bad = [
        "Transfer-Encoding: gzip\r\n",
        "Transfer-Encoding: chunked, gzip\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5, 6\r\n",
        "Content-Length: +5\r\n",
        "Content-Length: -1\r\n",
        "Transfer-Encoding : chunked\r\n",
    ];
    for headers in bad {
        let request = format!(
            "POST /api/publish/smuggle HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\n\
             {headers}\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        let (status, head, _) = raw_request(addr, request.as_bytes()).await;
        assert_eq!(status, 400, "{headers:?}: {head}");
    }
    // Chunked in HTTP/1.0 does not exist.
    let request = format!(
        "POST /api/publish/smuggle HTTP/1.0\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n0\r\n\r\n"
    );
    let (status, head, _) = raw_request(addr, request.as_bytes()).await;
    assert_eq!(status, 400, "{head}");
    // Nothing of the refused requests was published: the next message is this one.
    publish(server.addr, "smuggle", 99).await;
    assert_eq!(next_json(&mut smuggled).await["data"], json!({"n": 99}));
    watcher.expect_all(2).await;
    a_normal_client_is_served(server.addr).await;
    server.stop_with(&mut [&mut smuggled]).await;
}

#[tokio::test]
async fn too_many_topics_on_sse_and_long_poll_get_400() {
    let server = start_with(ServeConfig::default()).await;
    let watcher = Watcher::new(server.addr, "news").await;
    let topics = |n: usize| {
        (0..n)
            .map(|i| format!("topic=t{i}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    for (n, path) in ["/sse", "/poll"].into_iter().enumerate() {
        let request = format!(
            "GET {path}?{}&timeout=0 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            topics(101),
            server.addr
        );
        let (status, _, body) = raw_request(server.addr, request.as_bytes()).await;
        assert_eq!(status, 400, "{path}");
        assert!(
            String::from_utf8_lossy(&body).contains("at most 100 topics per request"),
            "{path}"
        );
        // 100 are fine.
        let request = format!(
            "GET /poll?{}&timeout=0 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            topics(100),
            server.addr
        );
        let (status, _, _) = raw_request(server.addr, request.as_bytes()).await;
        assert_eq!(status, 200);
        publish(server.addr, "news", n as u64).await;
    }
    watcher.expect_all(2).await;
    a_normal_client_is_served(server.addr).await;
    server.stop().await;
}

#[tokio::test]
async fn a_publish_flood_on_the_api_is_answered_in_order_and_a_stalled_subscriber_is_dropped() {
    let server = start_with(ServeConfig::default()).await;
    let watcher = Watcher::new(server.addr, "news").await;
    // A subscriber of the flooded topic that reads everything, and one that never
    // reads.
    let (mut reader, _) = common::topics::ws(&server).await;
    send(&mut reader, json!({"op":"sub","id":1,"topic":"flood"})).await;
    assert!(next_json(&mut reader).await["ok"].is_object());
    let mut stalled = raw_ws_past_hello(server.addr).await;
    write_frame(
        &mut stalled,
        0x81,
        json!({"op":"sub","id":1,"topic":"flood"})
            .to_string()
            .as_bytes(),
    )
    .await;
    // Eight publishers at once, 400 publishes of 4 KB each: 12.8 MB.
    let (publishers, each) = (8u64, 400u64);
    let reading = tokio::spawn(async move {
        let mut offsets = Vec::new();
        while offsets.len() < (publishers * each) as usize {
            let push = next_json(&mut reader).await;
            offsets.push(push["offset"].as_u64().expect("offset"));
        }
        offsets
    });
    let flood = (0..publishers).map(|p| {
        let url = server.url("/api/publish/flood");
        async move {
            let http = reqwest::Client::new();
            let data = "f".repeat(4096);
            for _ in 0..each {
                let response = http
                    .post(&url)
                    .body(data.clone())
                    .timeout(STEP)
                    .send()
                    .await
                    .expect("publish");
                assert_eq!(response.status(), 200, "publisher {p}");
            }
        }
    });
    futures_util::future::join_all(flood).await;
    publish(server.addr, "news", 0).await;
    let offsets = tokio::time::timeout(STEP * 3, reading)
        .await
        .expect("the reader waited in vain")
        .expect("reader");
    let first = offsets[0];
    assert_eq!(
        offsets,
        (first..first + publishers * each).collect::<Vec<_>>(),
        "every publish reached the reader once, in order"
    );
    // The one that never read was closed as a slow consumer.
    let (code, reason) = read_close(&mut stalled).await;
    assert_eq!((code, reason.as_str()), (1008, "slow consumer"));
    // Answers the close (the server may have closed the connection already).
    let _ = stalled.write_all(&common::masked_frame(0x88, b"")).await;
    watcher.expect_all(1).await;
    a_normal_client_is_served(server.addr).await;
    server.stop().await;
}

/// The real `pushwire` binary, killed (and reaped) when dropped.
struct Binary(Process);

impl Binary {
    /// `pushwire serve` with its defaults on a free port; answers it and its address.
    fn start() -> (Self, SocketAddr) {
        let (process, line) =
            spawn_with_first_line(common::binary::pushwire().env("PUSHWIRE_PORT", "0"));
        let addr = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("http://"))
            .and_then(|rest| rest.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        (Self(process), addr)
    }

    /// Resident memory, in KiB (`VmRSS` in `/proc/PID/status`).
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {status}"))
    }
}

/// Opens `count` raw `/ws` connections, each announcing a 60,000-byte frame and
/// sending 100 bytes of it; they stay open until dropped.
async fn trickling_frames(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let frame = common::masked_frame(0x81, &[b' '; 60_000]);
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let mut tcp = raw_ws_past_hello(addr).await;
        tcp.write_all(&frame[..108]).await.expect("write");
        held.push(tcp);
    }
    held
}

#[tokio::test]
async fn memory_stays_bounded_under_hostile_input() {
    let (server, addr) = Binary::start();
    let watcher = Watcher::new(addr, "news").await;
    // Warm up every way in, then take the baseline.
    for n in 0..5 {
        publish(addr, "news", n).await;
        a_normal_client_is_served(addr).await;
    }
    publish_bulk(addr, "bulk", 100).await;
    let baseline = server.rss_kib();
    let mut report = vec![format!("baseline {baseline} KiB")];
    let mut published = 5;

    // 1. Held open: 400 connections trickling a frame each.
    let held = trickling_frames(addr, 400).await;
    a_normal_client_is_served(addr).await;
    let trickling = server.rss_kib();
    report.push(format!("400 trickled frames held: {trickling} KiB"));
    drop(held);
    publish(addr, "news", published).await;
    published += 1;

    // 2. Deflate bombs (10 MB each, inflated at most to the message limit) and
    //    messages in 100,000 fragments.
    let bomb = deflate_message(&vec![b' '; 10 * 1024 * 1024]);
    for _ in 0..100 {
        let (mut tcp, _) = common::raw_ws_with(
            addr,
            "/ws",
            "Sec-WebSocket-Extensions: permessage-deflate\r\n",
        )
        .await;
        let _hello = read_frame(&mut tcp).await;
        write_until_closed(&mut tcp, &common::masked_frame(0xC1, &bomb)).await;
        assert_eq!(read_close(&mut tcp).await.0, 1009);
    }
    let mut fragments = common::masked_frame(0x01, b"[");
    for _ in 0..99_998 {
        fragments.extend_from_slice(&common::masked_frame(0x00, b""));
    }
    fragments.extend_from_slice(&common::masked_frame(0x80, b"]"));
    for _ in 0..10 {
        let mut tcp = raw_ws_past_hello(addr).await;
        write_until_closed(&mut tcp, &fragments).await;
        let (op, _reply) = read_frame(&mut tcp).await;
        assert_eq!(op, 0x81);
    }
    let bombs = server.rss_kib();
    report.push(format!(
        "after 100 bombs, 10 x 100,000 fragments: {bombs} KiB"
    ));
    publish(addr, "news", published).await;
    published += 1;

    // 3. Clients that never read: 50 SSE streams during 6 MB of publishes, and 50
    //    connections with 5 pipelined long-polls for the whole history each.
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET /sse?topic=bulk HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.expect("write");
        stalled.push(tcp);
    }
    publish_bulk(addr, "bulk", 100).await;
    let (_, _, body) = raw_request(
        addr,
        format!(
            "GET /poll?topic=bulk&timeout=0 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let answer: Value = serde_json::from_slice(&body).expect("JSON");
    let epoch = answer["subs"][0]["epoch"]
        .as_str()
        .expect("epoch")
        .to_owned();
    let first = answer["subs"][0]["offset"].as_u64().expect("offset") - 100;
    let poll = format!(
        "GET /poll?topic=bulk&since=bulk%40{epoch}%3A{first} HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    );
    for _ in 0..50 {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        for _ in 0..5 {
            tcp.write_all(poll.as_bytes()).await.expect("write");
        }
        stalled.push(tcp);
    }
    a_normal_client_is_served(addr).await;
    let readers = server.rss_kib();
    report.push(format!(
        "50 SSE + 50 long-poll clients not reading: {readers} KiB"
    ));
    drop(stalled);
    publish(addr, "news", published).await;
    published += 1;
    watcher.expect_all(published).await;
    a_normal_client_is_served(addr).await;
    let end = server.rss_kib();
    report.push(format!("end {end} KiB"));
    eprintln!("{}", report.join("\n"));
    // Generous bounds that a leak or an unbounded buffer would break (a frame
    // header reserving its whole payload: 400 x 60 KB; a long-poll answer of the
    // whole history: 50 x 6 MB).
    let grown = |now: u64| now.saturating_sub(baseline) / 1024;
    assert!(grown(trickling) < 16, "{}", report.join("; "));
    assert!(grown(bombs) < 64, "{}", report.join("; "));
    assert!(grown(readers) < 160, "{}", report.join("; "));
    assert!(grown(end) < 160, "{}", report.join("; "));
}

/// Reads an SSE response until its chunked body ends (or the connection does);
/// answers the offsets of its messages.
async fn read_sse_to_end(tcp: &mut TcpStream) -> Vec<u64> {
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let ended = tokio::time::timeout(STEP * 3, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
            if raw.ends_with(b"\r\n0\r\n\r\n") {
                return;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream went on");
    let text = String::from_utf8_lossy(&raw);
    text.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter_map(|event| event["offset"].as_u64())
        .collect()
}

#[tokio::test]
async fn an_sse_client_that_falls_a_mebibyte_behind_gets_a_gapless_prefix_then_the_end() {
    let server = start_with(ServeConfig::default()).await;
    let watcher = Watcher::new(server.addr, "news").await;
    let mut slow = TcpStream::connect(server.addr).await.expect("connect");
    let request = format!(
        "GET /sse?topic=burst HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        server.addr
    );
    slow.write_all(request.as_bytes()).await.expect("write");
    // Wait for the stream to start (its `subscribed` event), then read nothing
    // while 3,000 messages of 4 KB (12 MB; fewer than the 4096 messages a stream
    // may hold) are published.
    let mut first = [0u8; 1];
    tokio::time::timeout(STEP, slow.peek(&mut first))
        .await
        .expect("no answer")
        .expect("peek");
    flood(server.addr, "burst", &"b".repeat(4000), 3000, Some(1000)).await;
    // Now it reads: what the stream held, gapless from the first message, and
    // then the end of the stream (its reconnect recovers from history).
    let offsets = read_sse_to_end(&mut slow).await;
    assert!(!offsets.is_empty());
    assert_eq!(
        offsets,
        (1..=offsets.len() as u64).collect::<Vec<_>>(),
        "a gapless prefix"
    );
    assert!(offsets.len() < 3000, "the whole burst was buffered for it");
    watcher.expect_all(3).await;
    a_normal_client_is_served(server.addr).await;
    server.stop().await;
}
