//! TLS: https and wss on the same port, through rustls (with the *ring* crypto
//! provider), HTTP/2 or HTTP/1.1 chosen by ALPN, and certificates that can be
//! replaced while the server runs.
//!
//! The certificate chain and its private key are read from two PEM files
//! ([`TlsConfig`]). They are read once when the server is bound, and again on
//! every [`TlsReloader::reload`] (which [`Server::run`](crate::Server::run) calls
//! on SIGHUP): a reload that fails keeps the certificate in use, and a reload that
//! succeeds changes the certificate of new handshakes only; connections already
//! open keep going.
//!
//! The server offers `h2` and `http/1.1` in ALPN. WebSocket stays on HTTP/1.1:
//! without the extended CONNECT of RFC 8441 on offer, browsers open an HTTP/1.1
//! connection for `wss:`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::{self, PemObject as _};

use crate::certs::{TlsError, pem_error, read, read_certificates};

/// The ALPN protocols the server offers, in its order of preference.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Where a TLS server finds its certificate chain and private key: two PEM files.
///
/// ```no_run
/// use pushwire::{App, TlsConfig};
///
/// # async fn run() -> Result<(), pushwire::Error> {
/// App::new()
///     .page("/", "web/index.html")
///     .tls(TlsConfig::pem_files("cert.pem", "key.pem"))
///     .bind("0.0.0.0:8443")
///     .await?
///     .run() // reloads both files on SIGHUP
///     .await
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    cert: PathBuf,
    key: PathBuf,
}

impl TlsConfig {
    /// The certificate chain in `cert` (PEM `CERTIFICATE` blocks, the server's own
    /// certificate first, then the intermediates) and its private key in `key`
    /// (PEM: PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY` or SEC1 `EC PRIVATE
    /// KEY`). Nothing is read until the server is bound.
    pub fn pem_files(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
        }
    }

    /// The certificate chain file.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// The private key file.
    pub fn key_path(&self) -> &Path {
        &self.key
    }

    /// Reads both files and checks them as binding would (a certificate, a key
    /// rustls can sign with, the two matching), without serving: what
    /// `pushwire config check` runs.
    pub fn check(&self) -> Result<(), TlsError> {
        load(self, &rustls::crypto::ring::default_provider()).map(|_| ())
    }
}

/// The certificate new handshakes get: swapped whole by a reload, read (one
/// `Arc` clone under a read lock) by every handshake.
struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver").finish_non_exhaustive()
    }
}

impl CertResolver {
    fn get(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn set(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = key;
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// Reads the certificate and key files of a running TLS server again, for new
/// handshakes. Cheap to clone; get it from
/// [`Server::tls_reloader`](crate::Server::tls_reloader).
#[derive(Clone)]
pub struct TlsReloader {
    config: TlsConfig,
    provider: Arc<CryptoProvider>,
    resolver: Arc<CertResolver>,
}

impl fmt::Debug for TlsReloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsReloader")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TlsReloader {
    /// Reads both files again. On success new handshakes get the new certificate
    /// (open connections are not touched); on failure the certificate in use stays,
    /// and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load(&self.config, &self.provider)?;
        self.resolver.set(Arc::new(key));
        Ok(())
    }

    /// The files this reloader reads.
    pub fn config(&self) -> &TlsConfig {
        &self.config
    }
}

/// Everything the accept loop needs for TLS: the acceptor and the reloader of its
/// certificate.
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    pub(crate) reloader: TlsReloader,
}

impl Tls {
    /// Reads the files and builds the server configuration: TLS 1.2 and 1.3,
    /// no client certificates, ALPN `h2` and `http/1.1`.
    pub(crate) fn new(config: TlsConfig) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = load(&config, &provider)?;
        let resolver = Arc::new(CertResolver {
            current: RwLock::new(Arc::new(key)),
        });
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        server.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            reloader: TlsReloader {
                config,
                provider,
                resolver,
            },
        })
    }
}

/// Reads and checks the certificate chain and key of `config`.
fn load(config: &TlsConfig, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    const KEY: &str = "private key";
    let cert_path = &config.cert;
    let key_path = &config.key;
    let chain = read_certificates(cert_path)?;
    let key_pem = read(KEY, key_path)?;
    let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => {
            return Err(TlsError::NoPrivateKey {
                path: key_path.clone(),
            });
        }
        Err(err) => return Err(pem_error(KEY, key_path, &err)),
    };
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|err| TlsError::UnsupportedKey {
                path: key_path.clone(),
                reason: err.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // Unknown: the key cannot tell its public half; the handshake will tell.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: cert_path.clone(),
                key: key_path.clone(),
            })
        }
        Err(err) => Err(TlsError::BadCertificate {
            path: cert_path.clone(),
            reason: err.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::CertificateDer;

    use super::*;

    #[test]
    fn every_handshake_gets_the_latest_certificate() {
        let first = Arc::new(CertifiedKey::new(
            vec![CertificateDer::from(vec![1])],
            dummy_key(),
        ));
        let second = Arc::new(CertifiedKey::new(
            vec![CertificateDer::from(vec![2])],
            dummy_key(),
        ));
        let resolver = CertResolver {
            current: RwLock::new(Arc::clone(&first)),
        };
        assert!(Arc::ptr_eq(&resolver.get(), &first));
        resolver.set(Arc::clone(&second));
        assert!(Arc::ptr_eq(&resolver.get(), &second));
    }

    #[test]
    fn missing_files_are_named_in_the_error() {
        let provider = rustls::crypto::ring::default_provider();
        let config = TlsConfig::pem_files("/no/such/cert.pem", "/no/such/key.pem");
        let err = load(&config, &provider).expect_err("no files");
        assert!(
            err.to_string()
                .starts_with("cannot read TLS certificate file /no/such/cert.pem: "),
            "{err}"
        );
    }

    fn dummy_key() -> Arc<dyn rustls::sign::SigningKey> {
        #[derive(Debug)]
        struct Dummy;
        impl rustls::sign::SigningKey for Dummy {
            fn choose_scheme(
                &self,
                _offered: &[rustls::SignatureScheme],
            ) -> Option<Box<dyn rustls::sign::Signer>> {
                None
            }
            fn algorithm(&self) -> rustls::SignatureAlgorithm {
                rustls::SignatureAlgorithm::ECDSA
            }
        }
        Arc::new(Dummy)
    }
}
