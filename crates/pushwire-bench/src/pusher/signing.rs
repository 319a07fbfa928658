//! Pusher's HTTP API request signing (`auth_version=1.0`), as every Pusher server
//! SDK does it: the query carries `auth_key`, `auth_timestamp`, `auth_version` and
//! `body_md5` (the hex MD5 of the body), and `auth_signature` is the hex
//! HMAC-SHA256, keyed with the app's secret, of
//! `METHOD\nPATH\nQUERY` where QUERY is those parameters sorted by name.

use md5::{Digest as _, Md5};
use ring::hmac;

/// An app's credentials, and the signing key made from its secret once.
pub(crate) struct AppSigner {
    /// The app id (`/apps/{id}/…`).
    id: String,
    /// The app key (`auth_key`, and `/app/{key}` for subscribers).
    key: String,
    secret: hmac::Key,
}

impl AppSigner {
    /// Checks that `id` and `key` need no escaping in a path or query (Pusher's
    /// are letters, digits, `-`, `_` and `.`), and keeps the key made of `secret`.
    pub(crate) fn new(id: &str, key: &str, secret: &str) -> Result<Self, String> {
        for (flag, value) in [("--app-id", id), ("--app-key", key)] {
            if value.is_empty()
                || !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(format!(
                    "{flag} must be letters, digits, '-', '_' or '.', not {value:?}"
                ));
            }
        }
        Ok(Self {
            id: id.to_owned(),
            key: key.to_owned(),
            secret: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        })
    }

    /// The app key.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// The path of the app's events endpoint: `/apps/{id}/events`.
    pub(crate) fn events_path(&self) -> String {
        format!("/apps/{}/events", self.id)
    }

    /// The path of the app's batch endpoint: `/apps/{id}/batch_events`.
    pub(crate) fn batch_events_path(&self) -> String {
        format!("/apps/{}/batch_events", self.id)
    }

    /// The signed query string of a `method` request to `path` with `body`, made
    /// at `timestamp` (Unix seconds).
    pub(crate) fn signed_query(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        timestamp: u64,
    ) -> String {
        let body_md5 = hex(&Md5::digest(body));
        // Already in the order of their names, as the signature wants them.
        let query = format!(
            "auth_key={}&auth_timestamp={timestamp}&auth_version=1.0&body_md5={body_md5}",
            self.key
        );
        let to_sign = format!("{method}\n{path}\n{query}");
        let signature = hmac::sign(&self.secret, to_sign.as_bytes());
        format!("{query}&auth_signature={}", hex(signature.as_ref()))
    }
}

/// Lower-case hex digits of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of Pusher's HTTP API reference ("worked authentication
    /// example"): app 3, key 278d425bdf160c739803, secret 7ad3773142a6692b25b8.
    #[test]
    fn the_documented_example_signs_alike() -> Result<(), String> {
        let signer = AppSigner::new("3", "278d425bdf160c739803", "7ad3773142a6692b25b8")?;
        let body = r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(signer.events_path(), "/apps/3/events");
        assert_eq!(
            signer.signed_query(
                "POST",
                &signer.events_path(),
                body.as_bytes(),
                1_353_088_179
            ),
            "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0\
             &body_md5=ec365a775a4cd0599faeb73354201b6f\
             &auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
        Ok(())
    }

    #[test]
    fn another_body_or_time_signs_otherwise() -> Result<(), String> {
        let signer = AppSigner::new("3", "278d425bdf160c739803", "7ad3773142a6692b25b8")?;
        let path = signer.events_path();
        let base = signer.signed_query("POST", &path, b"{}", 1);
        assert_ne!(base, signer.signed_query("POST", &path, b"{} ", 1));
        assert_ne!(base, signer.signed_query("POST", &path, b"{}", 2));
        assert_ne!(base, signer.signed_query("GET", &path, b"{}", 1));
        // The MD5 of nothing, a known value.
        assert!(
            signer
                .signed_query("POST", &path, b"", 1)
                .contains("body_md5=d41d8cd98f00b204e9800998ecf8427e&")
        );
        Ok(())
    }

    #[test]
    fn ids_and_keys_that_need_escaping_are_refused() {
        assert!(AppSigner::new("a b", "k", "s").is_err());
        assert!(AppSigner::new("1", "k&x=y", "s").is_err());
        assert!(AppSigner::new("", "k", "s").is_err());
        assert!(AppSigner::new("app-1", "key_2.x", "s").is_ok());
    }
}
