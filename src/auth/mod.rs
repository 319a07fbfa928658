//! Who may do what: connection tokens, subscription tokens and public topics.
//!
//! # The model
//!
//! Without a key configured, pushwire trusts everyone who can reach it: anyone may
//! subscribe, publish and ask for presence (the publish API has its own API key).
//! Configure a key (`--token-secret`, `--token-public-key`, `--token-jwks`) and
//! every client must show a **token**: a JWT signed by your application's backend,
//! which knows who the user is and what they may see. pushwire never sees
//! passwords or sessions; it only checks signatures and reads claims.
//!
//! A **connection token** says who the client is and what it may do:
//!
//! ```json
//! {"sub": "alice", "exp": 1767225600,
//!  "topics": {"news": ["sub"], "chat:*": ["sub", "pub", "presence"]}}
//! ```
//!
//! - `sub` is the user id, shown as `user` in presence;
//! - `exp` is required: a token always ends. Over `/ws` the client sends a fresh
//!   one (`auth` again) before it does; otherwise the server closes the socket
//!   with code 3000 at expiry. SSE streams end at expiry, and the client
//!   reconnects with a new token;
//! - `topics` maps a **pattern** to permissions (`sub`, `pub`, `presence`). A
//!   pattern is an exact topic name, or a prefix ending in `*` (`chat:*` matches
//!   `chat:lobby`, not `chatter`; `*` alone matches every topic).
//!
//! A **subscription token** grants `sub` and `presence` on one topic to one
//! user: `{"sub": "alice", "topic": "chat:room-42", "exp": …}`, passed in the
//! `sub` request (`?sub_token=` over SSE and long-poll). It lets a backend decide
//! per topic without listing every topic in the connection token. It holds the
//! subscription until it expires: then the subscription ends (an `unsub` push,
//! code 401) unless the client sent a fresh one in time (`sub` again; the
//! subscription keeps its position). Likewise a connection-token refresh ends the
//! subscriptions the new token no longer allows (code 403).
//!
//! **Public topics** (`--public-topic PATTERN`) may be subscribed to by anyone,
//! with or without a token; publishing on them still needs the permission.
//!
//! # Keys and algorithms
//!
//! Every key is bound to one algorithm: a shared secret to HS256, an RSA public key
//! to RS256, a P-256 public key to ES256. A token is verified only by a key of the
//! algorithm its header names, so `alg: none` and *key confusion* (an HS256 token
//! signed with an RSA public key used as the secret) fail. With several keys the
//! header's `kid` picks among them (keys without a `kid` are tried when none has
//! it). `aud` and `iss` are checked when configured; `nbf` is honoured; `exp` and
//! `nbf` allow the configured clock skew (`--token-leeway`).
//!
//! A PEM file given as a public key must hold a `PUBLIC KEY` (or `RSA PUBLIC
//! KEY`) of RSA, 2048 to 8192 bits, or EC P-256: a private key, a certificate, a
//! P-384 or Ed25519 key is refused when the server starts, with a reason naming
//! what the file holds. Signatures are made and checked by *ring* (the library
//! rustls uses), through a `jsonwebtoken` crypto provider of our own: neither of
//! that crate's backends is compiled in (see `docs/security.md` for why).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

mod der;
mod ring_crypto;

use crate::hub::Topic;
use crate::protocol::ErrorReply;

/// How long a `/ws` client may take to authenticate by default.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// The default clock skew allowed on `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The WebSocket close code for an expired or missing authentication (IANA's
/// "Unauthorized").
pub const CLOSE_UNAUTHORIZED: u16 = 3000;

/// The close reason when a token expired without a refresh.
pub const TOKEN_EXPIRED: &str = "token expired";

/// The close reason when a client did not authenticate in time.
pub const AUTH_TIMED_OUT: &str = "authentication timed out";

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

/// Why a token was refused (always answered with 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token was given.
    #[error("a token is required")]
    Missing,
    /// Not three base64url parts, or the parts are not JSON.
    #[error("token malformed: {0}")]
    Malformed(String),
    /// The header names an algorithm no configured key uses (`none` included).
    #[error("algorithm not allowed: {0:?}")]
    Algorithm(String),
    /// The header's `kid` names no configured key.
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    /// The signature does not verify with any key of the token's algorithm.
    #[error("signature invalid")]
    Signature,
    /// `exp` is past (beyond the allowed clock skew).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the allowed clock skew).
    #[error("token not yet valid")]
    NotYetValid,
    /// `aud` is not the configured audience.
    #[error("wrong audience")]
    Audience,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    Issuer,
    /// A claim is missing or malformed.
    #[error("invalid claims: {0}")]
    Claims(String),
}

impl TokenError {
    /// The 401 error reply for this refusal.
    pub fn reply(&self) -> ErrorReply {
        ErrorReply::new(401, self.to_string())
    }
}

/// One permission a token can grant on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Subscribe (`sub`, SSE, long-poll).
    Sub,
    /// Publish (`pub`, the publish API).
    Pub,
    /// Ask who is present (`presence`).
    Presence,
}

impl Permission {
    fn bit(self) -> u8 {
        match self {
            Self::Sub => 1,
            Self::Pub => 2,
            Self::Presence => 4,
        }
    }

    /// The name used in tokens and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sub => "sub",
            Self::Pub => "pub",
            Self::Presence => "presence",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "sub" => Some(Self::Sub),
            "pub" => Some(Self::Pub),
            "presence" => Some(Self::Presence),
            _ => None,
        }
    }
}

/// A topic pattern: an exact name, or a prefix ending in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// Exactly this topic.
    Exact(String),
    /// Every topic starting with this prefix (the pattern without its `*`).
    Prefix(String),
}

impl Pattern {
    /// Reads `news` or `chat:*`; a `*` anywhere but at the end is refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (body, prefix) = match text.strip_suffix('*') {
            Some(body) => (body, true),
            None => (text, false),
        };
        if body.contains('*') {
            return Err(String::from("'*' may only end a pattern"));
        }
        if !prefix && body.is_empty() {
            return Err(String::from("empty pattern"));
        }
        Ok(if prefix {
            Self::Prefix(body.to_owned())
        } else {
            Self::Exact(body.to_owned())
        })
    }

    /// Whether `topic` matches.
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Self::Exact(name) => name == topic,
            Self::Prefix(prefix) => topic.starts_with(prefix.as_str()),
        }
    }
}

/// A verified connection token: who the client is, until when, and what it may do.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The user id (`sub`).
    pub user: Arc<str>,
    /// When the token expires (`exp`, Unix seconds).
    pub expires: u64,
    grants: Vec<(Pattern, u8)>,
}

impl Identity {
    /// Whether the token grants `permission` on `topic`.
    pub fn allows(&self, topic: &str, permission: Permission) -> bool {
        self.grants
            .iter()
            .any(|(pattern, bits)| bits & permission.bit() != 0 && pattern.matches(topic))
    }
}

/// A verified subscription token: `user` may subscribe to `topic` until `expires`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionGrant {
    /// The user id (`sub`).
    pub user: String,
    /// The one topic.
    pub topic: String,
    /// When the token expires (Unix seconds).
    pub expires: u64,
}

/// The claims pushwire reads (and `pushwire token` writes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Expiry, Unix seconds (required: a token without one is refused).
    #[serde(default)]
    pub exp: u64,
    /// Not before, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Connection tokens: topic pattern → permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<BTreeMap<String, Vec<String>>>,
    /// Subscription tokens: the one topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

/// A key and the one algorithm it verifies.
struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Checks tokens against the configured keys and claims. Cheap to share (`Arc`).
pub struct Verifier {
    keys: Vec<Key>,
    validation: Validation,
    leeway: Duration,
    public: Vec<Pattern>,
    auth_timeout: Duration,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys.len())
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// The verifier `config` describes, reading its key files; `None` when no key is
    /// configured (authentication off).
    pub fn from_config(config: &AuthConfig) -> Result<Option<Self>, AuthConfigError> {
        if !config.is_enabled() {
            return Ok(None);
        }
        ring_crypto::install();
        let mut keys = Vec::new();
        if let Some(secret) = config.secret.as_deref().filter(|s| !s.is_empty()) {
            if secret.len() < 32 {
                tracing::warn!(
                    "the token secret is {} bytes; use at least 32 random bytes",
                    secret.len()
                );
            }
            keys.push(Key {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes()),
            });
        }
        for path in &config.public_keys {
            keys.push(read_pem(path)?);
        }
        for path in &config.jwks {
            keys.extend(read_jwks(path)?);
        }
        let public = config
            .public_topics
            .iter()
            .map(|p| Pattern::parse(p).map_err(|e| AuthConfigError::Pattern(p.clone(), e)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.validate_exp = true;
        // A configured audience or issuer must also be present, not only right when
        // present (jsonwebtoken checks them only in tokens that have them).
        let mut required = vec!["exp"];
        if let Some(aud) = &config.audience {
            validation.set_audience(&[aud]);
            required.push("aud");
        }
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(Some(Self {
            keys,
            validation,
            leeway: Duration::from_secs(config.leeway.as_secs()),
            public,
            auth_timeout: config.auth_timeout,
        }))
    }

    /// How long a `/ws` client may take to authenticate.
    pub fn auth_timeout(&self) -> Duration {
        self.auth_timeout
    }

    /// The clock skew allowed after `exp`.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// Whether anyone may subscribe to `topic` without a token.
    pub fn is_public(&self, topic: &str) -> bool {
        self.public.iter().any(|p| p.matches(topic))
    }

    /// Verifies a token's signature and standard claims, and reads its claims.
    pub fn claims(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify(token, true)
    }

    /// [`Self::claims`], checking `exp` only when `check_exp` is set.
    fn verify(&self, token: &str, check_exp: bool) -> Result<Claims, TokenError> {
        let (alg, kid) = peek_header(token)?;
        let algorithm = match alg.as_str() {
            "HS256" => Algorithm::HS256,
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            _ => return Err(TokenError::Algorithm(alg)),
        };
        let of_alg = || self.keys.iter().filter(move |k| k.algorithm == algorithm);
        if of_alg().next().is_none() {
            return Err(TokenError::Algorithm(alg));
        }
        let candidates: Vec<&Key> = match &kid {
            Some(kid) => {
                let named: Vec<&Key> = of_alg().filter(|k| k.kid.as_ref() == Some(kid)).collect();
                if named.is_empty() {
                    let unnamed: Vec<&Key> = of_alg().filter(|k| k.kid.is_none()).collect();
                    if unnamed.is_empty() {
                        return Err(TokenError::UnknownKey(kid.clone()));
                    }
                    unnamed
                } else {
                    named
                }
            }
            None => of_alg().collect(),
        };
        let mut validation = self.validation.clone();
        validation.algorithms = vec![algorithm];
        validation.validate_exp = check_exp;
        let mut refusal = TokenError::Signature;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(err) => {
                    let err = token_error(err.kind());
                    // A key that verified the signature says more than one that did not.
                    if err != TokenError::Signature {
                        refusal = err;
                    }
                }
            }
        }
        Err(refusal)
    }

    /// Verifies a connection token (`auth`, SSE, long-poll, publish API).
    pub fn connection(&self, token: &str) -> Result<Identity, TokenError> {
        let claims = self.claims(token)?;
        if claims.topic.is_some() {
            return Err(TokenError::Claims(String::from(
                "a subscription token cannot authenticate a connection",
            )));
        }
        let user = claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or_else(|| TokenError::Claims(String::from("missing \"sub\"")))?;
        let mut grants = Vec::new();
        for (pattern, permissions) in claims.topics.unwrap_or_default() {
            let parsed = Pattern::parse(&pattern)
                .map_err(|e| TokenError::Claims(format!("topics: {pattern:?}: {e}")))?;
            let mut bits = 0;
            for name in &permissions {
                let permission = Permission::parse(name).ok_or_else(|| {
                    TokenError::Claims(format!("topics: unknown permission {name:?}"))
                })?;
                bits |= permission.bit();
            }
            grants.push((parsed, bits));
        }
        Ok(Identity {
            user: Arc::from(user),
            expires: claims.exp,
            grants,
        })
    }

    /// Verifies a subscription token.
    pub fn subscription(&self, token: &str) -> Result<SubscriptionGrant, TokenError> {
        self.grant(self.claims(token)?)
    }

    /// Verifies a subscription token, except that an expired one is answered too,
    /// with `true`: which topic a client held with it matters when it comes back
    /// late (SSE and long-poll end that topic with "subscription token expired").
    pub fn subscription_even_expired(
        &self,
        token: &str,
    ) -> Result<(SubscriptionGrant, bool), TokenError> {
        let grant = self.grant(self.verify(token, false)?)?;
        let expired = grant.expires.saturating_add(self.leeway.as_secs()) < now();
        Ok((grant, expired))
    }

    fn grant(&self, claims: Claims) -> Result<SubscriptionGrant, TokenError> {
        let topic = claims.topic.ok_or_else(|| {
            TokenError::Claims(String::from("not a subscription token: missing \"topic\""))
        })?;
        let user = claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or_else(|| TokenError::Claims(String::from("missing \"sub\"")))?;
        Ok(SubscriptionGrant {
            user,
            topic,
            expires: claims.exp,
        })
    }

    /// Whether a client with `identity` may go on receiving `topic` without a
    /// subscription token: the topic is public or the connection token grants `sub`.
    pub fn allows_sub(&self, identity: Option<&Identity>, topic: &str) -> bool {
        self.is_public(topic) || identity.is_some_and(|i| i.allows(topic, Permission::Sub))
    }

    /// The decision for a request on `topic` that needs `permission`, by a client
    /// with `identity` (`None`: no token): `Ok`, 401 or 403.
    pub fn decide(
        &self,
        identity: Option<&Identity>,
        topic: &Topic,
        permission: Permission,
    ) -> Result<(), ErrorReply> {
        if permission == Permission::Sub && self.is_public(topic.as_str()) {
            return Ok(());
        }
        match identity {
            Some(identity) if identity.allows(topic.as_str(), permission) => Ok(()),
            Some(_) => Err(forbidden(topic, permission)),
            None => Err(TokenError::Missing.reply()),
        }
    }
}

/// The 403 for a permission the token does not grant.
pub fn forbidden(topic: &Topic, permission: Permission) -> ErrorReply {
    ErrorReply::new(
        403,
        format!(
            "the token does not grant {:?} on {:?}",
            permission.name(),
            topic.as_str()
        ),
    )
}

pub use crate::clock::{unix_secs as now, until_secs as until};

/// Reads `alg` and `kid` from a token's header without trusting it.
fn peek_header(token: &str) -> Result<(String, Option<String>), TokenError> {
    #[derive(Deserialize)]
    struct Peek {
        alg: Option<String>,
        kid: Option<String>,
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(String::from(
            "a JWT has three parts separated by '.'",
        )));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|e| TokenError::Malformed(format!("header: {e}")))?;
    let peek: Peek = serde_json::from_slice(&bytes)
        .map_err(|e| TokenError::Malformed(format!("header: {e}")))?;
    let alg = peek
        .alg
        .ok_or_else(|| TokenError::Malformed(String::from("header without \"alg\"")))?;
    Ok((alg, peek.kid))
}

fn token_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::Signature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            TokenError::Algorithm(String::from("for this key"))
        }
        ErrorKind::MissingRequiredClaim(claim) => TokenError::Claims(format!("missing {claim:?}")),
        ErrorKind::InvalidClaimFormat(claim) => TokenError::Claims(format!("malformed {claim:?}")),
        ErrorKind::Json(err) => TokenError::Claims(err.to_string()),
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) => TokenError::Signature,
        other => TokenError::Malformed(format!("{other:?}")),
    }
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
fn read_pem(path: &PathBuf) -> Result<Key, AuthConfigError> {
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
fn read_jwks(path: &PathBuf) -> Result<Vec<Key>, AuthConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(secret: &str) -> Verifier {
        let config = AuthConfig {
            secret: Some(secret.into()),
            leeway: Duration::from_secs(5),
            public_topics: vec![String::from("public:*")],
            ..AuthConfig::default()
        };
        match Verifier::from_config(&config) {
            Ok(Some(v)) => v,
            other => panic!("{other:?}"),
        }
    }

    fn token(claims: &Claims, secret: &str) -> String {
        sign(claims, &SigningKey::Secret(secret.into()), None).unwrap_or_default()
    }

    #[test]
    fn patterns_match_exact_names_and_prefixes() {
        let chat = Pattern::parse("chat:*").unwrap_or_else(|e| panic!("{e}"));
        assert!(chat.matches("chat:x"));
        assert!(!chat.matches("chatter"));
        let all = Pattern::parse("*").unwrap_or_else(|e| panic!("{e}"));
        assert!(all.matches("anything"));
        let news = Pattern::parse("news").unwrap_or_else(|e| panic!("{e}"));
        assert!(news.matches("news") && !news.matches("news2"));
        assert!(Pattern::parse("a*b").is_err());
        assert!(Pattern::parse("").is_err());
    }

    #[test]
    fn a_connection_token_grants_what_it_lists() {
        let v = verifier("s3cret");
        let mut topics = BTreeMap::new();
        topics.insert(String::from("chat:*"), vec![String::from("sub")]);
        let claims = Claims {
            sub: Some("alice".into()),
            exp: now() + 60,
            topics: Some(topics),
            ..Claims::default()
        };
        let identity = v
            .connection(&token(&claims, "s3cret"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&*identity.user, "alice");
        assert!(identity.allows("chat:x", Permission::Sub));
        assert!(!identity.allows("chat:x", Permission::Pub));
        assert!(!identity.allows("chatter", Permission::Sub));
        let topic = Topic::new("public:a").unwrap_or_else(|e| panic!("{e}"));
        assert!(v.decide(None, &topic, Permission::Sub).is_ok());
        assert_eq!(
            v.decide(None, &topic, Permission::Pub).map_err(|e| e.code),
            Err(401)
        );
        assert_eq!(
            v.decide(Some(&identity), &topic, Permission::Pub)
                .map_err(|e| e.code),
            Err(403)
        );
    }

    #[test]
    fn bad_tokens_say_why() {
        let v = verifier("s3cret");
        let claims = Claims {
            sub: Some("alice".into()),
            exp: now() + 60,
            ..Claims::default()
        };
        assert_eq!(
            v.claims(&token(&claims, "other")).err(),
            Some(TokenError::Signature)
        );
        let expired = Claims {
            exp: now() - 60,
            ..claims.clone()
        };
        assert_eq!(
            v.claims(&token(&expired, "s3cret")).err(),
            Some(TokenError::Expired)
        );
        assert!(matches!(v.claims("abc"), Err(TokenError::Malformed(_))));
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(br#"{"sub":"a","exp":99999999999}"#)
        );
        assert_eq!(
            v.claims(&none).err(),
            Some(TokenError::Algorithm("none".into()))
        );
    }

    #[test]
    fn audience_and_issuer_when_configured_are_required() {
        let config = AuthConfig {
            secret: Some("s3cret".into()),
            audience: Some("pushwire".into()),
            issuer: Some("backend".into()),
            ..AuthConfig::default()
        };
        let v = match Verifier::from_config(&config) {
            Ok(Some(v)) => v,
            other => panic!("{other:?}"),
        };
        let right = Claims {
            sub: Some("alice".into()),
            exp: now() + 60,
            aud: Some("pushwire".into()),
            iss: Some("backend".into()),
            ..Claims::default()
        };
        assert!(v.claims(&token(&right, "s3cret")).is_ok());
        let no_aud = Claims {
            aud: None,
            ..right.clone()
        };
        assert!(matches!(
            v.claims(&token(&no_aud, "s3cret")),
            Err(TokenError::Claims(_))
        ));
        let no_iss = Claims { iss: None, ..right };
        assert!(matches!(
            v.claims(&token(&no_iss, "s3cret")),
            Err(TokenError::Claims(_))
        ));
        // Without a configured audience, a token naming one is refused (RFC 7519 4.1.3).
        let open = verifier("s3cret");
        let with_aud = Claims {
            sub: Some("alice".into()),
            exp: now() + 60,
            aud: Some("pushwire".into()),
            ..Claims::default()
        };
        assert_eq!(
            open.claims(&token(&with_aud, "s3cret")).err(),
            Some(TokenError::Audience)
        );
    }

    #[test]
    fn without_a_key_auth_is_off() {
        assert!(matches!(
            Verifier::from_config(&AuthConfig::default()),
            Ok(None)
        ));
    }

    fn key_verifier(dir: &std::path::Path, pem: &str) -> Result<Option<Verifier>, AuthConfigError> {
        let path = dir.join("key.pem");
        std::fs::write(&path, pem).unwrap_or_else(|e| panic!("{e}"));
        Verifier::from_config(&AuthConfig {
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
