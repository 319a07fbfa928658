//! HMAC-SHA256 signatures as Pusher writes them (lower-case hex): channel and user
//! authentication (`KEY:SIGNATURE`), the HTTP API's `auth_signature`, and the
//! webhooks' `X-Pusher-Signature`.

use ring::hmac;

use crate::auth::same_secret;

/// The hex HMAC-SHA256 of `text` with `secret`.
pub fn sign(secret: &str, text: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hex(hmac::sign(&key, text.as_bytes()).as_ref())
}

/// Whether `signature` is the hex HMAC-SHA256 of `text` with `secret`, compared in
/// constant time (upper-case hex is accepted too).
pub fn verify(secret: &str, text: &str, signature: &str) -> bool {
    let expected = sign(secret, text);
    same_secret(
        signature.to_ascii_lowercase().as_bytes(),
        expected.as_bytes(),
    )
}

/// Checks a client's `auth` (`KEY:SIGNATURE`) for `text` against the app's key and
/// secret.
pub fn verify_auth(key: &str, secret: &str, text: &str, auth: &str) -> bool {
    match auth.split_once(':') {
        Some((given_key, signature)) => {
            same_secret(given_key.as_bytes(), key.as_bytes()) && verify(secret, text, signature)
        }
        None => false,
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Pusher's channel authentication docs: key 278d425bdf160c739803,
    /// secret 7ad3773142a6692b25b8, socket 1234.1234, channel private-foobar.
    #[test]
    fn the_docs_private_channel_example_signs_alike() {
        let signature = sign("7ad3773142a6692b25b8", "1234.1234:private-foobar");
        assert_eq!(
            signature,
            "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
        assert!(verify_auth(
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            "1234.1234:private-foobar",
            &format!("278d425bdf160c739803:{signature}")
        ));
        assert!(!verify_auth(
            "other",
            "7ad3773142a6692b25b8",
            "1234.1234:private-foobar",
            &format!("other2:{signature}")
        ));
        assert!(!verify(
            "7ad3773142a6692b25b8",
            "1234.1234:private-foobaz",
            &signature
        ));
        assert!(!verify_auth("k", "s", "t", "no-colon"));
    }
}
