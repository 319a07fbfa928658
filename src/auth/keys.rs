//! Reading the keys tokens are verified with: PEM public keys and JWKS files,
//! each key bound to the one algorithm it verifies.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::config::AuthConfigError;
use super::der;

/// A key and the one algorithm it verifies.
pub(crate) struct Key {
    /// The key id a token's header names it by, if any.
    pub(crate) kid: Option<String>,
    /// The one algorithm it verifies.
    pub(crate) algorithm: Algorithm,
    /// The key itself.
    pub(crate) key: DecodingKey,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, AuthConfigError> {
    std::fs::read(path).map_err(|source| AuthConfigError::Read {
        path: path.clone(),
        source,
    })
}

/// RSA keys shorter than this are refused (the verifier checks RS256 signatures
/// of 2048 to 8192 bits).
const RSA_MIN_BITS: usize = 2048;
/// RSA keys longer than this are refused.
const RSA_MAX_BITS: usize = 8192;

/// A PEM public key: RSA (RS256, 2048 to 8192 bits) or EC P-256 (ES256). Anything
/// else (a private key, a certificate, a P-384 or Ed25519 key, a short RSA key) is
/// refused with a reason that names what the file holds, rather than accepted and
/// then failing every token.
pub(crate) fn read_pem(path: &PathBuf) -> Result<Key, AuthConfigError> {
    let bad = |reason: String| AuthConfigError::Key {
        path: path.clone(),
        reason,
    };
    let text = read(path)?;
    let (label, der) = pem_block(&text).map_err(bad)?;
    let key = match label.as_str() {
        "PUBLIC KEY" => spki_key(&der).map_err(bad)?,
        "RSA PUBLIC KEY" => rsa_key(&der).map_err(bad)?,
        label if label.contains("PRIVATE KEY") => {
            return Err(bad(format!(
                "holds a private key (BEGIN {label}), not a public key; the server needs \
                 only the public key: openssl pkey -in {} -pubout",
                path.display()
            )));
        }
        "CERTIFICATE" => {
            return Err(bad(format!(
                "holds a certificate, not a public key; take its key with: openssl x509 \
                 -in {} -pubkey -noout",
                path.display()
            )));
        }
        label => {
            return Err(bad(format!(
                "holds a PEM {label:?} block, not a PUBLIC KEY"
            )));
        }
    };
    Ok(key)
}

/// The label and bytes of the first PEM block of `text`.
fn pem_block(text: &[u8]) -> Result<(String, Vec<u8>), String> {
    let text = std::str::from_utf8(text).map_err(|_| String::from("not a PEM file (not text)"))?;
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|line| {
            line.strip_prefix("-----BEGIN ")
                .and_then(|rest| rest.strip_suffix("-----"))
        })
        .ok_or_else(|| String::from("not a PEM file (no -----BEGIN line)"))?
        .to_owned();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    let mut ended = false;
    for line in lines {
        if line == end {
            ended = true;
            break;
        }
        body.push_str(line);
    }
    if !ended {
        return Err(format!("PEM block {label:?} has no {end} line"));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|e| format!("PEM block {label:?} is not valid base64: {e}"))?;
    Ok((label, der))
}

/// The key of a SubjectPublicKeyInfo (PEM `PUBLIC KEY`).
fn spki_key(der: &[u8]) -> Result<Key, String> {
    let spki = der::spki(der).ok_or_else(|| String::from("malformed PUBLIC KEY"))?;
    match (spki.algorithm, spki.parameter) {
        (der::OID_RSA, _) => rsa_key(spki.key),
        (der::OID_EC, Some(der::OID_P256)) => {
            if spki.key.len() != 65 || spki.key.first() != Some(&4) {
                return Err(String::from(
                    "malformed EC P-256 public key (expected an uncompressed point)",
                ));
            }
            Ok(Key {
                kid: None,
                algorithm: Algorithm::ES256,
                key: DecodingKey::from_ec_der(spki.key),
            })
        }
        (der::OID_EC, curve) => {
            let curve = match curve {
                Some(der::OID_P384) => "P-384",
                Some(der::OID_P521) => "P-521",
                _ => "a curve other than P-256",
            };
            Err(format!(
                "holds an EC public key on {curve}; pushwire verifies ES256 tokens, \
                 which are signed with P-256 keys (openssl ecparam -name prime256v1)"
            ))
        }
        (der::OID_ED25519 | der::OID_ED448, _) => Err(String::from(
            "holds an EdDSA (Ed25519/Ed448) public key; pushwire verifies RS256 (RSA) \
             and ES256 (EC P-256) tokens only",
        )),
        _ => Err(String::from(
            "holds a public key of an unsupported kind; pushwire verifies RS256 (RSA) \
             and ES256 (EC P-256) tokens only",
        )),
    }
}

/// An RS256 key from a PKCS#1 RSAPublicKey.
fn rsa_key(der: &[u8]) -> Result<Key, String> {
    let (n, _) =
        der::rsa_public_key(der).ok_or_else(|| String::from("malformed RSA public key"))?;
    check_rsa_bits(der::bits(n))?;
    Ok(Key {
        kid: None,
        algorithm: Algorithm::RS256,
        key: DecodingKey::from_rsa_der(der),
    })
}

fn check_rsa_bits(bits: usize) -> Result<(), String> {
    if (RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(format!(
            "RSA key of {bits} bits; RS256 keys of {RSA_MIN_BITS} to {RSA_MAX_BITS} bits are \
             accepted"
        ))
    }
}

/// The RSA and P-256 keys of a JWKS file.
pub(crate) fn read_jwks(path: &PathBuf) -> Result<Vec<Key>, AuthConfigError> {
    let bad = |reason: String| AuthConfigError::Key {
        path: path.clone(),
        reason,
    };
    let text = read(path)?;
    let set: JwkSet = serde_json::from_slice(&text).map_err(|e| bad(format!("not a JWKS: {e}")))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let kid = jwk.common.key_id.clone();
        let named = kid.as_deref().unwrap_or("(no kid)");
        let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
            (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                if ec.curve == EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            _ => {
                return Err(bad(format!(
                    "key {named}: only RSA (RS256) and P-256 (ES256) keys are supported"
                )));
            }
        };
        if let AlgorithmParameters::RSA(rsa) = &jwk.algorithm {
            let n = URL_SAFE_NO_PAD
                .decode(rsa.n.trim_end_matches('='))
                .map_err(|e| bad(format!("key {named}: n is not base64url: {e}")))?;
            check_rsa_bits(der::bits(&n)).map_err(|e| bad(format!("key {named}: {e}")))?;
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| bad(format!("key {named}: {e}")))?;
        keys.push(Key {
            kid,
            algorithm,
            key,
        });
    }
    if keys.is_empty() {
        return Err(bad(String::from("no keys")));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthConfig, Claims, SigningKey, TokenError, TokenVerifier, now, sign};

    fn key_verifier(
        dir: &std::path::Path,
        pem: &str,
    ) -> Result<Option<TokenVerifier>, AuthConfigError> {
        let path = dir.join("key.pem");
        std::fs::write(&path, pem).unwrap_or_else(|e| panic!("{e}"));
        TokenVerifier::from_config(&AuthConfig {
            public_keys: vec![path],
            ..AuthConfig::default()
        })
    }

    #[test]
    fn es256_tokens_signed_with_a_p256_key_verify_with_its_public_key_only() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap_or_else(|e| panic!("{e}"));
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap_or_else(|e| panic!("{e}"));
        let claims = Claims {
            sub: Some(String::from("eve")),
            exp: now() + 60,
            ..Claims::default()
        };
        let token = sign(
            &claims,
            &SigningKey::Ec(pair.serialize_pem().into_bytes()),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let verifier = match key_verifier(dir.path(), &pair.public_key_pem()) {
            Ok(Some(verifier)) => verifier,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            verifier.claims(&token).map(|c| c.sub),
            Ok(Some(String::from("eve")))
        );
        let stranger = match key_verifier(dir.path(), &other.public_key_pem()) {
            Ok(Some(verifier)) => verifier,
            other => panic!("{other:?}"),
        };
        assert_eq!(stranger.claims(&token).err(), Some(TokenError::Signature));
    }

    #[test]
    fn a_p384_public_key_or_a_private_key_is_refused_with_what_it_is() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
            .unwrap_or_else(|e| panic!("{e}"));
        let refusal = |pem: &str| match key_verifier(dir.path(), pem) {
            Err(err) => err.to_string(),
            Ok(verifier) => panic!("accepted: {verifier:?}"),
        };
        assert!(refusal(&p384.public_key_pem()).contains("EC public key on P-384"));
        assert!(refusal(&p384.serialize_pem()).contains("holds a private key (BEGIN PRIVATE KEY)"));
        assert!(refusal("hello").contains("not a PEM file"));
    }
}
