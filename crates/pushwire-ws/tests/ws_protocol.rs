//! RFC 6455 behaviour of our frame layer over real sockets: messages both ways,
//! fragments, and the close code for each kind of violation. tokio-tungstenite is
//! the independent peer where it can express the case; raw frames where it can't.

mod common;

use common::{
    closed_by_server, connect, masked_frame, next, raw_ws, read_close, read_frame, start,
    write_frame,
};
use std::time::Duration;

use futures_util::SinkExt;
use pushwire_ws::{Config, Socket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Sends every message back as it came.
async fn echo(mut socket: Socket) {
    while let Some(message) = socket.recv().await {
        if socket.send(message).await.is_err() {
            return;
        }
    }
}

async fn start_echo() -> common::Running {
    start(Config::default(), echo).await
}

#[tokio::test]
async fn text_and_binary_messages_round_trip() {
    let server = start_echo().await;
    let mut client = connect(&server.ws_url("/echo")).await;
    for size in [0usize, 1, 125, 126, 127, 65_535, 65_536] {
        let text = "x".repeat(size);
        client
            .send(WsMessage::text(text.clone()))
            .await
            .expect("send text");
        assert_eq!(next(&mut client).await, WsMessage::text(text));
        let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        client
            .send(WsMessage::binary(bytes.clone()))
            .await
            .expect("send binary");
        assert_eq!(next(&mut client).await, WsMessage::binary(bytes));
    }
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn fragments_are_reassembled_with_control_frames_between_them() {
    let server = start_echo().await;
    let mut tcp = raw_ws(server.addr, "/echo").await;
    write_frame(&mut tcp, 0x01, "héllo, ".as_bytes()).await; // text, not final
    write_frame(&mut tcp, 0x89, b"mid").await; // ping between fragments
    // "wörld" split inside the two-byte "ö".
    let world = "wörld".as_bytes();
    write_frame(&mut tcp, 0x00, &world[..2]).await;
    write_frame(&mut tcp, 0x80, &world[2..]).await; // final continuation
    assert_eq!(read_frame(&mut tcp).await, (0x8A, b"mid".to_vec()));
    assert_eq!(
        read_frame(&mut tcp).await,
        (0x81, "héllo, wörld".as_bytes().to_vec())
    );
    drop(tcp);
    server.stop().await;
}

/// Sends `frames` raw and expects a close frame with `code`, then the TCP close.
async fn expect_close_for(frames: &[(u8, &[u8])], code: u16) {
    let server = start_echo().await;
    let mut tcp = raw_ws(server.addr, "/echo").await;
    for (first, payload) in frames {
        write_frame(&mut tcp, *first, payload).await;
    }
    let (got, reason) = read_close(&mut tcp).await;
    assert_eq!(got, code, "close reason was {reason:?}");
    assert!(
        closed_by_server(&mut tcp).await,
        "server kept the connection open"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_message_over_the_size_limit_closes_with_1009() {
    let big = vec![b'a'; 64 * 1024 + 1];
    expect_close_for(&[(0x82, &big)], 1009).await;
}

#[tokio::test]
async fn fragments_adding_up_past_the_limit_close_with_1009() {
    let half = vec![b'a'; 40 * 1024];
    expect_close_for(&[(0x02, &half), (0x80, &half)], 1009).await;
}

#[tokio::test]
async fn invalid_utf8_in_text_closes_with_1007() {
    expect_close_for(&[(0x81, &[0xce, 0xba, 0xff, 0x61])], 1007).await;
}

#[tokio::test]
async fn invalid_utf8_fails_fast_before_the_message_ends() {
    // The first fragment is already invalid; no final fragment ever comes.
    expect_close_for(&[(0x01, &[0x61, 0xc0, 0xaf])], 1007).await;
}

/// Autobahn|Testsuite 6.4.x's invalid text: valid UTF-8, then U+110000 encoded in
/// four bytes (`f4 90 80 80`, out of range: invalid at its second byte), then more.
const SUITE_6_4_TEXT: &[u8] = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited";

/// Where the pieces of [`SUITE_6_4_TEXT`] end: five valid pieces (the fifth ending
/// inside the four-byte sequence, as in case 6.4.4), then the byte that makes it
/// invalid, then the rest.
const SUITE_6_4_CUTS: [usize; 7] = [2, 5, 7, 9, 12, 13, 21];

/// An echo server whose keepalive would ping a connection within the test: a period
/// of 3 s (each connection draws between 2.25 s and 3 s), swept once a second.
async fn start_echo_pinging() -> common::Running {
    let config = Config {
        ping_interval: Some(Duration::from_secs(3)),
        ..Config::default()
    };
    start(config, echo).await
}

/// Sends `pieces` one write each, pausing a second after each but the last two, as a
/// slow sender would (and as Autobahn|Testsuite 6.4.x does). During each pause the
/// server must send nothing: the text so far is valid and the peer is visibly alive,
/// so no close and no keepalive ping (the suite records a ping as an event, and
/// answers it with a pong written into the middle of the frame it is sending). After
/// the invalid byte, the server closes with 1007 at once, before the message ends.
async fn feed_slowly_then_expect_1007(pieces: &[Vec<u8>]) {
    let server = start_echo_pinging().await;
    let mut tcp = raw_ws(server.addr, "/echo").await;
    let (valid, rest) = pieces.split_at(pieces.len() - 2);
    for (i, piece) in valid.iter().enumerate() {
        tcp.write_all(piece).await.expect("write piece");
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut byte)).await {
            Err(_) => {} // nothing arrived during the pause, as it should
            Ok(Ok(0)) => panic!("the server closed TCP after valid piece {i}"),
            Ok(Ok(_)) => panic!(
                "the server sent a frame (first byte {:#04x}) during the pause after valid \
                 piece {i}: a peer in the middle of sending is neither failed nor pinged",
                byte[0]
            ),
            Ok(Err(err)) => panic!("read failed after valid piece {i}: {err}"),
        }
    }
    tcp.write_all(&rest[0])
        .await
        .expect("write the invalid byte");
    let (code, reason) = read_close(&mut tcp).await;
    assert_eq!(code, 1007, "close reason was {reason:?}");
    // The rest of the message may still be written; the connection is over anyway.
    let _ = tcp.write_all(&rest[1]).await;
    assert!(
        closed_by_server(&mut tcp).await,
        "the server did not close TCP"
    );
    server.stop().await;
}

#[tokio::test]
async fn invalid_utf8_split_across_slow_reads_of_one_frame_fails_fast_and_is_not_pinged() {
    // Autobahn 6.4.3/6.4.4: one text frame, its bytes arriving in pieces with pauses.
    let frame = masked_frame(0x81, SUITE_6_4_TEXT);
    let head = frame.len() - SUITE_6_4_TEXT.len();
    let mut pieces = Vec::new();
    let mut from = 0;
    for cut in SUITE_6_4_CUTS {
        pieces.push(frame[from..head + cut].to_vec());
        from = head + cut;
    }
    feed_slowly_then_expect_1007(&pieces).await;
}

#[tokio::test]
async fn invalid_utf8_split_across_slow_fragments_fails_fast_and_is_not_pinged() {
    // Autobahn 6.4.1/6.4.2: the same text in fragments, one frame per piece.
    let mut pieces = Vec::new();
    let mut from = 0;
    for (i, cut) in SUITE_6_4_CUTS.into_iter().enumerate() {
        let opcode = if i == 0 { 0x01 } else { 0x00 };
        let fin = if cut == SUITE_6_4_TEXT.len() { 0x80 } else { 0 };
        pieces.push(masked_frame(fin | opcode, &SUITE_6_4_TEXT[from..cut]));
        from = cut;
    }
    feed_slowly_then_expect_1007(&pieces).await;
}

#[tokio::test]
async fn reserved_opcodes_and_bits_close_with_1002() {
    expect_close_for(&[(0x83, b"")], 1002).await;
    expect_close_for(&[(0x8B, b"")], 1002).await;
    expect_close_for(&[(0xC1, b"compressed?")], 1002).await;
}

#[tokio::test]
async fn continuation_without_a_message_closes_with_1002() {
    expect_close_for(&[(0x80, b"orphan")], 1002).await;
}

#[tokio::test]
async fn a_new_message_inside_a_fragmented_one_closes_with_1002() {
    expect_close_for(&[(0x01, b"first"), (0x81, b"second")], 1002).await;
}

#[tokio::test]
async fn fragmented_or_oversized_control_frames_close_with_1002() {
    expect_close_for(&[(0x09, b"")], 1002).await;
    expect_close_for(&[(0x89, &[0u8; 126])], 1002).await;
}

#[tokio::test]
async fn invalid_close_payloads_close_with_1002() {
    expect_close_for(&[(0x88, &[0x03])], 1002).await;
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000] {
        expect_close_for(&[(0x88, &code.to_be_bytes())], 1002).await;
    }
}

#[tokio::test]
async fn a_close_reason_that_is_not_utf8_closes_with_1007() {
    expect_close_for(&[(0x88, &[0x03, 0xe8, 0xff, 0xfe])], 1007).await;
}

#[tokio::test]
async fn valid_close_codes_are_echoed() {
    for code in [1000u16, 1001, 1003, 1007, 1011, 3000, 4999] {
        let server = start_echo().await;
        let mut tcp = raw_ws(server.addr, "/echo").await;
        write_frame(&mut tcp, 0x88, &code.to_be_bytes()).await;
        assert_eq!(read_close(&mut tcp).await.0, code);
        assert!(closed_by_server(&mut tcp).await);
        server.stop().await;
    }
}

#[tokio::test]
async fn an_unmasked_client_frame_closes_with_1002() {
    let server = start_echo().await;
    let mut tcp = raw_ws(server.addr, "/echo").await;
    tokio::io::AsyncWriteExt::write_all(&mut tcp, &[0x81, 0x02, b'h', b'i'])
        .await
        .expect("write");
    assert_eq!(read_close(&mut tcp).await.0, 1002);
    assert!(closed_by_server(&mut tcp).await);
    server.stop().await;
}

#[tokio::test]
async fn a_handler_that_returns_closes_normally_after_its_messages() {
    let server = start(Config::default(), |socket: Socket| async move {
        let _ = socket.send("one").await;
        let _ = socket.send("two").await;
    })
    .await;
    let mut client = connect(&server.ws_url("/bye")).await;
    assert_eq!(next(&mut client).await, WsMessage::text("one"));
    assert_eq!(next(&mut client).await, WsMessage::text("two"));
    match next(&mut client).await {
        WsMessage::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected a normal close, got {other:?}"),
    }
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn messages_before_a_violation_are_answered_before_the_close() {
    let server = start_echo().await;
    let mut tcp = raw_ws(server.addr, "/echo").await;
    // Both frames in one write: a valid text, then a reserved opcode.
    let mut bytes = masked_frame(0x81, b"hello");
    bytes.extend(masked_frame(0x85, b""));
    tokio::io::AsyncWriteExt::write_all(&mut tcp, &bytes)
        .await
        .expect("write");
    assert_eq!(read_frame(&mut tcp).await, (0x81, b"hello".to_vec()));
    assert_eq!(read_close(&mut tcp).await.0, 1002);
    server.stop().await;
}

#[tokio::test]
async fn invalid_utf8_inside_an_unfinished_frame_fails_at_once() {
    let server = start_echo().await;
    let mut tcp = raw_ws(server.addr, "/echo").await;
    // A text frame announcing 100 bytes; only the first 4 are sent, and the third is
    // already invalid. The server must not wait for the other 96.
    let mut payload = vec![b'x'; 100];
    payload[..4].copy_from_slice(&[b'a', b'b', 0xff, b'c']);
    let mut bytes = masked_frame(0x81, &payload);
    bytes.truncate(2 + 4 + 4); // header, masking key, 4 payload bytes
    tokio::io::AsyncWriteExt::write_all(&mut tcp, &bytes)
        .await
        .expect("write");
    assert_eq!(read_close(&mut tcp).await.0, 1007);
    server.stop().await;
}

#[tokio::test]
async fn messages_before_the_peers_close_are_answered_before_the_reply() {
    let server = start_echo().await;
    let mut tcp = raw_ws(server.addr, "/echo").await;
    // Two messages and a close in one write: nothing read may be lost.
    let mut bytes = masked_frame(0x81, b"one");
    bytes.extend(masked_frame(0x81, b"two"));
    bytes.extend(masked_frame(0x88, &1000u16.to_be_bytes()));
    tokio::io::AsyncWriteExt::write_all(&mut tcp, &bytes)
        .await
        .expect("write");
    assert_eq!(read_frame(&mut tcp).await, (0x81, b"one".to_vec()));
    assert_eq!(read_frame(&mut tcp).await, (0x81, b"two".to_vec()));
    assert_eq!(read_close(&mut tcp).await.0, 1000);
    assert!(closed_by_server(&mut tcp).await);
    server.stop().await;
}
