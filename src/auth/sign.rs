//! Signing tokens, for `pushwire token` and tests.

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::claims::Claims;
use super::ring_crypto;

/// How `pushwire token` signs.
#[derive(Debug, Clone)]
pub enum SigningKey {
    /// HS256 with a shared secret.
    Secret(String),
    /// RS256 with a PEM RSA private key.
    Rsa(Vec<u8>),
    /// ES256 with a PEM P-256 private key (PKCS#8).
    Ec(Vec<u8>),
}

/// Why a token could not be signed.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign the token: {0}")]
pub struct SignError(String);

/// Signs `claims` with `key` (and `kid` in the header, if given).
pub fn sign(claims: &Claims, key: &SigningKey, kid: Option<&str>) -> Result<String, SignError> {
    ring_crypto::install();
    let (algorithm, key) = match key {
        SigningKey::Secret(secret) => (
            Algorithm::HS256,
            EncodingKey::from_secret(secret.as_bytes()),
        ),
        SigningKey::Rsa(pem) => (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(pem)
                .map_err(|e| SignError(format!("not a PEM RSA private key: {e}")))?,
        ),
        SigningKey::Ec(pem) => (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(pem)
                .map_err(|e| SignError(format!("not a PEM EC private key: {e}")))?,
        ),
    };
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).map_err(|e| SignError(e.to_string()))
}
