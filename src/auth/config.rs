//! The token settings of a server, and why they may be unusable.

use std::path::PathBuf;
use std::time::Duration;

/// How long a `/ws` client may take to authenticate by default.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// The default clock skew allowed on `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The token settings of a server. With no key (no secret, public key or JWKS)
/// authentication is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The HS256 shared secret.
    pub secret: Option<String>,
    /// PEM files of RSA (RS256) or P-256 (ES256) public keys.
    pub public_keys: Vec<PathBuf>,
    /// JWKS files (`{"keys":[…]}`), RSA and P-256 keys, picked by `kid`.
    pub jwks: Vec<PathBuf>,
    /// When set, tokens must name this audience (`aud`).
    pub audience: Option<String>,
    /// When set, tokens must come from this issuer (`iss`).
    pub issuer: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// Topic patterns anyone may subscribe to without a token.
    pub public_topics: Vec<String>,
    /// How long a `/ws` client may take to authenticate.
    pub auth_timeout: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            secret: None,
            public_keys: Vec::new(),
            jwks: Vec::new(),
            audience: None,
            issuer: None,
            leeway: DEFAULT_LEEWAY,
            public_topics: Vec::new(),
            auth_timeout: AUTH_TIMEOUT,
        }
    }
}

impl AuthConfig {
    /// Whether any key is configured (and so authentication is on).
    pub fn is_enabled(&self) -> bool {
        self.secret.as_deref().is_some_and(|s| !s.is_empty())
            || !self.public_keys.is_empty()
            || !self.jwks.is_empty()
    }
}

/// Why the token settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// A key file cannot be read.
    #[error("cannot read key file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A key file holds no usable key.
    #[error("key file {}: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A public topic pattern is malformed.
    #[error("public topic {0:?}: {1}")]
    Pattern(String, String),
}
