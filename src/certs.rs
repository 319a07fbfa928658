//! Certificates and keys on disk: reading PEM files for a TLS server's chain and
//! for the authorities a client trusts, with errors that name the file.

use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::{self, PemObject as _};

/// Why a certificate and key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read (missing, no permission).
    #[error("cannot read TLS {what} file {}: {source}", path.display())]
    Read {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A file is not well-formed PEM (a section without its end line, bad base64).
    #[error("TLS {what} file {} is not valid PEM: {reason}", path.display())]
    Pem {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        reason: String,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("no certificate (-----BEGIN CERTIFICATE-----) in TLS certificate file {}", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key block.
    #[error(
        "no private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY) in TLS key file {}",
        path.display()
    )]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The private key is malformed or of a kind rustls cannot sign with.
    #[error("cannot use the private key in {}: {reason}", path.display())]
    UnsupportedKey {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The certificate cannot be parsed.
    #[error("cannot use the certificate in {}: {reason}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The private key is not the key of the (first) certificate.
    #[error(
        "the private key in {} does not match the certificate in {}",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the server configuration.
    #[error("cannot set up TLS: {0}")]
    Config(#[source] rustls::Error),
}

/// Reads the PEM `CERTIFICATE` blocks of `path`, in order; a file without any is an
/// error ([`TlsError::NoCertificate`]). Text outside the blocks is skipped, as in
/// the bundles operating systems ship. Used for a server's chain and for the
/// certificates a client trusts (`pushwire pub --cacert`, [`ClientConfig::extra_roots`](crate::ws::client::ClientConfig::extra_roots)).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    const CERT: &str = "certificate";
    let pem = read(CERT, path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_error(CERT, path, &err))?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

pub(crate) fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

pub(crate) fn pem_error(what: &'static str, path: &Path, err: &pem::Error) -> TlsError {
    TlsError::Pem {
        what,
        path: path.to_owned(),
        reason: err.to_string(),
    }
}
