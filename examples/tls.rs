//! The counter demo over TLS: the page at `https://127.0.0.1:8443/`, the counter
//! over `wss://`, HTTP/2 or HTTP/1.1 by ALPN, and the certificate reloaded on
//! SIGHUP. Make a certificate and run it from the repository root:
//!
//!     openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
//!       -days 30 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
//!       -keyout key.pem -out cert.pem
//!     cargo run --example tls                              # port 8443, cert.pem, key.pem
//!     cargo run --example tls -- 0 cert.pem key.pem        # a free port, these files
//!     kill -HUP <pid>                                      # after replacing the files

use std::time::Duration;

use pushwire::{App, Socket, TlsConfig, ticker};

/// One browser's counter: "1" a second after it connects, then "2", "3", …
async fn counter(socket: Socket) {
    let mut ticks = ticker(Duration::from_secs(1));
    for n in 1u64.. {
        ticks.tick().await;
        if socket.send(n.to_string()).await.is_err() {
            return; // closed: the browser went away
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), pushwire::Error> {
    pushwire::logging::init();
    let mut args = std::env::args().skip(1);
    let port = args.next().unwrap_or_else(|| "8443".into());
    let cert = args.next().unwrap_or_else(|| "cert.pem".into());
    let key = args.next().unwrap_or_else(|| "key.pem".into());
    let server = App::new()
        .page("/", "web/index.html")
        .static_dir("/static", "web/static")
        .socket("/socket", counter)
        .tls(TlsConfig::pem_files(cert, key))
        .bind(format!("127.0.0.1:{port}"))
        .await?;
    println!("counter demo at https://{}/", server.local_addr());
    server.run().await // SIGHUP reloads the certificate and key
}
