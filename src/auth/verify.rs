//! [`TokenVerifier`]: checks a token's signature and claims against the configured
//! keys, and decides what its holder may do.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::claims::Claims;
use super::config::{AuthConfig, AuthConfigError};
use super::keys::{Key, read_jwks, read_pem};
use super::policy::{Identity, Pattern, Permission, SubscriptionGrant, forbidden};
use super::ring_crypto;
use crate::clock::unix_secs as now;
use crate::topic::ErrorCode;
use crate::topic::ErrorReply;
use crate::topic::Topic;

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
        ErrorCode::Unauthorized.reply(self.to_string())
    }
}

/// Checks tokens against the configured keys and claims. Cheap to share (`Arc`).
pub struct TokenVerifier {
    keys: Vec<Key>,
    validation: Validation,
    leeway: Duration,
    public: Vec<Pattern>,
    auth_timeout: Duration,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("keys", &self.keys.len())
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::auth::{SigningKey, sign};

    fn verifier(secret: &str) -> TokenVerifier {
        let config = AuthConfig {
            secret: Some(secret.into()),
            leeway: Duration::from_secs(5),
            public_topics: vec![String::from("public:*")],
            ..AuthConfig::default()
        };
        match TokenVerifier::from_config(&config) {
            Ok(Some(v)) => v,
            other => panic!("{other:?}"),
        }
    }

    fn token(claims: &Claims, secret: &str) -> String {
        sign(claims, &SigningKey::Secret(secret.into()), None).unwrap_or_default()
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
        let v = match TokenVerifier::from_config(&config) {
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
            TokenVerifier::from_config(&AuthConfig::default()),
            Ok(None)
        ));
    }
}
