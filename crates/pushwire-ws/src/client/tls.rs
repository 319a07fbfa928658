//! TLS for the client role (`wss://` URLs): rustls with the *ring* crypto provider,
//! as on the server, and ALPN `http/1.1`, since the WebSocket upgrade runs on
//! HTTP/1.1.
//!
//! The server's certificate is checked against the operating system's roots (read
//! once per process by `rustls-native-certs`: `SSL_CERT_FILE` / `SSL_CERT_DIR` when
//! set, else the usual places, `/etc/ssl/certs` on Debian) plus the certificates the
//! caller trusts besides them ([`ClientConfig::extra_roots`]), or by the caller's
//! own rustls configuration ([`ClientConfig::tls`]).
//!
//! One leniency, as OpenSSL (`curl --cacert`) has it: a certificate of
//! `extra_roots` that the server presents as its own is accepted although it is
//! marked as an authority (`CA:TRUE`, which `openssl req -x509` writes by default,
//! so the README's self-signed certificate has it), as long as it is within its
//! validity period and valid for the host. rustls alone refuses such a certificate
//! as `CaUsedAsEndEntity`.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::config::ClientConfig;
use super::error::{ConnectError, TlsFailure};

/// The only ALPN protocol the client offers.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The name `host` (an IP address or a DNS name, without brackets) is checked
/// against, and sent as SNI when it is a DNS name.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_owned())
        .map_err(|err| format!("{host:?} is not a valid TLS server name: {err}"))
}

/// Runs the TLS handshake on `tcp` for `name`; `addr` (host:port) names the server
/// in errors.
pub(crate) async fn handshake(
    tcp: TcpStream,
    name: ServerName<'static>,
    addr: &str,
    config: &ClientConfig,
) -> Result<TlsStream<TcpStream>, ConnectError> {
    let tls = rustls_config(config).await?;
    let connector = tokio_rustls::TlsConnector::from(tls);
    connector
        .connect(name.clone(), tcp)
        .await
        .map_err(|err| ConnectError::Tls {
            host: addr.to_owned(),
            failure: failure(&err, &name),
        })
}

/// The rustls configuration for one connection: the caller's with ALPN
/// `http/1.1`, or the system's roots plus the extra ones.
async fn rustls_config(config: &ClientConfig) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    if let Some(given) = &config.tls {
        if given.alpn_protocols.len() == 1 && given.alpn_protocols[0] == ALPN_HTTP1 {
            return Ok(Arc::clone(given));
        }
        let mut tls = rustls::ClientConfig::clone(given);
        tls.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        return Ok(Arc::new(tls));
    }
    let system = system_roots().await?;
    let mut roots = RootCertStore::clone(&system);
    for (index, cert) in config.extra_roots.iter().enumerate() {
        roots.add(cert.clone()).map_err(|err| {
            ConnectError::TlsSetup(format!(
                "cannot trust extra certificate {}: {err}",
                index + 1
            ))
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|err| ConnectError::TlsSetup(err.to_string()))?;
    let mut tls = if config.extra_roots.is_empty() {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        let verifier = Verifier::new(roots, &config.extra_roots, provider)?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    };
    tls.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(tls))
}

/// rustls's WebPKI verifier over the system's and the extra roots, which also
/// accepts an extra root presented as the server's own certificate though it is
/// marked as an authority (see the module's documentation).
#[derive(Debug)]
struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// The extra roots, trusted by themselves.
    pinned: Vec<CertificateDer<'static>>,
}

impl Verifier {
    fn new(
        roots: RootCertStore,
        extra: &[CertificateDer<'static>],
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, ConnectError> {
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|err| ConnectError::TlsSetup(err.to_string()))?;
        Ok(Self {
            webpki,
            pinned: extra.to_vec(),
        })
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(err)
                if is_ca_used_as_end_entity(&err)
                    && self
                        .pinned
                        .iter()
                        .any(|pinned| pinned.as_ref() == end_entity.as_ref()) =>
            {
                // webpki checks a certificate's validity period before its basic
                // constraints (`check_issuer_independent_properties`), so this error
                // means the period is fine (a test keeps an expired one refused).
                // The certificate itself is trusted; its name is what is left.
                verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
                tracing::debug!("accepted a trusted certificate marked as an authority");
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Whether rustls refused a certificate because it is an authority's (`CA:TRUE`)
/// presented as a server's.
fn is_ca_used_as_end_entity(err: &rustls::Error) -> bool {
    matches!(
        err,
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner)))
            if matches!(
                inner.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::CaUsedAsEndEntity)
            )
    )
}

/// The operating system's roots, read on a blocking thread the first time and kept
/// for the life of the process.
async fn system_roots() -> Result<Arc<RootCertStore>, ConnectError> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    if let Some(roots) = ROOTS.get() {
        return Ok(Arc::clone(roots));
    }
    tokio::task::spawn_blocking(|| Arc::clone(ROOTS.get_or_init(|| Arc::new(load_system_roots()))))
        .await
        .map_err(|err| ConnectError::TlsSetup(format!("cannot read the system's roots: {err}")))
}

fn load_system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!(%error, "skipped while reading the system's root certificates");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    tracing::debug!(added, ignored, "read the system's root certificates");
    roots
}

/// A name as webpki shows it (`DnsName("example.com")`, `IpAddress(127.0.0.1)`),
/// without the notation.
fn plain_name(shown: &str) -> String {
    shown
        .strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .or_else(|| {
            shown
                .strip_prefix("IpAddress(")
                .and_then(|rest| rest.strip_suffix(')'))
        })
        .unwrap_or(shown)
        .to_owned()
}

/// What went wrong in a handshake that failed with `err`.
fn failure(err: &std::io::Error, name: &ServerName<'_>) -> TlsFailure {
    let Some(rustls_error) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return TlsFailure::Other(err.to_string());
    };
    match rustls_error {
        // BadSignature: a trusted certificate has the issuer's name, but not its key.
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => TlsFailure::Untrusted,
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => {
            TlsFailure::WrongName {
                name: name.to_str().into_owned(),
                presented: Vec::new(),
            }
        }
        rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            presented,
            ..
        }) => TlsFailure::WrongName {
            name: name.to_str().into_owned(),
            presented: presented.iter().map(|p| plain_name(p)).collect(),
        },
        // A self-signed certificate marked as an authority (`openssl req -x509`)
        // that is not trusted by itself: rustls says so before looking for its issuer.
        err @ rustls::Error::InvalidCertificate(_) if is_ca_used_as_end_entity(err) => {
            TlsFailure::Untrusted
        }
        rustls::Error::InvalidCertificate(other) => TlsFailure::BadCertificate(other.to_string()),
        other => TlsFailure::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(err: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, err)
    }

    #[test]
    fn certificate_errors_become_failures_a_person_can_act_on() {
        let name = server_name("127.0.0.1").expect("an IP address is a server name");
        assert_eq!(
            failure(
                &io(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer
                )),
                &name
            ),
            TlsFailure::Untrusted
        );
        assert_eq!(
            failure(
                &io(rustls::Error::InvalidCertificate(
                    CertificateError::BadSignature
                )),
                &name
            ),
            TlsFailure::Untrusted
        );
        let authority = rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
            Arc::new(webpki::Error::CaUsedAsEndEntity),
        )));
        assert!(is_ca_used_as_end_entity(&authority));
        assert_eq!(failure(&io(authority), &name), TlsFailure::Untrusted);
        let wrong = failure(
            &io(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForNameContext {
                    expected: name.clone(),
                    presented: vec![
                        "DnsName(\"example.com\")".into(),
                        "IpAddress(10.0.0.1)".into(),
                        "DirectoryName".into(),
                    ],
                },
            )),
            &name,
        );
        assert!(
            matches!(&wrong, TlsFailure::WrongName { name, .. } if name == "127.0.0.1"),
            "{wrong:?}"
        );
        assert_eq!(
            wrong.to_string(),
            "the server's certificate is not valid for 127.0.0.1 \
             (it is for example.com, 10.0.0.1, DirectoryName)"
        );
        assert!(matches!(
            failure(
                &io(rustls::Error::InvalidCertificate(CertificateError::Expired)),
                &name
            ),
            TlsFailure::BadCertificate(_)
        ));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(matches!(failure(&reset, &name), TlsFailure::Other(_)));
    }

    #[test]
    fn server_names_may_be_dns_names_or_ip_addresses() {
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("::1"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(
            server_name("push.example.com"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(server_name("not a name").is_err());
    }
}
