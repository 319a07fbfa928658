//! The frame layer's promises beyond plain RFC 6455: permessage-deflate both ways,
//! our client role against our server, `Prepared` frames shared by many sockets,
//! slow consumers, and peers that send a huge frame header or never finish the
//! handshake.

mod common;

use std::time::Duration;

use common::{closed_by_server, raw_ws, read_close, start, write_frame};
use pushwire_ws::client::{ClientConfig, connect_with};
use pushwire_ws::{self as ws, CloseCode, Message, Prepared, Socket, TrySendError};
use tokio::io::AsyncWriteExt;

async fn echo(mut socket: Socket) {
    while let Some(message) = socket.recv().await {
        if socket.send(message).await.is_err() {
            return;
        }
    }
}

fn big_config() -> ws::Config {
    ws::Config {
        max_message_size: 2 << 20,
        ..ws::Config::default()
    }
}

fn client_config() -> ClientConfig {
    let mut config = ClientConfig::default();
    config.ws.max_message_size = 2 << 20;
    config
}

#[tokio::test]
async fn our_client_and_server_negotiate_deflate_and_echo_every_size() {
    let server = start(big_config(), echo).await;
    let mut client = connect_with(&server.ws_url("/echo"), &client_config())
        .await
        .expect("connect");
    assert_eq!(
        client.extensions(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    for size in [1usize, 125, 126, 64 * 1024, 1 << 20] {
        let text: String = (0..size)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        client.send(text.clone()).await.expect("send text");
        let back = tokio::time::timeout(common::STEP, client.recv())
            .await
            .expect("echo");
        assert_eq!(back, Some(Message::from(text)), "text of {size} bytes");
        let bytes: Vec<u8> = (0..size).map(|i| (i * 7 % 256) as u8).collect();
        client.send(bytes.clone()).await.expect("send binary");
        let back = tokio::time::timeout(common::STEP, client.recv())
            .await
            .expect("echo");
        assert_eq!(back, Some(Message::from(bytes)), "binary of {size} bytes");
    }
    drop(client);
    server.stop().await;
}

/// Inflates one raw-deflate message payload (RFC 7692 §7.2.2).
fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut inflater = flate2::Decompress::new(false);
    let mut out = Vec::with_capacity(1 << 20);
    inflater
        .decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
        .expect("valid deflate data");
    out
}

/// Deflates one message the way a browser would.
fn deflate(payload: &[u8]) -> Vec<u8> {
    let mut compressor = flate2::Compress::new(flate2::Compression::default(), false);
    let mut out = Vec::with_capacity(payload.len() + 64);
    compressor
        .compress_vec(payload, &mut out, flate2::FlushCompress::Sync)
        .expect("deflate");
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

#[tokio::test]
async fn compressed_frames_from_a_raw_peer_are_inflated_and_answers_compressed() {
    let server = start(ws::Config::default(), echo).await;
    let (mut tcp, head) = common::raw_ws_with(
        server.addr,
        "/echo",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    )
    .await;
    let head = head.to_lowercase();
    assert!(head.contains(
        "sec-websocket-extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    ), "{head}");

    let text = "pushwire compresses once for everyone. ".repeat(50);
    let compressed = deflate(text.as_bytes());
    // RSV1 + text, split over two fragments: RSV1 only on the first.
    let (a, b) = compressed.split_at(compressed.len() / 2);
    write_frame(&mut tcp, 0x41, a).await;
    write_frame(&mut tcp, 0x80, b).await;
    let (first, payload) = common::read_frame(&mut tcp).await;
    assert_eq!(first, 0xC1, "the echo is one compressed final text frame");
    assert_eq!(inflate(&payload), text.as_bytes());
    // RSV1 on a continuation frame is a protocol error.
    write_frame(&mut tcp, 0x41, a).await;
    write_frame(&mut tcp, 0xC0, b).await;
    assert_eq!(read_close(&mut tcp).await.0, 1002);
    server.stop().await;
}

#[tokio::test]
async fn corrupt_compressed_data_closes_with_1007() {
    let server = start(ws::Config::default(), echo).await;
    let (mut tcp, _) = common::raw_ws_with(
        server.addr,
        "/echo",
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    )
    .await;
    write_frame(&mut tcp, 0xC2, &[0xff, 0xee, 0xdd, 0xcc, 0xbb]).await;
    assert_eq!(read_close(&mut tcp).await.0, 1007);
    server.stop().await;
}

#[tokio::test]
async fn a_prepared_message_reaches_every_socket_compressed_or_not() {
    let (tx, _) = tokio::sync::broadcast::channel::<std::sync::Arc<Prepared>>(16);
    let subscribe = tx.clone();
    let server = start(ws::Config::default(), move |socket: Socket| {
        let mut rx = subscribe.subscribe();
        async move {
            loop {
                let prepared = tokio::select! {
                    received = rx.recv() => match received {
                        Ok(prepared) => prepared,
                        Err(_) => return,
                    },
                    () = socket.closed() => return,
                };
                if socket.send_prepared(&prepared).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    let mut plain_config = client_config();
    plain_config.ws.deflate.enabled = false;
    let mut clients = Vec::new();
    for i in 0..6 {
        let config = if i % 2 == 0 {
            client_config()
        } else {
            plain_config.clone()
        };
        clients.push(
            connect_with(&server.ws_url("/fanout"), &config)
                .await
                .expect("connect"),
        );
    }
    // Wait until every handler has subscribed.
    for _ in 0..200 {
        if tx.receiver_count() == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(tx.receiver_count(), 6);
    let long = "a long message that is worth compressing ".repeat(20);
    for text in ["short", long.as_str()] {
        let prepared = std::sync::Arc::new(Prepared::new(text.to_owned()));
        tx.send(prepared).expect("subscribers");
        for client in &mut clients {
            let got = tokio::time::timeout(common::STEP, client.recv())
                .await
                .expect("fan-out");
            assert_eq!(got, Some(Message::from(text.to_owned())));
        }
    }
    drop(clients);
    server.stop().await;
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_reported_and_closed_as_a_slow_consumer() {
    let config = ws::Config {
        high_watermark: 256 * 1024,
        low_watermark: 64 * 1024,
        ..ws::Config::default()
    };
    let (report, reported) = tokio::sync::oneshot::channel::<usize>();
    let report = std::sync::Mutex::new(Some(report));
    let server = start(config, move |socket: Socket| {
        let report = report.lock().ok().and_then(|mut r| r.take());
        async move {
            let chunk = bytes::Bytes::from(vec![b'x'; 16 * 1024]);
            for sent in 0usize..100_000 {
                match socket.try_send(Message::Binary(chunk.clone())) {
                    Ok(()) => tokio::task::yield_now().await,
                    Err(TrySendError::Full) => {
                        if let Some(report) = report {
                            let _ = report.send(sent);
                        }
                        socket.close(CloseCode::POLICY, "slow consumer");
                        return;
                    }
                    Err(TrySendError::Closed) => return,
                }
            }
        }
    })
    .await;
    // A raw client that reads nothing until the server gives up on it.
    let mut tcp = raw_ws(server.addr, "/flood").await;
    let sent = tokio::time::timeout(common::STEP, reported)
        .await
        .expect("the handler saw a full queue")
        .expect("report");
    // The queue stopped near the high watermark plus what the socket buffers hold,
    // not at 100,000 messages.
    assert!(
        sent < 1000,
        "{sent} messages were queued before the peer was declared slow"
    );
    let (code, reason) = read_close(&mut tcp).await;
    assert_eq!((code, reason.as_str()), (1008, "slow consumer"));
    write_frame(&mut tcp, 0x88, &1008u16.to_be_bytes()).await;
    assert!(closed_by_server(&mut tcp).await);
    server.stop().await;
}

#[tokio::test]
async fn a_peer_that_reads_nothing_is_dropped_once_a_write_stalls_for_the_write_timeout() {
    let config = ws::Config {
        // The queue never pushes back: only the write timeout can end this.
        high_watermark: 1 << 30,
        low_watermark: 1 << 29,
        write_timeout: Duration::from_millis(500),
        ..ws::Config::default()
    };
    let (report, reported) = tokio::sync::oneshot::channel::<(usize, Option<CloseCode>)>();
    let report = std::sync::Mutex::new(Some(report));
    let server = start(config, move |socket: Socket| {
        let report = report.lock().ok().and_then(|mut r| r.take());
        async move {
            let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
            let mut sent = 0;
            // At most 1 GiB, far more than any socket buffer holds, one chunk a
            // millisecond: the handler is still sending (for 16 s) when the 500 ms
            // write timeout ends the connection, however fast the machine. (With a
            // bare yield between chunks a quiet machine queued all 16,384 before
            // the timeout, and the test failed for want of a stall, not of one.)
            while sent < 16 * 1024 {
                if socket.send(Message::Binary(chunk.clone())).await.is_err() {
                    break;
                }
                sent += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            socket.closed().await;
            if let Some(report) = report {
                let _ = report.send((sent, socket.close_code()));
            }
        }
    })
    .await;
    // A raw client that never reads.
    let _tcp = raw_ws(server.addr, "/flood").await;
    let (sent, code) = tokio::time::timeout(common::STEP, reported)
        .await
        .expect("the connection ended within the step")
        .expect("report");
    assert!(
        sent < 16 * 1024,
        "the handler sent all {sent} chunks: the writes never stalled"
    );
    assert_eq!(code, Some(CloseCode::ABNORMAL));
    server.stop().await;
}

#[tokio::test]
async fn a_ten_megabyte_frame_header_is_refused_before_any_payload() {
    let server = start(ws::Config::default(), echo).await;
    let mut tcp = raw_ws(server.addr, "/echo").await;
    // Header only: binary, masked, 64-bit length of 10 MB; no payload ever follows.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(10_000_000u64).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    tcp.write_all(&header).await.expect("write header");
    assert_eq!(read_close(&mut tcp).await.0, 1009);
    assert!(closed_by_server(&mut tcp).await);
    server.stop().await;
}

#[tokio::test]
async fn the_server_picks_its_preferred_subprotocol_among_the_offered_ones() {
    let config = ws::Config {
        subprotocols: vec!["v2.pushwire".into(), "v1.pushwire".into()],
        ..ws::Config::default()
    };
    let server = start(config, |socket: Socket| async move {
        let chosen = socket.protocol().unwrap_or("none").to_owned();
        let _ = socket.send(chosen).await;
    })
    .await;
    // An independent client offering two, in its own order.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = server.ws_url("/p").into_client_request().expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v1.pushwire, v2.pushwire".parse().expect("header"),
    );
    let (mut client, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.as_bytes()),
        Some(&b"v2.pushwire"[..])
    );
    assert_eq!(
        common::next(&mut client).await,
        tokio_tungstenite::tungstenite::Message::text("v2.pushwire")
    );
    drop(client);
    // Our client offering one the server speaks, and one offering none it speaks.
    let mut config = client_config();
    config.ws.subprotocols = vec!["v1.pushwire".into()];
    let mut ours = connect_with(&server.ws_url("/p"), &config)
        .await
        .expect("connect");
    assert_eq!(ours.protocol(), Some("v1.pushwire"));
    assert_eq!(ours.recv().await, Some(Message::from("v1.pushwire")));
    config.ws.subprotocols = vec!["mqtt".into()];
    let mut none = connect_with(&server.ws_url("/p"), &config)
        .await
        .expect("connect");
    assert_eq!(none.protocol(), None);
    assert_eq!(none.recv().await, Some(Message::from("none")));
    server.stop().await;
}

#[tokio::test]
async fn idle_peers_are_pinged_and_silent_ones_are_closed() {
    let config = ws::Config {
        ping_interval: Some(Duration::from_secs(1)),
        idle_timeout: Duration::from_secs(3),
        ..ws::Config::default()
    };
    let server = start(config, |socket: Socket| async move {
        socket.closed().await;
    })
    .await;
    // A live client sees pings (and its library answers them).
    let mut live = common::connect(&server.ws_url("/idle")).await;
    match common::next_frame(&mut live).await {
        tokio_tungstenite::tungstenite::Message::Ping(_) => {}
        other => panic!("expected a ping, got {other:?}"),
    }
    // A peer that never sends a byte is closed once the idle timeout has passed.
    let mut silent = raw_ws(server.addr, "/idle").await;
    let started = tokio::time::Instant::now();
    let (code, reason) = read_close(&mut silent).await;
    assert_eq!((code, reason.as_str()), (1001, "nothing received for 3 s"));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "closed after only {waited:?}"
    );
    assert!(closed_by_server(&mut silent).await);
    drop(live);
    server.stop().await;
}
