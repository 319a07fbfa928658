//! SIGHUP reloads the TLS files without stopping the server's runtime: the files
//! are read on a blocking thread, so a read that hangs (a slow disk, a network
//! mount; here a FIFO nobody has written yet) does not stop connections being
//! served, and the reload still takes effect once the read completes.
//!
//! One test in its own binary: it sends SIGHUP to its own process, which only a
//! process whose every SIGHUP-listening server belongs to this test may do. The
//! server runs on the test's single-threaded runtime, so a reload on that thread
//! would block everything.

#[path = "it/common/tls.rs"]
mod tls;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use pushwire::config::ServeConfig;
use rustls::pki_types::CertificateDer;
use tls::{http1_request, make_cert_for, peer_cert, tls_connect};

/// The longest any single step of the test may wait (as in `tests/it/common`).
const STEP: Duration = Duration::from_secs(10);

/// A TLS connection trusting both certificates; the one the server presented, and
/// the status of `GET /healthz` on it.
async fn healthz(
    addr: std::net::SocketAddr,
    trusted: &[&CertificateDer<'static>],
) -> (CertificateDer<'static>, u16) {
    let stream = tls_connect(addr, trusted, &[b"http/1.1"]).await;
    let presented = peer_cert(&stream);
    let request = hyper::Request::get("/healthz")
        .header(hyper::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))
        .expect("request");
    let (status, _) = http1_request(stream, request).await;
    (presented, status)
}

fn run(command: &mut Command) {
    let status = command.status().expect("run a command");
    assert!(status.success(), "{command:?} failed");
}

/// Opens `fifo` for writing on a thread of its own (which waits until the reload
/// opens it for reading), tells `opened` when it has, then waits for `go` (or
/// [`STEP`], then records in `timed_out` that nobody said go) before writing
/// `text` and closing.
fn feed_fifo(
    fifo: &Path,
    text: String,
    opened: tokio::sync::oneshot::Sender<()>,
    go: std::sync::mpsc::Receiver<()>,
    timed_out: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let fifo = fifo.to_owned();
    std::thread::spawn(move || {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .expect("open the FIFO for writing");
        let _ = opened.send(());
        if go.recv_timeout(STEP).is_err() {
            timed_out.store(true, Ordering::SeqCst);
        }
        file.write_all(text.as_bytes()).expect("write the key");
    })
}

#[tokio::test(flavor = "current_thread")]
async fn a_sighup_reload_blocked_on_its_files_does_not_stop_the_server_and_still_takes_effect() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (make_cert_for(&["127.0.0.1"]), make_cert_for(&["127.0.0.1"]));
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, &a.cert_pem).expect("write cert");
    std::fs::write(&key_path, &a.key_pem).expect("write key");
    let config = ServeConfig {
        port: 0,
        tls: Some(pushwire::TlsConfig::pem_files(&cert_path, &key_path)),
        ..ServeConfig::default()
    };
    let server = pushwire::node::app(&config)
        .expect("demo app")
        .bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = server.local_addr();
    // `run` listens for SIGHUP before it serves: once it answers, a SIGHUP is safe.
    let running = tokio::spawn(server.run());
    let both = [&a.der, &b.der];
    assert_eq!(healthz(addr, &both).await, (a.der.clone(), 200));

    // The new certificate, and its key behind a FIFO: reading it blocks until the
    // test writes into it.
    std::fs::write(&cert_path, &b.cert_pem).expect("write the new cert");
    std::fs::remove_file(&key_path).expect("remove the key");
    run(Command::new("mkfifo").arg(&key_path));
    let (opened_tx, opened) = tokio::sync::oneshot::channel();
    let (go, go_rx) = std::sync::mpsc::channel();
    let timed_out = Arc::new(AtomicBool::new(false));
    let feeder = feed_fifo(
        &key_path,
        b.key_pem.clone(),
        opened_tx,
        go_rx,
        Arc::clone(&timed_out),
    );
    run(Command::new("kill").args(["-HUP", &std::process::id().to_string()]));

    // The reload has opened the key file and is stuck reading it...
    tokio::time::timeout(STEP * 2, opened)
        .await
        .expect("the reload never opened the key file")
        .expect("the FIFO thread ended early");
    // ...and meanwhile the server answers (with the certificate still in use).
    let answered = healthz(addr, &both).await;
    let _ = go.send(());
    let _ = tokio::task::spawn_blocking(move || feeder.join()).await;
    assert!(
        !timed_out.load(Ordering::SeqCst),
        "the server's runtime was blocked while the reload read the key file"
    );
    assert_eq!(answered, (a.der.clone(), 200));

    // The reload completes: new handshakes get the new certificate.
    let deadline = Instant::now() + STEP;
    loop {
        let (presented, status) = healthz(addr, &both).await;
        assert_eq!(status, 200);
        if presented == b.der {
            break;
        }
        assert!(Instant::now() < deadline, "the reload never took effect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.abort();
}
