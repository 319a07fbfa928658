//! Benchmark peer: the counter and broadcast endpoints on plain axum 0.8 with its
//! `ws` feature (tokio-tungstenite underneath) and a `tokio::sync::broadcast` channel,
//! with the defaults an axum user gets (tungstenite's 128 KiB read and write buffers).
//!
//! - `/socket`: each connection gets its own counter, "1" one interval after it opens,
//!   then "2", "3", … on a fixed grid; ticks missed while the process was busy are
//!   skipped, not fired in a burst (like pushwire's ticker).
//! - `/broadcast`: every text message a client sends goes, unchanged, to every client
//!   connected to `/broadcast` at that moment, the sender included.
//!
//! Usage: `peer-axum [--port N] [--deflate]`. Prints `ready ws://127.0.0.1:<port>` once
//! it accepts connections; runs until SIGTERM or SIGINT. `COUNTER_INTERVAL_MS`
//! overrides the 1000 ms interval. axum has no permessage-deflate: `--deflate` only
//! prints a note.

use std::io::Write;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast;
use tokio::time::{Instant, MissedTickBehavior, interval_at};

/// Messages the channel keeps for a subscriber that falls behind, as in axum's chat
/// example; one that falls further behind skips what it missed (and keeps going).
const BROADCAST_CAPACITY: usize = 100;

#[derive(Clone)]
struct AppState {
    interval: Duration,
    tx: broadcast::Sender<Utf8Bytes>,
}

async fn counter(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.on_upgrade(move |socket| count(socket, state.interval))
}

async fn count(mut socket: WebSocket, interval: Duration) {
    let mut ticks = interval_at(Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                n += 1;
                if socket.send(Message::text(n.to_string())).await.is_err() {
                    return;
                }
            }
            // Reading notices a close; pings are answered by tungstenite.
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn broadcast_handler(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    // Subscribe before answering the upgrade, so a client that has its 101 response
    // gets every message sent after that.
    let rx = state.tx.subscribe();
    ws.on_upgrade(move |socket| room(socket, state.tx, rx))
}

async fn room(
    socket: WebSocket,
    tx: broadcast::Sender<Utf8Bytes>,
    mut rx: broadcast::Receiver<Utf8Bytes>,
) {
    let (mut sender, mut receiver) = socket.split();

    // Everything published goes out on this socket; `Utf8Bytes` is a shared buffer, so
    // the payload is encoded once and tungstenite frames it per socket.
    let mut send_task = tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(text) => {
                    if sender.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });

    // Every text message this client sends is published to the room.
    let mut recv_task = tokio::spawn(async move {
        while let Some(Ok(message)) = receiver.next().await {
            match message {
                Message::Text(text) => {
                    let _ = tx.send(text);
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    });

    tokio::select! {
        _ = &mut send_task => recv_task.abort(),
        _ = &mut recv_task => send_task.abort(),
    }
}

struct Args {
    port: u16,
    deflate: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 8888,
        deflate: false,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        if arg == "--deflate" {
            args.deflate = true;
        } else if arg == "--port" || arg.starts_with("--port=") {
            let value = match arg.strip_prefix("--port=") {
                Some(value) => Some(value.to_owned()),
                None => argv.next(),
            };
            args.port = value
                .as_deref()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("--port needs a number from 0 to 65535, not {value:?}"))?;
        } else {
            return Err(format!("unknown argument: {arg}"));
        }
    }
    Ok(args)
}

fn counter_interval() -> Result<Duration, String> {
    match std::env::var("COUNTER_INTERVAL_MS") {
        Err(_) => Ok(Duration::from_secs(1)),
        Ok(ms) => match ms.parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
            _ => Err(format!(
                "COUNTER_INTERVAL_MS must be a positive number of milliseconds, not {ms:?}"
            )),
        },
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[tokio::main]
async fn main() {
    let (args, interval) = match parse_args().and_then(|a| Ok((a, counter_interval()?))) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}\nusage: peer-axum [--port N] [--deflate]");
            std::process::exit(2);
        }
    };
    if args.deflate {
        eprintln!(
            "note: axum has no permessage-deflate; --deflate is ignored, messages go uncompressed"
        );
    }

    let (tx, _rx) = broadcast::channel(BROADCAST_CAPACITY);
    let app = Router::new()
        .route("/socket", get(counter))
        .route("/broadcast", get(broadcast_handler))
        .with_state(AppState { interval, tx });

    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("cannot listen on 127.0.0.1:{}: {err}", args.port);
            std::process::exit(1);
        }
    };
    let port = listener.local_addr().expect("local address").port();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ready ws://127.0.0.1:{port}")
        .and_then(|()| stdout.flush())
        .expect("stdout");
    drop(stdout);

    tokio::select! {
        result = axum::serve(listener, app) => {
            if let Err(err) = result {
                eprintln!("server error: {err}");
                std::process::exit(1);
            }
        }
        () = shutdown_signal() => {}
    }
    // Open WebSockets are simply dropped: a benchmark peer needs no graceful close.
    std::process::exit(0);
}
