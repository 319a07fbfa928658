//! https and wss: rustls on the server, HTTP/1.1 and HTTP/2 by ALPN, WebSocket
//! over TLS, the handshake's time limit, typed errors for unusable files, and
//! certificate reload on SIGHUP in the real binary.
//!
//! Certificates are made at test time (rcgen); every client trusts exactly the
//! certificates the test made, through its own rustls root store, except where a
//! test checks what our own client (`pushwire::topic_client`, `pushwire pub` / `sub`)
//! does with the system's roots plus the test's certificate, or without it.

use crate::common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::SinkExt as _;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pushwire::config::ServeConfig;
use pushwire::topic::Data;
use pushwire::topic_client::{Client, ClientError, ClientOptions, Event};
use pushwire::ws::client::{ConnectError, TlsFailure};
use pushwire::{App, Error, HttpLimits, TlsConfig, TlsError};
use rustls::pki_types::CertificateDer;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use common::binary::{Output, Process, finish, pushwire, pushwire_async};
use common::tls::{Cert, http1_request, make_cert_for, peer_cert, tls_connect};
use common::topics::next_json;
use common::{Running, STEP, next_text};

/// A self-signed certificate for 127.0.0.1 marked as an authority (`CA:TRUE`), as
/// `openssl req -x509` makes them (the README's); expired since 2001 if `expired`.
fn make_authority_cert(expired: bool) -> Cert {
    let mut params =
        rcgen::CertificateParams::new(vec![String::from("127.0.0.1")]).expect("parameters");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let key = rcgen::KeyPair::generate().expect("a key");
    let cert = params.self_signed(&key).expect("a certificate");
    Cert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
    }
}

/// `cert` written to `cert.pem` and `key.pem` in `dir`.
fn write_files(dir: &Path, cert: &Cert) -> TlsConfig {
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&key_path, &cert.key_pem).expect("write key");
    std::fs::write(&cert_path, &cert.cert_pem).expect("write cert");
    TlsConfig::pem_files(cert_path, key_path)
}

/// The counter demo over TLS with `cert`, counting every 100 ms, on a free port.
async fn start_tls(dir: &Path, cert: &Cert) -> Running {
    start_tls_with(dir, cert, HttpLimits::default()).await
}

async fn start_tls_with(dir: &Path, cert: &Cert, limits: HttpLimits) -> Running {
    let config = ServeConfig {
        port: 0,
        interval: Duration::from_millis(100),
        tls: Some(write_files(dir, cert)),
        ..ServeConfig::default()
    };
    let app = pushwire::node::app(&config)
        .expect("demo app")
        .http_limits(limits);
    common::start(app).await
}

fn make_cert() -> Cert {
    make_cert_for(&["127.0.0.1", "localhost"])
}

fn alpn(stream: &TlsStream<TcpStream>) -> Option<Vec<u8>> {
    stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
}

async fn https_get(addr: SocketAddr, cert: &Cert, path: &str) -> (u16, String) {
    let stream = tls_connect(addr, &[&cert.der], &[b"http/1.1"]).await;
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))
        .expect("request");
    http1_request(stream, request).await
}

type Wss = WebSocketStream<TlsStream<TcpStream>>;

/// A WebSocket over TLS (ALPN http/1.1, as browsers do for wss:) to `path`.
async fn wss_connect(addr: SocketAddr, trusted: &[&CertificateDer<'static>], path: &str) -> Wss {
    let stream = tls_connect(addr, trusted, &[b"http/1.1"]).await;
    let url = format!("wss://{addr}{path}");
    let (client, response) =
        tokio::time::timeout(STEP, tokio_tungstenite::client_async(url, stream))
            .await
            .expect("WebSocket handshake timed out")
            .expect("WebSocket handshake failed");
    assert_eq!(response.status(), 101);
    client
}

#[tokio::test]
async fn https_over_http1_answers_the_counter_page() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = make_cert();
    let server = start_tls(dir.path(), &cert).await;
    let stream = tls_connect(server.addr, &[&cert.der], &[b"http/1.1"]).await;
    assert_eq!(alpn(&stream).as_deref(), Some(&b"http/1.1"[..]));
    let request = hyper::Request::get("/")
        .header(hyper::header::HOST, server.addr.to_string())
        .body(Full::new(Bytes::new()))
        .expect("request");
    let (status, body) = http1_request(stream, request).await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#"id="data""#),
        "not the counter page: {body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn https_over_http2_is_chosen_by_alpn_and_answers_the_counter_page() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = make_cert();
    let server = start_tls(dir.path(), &cert).await;
    let stream = tls_connect(server.addr, &[&cert.der], &[b"h2", b"http/1.1"]).await;
    assert_eq!(alpn(&stream).as_deref(), Some(&b"h2"[..]));
    let (mut sender, _connection) = h2_handshake(stream).await;
    let response = h2_get(&mut sender, server.addr, "/").await;
    let version = response.version();
    let status = response.status().as_u16();
    let body = tokio::time::timeout(STEP, response.into_body().collect())
        .await
        .expect("HTTP/2 body timed out")
        .expect("HTTP/2 body failed")
        .to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(version, hyper::Version::HTTP_2);
    assert_eq!(status, 200);
    assert!(
        body.contains(r#"id="data""#),
        "not the counter page: {body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn wss_socket_gets_its_counter() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = make_cert();
    let server = start_tls(dir.path(), &cert).await;
    let mut client = wss_connect(server.addr, &[&cert.der], "/socket").await;
    assert_eq!(next_text(&mut client).await, "1");
    assert_eq!(next_text(&mut client).await, "2");
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn wss_topics_receive_what_the_https_publish_api_publishes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = make_cert();
    let server = start_tls(dir.path(), &cert).await;
    let mut client = wss_connect(server.addr, &[&cert.der], "/ws").await;
    let hello = next_json(&mut client).await;
    assert_eq!(hello["hello"]["version"], 1, "{hello}");
    let subscribe = json!({"op": "sub", "id": 1, "topic": "news"}).to_string();
    tokio::time::timeout(STEP, client.send(WsMessage::text(subscribe)))
        .await
        .expect("send timed out")
        .expect("send failed");
    let reply = next_json(&mut client).await;
    assert_eq!(reply["id"], 1, "{reply}");
    assert!(reply.get("ok").is_some(), "{reply}");

    let stream = tls_connect(server.addr, &[&cert.der], &[b"http/1.1"]).await;
    let request = hyper::Request::post("/api/publish/news")
        .header(hyper::header::HOST, server.addr.to_string())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(br#"{"headline":"over TLS"}"#)))
        .expect("request");
    let (status, body) = http1_request(stream, request).await;
    assert_eq!(status, 200, "{body}");

    let push = next_json(&mut client).await;
    assert_eq!(push["topic"], "news", "{push}");
    assert_eq!(push["data"]["headline"], "over TLS", "{push}");
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn plain_http_to_the_tls_port_fails_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = make_cert();
    let server = start_tls(dir.path(), &cert).await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    // The server sends at most a TLS alert, then closes (or resets) the connection.
    let _ = tokio::time::timeout(STEP, tcp.read_to_end(&mut answer))
        .await
        .expect("the server did not close the connection");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP was answered: {:?}",
        String::from_utf8_lossy(&answer)
    );
    let (status, body) = https_get(server.addr, &cert, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains(r#"id="data""#));
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_the_handshake_is_disconnected_after_the_header_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = make_cert();
    let timeout = Duration::from_millis(300);
    let limits = HttpLimits {
        header_timeout: timeout,
        ..HttpLimits::default()
    };
    let server = start_tls_with(dir.path(), &cert, limits).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    // Half a ClientHello record header, then nothing.
    silent.write_all(&[0x16, 0x03]).await.expect("write");
    assert!(
        common::closed_by_server(&mut silent).await,
        "not disconnected within {STEP:?}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= timeout - Duration::from_millis(50),
        "disconnected after {waited:?}, before the timeout"
    );
    // Others are still served.
    let (status, _) = https_get(server.addr, &cert, "/").await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn the_reloader_swaps_the_certificate_for_new_connections_and_keeps_it_on_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (first, second) = (make_cert(), make_cert());
    let files = write_files(dir.path(), &first);
    let server = App::new()
        .tls(files.clone())
        .bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = server.local_addr();
    let reloader = server.tls_reloader().expect("a TLS server has a reloader");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    let both = [&first.der, &second.der];
    assert_eq!(peer_cert(&tls_connect(addr, &both, &[]).await), first.der);

    write_files(dir.path(), &second);
    reloader.reload().expect("reload the second certificate");
    assert_eq!(peer_cert(&tls_connect(addr, &both, &[]).await), second.der);

    std::fs::write(files.cert_path(), "not PEM at all").expect("write garbage");
    let err = reloader.reload().expect_err("garbage is refused");
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
    assert_eq!(peer_cert(&tls_connect(addr, &both, &[]).await), second.der);

    let _ = stop.send(());
    tokio::time::timeout(STEP, running)
        .await
        .expect("server did not stop")
        .expect("server task")
        .expect("server result");
}

#[tokio::test]
async fn unusable_files_fail_bind_with_a_typed_error() {
    async fn bind_error(config: TlsConfig) -> TlsError {
        match App::new().tls(config).bind("127.0.0.1:0").await {
            Err(Error::Tls(err)) => err,
            Err(other) => panic!("not a TLS error: {other:?}"),
            Ok(_) => panic!("bound with unusable TLS files"),
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, other) = (make_cert(), make_cert());
    let path = |name: &str| -> PathBuf { dir.path().join(name) };
    let write = |name: &str, text: &str| std::fs::write(path(name), text).expect("write");
    write("cert.pem", &cert.cert_pem);
    write("key.pem", &cert.key_pem);
    write("other-key.pem", &other.key_pem);
    write("garbage.pem", "hello, I am not PEM\n");
    write(
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END PRIVATE KEY-----\n",
    );

    let err = bind_error(TlsConfig::pem_files(path("missing.pem"), path("key.pem"))).await;
    assert!(
        matches!(
            &err,
            TlsError::Read {
                what: "certificate",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("missing.pem"), "{err}");

    let err = bind_error(TlsConfig::pem_files(path("cert.pem"), path("missing.pem"))).await;
    assert!(
        matches!(
            &err,
            TlsError::Read {
                what: "private key",
                ..
            }
        ),
        "{err:?}"
    );

    let err = bind_error(TlsConfig::pem_files(path("garbage.pem"), path("key.pem"))).await;
    assert!(matches!(&err, TlsError::NoCertificate { .. }), "{err:?}");

    let err = bind_error(TlsConfig::pem_files(path("broken.pem"), path("key.pem"))).await;
    assert!(matches!(&err, TlsError::Pem { .. }), "{err:?}");

    // A key file that holds a certificate only.
    let err = bind_error(TlsConfig::pem_files(path("cert.pem"), path("cert.pem"))).await;
    assert!(matches!(&err, TlsError::NoPrivateKey { .. }), "{err:?}");

    let err = bind_error(TlsConfig::pem_files(
        path("cert.pem"),
        path("other-key.pem"),
    ))
    .await;
    assert!(matches!(&err, TlsError::KeyMismatch { .. }), "{err:?}");
    assert!(
        err.to_string().contains("does not match the certificate"),
        "{err}"
    );
}

/// Waits (bounded by [`STEP`]) for a line of `lines` that contains `needle`.
fn wait_for_line(lines: &std::sync::mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => continue,
            Err(err) => panic!("no line with {needle:?} within {STEP:?}: {err}"),
        }
    }
}

/// Every line of `stream`, through a channel (read on a thread of its own).
fn lines_of(stream: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn sighup(server: &Process) {
    let status = Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -HUP failed");
}

/// `pushwire serve` over TLS with `files`, counting every 100 ms, on a free port:
/// the process, its address, and the lines of its standard error.
fn spawn_tls_serve(files: &TlsConfig) -> (Process, SocketAddr, std::sync::mpsc::Receiver<String>) {
    let mut child = pushwire()
        .args(["serve", "--port", "0", "--interval", "100ms", "--tls-cert"])
        .arg(files.cert_path())
        .arg("--tls-key")
        .arg(files.key_path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pushwire");
    let stdout = lines_of(child.stdout.take().expect("stdout"));
    let stderr = lines_of(child.stderr.take().expect("stderr"));
    let server = Process(child);
    let line = wait_for_line(&stdout, "counter demo at");
    let addr: SocketAddr = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("https://"))
        .unwrap_or_else(|| panic!("no https URL in {line:?}"))
        .trim_end_matches('/')
        .parse()
        .expect("an address in the URL");
    (server, addr, stderr)
}

#[tokio::test]
async fn sighup_reloads_the_certificate_without_dropping_connections() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (make_cert(), make_cert());
    let files = write_files(dir.path(), &a);
    let (server, addr, stderr) = spawn_tls_serve(&files);
    let both = [&a.der, &b.der];

    let mut old = wss_connect(addr, &both, "/socket").await;
    assert_eq!(next_text(&mut old).await, "1");
    assert_eq!(peer_cert(old.get_ref()), a.der);

    write_files(dir.path(), &b);
    sighup(&server);
    wait_for_line(&stderr, "TLS certificate reloaded");
    assert_eq!(peer_cert(&tls_connect(addr, &both, &[]).await), b.der);
    let mut new = wss_connect(addr, &both, "/socket").await;
    assert_eq!(next_text(&mut new).await, "1");
    // The connection made with the old certificate goes on counting.
    assert_eq!(next_text(&mut old).await, "2");
    assert_eq!(next_text(&mut old).await, "3");

    std::fs::write(files.cert_path(), "-----BEGIN CERTIFICATE-----\nbroken")
        .expect("write a broken file");
    sighup(&server);
    let error = wait_for_line(&stderr, "TLS certificate not reloaded");
    assert!(error.contains("ERROR"), "{error}");
    assert_eq!(peer_cert(&tls_connect(addr, &both, &[]).await), b.der);
    assert_eq!(next_text(&mut old).await, "4");
    assert_eq!(next_text(&mut new).await, "2");
    drop((old, new));
    drop(server);
}

#[tokio::test]
async fn the_tls_example_serves_the_page_and_counts_over_wss() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = make_cert();
    let files = write_files(dir.path(), &cert);
    let cert_path = files.cert_path().display().to_string();
    let key_path = files.key_path().display().to_string();
    let (_example, line) = common::start_example_with("tls", &["0", &cert_path, &key_path]).await;
    let addr: SocketAddr = line
        .trim()
        .rsplit("https://")
        .next()
        .map(|rest| rest.trim_end_matches('/'))
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let (status, body) = https_get(addr, &cert, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains(r#"<h1 id="data">"#), "{body}");
    let mut client = wss_connect(addr, &[&cert.der], "/socket").await;
    assert_eq!(next_text(&mut client).await, "1");
}

// Our own client (`pushwire::topic_client`, `pushwire pub` / `sub`) over TLS.

/// Client options that trust `cert` besides the system's roots.
fn trusting(cert: &Cert) -> ClientOptions {
    let mut options = ClientOptions::default();
    options.ws.extra_roots = vec![cert.der.clone()];
    options
}

/// Connects our client to `url`, bounded by [`STEP`].
async fn client_connect(url: &str, options: &ClientOptions) -> Result<Client, ClientError> {
    tokio::time::timeout(STEP, Client::connect_with(url, options))
        .await
        .expect("connecting took longer than the time limit")
}

/// Posts `body` to the publish API of `topic` over https, which must answer 200.
async fn https_publish(addr: SocketAddr, cert: &Cert, topic: &str, body: &'static str) {
    let stream = tls_connect(addr, &[&cert.der], &[b"http/1.1"]).await;
    let request = hyper::Request::post(format!("/api/publish/{topic}"))
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("request");
    let (status, body) = http1_request(stream, request).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn our_client_trusting_the_certificate_receives_over_wss_what_https_publishes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = make_cert();
    let server = start_tls(dir.path(), &cert).await;
    // https://host:port means the server's wss://host:port/ws.
    let url = format!("https://{}", server.addr);
    let mut client = client_connect(&url, &trusting(&cert))
        .await
        .expect("connect over TLS");
    tokio::time::timeout(STEP, client.subscribe("news", None))
        .await
        .expect("subscribe in time")
        .expect("subscribe");

    https_publish(server.addr, &cert, "news", r#"{"headline":"over TLS"}"#).await;
    let event = tokio::time::timeout(STEP, client.next_event())
        .await
        .expect("a message in time")
        .expect("a message, not an error")
        .expect("the connection is open");
    let Event::Message { topic, data, .. } = event else {
        panic!("expected a message, got {event:?}");
    };
    assert_eq!(topic.as_str(), "news");
    assert_eq!(data.as_str(), r#"{"headline":"over TLS"}"#);
    tokio::time::timeout(STEP, client.close())
        .await
        .expect("close in time");

    // A whole rustls configuration trusting exactly this certificate works too
    // (its ALPN is set to http/1.1 by the client).
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).expect("trust the certificate");
    let exact = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut options = ClientOptions::default();
    options.ws.tls = Some(Arc::new(exact));
    let mut client = client_connect(&format!("wss://{}/ws", server.addr), &options)
        .await
        .expect("connect with the caller's rustls configuration");
    let position = tokio::time::timeout(STEP, client.publish("news", Data::text("again")))
        .await
        .expect("publish in time")
        .expect("publish over wss");
    assert_eq!(position.offset, 2);
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn our_client_refuses_a_certificate_it_does_not_trust_and_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = make_cert();
    let server = start_tls(dir.path(), &cert).await;
    let url = format!("wss://{}/ws", server.addr);
    // The system's roots only: nobody they trust signed this certificate.
    let err = client_connect(&url, &ClientOptions::default())
        .await
        .expect_err("an untrusted certificate is refused");
    assert!(
        matches!(
            &err,
            ClientError::Connect(ConnectError::Tls {
                failure: TlsFailure::Untrusted,
                ..
            })
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&server.addr.to_string()) && message.contains("not trusted"),
        "{message}"
    );
    // Trusting another certificate instead does not help, though it has the same
    // subject name (rcgen gives every certificate the same one).
    let other = make_cert();
    let err = client_connect(&url, &trusting(&other))
        .await
        .expect_err("a certificate trusted for nothing");
    assert!(
        matches!(
            &err,
            ClientError::Connect(ConnectError::Tls {
                failure: TlsFailure::Untrusted,
                ..
            })
        ),
        "{err:?}"
    );
    // The server goes on serving those who trust it.
    client_connect(&url, &trusting(&cert))
        .await
        .expect("connect when trusted");
    server.stop().await;
}

#[tokio::test]
async fn our_client_refuses_a_trusted_certificate_for_another_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = make_cert_for(&["push.example.com"]);
    let server = start_tls(dir.path(), &cert).await;
    let url = format!("wss://{}/ws", server.addr);
    let err = client_connect(&url, &trusting(&cert))
        .await
        .expect_err("a certificate for another name is refused");
    match &err {
        ClientError::Connect(ConnectError::Tls {
            host,
            failure: TlsFailure::WrongName { name, .. },
        }) => {
            assert_eq!(host, &server.addr.to_string());
            assert_eq!(name, "127.0.0.1");
        }
        other => panic!("expected a wrong-name TLS error, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("not valid for 127.0.0.1 (it is for push.example.com)"),
        "{message}"
    );
    server.stop().await;
}

#[tokio::test]
async fn our_client_accepts_a_trusted_self_signed_certificate_marked_as_an_authority() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = make_authority_cert(false);
    let server = start_tls(dir.path(), &cert).await;
    let url = format!("wss://{}/ws", server.addr);
    let mut client = client_connect(&url, &trusting(&cert))
        .await
        .expect("a CA:TRUE certificate trusted by itself is accepted, as OpenSSL does");
    let position = tokio::time::timeout(STEP, client.publish("news", Data::text("hi")))
        .await
        .expect("publish in time")
        .expect("publish");
    assert_eq!(position.offset, 1);
    drop(client);
    // Not trusted, it is refused as untrusted.
    let err = client_connect(&url, &ClientOptions::default())
        .await
        .expect_err("untrusted");
    assert!(
        matches!(
            &err,
            ClientError::Connect(ConnectError::Tls {
                failure: TlsFailure::Untrusted,
                ..
            })
        ),
        "{err:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn our_client_refuses_an_expired_certificate_even_when_trusted_by_itself() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = make_authority_cert(true);
    let server = start_tls(dir.path(), &cert).await;
    let url = format!("wss://{}/ws", server.addr);
    let err = client_connect(&url, &trusting(&cert))
        .await
        .expect_err("an expired certificate is refused");
    match &err {
        ClientError::Connect(ConnectError::Tls {
            failure: TlsFailure::BadCertificate(reason),
            ..
        }) => assert!(reason.contains("expired"), "{reason}"),
        other => panic!("expected an expired certificate, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn our_client_gives_up_on_a_tls_handshake_after_the_connect_timeout() {
    // A server that accepts TCP and never answers the ClientHello.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let mut options = ClientOptions::default();
    options.ws.connect_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = client_connect(&format!("wss://{addr}/ws"), &options)
        .await
        .expect_err("no handshake, no connection");
    assert!(
        matches!(&err, ClientError::Connect(ConnectError::Timeout(_))),
        "{err:?}"
    );
    assert!(started.elapsed() < STEP, "took {:?}", started.elapsed());
    silent.abort();
}

async fn run_client(command: &mut tokio::process::Command) -> (Option<i32>, String, String) {
    let Output {
        code,
        stdout,
        stderr,
    } = finish(command.spawn().expect("spawn pushwire")).await;
    (code, stdout, stderr)
}

#[tokio::test]
async fn pushwire_sub_over_wss_receives_what_pushwire_pub_publishes_over_https() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = make_cert();
    let files = write_files(dir.path(), &cert);
    let (server, addr, _stderr) = spawn_tls_serve(&files);
    let cacert = files.cert_path().to_owned();
    let https = format!("https://{addr}");
    let wss = format!("wss://{addr}/ws");

    let (code, first, stderr) = run_client(
        pushwire_async()
            .args(["pub", "news", "first", "--url", &https, "--cacert"])
            .arg(&cacert),
    )
    .await;
    assert_eq!((code, stderr.as_str()), (Some(0), ""), "{first}");
    let first = first.trim().to_owned();
    assert!(
        first.starts_with("news@") && first.ends_with(":1"),
        "{first}"
    );

    // Resuming after the first message, the subscriber gets the next one whether it
    // is published before or after it has subscribed: no race with the publish.
    let sub = pushwire_async()
        .args([
            "sub", "news", "--url", &wss, "--count", "1", "--since", &first,
        ])
        .arg("--cacert")
        .arg(&cacert)
        .spawn()
        .expect("spawn pushwire sub");
    let (code, second, stderr) = run_client(
        pushwire_async()
            .args(["pub", "news", "x", "--url", &https])
            .env("PUSHWIRE_CACERT", &cacert),
    )
    .await;
    assert_eq!((code, stderr.as_str()), (Some(0), ""), "{second}");
    assert!(second.trim().ends_with(":2"), "{second}");
    let Output {
        code,
        stdout: received,
        stderr,
    } = finish(sub).await;
    assert_eq!((code, stderr.as_str()), (Some(0), ""), "{received}");
    assert_eq!(received, "\"x\"\n");

    // Without --cacert, the self-signed certificate is not trusted: one line, status 1.
    for args in [
        &["pub", "news", "y", "--url", &https][..],
        &["sub", "news", "--url", &wss][..],
    ] {
        let (code, stdout, stderr) = run_client(pushwire_async().args(args)).await;
        assert_eq!(code, Some(1), "{args:?}: {stdout}{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains("TLS handshake")
                && stderr.contains("not trusted")
                && stderr.contains("--cacert"),
            "{args:?}: {stderr}"
        );
    }
    drop(server);
}

/// The demo over TLS with `config`'s limits (its port and files set here).
async fn start_tls_config(dir: &Path, cert: &Cert, config: ServeConfig) -> Running {
    let config = ServeConfig {
        port: 0,
        tls: Some(write_files(dir, cert)),
        ..config
    };
    common::start(pushwire::node::app(&config).expect("demo app")).await
}

type H2Sender = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

/// An HTTP/2 connection over TLS: its request sender, and a task that ends when the
/// connection does.
async fn h2_connect(
    addr: SocketAddr,
    cert: &Cert,
) -> (H2Sender, tokio::task::JoinHandle<Result<(), hyper::Error>>) {
    let stream = tls_connect(addr, &[&cert.der], &[b"h2"]).await;
    assert_eq!(alpn(&stream).as_deref(), Some(&b"h2"[..]));
    h2_handshake(stream).await
}

/// The HTTP/2 handshake on `stream`: its request sender, and a task that ends when
/// the connection does.
async fn h2_handshake(
    stream: TlsStream<TcpStream>,
) -> (H2Sender, tokio::task::JoinHandle<Result<(), hyper::Error>>) {
    let (sender, connection) = tokio::time::timeout(
        STEP,
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)),
    )
    .await
    .expect("HTTP/2 handshake timed out")
    .expect("HTTP/2 handshake failed");
    (sender, tokio::spawn(connection))
}

/// `GET path` over `sender`: the response, its body not read yet.
async fn h2_get(
    sender: &mut H2Sender,
    addr: SocketAddr,
    path: &str,
) -> hyper::Response<hyper::body::Incoming> {
    let request = hyper::Request::get(format!("https://{addr}{path}"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    tokio::time::timeout(STEP, sender.send_request(request))
        .await
        .expect("HTTP/2 request timed out")
        .expect("HTTP/2 request failed")
}

/// Waits (bounded) until the server has closed the HTTP/2 connection of `task`.
async fn h2_closed(task: tokio::task::JoinHandle<Result<(), hyper::Error>>, what: &str) {
    let result = tokio::time::timeout(STEP, task)
        .await
        .unwrap_or_else(|_| panic!("{what}: the server did not close it within {STEP:?}"))
        .expect("connection task panicked");
    assert!(result.is_ok(), "{what}: closed with an error: {result:?}");
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_and_one_with_a_stream_in_flight_is_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = make_cert();
    let server = start_tls_config(
        dir.path(),
        &cert,
        ServeConfig {
            // Long enough that a loaded machine sends a request on a fresh
            // connection before it runs out.
            http2_idle_timeout: Duration::from_secs(1),
            ..ServeConfig::default()
        },
    )
    .await;
    let addr = server.addr;
    // An SSE stream, opened first and kept open: a request in flight.
    let (mut busy, busy_task) = h2_connect(addr, &cert).await;
    let stream = h2_get(&mut busy, addr, "/sse?topic=idle").await;
    assert_eq!(stream.status(), 200);
    // Two idle connections, one after the other, each opened after the busy one:
    // when both are closed, the busy one has been open longer than either.
    for round in ["first", "second"] {
        let (idle, idle_task) = h2_connect(addr, &cert).await;
        h2_closed(idle_task, &format!("the {round} idle connection")).await;
        drop(idle);
    }
    assert!(
        !busy_task.is_finished(),
        "the connection with an open stream was closed"
    );
    let response = h2_get(&mut busy, addr, "/healthz").await;
    assert_eq!(response.status(), 200, "the busy connection still serves");
    let body = tokio::time::timeout(STEP, response.into_body().collect())
        .await
        .expect("body timed out")
        .expect("body");
    assert_eq!(body.to_bytes(), "ok\n");
    // Once its stream is cancelled, it is idle too, and closed.
    drop(stream);
    h2_closed(busy_task, "the connection whose stream ended").await;
    server.stop().await;
}

/// A request over HTTP/1.1 on `stream`: (status, `Retry-After`, `Connection`,
/// body), then whether the server closed the connection after it.
async fn http1_refusal(stream: TlsStream<TcpStream>, addr: SocketAddr) -> (u16, String, bool) {
    let exchange = async {
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let connection = tokio::spawn(connection);
        let request = hyper::Request::get("/")
            .header(hyper::header::HOST, addr.to_string())
            .body(Full::new(Bytes::new()))
            .expect("request");
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        assert_eq!(
            headers.get("retry-after").map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        assert_eq!(
            headers.get("connection").map(|v| v.as_bytes()),
            Some(&b"close"[..])
        );
        let closed = connection
            .await
            .map(|result| result.is_ok())
            .unwrap_or(false);
        Ok::<_, hyper::Error>((status, String::from_utf8_lossy(&body).into_owned(), closed))
    };
    tokio::time::timeout(STEP, exchange)
        .await
        .expect("HTTP/1.1 exchange timed out")
        .expect("HTTP/1.1 exchange failed")
}

#[tokio::test]
async fn a_connection_over_the_limit_gets_503_after_the_tls_handshake_over_http1_and_http2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = make_cert();
    let server = start_tls_config(
        dir.path(),
        &cert,
        ServeConfig {
            connection_limits: pushwire::ConnectionLimits {
                max_connections: 1,
                ..pushwire::ConnectionLimits::default()
            },
            ..ServeConfig::default()
        },
    )
    .await;
    let addr = server.addr;
    // The one place, held by a finished handshake (admission comes before it).
    let holder = tls_connect(addr, &[&cert.der], &[b"http/1.1"]).await;

    // HTTP/1.1: the handshake completes, the request gets 503, the connection ends.
    let refused = tls_connect(addr, &[&cert.der], &[b"http/1.1"]).await;
    let (status, body, closed) = http1_refusal(refused, addr).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("the server holds its most connections (1)"),
        "{body}"
    );
    assert!(
        closed,
        "the refused connection was not closed after the answer"
    );

    // HTTP/2: the same answer, then a GOAWAY ends the connection.
    let (mut sender, task) = h2_connect(addr, &cert).await;
    let response = h2_get(&mut sender, addr, "/").await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let body = tokio::time::timeout(STEP, response.into_body().collect())
        .await
        .expect("body timed out")
        .expect("body")
        .to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("the server holds its most connections (1)"),
        "{body:?}"
    );
    h2_closed(task, "the refused HTTP/2 connection").await;

    // The place comes back when its holder leaves.
    drop(holder);
    let deadline = Instant::now() + STEP;
    loop {
        let stream = tls_connect(addr, &[&cert.der], &[b"http/1.1"]).await;
        let request = hyper::Request::get("/healthz")
            .header(hyper::header::HOST, addr.to_string())
            .body(Full::new(Bytes::new()))
            .expect("request");
        let (status, _) = http1_request(stream, request).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "the place never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}
