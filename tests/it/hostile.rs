//! The bad-input corpus: hostile and broken clients thrown at a running server,
//! each checked for the answer `docs/security.md` promises, and then the two things
//! that matter most: a normal client is still served, and a well-behaved subscriber
//! that was there all along lost nothing.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::corpus::{Watcher, a_normal_client_is_served, error_code, flood, publish, start_with};
use common::topics::{next_json, send, send_text};
use common::{STEP, read_frame, write_frame};
use futures_util::{SinkExt, StreamExt};
use pushwire::config::ServeConfig;
use pushwire::{ConnectionLimits, HttpLimits, Origins};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn malformed_requests_get_error_replies_and_nobody_else_notices() {
    let server = start_with(ServeConfig::default()).await;
    let watcher = Watcher::new(server.addr, "news").await;
    let (mut evil, _) = common::topics::ws(&server).await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let long_topic = "t".repeat(257);
    let corpus: Vec<(String, u64)> = vec![
        ("not json".into(), 400),
        ("".into(), 400),
        ("{\"op\":\"sub\"".into(), 400),
        ("[1,2,3]".into(), 400),
        ("null".into(), 400),
        ("{}".into(), 400),
        (r#"{"op":"explode","id":1}"#.into(), 405),
        (r#"{"op":7,"id":1}"#.into(), 400),
        (r#"{"op":"sub","op":"pub","id":1,"topic":"x"}"#.into(), 400),
        (r#"{"op":"sub","id":1}"#.into(), 400),
        (r#"{"op":"sub","id":1,"topic":""}"#.into(), 422),
        (format!(r#"{{"op":"sub","id":1,"topic":"{long_topic}"}}"#), 422),
        (r#"{"op":"sub","id":1,"topic":"a b"}"#.into(), 422),
        (r#"{"op":"sub","id":1,"topic":"a\u0000b"}"#.into(), 422),
        (r#"{"op":"sub","id":1,"topic":"x","since":{"epoch":"e","offset":1e999}}"#.into(), 400),
        (r#"{"op":"sub","id":1,"topic":"x","since":{"epoch":"e","offset":-1}}"#.into(), 400),
        (r#"{"op":"sub","id":1,"topic":"x","since":{"epoch":"e","offset":99999999999999999999999}}"#.into(), 400),
        (format!(r#"{{"op":"sub","id":1,"topic":"x","since":{deep}}}"#), 400),
        (format!(r#"{{"op":"pub","id":1,"topic":"x","data":{deep}}}"#), 400),
        (r#"{"op":"pub","id":1,"topic":"x","data":[1,}"#.into(), 400),
        (r#"{"op":"pub","id":1,"topic":"x"}"#.into(), 400),
        (r#"{"op":"unsub","id":1,"topic":"never"}"#.into(), 404),
        (r#"{"op":"presence","id":1,"topic":"news"}"#.into(), 403),
        (format!(r#"{{"op":"pub","id":1,"topic":"x","data":"{}"}}"#, "x".repeat(66_000)), 413),
    ];
    for (n, (text, code)) in corpus.iter().enumerate() {
        assert_eq!(error_code(&mut evil, text).await, *code, "{text:.100}");
        publish(server.addr, "news", n as u64).await;
    }
    let sent = corpus.len() as u64;
    // An id that is not a number or a short string is answered under `null`.
    send_text(
        &mut evil,
        r#"{"op":"unsub","id":{"deep":[1,2]},"topic":"x"}"#,
    )
    .await;
    let reply = next_json(&mut evil).await;
    assert_eq!(reply["id"], Value::Null, "{reply}");
    assert_eq!(reply["error"]["code"], 400);
    // The same id twice: both requests are answered, in order, under that id.
    send_text(&mut evil, r#"{"op":"sub","id":7,"topic":"dup"}"#).await;
    send_text(&mut evil, r#"{"op":"sub","id":7,"topic":"dup"}"#).await;
    let first = next_json(&mut evil).await;
    let second = next_json(&mut evil).await;
    assert_eq!(
        (first["id"].clone(), second["id"].clone()),
        (json!(7), json!(7))
    );
    assert!(first["ok"].is_object());
    assert_eq!(second["error"]["code"], 409);
    // A binary frame is not a request.
    evil.send(WsMessage::binary(vec![0xff, 0x00]))
        .await
        .expect("send binary");
    assert_eq!(next_json(&mut evil).await["error"]["code"], 400);
    // After all that the connection still works.
    send(
        &mut evil,
        json!({"op":"pub","id":9,"topic":"news","data":{"n": sent}}),
    )
    .await;
    assert!(next_json(&mut evil).await["ok"].is_object());
    watcher.expect_all(sent + 1).await;
    a_normal_client_is_served(server.addr).await;
    server.stop_with(&mut [&mut evil]).await;
}

#[tokio::test]
async fn broken_frames_close_only_the_sender() {
    let server = start_with(ServeConfig::default()).await;
    let watcher = Watcher::new(server.addr, "news").await;
    // (first byte, payload, expected close code)
    let invalid_utf8: &[u8] = &[b'{', 0xc3, 0x28, b'}'];
    let cases: Vec<(u8, Vec<u8>, u16)> = vec![
        (0x81, invalid_utf8.to_vec(), 1007),
        (0x83, b"reserved opcode".to_vec(), 1002),
        (0xC1, b"rsv1 without deflate".to_vec(), 1002),
        (0x89, vec![0u8; 126], 1002),
        (0x09, b"fragmented ping".to_vec(), 1002),
        (0x80, b"continuation of nothing".to_vec(), 1002),
        (0x88, vec![0x03], 1002),
        (0x81, vec![b' '; 70 * 1024], 1009),
    ];
    for (n, (first, payload, code)) in cases.iter().enumerate() {
        let mut tcp = common::raw_ws(server.addr, "/ws").await;
        let (_, hello) = read_frame(&mut tcp).await;
        assert!(hello.starts_with(b"{\"hello\""));
        write_frame(&mut tcp, *first, payload).await;
        let (op, body) = read_frame(&mut tcp).await;
        assert_eq!(op, 0x88, "case {n}: expected a close frame");
        assert_eq!(
            u16::from_be_bytes([body[0], body[1]]),
            *code,
            "case {n} ({first:#x})"
        );
        publish(server.addr, "news", n as u64).await;
    }
    watcher.expect_all(cases.len() as u64).await;
    a_normal_client_is_served(server.addr).await;
    server.stop().await;
}

#[tokio::test]
async fn a_subscribe_flood_stops_at_the_subscription_limit() {
    let mut config = ServeConfig::default();
    config.session.max_subscriptions = 20;
    let server = start_with(config).await;
    let watcher = Watcher::new(server.addr, "news").await;
    let (mut evil, _) = common::topics::ws(&server).await;
    for n in 0..20 {
        send(
            &mut evil,
            json!({"op":"sub","id":n,"topic":format!("flood:{n}")}),
        )
        .await;
    }
    for _ in 0..20 {
        assert!(next_json(&mut evil).await["ok"].is_object());
    }
    let code = error_code(&mut evil, r#"{"op":"sub","id":21,"topic":"flood:21"}"#).await;
    assert_eq!(code, 429);
    publish(server.addr, "news", 0).await;
    watcher.expect_all(1).await;
    a_normal_client_is_served(server.addr).await;
    server.stop_with(&mut [&mut evil]).await;
}

#[tokio::test]
async fn a_client_over_its_request_rate_gets_429_then_is_closed_with_1008() {
    let mut config = ServeConfig::default();
    config.session.max_requests_per_second = 20;
    let server = start_with(config).await;
    let watcher = Watcher::new(server.addr, "news").await;
    let (mut evil, _) = common::topics::ws(&server).await;
    // 20 requests pass (the bucket holds a second's worth), plus what the bucket
    // refills while they arrive (20 per second); the rest are refused, and once
    // the debt is another second's worth the connection is closed.
    let started = tokio::time::Instant::now();
    for n in 0..100 {
        let request = json!({"op":"presence","id":n,"topic":"chat:lobby"}).to_string();
        if evil.send(WsMessage::text(request)).await.is_err() {
            break;
        }
    }
    let (mut answered, mut limited) = (0, 0);
    let close = loop {
        match common::next(&mut evil).await {
            WsMessage::Text(text) => {
                let reply: Value = serde_json::from_str(&text).expect("JSON");
                match reply["error"]["code"].as_u64() {
                    Some(429) => limited += 1,
                    None => answered += 1,
                    Some(other) => panic!("unexpected error {other}: {reply}"),
                }
            }
            WsMessage::Close(frame) => break frame.expect("a close code"),
            other => panic!("unexpected {other:?}"),
        }
    };
    // The bucket starts with 20 tokens, refills at 20 per second, and closes at a
    // debt of 20: 40 requests plus the refill are handled, the last of them
    // answered by the close itself; at most 20 plus the refill get an answer.
    let refilled = (20.0 * started.elapsed().as_secs_f64()).ceil() as usize;
    let replied = answered + limited;
    assert!(
        (20..=20 + refilled).contains(&answered)
            && (39..=40 + refilled).contains(&replied)
            && limited >= 1,
        "{answered} answered, {limited} limited in {:?}",
        started.elapsed()
    );
    assert_eq!(close.code, CloseCode::Policy);
    assert_eq!(close.reason.as_str(), "rate limit exceeded");
    publish(server.addr, "news", 0).await;
    watcher.expect_all(1).await;
    a_normal_client_is_served(server.addr).await;
    server.stop().await;
}

/// The status of a raw request on a fresh connection, and the whole response (its
/// head, and a body of `Content-Length` bytes).
async fn raw_status(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let read = async {
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|l| l.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if response.len() >= end + 4 + length {
                    return response;
                }
            }
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return response,
                Ok(n) => response.extend_from_slice(&buf[..n]),
            }
        }
    };
    let response = tokio::time::timeout(STEP, read)
        .await
        .expect("response timed out");
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    (status, response)
}

fn upgrade_request(addr: SocketAddr, path: &str, origin: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Origin: {origin}\r\n\r\n"
    )
}

fn get_request(addr: SocketAddr, path: &str, origin: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nConnection: close\r\n\r\n")
}

#[tokio::test]
async fn pages_from_other_sites_are_refused_with_403_everywhere() {
    let server = start_with(ServeConfig::default()).await;
    let addr = server.addr;
    let evil = "https://evil.example";
    for path in ["/ws", "/socket"] {
        let (status, response) = raw_status(addr, &upgrade_request(addr, path, evil)).await;
        assert_eq!(status, 403, "{path}: {response}");
        assert!(
            response.contains("origin \\\"https://evil.example\\\" is not allowed"),
            "{response}"
        );
        // Same host, and no Origin at all (not a browser), are let in.
        let (_, head) =
            common::raw_ws_with(addr, path, &format!("Origin: http://{addr}\r\n")).await;
        assert!(head.starts_with("HTTP/1.1 101"));
        let (_, head) = common::raw_ws_with(addr, path, "").await;
        assert!(head.starts_with("HTTP/1.1 101"));
    }
    for path in ["/sse?topic=news", "/poll?topic=news&timeout=0"] {
        let (status, _) = raw_status(addr, &get_request(addr, path, evil)).await;
        assert_eq!(status, 403, "{path}");
        let (status, _) = raw_status(addr, &get_request(addr, path, "null")).await;
        assert_eq!(status, 403, "{path} from an opaque origin");
    }
    // A page elsewhere cannot publish through a loopback-trusting API either.
    let (status, _) = raw_status(
        addr,
        &format!(
            "POST /api/publish/news HTTP/1.1\r\nHost: {addr}\r\nOrigin: {evil}\r\n\
             Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        ),
    )
    .await;
    assert_eq!(status, 403);
    // Pages and health checks need no Origin check.
    let (status, _) = raw_status(addr, &get_request(addr, "/", evil)).await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn allowed_origins_are_let_in() {
    let origins = Origins::same_host()
        .allow("https://app.example.com")
        .expect("origin");
    let server = start_with(ServeConfig {
        origins,
        ..ServeConfig::default()
    })
    .await;
    let addr = server.addr;
    let (_, head) = common::raw_ws_with(addr, "/ws", "Origin: https://app.example.com\r\n").await;
    assert!(head.starts_with("HTTP/1.1 101"));
    let (status, _) = raw_status(
        addr,
        &upgrade_request(addr, "/ws", "https://other.example.com"),
    )
    .await;
    assert_eq!(status, 403);
    server.stop().await;
    let any = start_with(ServeConfig {
        origins: Origins::any(),
        ..ServeConfig::default()
    })
    .await;
    let (_, head) =
        common::raw_ws_with(any.addr, "/ws", "Origin: https://anyone.example\r\n").await;
    assert!(head.starts_with("HTTP/1.1 101"));
    any.stop().await;
}

#[tokio::test]
async fn the_node_connection_limit_answers_503_and_frees_places_on_close() {
    let server = start_with(ServeConfig {
        connection_limits: ConnectionLimits {
            max_connections: 3,
            ..ConnectionLimits::default()
        },
        ..ServeConfig::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(common::topics::ws(&server).await.0);
    }
    let (status, response) = raw_status(
        server.addr,
        &format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            server.addr
        ),
    )
    .await;
    assert_eq!(status, 503, "{response}");
    assert!(response.contains("the server holds its most connections (3)"));
    // A closed WebSocket gives its place back.
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        match tokio_tungstenite::connect_async(server.ws_url("/ws")).await {
            Ok(_) => break,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("the place was not freed: {err}"),
        }
    }
    server
        .stop_with(
            &mut held
                .iter_mut()
                .map(|c| c as &mut dyn common::AnswersClose)
                .collect::<Vec<_>>(),
        )
        .await;
}

#[tokio::test]
async fn per_address_limits_answer_429() {
    let server = start_with(ServeConfig {
        connection_limits: ConnectionLimits {
            max_connections_per_ip: 2,
            ..ConnectionLimits::default()
        },
        ..ServeConfig::default()
    })
    .await;
    let a = common::topics::ws(&server).await.0;
    let b = common::topics::ws(&server).await.0;
    let (status, response) = raw_status(
        server.addr,
        &get_request(server.addr, "/", &format!("http://{}", server.addr)),
    )
    .await;
    assert_eq!(status, 429, "{response}");
    assert!(response.contains("too many connections from your address (at most 2)"));
    drop((a, b));
    server.stop().await;

    let server = start_with(ServeConfig {
        connection_limits: ConnectionLimits {
            new_connections_per_ip: 5,
            ..ConnectionLimits::default()
        },
        ..ServeConfig::default()
    })
    .await;
    // Eight at once: five are admitted, plus what the bucket refilled (5 per
    // second) while they arrived; the rest are refused.
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    let started = tokio::time::Instant::now();
    let statuses: Vec<u16> = futures_util::future::join_all(
        (0..8).map(|_| async { raw_status(server.addr, &request).await.0 }),
    )
    .await;
    let elapsed = started.elapsed();
    let refilled = (5.0 * elapsed.as_secs_f64()).ceil() as usize;
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(admitted + refused, 8, "{statuses:?}");
    assert!(
        (5..=5 + refilled).contains(&admitted),
        "{statuses:?} in {elapsed:?}"
    );
    // After a quiet second the bucket is full again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    assert_eq!(raw_status(server.addr, &request).await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn slow_and_oversized_request_heads_are_cut_off() {
    let server = start_with(ServeConfig {
        http_limits: HttpLimits {
            header_timeout: Duration::from_millis(500),
            max_header_size: 8192,
            ..HttpLimits::default()
        },
        ..ServeConfig::default()
    })
    .await;
    let watcher = Watcher::new(server.addr, "news").await;
    // Slowloris: a head sent a few bytes at a time never completes in time.
    let mut slow = TcpStream::connect(server.addr).await.expect("connect");
    let started = tokio::time::Instant::now();
    let head = format!("GET /ws HTTP/1.1\r\nHost: {}\r\nX-Slow: ", server.addr);
    slow.write_all(head.as_bytes()).await.expect("write");
    let mut closed = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if slow.write_all(b"a").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await
        {
            // A 408 or a plain close, either way it ends.
            closed = n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408");
            if closed {
                break;
            }
        }
    }
    assert!(closed, "a slowloris head was kept open");
    assert!(started.elapsed() < Duration::from_secs(3));
    // Silence after connecting is cut off the same way.
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(3), silent.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "a silent connection was kept open"
    );
    // A head over the size limit is refused with 431.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        server.addr,
        "b".repeat(10_000)
    );
    let (status, _) = raw_status(server.addr, &big).await;
    assert_eq!(status, 431);
    publish(server.addr, "news", 0).await;
    watcher.expect_all(1).await;
    a_normal_client_is_served(server.addr).await;
    server.stop().await;
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_dropped_and_the_rest_get_everything() {
    let server = start_with(ServeConfig::default()).await;
    let watcher = Watcher::new(server.addr, "news").await;
    // Subscribes, then never reads again: its socket buffers fill, its queue passes
    // the high watermark, and the server closes it as a slow consumer.
    let mut stalled = common::raw_ws(server.addr, "/ws").await;
    write_frame(
        &mut stalled,
        0x81,
        json!({"op":"sub","id":1,"topic":"news"})
            .to_string()
            .as_bytes(),
    )
    .await;
    flood(server.addr, "bulk", &"x".repeat(60_000), 400, Some(100)).await;
    drop(stalled);
    watcher.expect_all(4).await;
    a_normal_client_is_served(server.addr).await;
    server.stop().await;
}

#[tokio::test]
async fn the_http_surface_gives_nothing_away() {
    let server = start_with(ServeConfig::default()).await;
    let addr = server.addr;
    let plain =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    // Every answer says nosniff; pages carry the CSP and it has no 'unsafe-'.
    for path in [
        "/",
        "/chat",
        "/static/counter.js",
        "/pushwire.js",
        "/nope",
        "/ws",
    ] {
        let (_, response) = raw_status(addr, &plain(path)).await;
        let lower = response.to_ascii_lowercase();
        assert!(
            lower.contains("x-content-type-options: nosniff"),
            "{path}: {response}"
        );
    }
    for path in ["/", "/chat"] {
        let (status, response) = raw_status(addr, &plain(path)).await;
        assert_eq!(status, 200);
        let csp = response
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-security-policy: ")
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| panic!("{path}: no CSP in {response}"));
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(
            !response.contains("<style>") && !response.contains("<script>"),
            "inline code in {path}"
        );
    }
    // No listing, no traversal, no internals in errors.
    for path in [
        "/static/",
        "/static",
        "/static/../Cargo.toml",
        "/static/%2e%2e/Cargo.toml",
        "/static/..%2fsrc%2fmain.rs",
        "/static//etc/passwd",
        "/static/%00",
        "/%ff%fe",
        "/api/publish/",
        "/a/b/c/d/e/f/g/h",
    ] {
        let (status, response) = raw_status(addr, &plain(path)).await;
        assert!(
            status == 404 || status == 405 || status == 400,
            "{path}: {status}"
        );
        for leak in [
            "src/", "panicked", "/root", "/work", "Cargo", "tokio", "hyper", "axum",
        ] {
            assert!(
                !response.contains(leak),
                "{path} leaks {leak:?}: {response}"
            );
        }
    }
    // The publish API refuses oversized and non-text bodies with their status.
    let client = reqwest::Client::new();
    let response = client
        .post(server.url("/api/publish/news"))
        .body(vec![b'x'; 70_000])
        .timeout(STEP)
        .send()
        .await
        .expect("publish");
    assert_eq!(response.status(), 413);
    let response = client
        .post(server.url("/api/publish/news"))
        .body(vec![0xff, 0xfe, 0xfd])
        .timeout(STEP)
        .send()
        .await
        .expect("publish");
    assert_eq!(response.status(), 400);
    server.stop().await;
}

#[tokio::test]
async fn half_open_and_abandoned_connections_do_not_pile_up() {
    let server = start_with(ServeConfig {
        http_limits: HttpLimits {
            header_timeout: Duration::from_millis(500),
            ..HttpLimits::default()
        },
        ..ServeConfig::default()
    })
    .await;
    let watcher = Watcher::new(server.addr, "news").await;
    // Connections that send half a handshake and then go quiet, and WebSockets
    // whose clients shut down their writing half mid-frame.
    let mut quiet = Vec::new();
    for n in 0..50u64 {
        let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
        tcp.write_all(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n")
            .await
            .expect("write");
        quiet.push(tcp);
        let mut ws = common::raw_ws(server.addr, "/ws").await;
        let _hello = read_frame(&mut ws).await;
        ws.write_all(&[0x81, 0xFE, 0x10])
            .await
            .expect("write half a header");
        ws.shutdown().await.expect("shutdown");
        quiet.push(ws);
        if n % 10 == 0 {
            publish(server.addr, "news", n / 10).await;
        }
    }
    // Every one of them is closed by the server within a bounded time.
    for mut tcp in quiet {
        let mut buf = vec![0u8; 4096];
        let ended = tokio::time::timeout(STEP, async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "a half-open connection was kept");
    }
    watcher.expect_all(5).await;
    a_normal_client_is_served(server.addr).await;
    server.stop().await;
}

#[tokio::test]
async fn a_storm_of_connections_leaves_the_server_serving() {
    let server = start_with(ServeConfig::default()).await;
    let watcher = Watcher::new(server.addr, "news").await;
    let mut tasks = Vec::new();
    for n in 0..200u64 {
        let url = server.ws_url("/ws");
        tasks.push(tokio::spawn(async move {
            if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await {
                let _ = ws
                    .send(WsMessage::text(format!(
                        r#"{{"op":"sub","id":1,"topic":"storm:{}"}}"#,
                        n % 7
                    )))
                    .await;
                let _ = tokio::time::timeout(Duration::from_millis(50), ws.next()).await;
                // Half of them vanish without a close handshake.
                if n % 2 == 0 {
                    let _ = ws.close(None).await;
                }
            }
        }));
        if n % 50 == 0 {
            publish(server.addr, "news", n / 50).await;
        }
    }
    for task in tasks {
        tokio::time::timeout(STEP, task)
            .await
            .expect("a storm client hung")
            .expect("a storm client panicked");
    }
    watcher.expect_all(4).await;
    a_normal_client_is_served(server.addr).await;
    server.stop().await;
}
