//! The cryptography behind our tokens: a `jsonwebtoken` [`CryptoProvider`] on
//! *ring*, the library rustls already uses for TLS.
//!
//! `jsonwebtoken` ships two backends: `rust_crypto`, which signs RSA with the
//! `rsa` crate (RUSTSEC-2023-0071, the "Marvin" timing side channel on private-key
//! operations, with no fixed release), and `aws_lc_rs`, which compiles AWS-LC's C
//! code with cmake. Neither feature is on; this provider, installed once per
//! process by [`install`], does the work with *ring* instead: HMAC, RSA PKCS#1 v1.5
//! and PSS (2048 to 8192 bits), ECDSA P-256 and P-384, and Ed25519.

use std::sync::Once;

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair as _};
use ring::{digest, hmac};

use super::der;

/// The provider; [`install`] makes it the process default.
static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: rsa_components_from_private_key,
        rsa_pub_components_from_public_key: rsa_components_from_public_key,
        ec_pub_components_from_private_key: ec_components_from_private_key,
        ed_pub_components_from_private_key: ed_components_from_private_key,
        compute_digest,
    },
};

/// Makes the *ring* provider `jsonwebtoken`'s default for this process. Called
/// before any token is signed or verified; calling it again does nothing. (If an
/// application installed a provider of its own first, that one stays.)
pub(crate) fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        if PROVIDER.install_default().is_err() {
            tracing::debug!("a jsonwebtoken crypto provider was installed before ours; kept");
        }
    });
}

/// Signs with one algorithm and one key.
struct RingSigner {
    algorithm: Algorithm,
    key: EncodingKey,
}

impl Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let key = self.key.as_bytes();
        let rng = SystemRandom::new();
        if let Some(alg) = hmac_algorithm(self.algorithm) {
            return Ok(hmac::sign(&hmac::Key::new(alg, key), msg).as_ref().to_vec());
        }
        if let Some(padding) = rsa_padding(self.algorithm) {
            let pair = sig::RsaKeyPair::from_der(key).map_err(failed)?;
            let mut signature = vec![0; pair.public().modulus_len()];
            pair.sign(padding, &rng, msg, &mut signature)
                .map_err(failed)?;
            return Ok(signature);
        }
        if let Some(alg) = ecdsa_signing(self.algorithm) {
            let pair = sig::EcdsaKeyPair::from_pkcs8(alg, key, &rng).map_err(failed)?;
            let signature = pair.sign(&rng, msg).map_err(failed)?;
            return Ok(signature.as_ref().to_vec());
        }
        // EdDSA, the only algorithm left.
        let pair = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(key).map_err(failed)?;
        Ok(pair.sign(msg).as_ref().to_vec())
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// Verifies with one algorithm and one key.
struct RingVerifier {
    algorithm: Algorithm,
    key: DecodingKey,
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        if let Some(alg) = hmac_algorithm(self.algorithm) {
            let key = self.key.try_get_as_bytes().map_err(failed)?;
            return hmac::verify(&hmac::Key::new(alg, key), msg, signature).map_err(failed);
        }
        if let Some(params) = rsa_parameters(self.algorithm) {
            return match self.key.kind() {
                DecodingKeyKind::SecretOrDer(der) => {
                    sig::UnparsedPublicKey::new(params, der).verify(msg, signature)
                }
                DecodingKeyKind::RsaModulusExponent { n, e } => {
                    sig::RsaPublicKeyComponents { n, e }.verify(params, msg, signature)
                }
            }
            .map_err(failed);
        }
        let key = self.key.try_get_as_bytes().map_err(failed)?;
        let alg: &'static dyn sig::VerificationAlgorithm = match self.algorithm {
            Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
            _ => &sig::ED25519,
        };
        sig::UnparsedPublicKey::new(alg, key)
            .verify(msg, signature)
            .map_err(failed)
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// A *ring* error as a `signature` error (with *ring*'s message).
fn failed(err: impl std::fmt::Display) -> signature::Error {
    signature::Error::from_source(err.to_string())
}

fn hmac_algorithm(algorithm: Algorithm) -> Option<hmac::Algorithm> {
    match algorithm {
        Algorithm::HS256 => Some(hmac::HMAC_SHA256),
        Algorithm::HS384 => Some(hmac::HMAC_SHA384),
        Algorithm::HS512 => Some(hmac::HMAC_SHA512),
        _ => None,
    }
}

fn rsa_padding(algorithm: Algorithm) -> Option<&'static dyn sig::RsaEncoding> {
    match algorithm {
        Algorithm::RS256 => Some(&sig::RSA_PKCS1_SHA256),
        Algorithm::RS384 => Some(&sig::RSA_PKCS1_SHA384),
        Algorithm::RS512 => Some(&sig::RSA_PKCS1_SHA512),
        Algorithm::PS256 => Some(&sig::RSA_PSS_SHA256),
        Algorithm::PS384 => Some(&sig::RSA_PSS_SHA384),
        Algorithm::PS512 => Some(&sig::RSA_PSS_SHA512),
        _ => None,
    }
}

fn rsa_parameters(algorithm: Algorithm) -> Option<&'static sig::RsaParameters> {
    match algorithm {
        Algorithm::RS256 => Some(&sig::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => Some(&sig::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => Some(&sig::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => Some(&sig::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => Some(&sig::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => Some(&sig::RSA_PSS_2048_8192_SHA512),
        _ => None,
    }
}

fn ecdsa_signing(algorithm: Algorithm) -> Option<&'static sig::EcdsaSigningAlgorithm> {
    match algorithm {
        Algorithm::ES256 => Some(&sig::ECDSA_P256_SHA256_FIXED_SIGNING),
        Algorithm::ES384 => Some(&sig::ECDSA_P384_SHA384_FIXED_SIGNING),
        _ => None,
    }
}

/// The family a key must be of to be used with `algorithm`.
fn family(algorithm: Algorithm) -> AlgorithmFamily {
    match algorithm {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => AlgorithmFamily::Hmac,
        Algorithm::ES256 | Algorithm::ES384 => AlgorithmFamily::Ec,
        Algorithm::EdDSA => AlgorithmFamily::Ed,
        _ => AlgorithmFamily::Rsa,
    }
}

fn new_signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    if key.family() != family(*algorithm) {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(RingSigner {
        algorithm: *algorithm,
        key: key.clone(),
    }))
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    if key.family() != family(*algorithm) {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(RingVerifier {
        algorithm: *algorithm,
        key: key.clone(),
    }))
}

fn rsa_components_from_private_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let pair =
        sig::RsaKeyPair::from_der(der).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
    let components = sig::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
    Ok((components.n, components.e))
}

fn rsa_components_from_public_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    der::rsa_public_key(der)
        .map(|(n, e)| (n.to_vec(), e.to_vec()))
        .ok_or_else(|| ErrorKind::InvalidRsaKey(String::from("not a DER RSAPublicKey")).into())
}

fn ec_components_from_private_key(
    der: &[u8],
    algorithm: Algorithm,
) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>), Error> {
    let (signing, curve, half) = match algorithm {
        Algorithm::ES256 => (
            &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            EllipticCurve::P256,
            32,
        ),
        Algorithm::ES384 => (
            &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
            EllipticCurve::P384,
            48,
        ),
        _ => return Err(ErrorKind::InvalidEcdsaKey.into()),
    };
    let pair = sig::EcdsaKeyPair::from_pkcs8(signing, der, &SystemRandom::new())
        .map_err(|_| Error::from(ErrorKind::InvalidEcdsaKey))?;
    match pair.public_key().as_ref().split_first() {
        Some((4, point)) if point.len() == 2 * half => {
            let (x, y) = point.split_at(half);
            Ok((curve, x.to_vec(), y.to_vec()))
        }
        _ => Err(ErrorKind::InvalidEcdsaKey.into()),
    }
}

fn ed_components_from_private_key(der: &[u8], curve: &EllipticCurve) -> Result<Vec<u8>, Error> {
    if *curve != EllipticCurve::Ed25519 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let pair = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
        .map_err(|_| Error::from(ErrorKind::InvalidEddsaKey))?;
    Ok(pair.public_key().as_ref().to_vec())
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>, Error> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &digest::SHA256,
        ThumbprintHash::SHA384 => &digest::SHA384,
        ThumbprintHash::SHA512 => &digest::SHA512,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(digest::digest(algorithm, data).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hs256_signs_and_verifies_and_refuses_a_changed_message() {
        install();
        let signer = RingSigner {
            algorithm: Algorithm::HS256,
            key: EncodingKey::from_secret(b"a secret of thirty-two bytes....."),
        };
        let verifier = RingVerifier {
            algorithm: Algorithm::HS256,
            key: DecodingKey::from_secret(b"a secret of thirty-two bytes....."),
        };
        let signature = signer.try_sign(b"message").unwrap_or_default();
        assert_eq!(signature.len(), 32);
        assert!(verifier.verify(b"message", &signature).is_ok());
        assert!(verifier.verify(b"messagE", &signature).is_err());
    }

    #[test]
    fn a_key_of_another_family_is_refused() {
        let key = DecodingKey::from_secret(b"secret");
        assert!(new_verifier(&Algorithm::RS256, &key).is_err());
        assert!(new_verifier(&Algorithm::HS256, &key).is_ok());
    }
}
