//! Just enough DER to look inside a public key: its algorithm, its curve, and an
//! RSA key's modulus. Every function answers `None` on anything malformed.

/// `rsaEncryption` (1.2.840.113549.1.1.1).
pub(crate) const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// `id-ecPublicKey` (1.2.840.10045.2.1).
pub(crate) const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// The P-256 curve, `prime256v1` (1.2.840.10045.3.1.7).
pub(crate) const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// The P-384 curve, `secp384r1` (1.3.132.0.34).
pub(crate) const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
/// The P-521 curve, `secp521r1` (1.3.132.0.35).
pub(crate) const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
/// `Ed25519` (1.3.101.112).
pub(crate) const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
/// `Ed448` (1.3.101.113).
pub(crate) const OID_ED448: &[u8] = &[0x2b, 0x65, 0x71];

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OID: u8 = 0x06;

/// A SubjectPublicKeyInfo (the DER in a PEM `PUBLIC KEY`), taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spki<'a> {
    /// The algorithm's OID (content bytes).
    pub(crate) algorithm: &'a [u8],
    /// The parameters' OID, when they are one (an EC key's curve).
    pub(crate) parameter: Option<&'a [u8]>,
    /// The key itself: the BIT STRING's bytes (an RSAPublicKey, or an EC point).
    pub(crate) key: &'a [u8],
}

/// Reads one TLV of tag `tag` from the front of `input`: its content and the rest.
fn take(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let (len, rest) = if len < 0x80 {
        (usize::from(len), rest)
    } else {
        let count = usize::from(len & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

/// The parts of a SubjectPublicKeyInfo.
pub(crate) fn spki(der: &[u8]) -> Option<Spki<'_>> {
    let (body, _) = take(der, SEQUENCE)?;
    let (algorithm_identifier, rest) = take(body, SEQUENCE)?;
    let (algorithm, parameters) = take(algorithm_identifier, OID)?;
    let parameter = take(parameters, OID).map(|(oid, _)| oid);
    let (bits, _) = take(rest, BIT_STRING)?;
    let (&unused, key) = bits.split_first()?;
    if unused != 0 {
        return None;
    }
    Some(Spki {
        algorithm,
        parameter,
        key,
    })
}

/// The modulus and exponent of a PKCS#1 RSAPublicKey, without leading zero bytes.
pub(crate) fn rsa_public_key(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (body, _) = take(der, SEQUENCE)?;
    let (n, rest) = take(body, INTEGER)?;
    let (e, _) = take(rest, INTEGER)?;
    Some((strip_zeros(n), strip_zeros(e)))
}

/// The size in bits of a big-endian unsigned number.
pub(crate) fn bits(number: &[u8]) -> usize {
    let number = strip_zeros(number);
    match number.first() {
        None => 0,
        Some(&top) => number.len() * 8 - top.leading_zeros() as usize,
    }
}

fn strip_zeros(mut number: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = number {
        number = rest;
    }
    number
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_ec_p256_spki() {
        // The SPKI of a P-256 key: SEQUENCE { SEQUENCE { ecPublicKey, prime256v1 },
        // BIT STRING { 0x04, 64 bytes } }.
        let mut der = vec![0x30, 0x59, 0x30, 0x13, 0x06, 0x07];
        der.extend_from_slice(OID_EC);
        der.extend_from_slice(&[0x06, 0x08]);
        der.extend_from_slice(OID_P256);
        der.extend_from_slice(&[0x03, 0x42, 0x00, 0x04]);
        der.extend_from_slice(&[7; 64]);
        let spki = spki(&der);
        assert_eq!(
            spki.map(|s| (s.algorithm, s.parameter, s.key.len())),
            Some((OID_EC, Some(OID_P256), 65))
        );
        assert_eq!(super::spki(&der[..der.len() - 1]), None, "truncated");
    }

    #[test]
    fn counts_bits_of_a_modulus() {
        assert_eq!(bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(bits(&[0x01, 0xff]), 9);
        assert_eq!(bits(&[]), 0);
        let der = [0x30, 0x08, 0x02, 0x03, 0x00, 0xc1, 0x01, 0x02, 0x01, 0x03];
        assert_eq!(rsa_public_key(&der), Some((&[0xc1, 0x01][..], &[0x03][..])));
    }
}
