//! TLS for the tests: certificates made at test time (rcgen), and a client that
//! trusts exactly the certificates a test made, through its own rustls root store.
//!
//! `tests/reload_off_runtime.rs` (a binary of its own) uses this file too, and
//! every item in it.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::STEP;

/// A certificate and its key, in PEM and DER.
pub struct Cert {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

/// A self-signed certificate for `names` (DNS names or IP addresses).
pub fn make_cert_for(names: &[&str]) -> Cert {
    let made =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("generate a certificate");
    Cert {
        cert_pem: made.cert.pem(),
        key_pem: made.signing_key.serialize_pem(),
        der: made.cert.der().clone(),
    }
}

/// A TLS connection to `addr` (as 127.0.0.1) from a client that trusts exactly
/// `trusted` and offers `alpn`, failing the test after [`STEP`].
pub async fn tls_connect(
    addr: SocketAddr,
    trusted: &[&CertificateDer<'static>],
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in trusted {
        roots.add((*cert).clone()).expect("trust the certificate");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    tokio::time::timeout(STEP, async {
        let tcp = TcpStream::connect(addr).await?;
        connector.connect(name, tcp).await
    })
    .await
    .expect("TLS handshake timed out")
    .expect("TLS handshake failed")
}

/// The certificate the server presented on `stream`.
pub fn peer_cert(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("a peer certificate")
        .clone()
}

/// A request over HTTP/1.1 on `stream`: (status, body), failing the test after
/// [`STEP`].
pub async fn http1_request(
    stream: TlsStream<TcpStream>,
    request: hyper::Request<Full<Bytes>>,
) -> (u16, String) {
    let exchange = async {
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let response = sender.send_request(request).await?;
        assert_eq!(response.version(), hyper::Version::HTTP_11);
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(STEP, exchange)
        .await
        .expect("HTTP/1.1 exchange timed out")
        .expect("HTTP/1.1 exchange failed")
}
