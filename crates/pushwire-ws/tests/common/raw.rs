//! WebSocket by hand over TCP, for frames no client library would send: the
//! handshake, masked client frames, server frames, the close, the server's EOF.
//! Shared by this crate's tests and the root crate's (`tests/it/common/mod.rs`
//! includes this file), with the `STEP` of the module that includes it.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::STEP;

/// Opens a WebSocket by hand over TCP (for sending frames no client library would)
/// and returns the stream positioned after the 101 response.
pub async fn raw_ws(addr: SocketAddr, path: &str) -> TcpStream {
    raw_ws_with(addr, path, "").await.0
}

/// [`raw_ws`] with `extra` header lines (each ending in `\r\n`) in the request;
/// also returns the response head.
pub async fn raw_ws_with(addr: SocketAddr, path: &str, extra: &str) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    tcp.write_all(request.as_bytes())
        .await
        .expect("write handshake");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(STEP, tcp.read(&mut byte))
            .await
            .expect("handshake response timed out")
            .expect("read handshake response");
        assert_eq!(n, 1, "connection closed during the handshake: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 101 "), "not upgraded: {head}");
    (tcp, head)
}
/// Encodes one masked client frame with the given first byte and payload.
pub fn masked_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x11, 0x22, 0x33, 0x44];
    let mut frame = vec![first_byte];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

/// Writes one masked client frame with the given first byte and payload.
pub async fn write_frame(tcp: &mut TcpStream, first_byte: u8, payload: &[u8]) {
    tcp.write_all(&masked_frame(first_byte, payload))
        .await
        .expect("write frame");
}

/// Reads one server frame (unmasked, payload under 64 KiB): `(first byte, payload)`.
pub async fn read_frame(tcp: &mut TcpStream) -> (u8, Vec<u8>) {
    let read = async {
        let mut head = [0u8; 2];
        tcp.read_exact(&mut head).await?;
        assert_eq!(head[1] & 0x80, 0, "server frames must not be masked");
        let len = match head[1] & 0x7F {
            126 => {
                let mut ext = [0u8; 2];
                tcp.read_exact(&mut ext).await?;
                usize::from(u16::from_be_bytes(ext))
            }
            127 => panic!("unexpectedly large frame"),
            len => usize::from(len),
        };
        let mut payload = vec![0u8; len];
        tcp.read_exact(&mut payload).await?;
        Ok::<_, std::io::Error>((head[0], payload))
    };
    tokio::time::timeout(STEP, read)
        .await
        .expect("frame timed out")
        .expect("read frame")
}

/// Reads frames until a close frame and returns its code and reason; data frames
/// before it are skipped.
pub async fn read_close(tcp: &mut TcpStream) -> (u16, String) {
    for _ in 0..10_000 {
        let (first, payload) = read_frame(tcp).await;
        if first & 0x0F == 0x8 {
            assert_eq!(first, 0x88, "close frame must be final with no RSV bits");
            if payload.is_empty() {
                return (1005, String::new());
            }
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            return (code, String::from_utf8_lossy(&payload[2..]).into_owned());
        }
    }
    panic!("no close frame within 10,000 frames");
}

/// Whether the server has closed the TCP connection (EOF) within [`STEP`],
/// discarding anything it still sends.
pub async fn closed_by_server(tcp: &mut TcpStream) -> bool {
    let mut sink = [0u8; 1024];
    let drained = async {
        loop {
            match tcp.read(&mut sink).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(STEP, drained).await.unwrap_or(false)
}
