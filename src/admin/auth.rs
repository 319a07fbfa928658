//! The admin credential: a password (`--admin-password`), checked in constant
//! time, that buys short-lived admin tokens; an admin token opens `/ws` with the
//! right to subscribe to the system topic the admin page reads.
//!
//! A token is `<exp>.<mac>`: its expiry (Unix seconds) and an HMAC-SHA256 of it
//! under a key derived from the password, so every node configured with the same
//! password accepts the tokens of the others, and changing the password (and
//! restarting) voids every token. Nothing is stored on the server.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::{digest, hmac};

use crate::auth::same_secret;
use crate::clock::unix_secs;

/// How long an admin token is valid (the admin page renews it well before).
pub const ADMIN_TOKEN_TTL: Duration = Duration::from_secs(300);

/// What a token's MAC covers besides its expiry: a token of nothing else.
const CONTEXT: &str = "pushwire-admin-token-v1:";

/// Why a credential was refused (each answered 401; the credential itself is never
/// logged nor echoed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdminAuthError {
    /// No password or token was given.
    #[error("the admin page needs the admin password")]
    Missing,
    /// The password is not the admin password.
    #[error("wrong admin password")]
    WrongPassword,
    /// The token is malformed or was not made with this password.
    #[error("invalid admin token: log in again")]
    InvalidToken,
    /// The token's time is over.
    #[error("the admin token expired: log in again")]
    Expired,
}

/// The admin password and the key of its tokens.
pub struct AdminAuth {
    /// SHA-256 of the password: compared in constant time, and of a fixed length,
    /// so the comparison tells nothing about the password's length either.
    digest: [u8; 32],
    key: hmac::Key,
}

impl fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminAuth { .. }")
    }
}

impl AdminAuth {
    /// The credential `password` (not empty: the caller refuses that).
    pub fn new(password: &str) -> Self {
        let digest = sha256(password.as_bytes());
        let mut material = Vec::with_capacity(CONTEXT.len() + password.len());
        material.extend_from_slice(CONTEXT.as_bytes());
        material.extend_from_slice(password.as_bytes());
        let key = hmac::Key::new(hmac::HMAC_SHA256, &sha256(&material));
        Self { digest, key }
    }

    /// Checks `given` against the password, in constant time.
    pub fn check_password(&self, given: &str) -> Result<(), AdminAuthError> {
        if given.is_empty() {
            return Err(AdminAuthError::Missing);
        }
        if same_secret(&sha256(given.as_bytes()), &self.digest) {
            Ok(())
        } else {
            Err(AdminAuthError::WrongPassword)
        }
    }

    /// A token valid for [`ADMIN_TOKEN_TTL`] from now, and its expiry (Unix
    /// seconds).
    pub fn issue(&self) -> (String, u64) {
        self.issue_until(unix_secs().saturating_add(ADMIN_TOKEN_TTL.as_secs()))
    }

    /// A token valid until `exp` (Unix seconds).
    pub fn issue_until(&self, exp: u64) -> (String, u64) {
        let tag = hmac::sign(&self.key, format!("{CONTEXT}{exp}").as_bytes());
        (
            format!("{exp}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())),
            exp,
        )
    }

    /// Checks a token: made with this password (the MAC is checked in constant
    /// time) and not expired.
    pub fn verify(&self, token: &str) -> Result<(), AdminAuthError> {
        if token.is_empty() {
            return Err(AdminAuthError::Missing);
        }
        let (exp, mac) = token.split_once('.').ok_or(AdminAuthError::InvalidToken)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| AdminAuthError::InvalidToken)?;
        let exp_secs: u64 = exp.parse().map_err(|_| AdminAuthError::InvalidToken)?;
        hmac::verify(&self.key, format!("{CONTEXT}{exp}").as_bytes(), &mac)
            .map_err(|_| AdminAuthError::InvalidToken)?;
        if exp_secs <= unix_secs() {
            return Err(AdminAuthError::Expired);
        }
        Ok(())
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_checked() {
        let auth = AdminAuth::new("s3cret");
        assert_eq!(auth.check_password("s3cret"), Ok(()));
        assert_eq!(
            auth.check_password("s3cre"),
            Err(AdminAuthError::WrongPassword)
        );
        assert_eq!(auth.check_password(""), Err(AdminAuthError::Missing));
    }

    #[test]
    fn tokens_are_bound_to_the_password_and_expire() {
        let auth = AdminAuth::new("s3cret");
        let (token, exp) = auth.issue();
        assert!(exp > unix_secs());
        assert_eq!(auth.verify(&token), Ok(()));
        assert_eq!(
            AdminAuth::new("other").verify(&token),
            Err(AdminAuthError::InvalidToken)
        );
        let (old, _) = auth.issue_until(unix_secs() - 1);
        assert_eq!(auth.verify(&old), Err(AdminAuthError::Expired));
        // A later expiry with the old MAC is not a token.
        let forged = format!(
            "{}.{}",
            exp + 1000,
            token.split_once('.').map_or("", |(_, mac)| mac)
        );
        assert_eq!(auth.verify(&forged), Err(AdminAuthError::InvalidToken));
        assert_eq!(auth.verify("x"), Err(AdminAuthError::InvalidToken));
        assert_eq!(auth.verify(""), Err(AdminAuthError::Missing));
    }
}
