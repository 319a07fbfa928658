//! Access tokens: where a request's token comes from ([`find_token`]), how it is
//! verified ([`MercureAuth::verify`]) and what it grants ([`Grants`]).
//!
//! Mercure 1.0 tokens are OAuth 2.0 JWT access tokens (RFC 9068): header `typ`
//! `at+jwt`; `iss` one of the configured issuers, whose key (and only whose key)
//! verifies the signature; `aud` holding the hub's resource identifier; `exp`
//! required, `nbf` honoured, both with [`DEFAULT_LEEWAY`] of clock skew;
//! algorithms HS256 for shared secrets, RS256 and ES256 for public keys, never
//! `none`. Their `authorization_details` (RFC 9396) entries of type
//! [`AUTHORIZATION_DETAIL_TYPE`] grant `publish` and/or `subscribe` on topic
//! matchers; a malformed one makes the whole token invalid (no partial
//! acceptance), entries of other types are ignored.
//!
//! In the 0.x compatibility mode, tokens whose header does not say `at+jwt` are
//! verified with the compatibility key, without `aud` or `iss` checks and with
//! `exp` checked only when present, and read from the `mercure` claim
//! (`publish`/`subscribe` arrays of `*`, exact topics or URI Templates, and a
//! `payload`). `docs/security.md` says what that weakens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::config::{COMPAT_COOKIE, KeySpec, MercureConfig};
use super::error::MercureError;
use super::matcher::{MatchType, Matcher};
use crate::auth::{AuthConfigError, DEFAULT_LEEWAY, Key};

/// The `type` of the `authorization_details` entries Mercure reads.
pub const AUTHORIZATION_DETAIL_TYPE: &str = "https://mercure.rocks/authorization-detail";

/// The most Mercure `authorization_details` entries a token may carry.
pub const MAX_DETAILS: usize = 32;

/// The most topic matchers one entry (or one 0.x `publish`/`subscribe` list) may
/// hold.
pub const MAX_DETAIL_TOPICS: usize = 64;

/// The most `authorization_details` entries of any type a token may carry.
const MAX_ENTRIES: usize = 256;

/// What a verified token grants.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// The token's `sub`, if any.
    pub subject: Option<String>,
    /// When the token expires (`exp`), in Unix milliseconds (`None`: a 0.x token
    /// without `exp`).
    pub expires_at: Option<u64>,
    /// The topics it may publish to.
    pub publish: Vec<Matcher>,
    /// The topics whose private updates it may receive, each with the payload
    /// its grant carries, in the token's order.
    pub subscribe: Vec<SubscribeGrant>,
    /// A 0.x token's `mercure.payload`, shown with every subscription its
    /// holder makes (1.0 tokens carry payloads in their grants instead).
    pub payload: Option<Box<RawValue>>,
}

/// One `subscribe` grant.
#[derive(Debug, Clone)]
pub struct SubscribeGrant {
    /// The topics it covers.
    pub matcher: Matcher,
    /// The grant's `payload`, shown with the subscriptions it covers.
    pub payload: Option<Box<RawValue>>,
}

impl Grants {
    /// Whether the token may publish to `topic`.
    pub fn may_publish(&self, topic: &str) -> bool {
        self.publish.iter().any(|m| m.matches(topic))
    }

    /// Whether the token may receive private updates of `topic`.
    pub fn may_subscribe(&self, topic: &str) -> bool {
        self.subscribe.iter().any(|g| g.matcher.matches(topic))
    }

    /// The payload shown with a subscription whose own matcher is
    /// `matcher_text` (the `match…` query value): that of the first `subscribe`
    /// grant whose matcher matches that text as if it were a topic (`None` when
    /// that grant has none); with no such grant, a 0.x token's payload.
    pub fn payload_for(&self, matcher_text: &str) -> Option<&RawValue> {
        match self
            .subscribe
            .iter()
            .find(|g| g.matcher.matches(matcher_text))
        {
            Some(grant) => grant.payload.as_deref(),
            None => self.payload.as_deref(),
        }
    }
}

/// Where a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer …` (wins over every other source).
    Header,
    /// The configured cookie (`__Secure-mercure_access_token` by default).
    Cookie,
    /// 0.x compatibility mode: the `mercureAuthorization` cookie.
    CompatCookie,
    /// 0.x compatibility mode: the `authorization` query parameter.
    CompatQuery,
}

/// The token of a request, if any. The `Authorization: Bearer` header wins; in
/// the compatibility mode the `authorization` query parameter comes next (as the
/// 0.x hub had it); then the configured cookie; then, in the compatibility mode,
/// the `mercureAuthorization` cookie. Never from the URL otherwise: an
/// `access_token` query parameter (in any mode) or an `authorization` one
/// (outside the compatibility mode) is refused with 400 `invalid_request`, even
/// when a header came too, as is a malformed `Authorization` header or several.
pub fn find_token(
    headers: &HeaderMap,
    query: &[(String, String)],
    config: &MercureConfig,
) -> Result<Option<(String, TokenSource)>, MercureError> {
    let compat = config.compat.is_some();
    if query
        .iter()
        .any(|(name, _)| name == "access_token" || (!compat && name == "authorization"))
    {
        return Err(MercureError::InvalidRequest(
            "tokens are not accepted in URLs".into(),
        ));
    }
    let mut authorization = headers.get_all(http::header::AUTHORIZATION).iter();
    if let Some(value) = authorization.next() {
        if authorization.next().is_some() {
            return Err(MercureError::InvalidRequest(
                "several Authorization headers".into(),
            ));
        }
        return Ok(Some((bearer(value)?, TokenSource::Header)));
    }
    if compat
        && let Some((_, token)) = query
            .iter()
            .find(|(name, value)| name == "authorization" && !value.is_empty())
    {
        return Ok(Some((token.clone(), TokenSource::CompatQuery)));
    }
    if let Some(token) = cookie(headers, &config.cookie) {
        return Ok(Some((token, TokenSource::Cookie)));
    }
    if compat && let Some(token) = cookie(headers, COMPAT_COOKIE) {
        return Ok(Some((token, TokenSource::CompatCookie)));
    }
    Ok(None)
}

/// The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1; the
/// scheme is case-insensitive).
fn bearer(value: &http::HeaderValue) -> Result<String, MercureError> {
    let malformed =
        || MercureError::InvalidRequest("Authorization must be `Bearer <token>`".into());
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = text.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim_matches(' ');
    let b64token = |token: &str| {
        let body = token.trim_end_matches('=');
        !body.is_empty()
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    };
    if !scheme.eq_ignore_ascii_case("bearer") || !b64token(token) {
        return Err(malformed());
    }
    Ok(token.to_owned())
}

/// The first non-empty value of the cookie `name` in the request's `Cookie`
/// headers (there may be several; unreadable ones are skipped). Surrounding
/// double quotes are dropped (RFC 6265 §4.1.1).
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| key.trim_matches([' ', '\t']) == name)
        .map(|(_, value)| {
            let value = value.trim_matches([' ', '\t']);
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value)
        })
        .find(|value| !value.is_empty())
        .map(str::to_owned)
}

/// Verifies tokens with the configured issuers' keys (and the compatibility key).
pub struct MercureAuth {
    issuers: Vec<TrustedIssuer>,
    compat: Option<Vec<Key>>,
    leeway: u64,
}

/// An issuer and the keys its tokens are verified with.
struct TrustedIssuer {
    iss: String,
    keys: Vec<Key>,
}

impl std::fmt::Debug for MercureAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MercureAuth")
            .field(
                "issuers",
                &self.issuers.iter().map(|i| &i.iss).collect::<Vec<_>>(),
            )
            .field("compat", &self.compat.is_some())
            .finish_non_exhaustive()
    }
}

impl MercureAuth {
    /// Reads the keys `config` names: each issuer's (an issuer named twice has
    /// the keys of both entries, for rotation) and the compatibility key. A key
    /// file that cannot be read or holds no usable key is an error naming it.
    pub fn new(config: &MercureConfig) -> Result<Self, AuthConfigError> {
        crate::auth::install_crypto();
        let mut issuers: Vec<TrustedIssuer> = Vec::new();
        for issuer in &config.issuers {
            let keys = load(&issuer.key)?;
            match issuers.iter_mut().find(|i| i.iss == issuer.iss) {
                Some(known) => known.keys.extend(keys),
                None => issuers.push(TrustedIssuer {
                    iss: issuer.iss.clone(),
                    keys,
                }),
            }
        }
        let compat = config.compat.as_ref().map(load).transpose()?;
        Ok(Self {
            issuers,
            compat,
            leeway: DEFAULT_LEEWAY.as_secs(),
        })
    }

    /// Whether the 0.x compatibility mode is on.
    pub fn is_compat(&self) -> bool {
        self.compat.is_some()
    }

    /// Whether any token can be verified at all (an issuer or the compatibility
    /// key is configured).
    pub fn has_keys(&self) -> bool {
        !self.issuers.is_empty() || self.compat.is_some()
    }

    /// Verifies `token` for the hub whose resource identifier is `audience` and
    /// whose URL is `base` (for relative URL patterns), and answers its grants.
    /// Every refusal is [`MercureError::InvalidToken`] with a short reason.
    pub fn verify(&self, token: &str, audience: &str, base: &str) -> Result<Grants, MercureError> {
        let header = peek_header(token)?;
        let access_token = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        if access_token {
            self.verify_access_token(token, &header, audience, base)
        } else if let Some(keys) = &self.compat {
            self.verify_compat(token, &header, keys, base)
        } else {
            Err(invalid("the token's typ is not at+jwt"))
        }
    }

    /// A Mercure 1.0 (RFC 9068) access token.
    fn verify_access_token(
        &self,
        token: &str,
        header: &Header,
        audience: &str,
        base: &str,
    ) -> Result<Grants, MercureError> {
        let iss = peek_issuer(token)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.iss == iss)
            .ok_or_else(|| invalid("unknown issuer"))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_audience(&[audience]);
        validation.set_issuer(&[&issuer.iss]);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        let claims = decode(token, header, &issuer.keys, &validation)?;
        let mut grants = authorization_details(claims.authorization_details, base)?;
        grants.subject = claims.sub;
        grants.expires_at = claims.exp.as_ref().and_then(unix_millis);
        Ok(grants)
    }

    /// A 0.x token: the compatibility key, no `aud`/`iss`, the `mercure` claim.
    fn verify_compat(
        &self,
        token: &str,
        header: &Header,
        keys: &[Key],
        base: &str,
    ) -> Result<Grants, MercureError> {
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = decode(token, header, keys, &validation)?;
        let mut grants = mercure_claim(claims.mercure, base)?;
        grants.subject = claims.sub;
        grants.expires_at = claims.exp.as_ref().and_then(unix_millis);
        Ok(grants)
    }
}

/// The keys a [`KeySpec`] names.
fn load(spec: &KeySpec) -> Result<Vec<Key>, AuthConfigError> {
    match spec {
        KeySpec::Hs256(secret) => Ok(vec![secret_key(secret.as_bytes())]),
        KeySpec::Hs256File(path) => {
            let bytes = std::fs::read(path).map_err(|source| AuthConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let secret = bytes
                .strip_suffix(b"\r\n")
                .or_else(|| bytes.strip_suffix(b"\n"))
                .unwrap_or(&bytes);
            if secret.is_empty() {
                return Err(AuthConfigError::Key {
                    path: path.clone(),
                    reason: String::from("the secret file is empty"),
                });
            }
            Ok(vec![secret_key(secret)])
        }
        KeySpec::Pem(path) => Ok(vec![crate::auth::read_pem(path)?]),
        KeySpec::Jwks(path) => crate::auth::read_jwks(path),
    }
}

fn secret_key(secret: &[u8]) -> Key {
    if secret.len() < 32 {
        tracing::warn!(
            "a Mercure HS256 secret is {} bytes; use at least 32 random bytes",
            secret.len()
        );
    }
    Key {
        kid: None,
        algorithm: Algorithm::HS256,
        key: DecodingKey::from_secret(secret),
    }
}

/// What a token's header says, read before it is trusted.
struct Header {
    alg: Algorithm,
    typ: Option<String>,
    kid: Option<String>,
}

fn invalid(why: &str) -> MercureError {
    MercureError::InvalidToken(why.to_owned())
}

/// The payload (claims) part of a compact JWS, decoded but not verified.
fn unverified_part(token: &str, index: usize) -> Result<Vec<u8>, MercureError> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(invalid("a JWT has three parts separated by '.'"));
    }
    URL_SAFE_NO_PAD
        .decode(parts[index])
        .map_err(|_| invalid("the token is not base64url"))
}

/// Reads `alg`, `typ` and `kid`; only HS256, RS256 and ES256 pass.
fn peek_header(token: &str) -> Result<Header, MercureError> {
    #[derive(Deserialize)]
    struct Peek {
        alg: Option<String>,
        typ: Option<String>,
        kid: Option<String>,
        crit: Option<Value>,
    }
    let bytes = unverified_part(token, 0)?;
    let peek: Peek =
        serde_json::from_slice(&bytes).map_err(|_| invalid("the token's header is malformed"))?;
    if peek.crit.is_some() {
        // RFC 7515 §4.1.11: extensions the recipient must understand; we know none.
        return Err(invalid("the token's header has critical extensions"));
    }
    let alg = match peek.alg.as_deref() {
        Some("HS256") => Algorithm::HS256,
        Some("RS256") => Algorithm::RS256,
        Some("ES256") => Algorithm::ES256,
        Some(_) => return Err(invalid("the token's algorithm is not accepted")),
        None => return Err(invalid("the token's header has no alg")),
    };
    Ok(Header {
        alg,
        typ: peek.typ,
        kid: peek.kid,
    })
}

/// The `iss` claim (a string), read before the token is verified, to pick the
/// keys it must be verified with.
fn peek_issuer(token: &str) -> Result<String, MercureError> {
    #[derive(Deserialize)]
    struct Peek {
        iss: Option<Value>,
    }
    let bytes = unverified_part(token, 1)?;
    let peek: Peek =
        serde_json::from_slice(&bytes).map_err(|_| invalid("the token's claims are malformed"))?;
    match peek.iss {
        Some(Value::String(iss)) => Ok(iss),
        Some(_) => Err(invalid("iss is not a string")),
        None => Err(invalid("iss is required")),
    }
}

/// The claims Mercure reads.
#[derive(Deserialize)]
struct MercureClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<serde_json::Number>,
    #[serde(default)]
    authorization_details: Option<Value>,
    #[serde(default)]
    mercure: Option<Value>,
}

fn unix_millis(exp: &serde_json::Number) -> Option<u64> {
    match exp.as_u64() {
        Some(secs) => Some(secs.saturating_mul(1000)),
        // A fractional NumericDate: whole milliseconds (`as` saturates).
        None => exp
            .as_f64()
            .filter(|secs| *secs >= 0.0)
            .map(|secs| (secs * 1000.0) as u64),
    }
}

/// Verifies the signature with one of `keys` (those of the header's algorithm;
/// with a `kid`, those named so, else those without a name) and the claims with
/// `validation`.
fn decode(
    token: &str,
    header: &Header,
    keys: &[Key],
    validation: &Validation,
) -> Result<MercureClaims, MercureError> {
    let of_alg = || keys.iter().filter(|k| k.algorithm == header.alg);
    if of_alg().next().is_none() {
        return Err(invalid(
            "the token's algorithm does not fit the issuer's key",
        ));
    }
    let candidates: Vec<&Key> = match &header.kid {
        Some(kid) if of_alg().any(|k| k.kid.as_ref() == Some(kid)) => {
            of_alg().filter(|k| k.kid.as_ref() == Some(kid)).collect()
        }
        Some(_) => of_alg().filter(|k| k.kid.is_none()).collect(),
        None => of_alg().collect(),
    };
    if candidates.is_empty() {
        return Err(invalid("unknown key id"));
    }
    let mut refusal = invalid("signature invalid");
    for key in candidates {
        match jsonwebtoken::decode::<MercureClaims>(token, &key.key, validation) {
            Ok(data) => return Ok(data.claims),
            Err(err) if *err.kind() == ErrorKind::InvalidSignature => {}
            // A key that verified the signature says more than one that did not.
            Err(err) => refusal = claims_error(err.kind()),
        }
    }
    Err(refusal)
}

fn claims_error(kind: &ErrorKind) -> MercureError {
    match kind {
        ErrorKind::InvalidSignature => invalid("signature invalid"),
        ErrorKind::ExpiredSignature => invalid("the token expired"),
        ErrorKind::ImmatureSignature => invalid("the token is not valid yet (nbf)"),
        ErrorKind::InvalidAudience => invalid("the token is not for this hub (aud)"),
        ErrorKind::InvalidIssuer => invalid("wrong issuer"),
        ErrorKind::MissingRequiredClaim(claim) => {
            MercureError::InvalidToken(format!("{claim} is required"))
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            MercureError::InvalidToken(format!("{claim} is malformed"))
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            invalid("the token's algorithm is not accepted")
        }
        ErrorKind::Json(_) | ErrorKind::Utf8(_) | ErrorKind::Base64(_) => {
            invalid("the token's claims are malformed")
        }
        _ => invalid("the token is malformed"),
    }
}

/// The grants of a 1.0 token's `authorization_details` (none without it).
fn authorization_details(details: Option<Value>, base: &str) -> Result<Grants, MercureError> {
    let mut grants = Grants::default();
    let entries = match details {
        None => return Ok(grants),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err(invalid("authorization_details is not an array")),
    };
    if entries.len() > MAX_ENTRIES {
        return Err(MercureError::InvalidToken(format!(
            "authorization_details has more than {MAX_ENTRIES} entries"
        )));
    }
    let mut mercure = 0;
    for entry in entries {
        let Value::Object(entry) = entry else {
            return Err(invalid("an authorization_details entry is not an object"));
        };
        match entry.get("type") {
            Some(Value::String(kind)) if kind == AUTHORIZATION_DETAIL_TYPE => {}
            Some(Value::String(_)) => continue,
            _ => return Err(invalid("an authorization_details entry has no type")),
        }
        mercure += 1;
        if mercure > MAX_DETAILS {
            return Err(MercureError::InvalidToken(format!(
                "more than {MAX_DETAILS} Mercure authorization details"
            )));
        }
        detail(&entry, base, &mut grants)?;
    }
    Ok(grants)
}

/// One Mercure authorization detail: `actions`, `topics`, `payload`.
fn detail(entry: &Map<String, Value>, base: &str, grants: &mut Grants) -> Result<(), MercureError> {
    let Some(Value::Array(actions)) = entry.get("actions") else {
        return Err(invalid("a Mercure authorization detail has no actions"));
    };
    if actions.is_empty() {
        return Err(invalid("a Mercure authorization detail has no actions"));
    }
    let (mut publish, mut subscribe) = (false, false);
    for action in actions {
        match action.as_str() {
            Some("publish") => publish = true,
            Some("subscribe") => subscribe = true,
            _ => return Err(invalid("actions are publish and subscribe")),
        }
    }
    let Some(Value::Array(topics)) = entry.get("topics") else {
        return Err(invalid("a Mercure authorization detail has no topics"));
    };
    if topics.is_empty() {
        return Err(invalid("a Mercure authorization detail has no topics"));
    }
    if topics.len() > MAX_DETAIL_TOPICS {
        return Err(MercureError::InvalidToken(format!(
            "an authorization detail has more than {MAX_DETAIL_TOPICS} topics"
        )));
    }
    let matchers = topics
        .iter()
        .map(|topic| topic_matcher(topic, base))
        .collect::<Result<Vec<_>, _>>()?;
    let payload = match entry.get("payload") {
        None => None,
        Some(payload @ Value::Object(_)) => Some(raw(payload)?),
        Some(_) => return Err(invalid("a payload is a JSON object")),
    };
    if subscribe {
        grants
            .subscribe
            .extend(matchers.iter().map(|matcher| SubscribeGrant {
                matcher: matcher.clone(),
                payload: payload.clone(),
            }));
    }
    if publish {
        grants.publish.extend(matchers);
    }
    Ok(())
}

/// `{"match": …, "match_type"?: "exact" | "urlpattern"}`, nothing else.
fn topic_matcher(topic: &Value, base: &str) -> Result<Matcher, MercureError> {
    let Value::Object(topic) = topic else {
        return Err(invalid("a topic matcher is an object"));
    };
    if topic.keys().any(|k| k != "match" && k != "match_type") {
        return Err(invalid("a topic matcher has only match and match_type"));
    }
    let Some(Value::String(text)) = topic.get("match") else {
        return Err(invalid("a topic matcher's match is a string"));
    };
    let kind = match topic.get("match_type") {
        None => MatchType::Exact,
        Some(Value::String(kind)) if kind == "exact" => MatchType::Exact,
        Some(Value::String(kind)) if kind == "urlpattern" => MatchType::UrlPattern,
        Some(_) => return Err(invalid("match_type is exact or urlpattern")),
    };
    Matcher::parse(kind, text, base)
        .map_err(|e| MercureError::InvalidToken(format!("topic matcher: {e}")))
}

fn raw(value: &Value) -> Result<Box<RawValue>, MercureError> {
    serde_json::value::to_raw_value(value).map_err(|_| invalid("the payload is malformed"))
}

/// The grants of a 0.x token's `mercure` claim (none without it).
fn mercure_claim(claim: Option<Value>, base: &str) -> Result<Grants, MercureError> {
    let mut grants = Grants::default();
    let claim = match claim {
        None => return Ok(grants),
        Some(Value::Object(claim)) => claim,
        Some(_) => return Err(invalid("the mercure claim is not an object")),
    };
    grants.publish = selectors(claim.get("publish"), "publish", base)?;
    let payload = claim.get("payload").map(raw).transpose()?;
    grants.subscribe = selectors(claim.get("subscribe"), "subscribe", base)?
        .into_iter()
        .map(|matcher| SubscribeGrant {
            matcher,
            payload: payload.clone(),
        })
        .collect();
    grants.payload = payload;
    Ok(grants)
}

/// A 0.x selector list: `*`, exact topics, or URI Templates (holding `{`).
fn selectors(list: Option<&Value>, name: &str, base: &str) -> Result<Vec<Matcher>, MercureError> {
    let list = match list {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(MercureError::InvalidToken(format!(
                "mercure.{name} is not an array"
            )));
        }
    };
    if list.len() > MAX_DETAIL_TOPICS {
        return Err(MercureError::InvalidToken(format!(
            "mercure.{name} has more than {MAX_DETAIL_TOPICS} selectors"
        )));
    }
    list.iter()
        .map(|selector| {
            let Value::String(text) = selector else {
                return Err(MercureError::InvalidToken(format!(
                    "mercure.{name} holds a selector that is not a string"
                )));
            };
            let kind = if text.contains('{') {
                MatchType::Template
            } else {
                MatchType::Exact
            };
            Matcher::parse(kind, text, base)
                .map_err(|e| MercureError::InvalidToken(format!("mercure.{name}: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use http::HeaderValue;
    use jsonwebtoken::{EncodingKey, Header as JwtHeader};
    use serde_json::json;

    use super::*;
    use crate::interop::mercure::config::Issuer;

    const HUB: &str = "https://hub.example.com/.well-known/mercure";
    const ISS: &str = "https://auth.example.com/";
    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const OTHER_ISS: &str = "https://other.example.com/";
    const OTHER_SECRET: &str = "fedcba9876543210fedcba9876543210";
    const COMPAT_SECRET: &str = "compat-compat-compat-compat-compat";

    fn now() -> u64 {
        crate::clock::unix_secs()
    }

    fn config() -> MercureConfig {
        MercureConfig {
            issuers: vec![
                Issuer {
                    iss: ISS.into(),
                    key: KeySpec::Hs256(SECRET.into()),
                },
                Issuer {
                    iss: OTHER_ISS.into(),
                    key: KeySpec::Hs256(OTHER_SECRET.into()),
                },
            ],
            ..MercureConfig::default()
        }
    }

    fn compat_config() -> MercureConfig {
        MercureConfig {
            compat: Some(KeySpec::Hs256(COMPAT_SECRET.into())),
            ..config()
        }
    }

    fn auth(config: &MercureConfig) -> MercureAuth {
        MercureAuth::new(config).unwrap_or_else(|e| panic!("{e}"))
    }

    fn mint_with(header: &JwtHeader, claims: &Value, key: &EncodingKey) -> String {
        crate::auth::install_crypto();
        jsonwebtoken::encode(header, claims, key).unwrap_or_else(|e| panic!("{e}"))
    }

    fn at_jwt() -> JwtHeader {
        JwtHeader {
            typ: Some("at+jwt".into()),
            ..JwtHeader::new(Algorithm::HS256)
        }
    }

    /// A 1.0 token signed with `secret`.
    fn mint(claims: &Value, secret: &str) -> String {
        mint_with(
            &at_jwt(),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
    }

    fn detail(actions: &[&str], topics: Value) -> Value {
        json!({"type": AUTHORIZATION_DETAIL_TYPE, "actions": actions, "topics": topics})
    }

    fn claims(details: Value) -> Value {
        json!({"iss": ISS, "aud": HUB, "exp": now() + 60, "sub": "alice",
               "authorization_details": details})
    }

    fn refusal(auth: &MercureAuth, token: &str) -> String {
        match auth.verify(token, HUB, HUB) {
            Err(MercureError::InvalidToken(why)) => why,
            other => panic!("not refused as invalid_token: {other:?}"),
        }
    }

    #[test]
    fn a_valid_access_token_grants_what_its_details_say() {
        let auth = auth(&config());
        let token = mint(
            &claims(json!([
                detail(&["publish"], json!([{"match": "https://example.com/books/1"}])),
                detail(
                    &["subscribe", "publish"],
                    json!([{"match": "https://example.com/users/:id", "match_type": "urlpattern"}])
                ),
                {"type": "https://other.example.com/detail", "anything": [1, 2]},
            ])),
            SECRET,
        );
        let grants = auth
            .verify(&token, HUB, HUB)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(grants.subject.as_deref(), Some("alice"));
        let expires = grants.expires_at.unwrap_or_default();
        assert!(expires >= (now() + 59) * 1000 && expires <= (now() + 61) * 1000);
        assert!(grants.may_publish("https://example.com/books/1"));
        assert!(!grants.may_publish("https://example.com/books/2"));
        assert!(grants.may_publish("https://example.com/users/7"));
        assert!(!grants.may_subscribe("https://example.com/books/1"));
        assert!(grants.may_subscribe("https://example.com/users/7"));
        assert!(!grants.may_subscribe("https://example.com/users/7/secret"));
    }

    #[test]
    fn a_token_without_details_grants_nothing() {
        let auth = auth(&config());
        let token = mint(&json!({"iss": ISS, "aud": HUB, "exp": now() + 60}), SECRET);
        let grants = auth
            .verify(&token, HUB, HUB)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!grants.may_publish("x") && !grants.may_subscribe("x"));
        assert!(grants.subject.is_none());
    }

    #[test]
    fn typ_must_say_at_jwt() {
        let auth = auth(&config());
        let body = claims(json!([detail(&["publish"], json!([{"match": "*"}]))]));
        let key = EncodingKey::from_secret(SECRET.as_bytes());
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/AT+JWT",
        ] {
            let header = JwtHeader {
                typ: Some(typ.into()),
                ..JwtHeader::new(Algorithm::HS256)
            };
            let token = mint_with(&header, &body, &key);
            assert!(auth.verify(&token, HUB, HUB).is_ok(), "{typ}");
        }
        for typ in [Some("JWT"), Some("at+jwt2"), Some("jwt+at"), None] {
            let header = JwtHeader {
                typ: typ.map(str::to_owned),
                ..JwtHeader::new(Algorithm::HS256)
            };
            let token = mint_with(&header, &body, &key);
            assert_eq!(
                refusal(&auth, &token),
                "the token's typ is not at+jwt",
                "{typ:?}"
            );
        }
    }

    #[test]
    fn the_issuer_must_be_trusted_and_its_own_key_must_verify() {
        let auth = auth(&config());
        let mut body = claims(json!([]));
        body["iss"] = json!("https://evil.example.com/");
        assert_eq!(refusal(&auth, &mint(&body, SECRET)), "unknown issuer");
        body["iss"] = json!([ISS]);
        assert_eq!(refusal(&auth, &mint(&body, SECRET)), "iss is not a string");
        let mut body = claims(json!([]));
        if let Some(claims) = body.as_object_mut() {
            claims.remove("iss");
        }
        assert_eq!(refusal(&auth, &mint(&body, SECRET)), "iss is required");
        // Signed with the key of another trusted issuer: never accepted.
        let body = claims(json!([]));
        assert_eq!(
            refusal(&auth, &mint(&body, OTHER_SECRET)),
            "signature invalid"
        );
        let mut other = body.clone();
        other["iss"] = json!(OTHER_ISS);
        assert!(auth.verify(&mint(&other, OTHER_SECRET), HUB, HUB).is_ok());
        assert_eq!(refusal(&auth, &mint(&other, SECRET)), "signature invalid");
        // A token whose signature was tampered with.
        let token = mint(&body, SECRET);
        let tampered = format!("{}x", &token[..token.len() - 1]);
        assert!(auth.verify(&tampered, HUB, HUB).is_err());
    }

    #[test]
    fn the_audience_must_be_the_hub() {
        let auth = auth(&config());
        let mut body = claims(json!([]));
        body["aud"] = json!("https://other-hub.example.com/.well-known/mercure");
        assert_eq!(
            refusal(&auth, &mint(&body, SECRET)),
            "the token is not for this hub (aud)"
        );
        body["aud"] = json!(["https://a.example.com/", HUB]);
        assert!(auth.verify(&mint(&body, SECRET), HUB, HUB).is_ok());
        body["aud"] = json!(["https://a.example.com/", "https://b.example.com/"]);
        assert!(refusal(&auth, &mint(&body, SECRET)).contains("aud"));
        if let Some(claims) = body.as_object_mut() {
            claims.remove("aud");
        }
        assert_eq!(refusal(&auth, &mint(&body, SECRET)), "aud is required");
    }

    #[test]
    fn exp_is_required_and_exp_and_nbf_are_enforced_with_leeway() {
        let auth = auth(&config());
        let mut body = claims(json!([]));
        if let Some(claims) = body.as_object_mut() {
            claims.remove("exp");
        }
        assert_eq!(refusal(&auth, &mint(&body, SECRET)), "exp is required");
        body["exp"] = json!(now() - 100);
        assert_eq!(refusal(&auth, &mint(&body, SECRET)), "the token expired");
        body["exp"] = json!(now() - 10);
        assert!(auth.verify(&mint(&body, SECRET), HUB, HUB).is_ok());
        body["exp"] = json!("tomorrow");
        assert!(auth.verify(&mint(&body, SECRET), HUB, HUB).is_err());
        body["exp"] = json!(now() + 60);
        body["nbf"] = json!(now() + 100);
        assert_eq!(
            refusal(&auth, &mint(&body, SECRET)),
            "the token is not valid yet (nbf)"
        );
        body["nbf"] = json!(now() + 10);
        assert!(auth.verify(&mint(&body, SECRET), HUB, HUB).is_ok());
    }

    #[test]
    fn alg_none_and_algorithms_the_key_does_not_use_are_refused() {
        let auth = auth(&config());
        let body = claims(json!([detail(&["publish"], json!([{"match": "*"}]))]));
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let unsigned = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "at+jwt"})),
            b64(&body)
        );
        assert_eq!(
            refusal(&auth, &unsigned),
            "the token's algorithm is not accepted"
        );
        let no_alg = format!("{}.{}.", b64(&json!({"typ": "at+jwt"})), b64(&body));
        assert_eq!(refusal(&auth, &no_alg), "the token's header has no alg");
        let crit = mint_with(
            &JwtHeader {
                typ: Some("at+jwt".into()),
                crit: Some(vec!["exp".into()]),
                ..JwtHeader::new(Algorithm::HS256)
            },
            &body,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        );
        assert_eq!(
            refusal(&auth, &crit),
            "the token's header has critical extensions"
        );
        let twice = format!(
            "{}.{}.",
            b64(&json!({"alg": "HS256", "typ": "at+jwt"})),
            URL_SAFE_NO_PAD.encode(format!(r#"{{"iss":"{ISS}","iss":"https://evil/"}}"#))
        );
        assert_eq!(refusal(&auth, &twice), "the token's claims are malformed");
        let hs384 = mint_with(
            &JwtHeader {
                typ: Some("at+jwt".into()),
                ..JwtHeader::new(Algorithm::HS384)
            },
            &body,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        );
        assert_eq!(
            refusal(&auth, &hs384),
            "the token's algorithm is not accepted"
        );
        // An ES256 token for an issuer whose key is an HS256 secret.
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap_or_else(|e| panic!("{e}"));
        let es256 = mint_with(
            &JwtHeader {
                typ: Some("at+jwt".into()),
                ..JwtHeader::new(Algorithm::ES256)
            },
            &body,
            &EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes())
                .unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(
            refusal(&auth, &es256),
            "the token's algorithm does not fit the issuer's key"
        );
        for garbage in ["", "a.b", "a.b.c.d", "!!!.e30.x", "e30.!!!.x"] {
            assert!(auth.verify(garbage, HUB, HUB).is_err(), "{garbage}");
        }
    }

    #[test]
    fn a_malformed_mercure_detail_invalidates_the_whole_token() {
        let auth = auth(&config());
        let good = detail(&["publish"], json!([{"match": "*"}]));
        let topic = json!([{"match": "https://example.com/a"}]);
        let bad: Vec<(Value, &str)> = vec![
            (json!({"type": AUTHORIZATION_DETAIL_TYPE}), "no actions"),
            (detail(&[], topic.clone()), "no actions"),
            (detail(&["read"], topic.clone()), "actions are"),
            (
                json!({"type": AUTHORIZATION_DETAIL_TYPE, "actions": "publish", "topics": topic}),
                "no actions",
            ),
            (
                json!({"type": AUTHORIZATION_DETAIL_TYPE, "actions": ["publish"]}),
                "no topics",
            ),
            (detail(&["publish"], json!([])), "no topics"),
            (
                detail(&["publish"], json!(["https://example.com/a"])),
                "is an object",
            ),
            (detail(&["publish"], json!([{"match": 3}])), "is a string"),
            (
                detail(&["publish"], json!([{"topic": "x"}])),
                "only match and match_type",
            ),
            (
                detail(
                    &["publish"],
                    json!([{"match": "x", "matchType": "URLPattern"}]),
                ),
                "only match and match_type",
            ),
            (
                detail(
                    &["publish"],
                    json!([{"match": "x", "match_type": "URLPattern"}]),
                ),
                "exact or urlpattern",
            ),
            (
                detail(
                    &["publish"],
                    json!([{"match": "https://x/:id(", "match_type": "urlpattern"}]),
                ),
                "topic matcher",
            ),
            (
                detail(&["publish"], json!([{"match": "a".repeat(2000)}])),
                "topic matcher",
            ),
            (
                json!({"type": AUTHORIZATION_DETAIL_TYPE, "actions": ["subscribe"],
                       "topics": topic, "payload": "a string"}),
                "payload",
            ),
            (json!("mercure"), "not an object"),
            (json!({"actions": ["publish"]}), "no type"),
        ];
        for (entry, why) in bad {
            let token = mint(&claims(json!([good.clone(), entry.clone()])), SECRET);
            let refused = refusal(&auth, &token);
            assert!(refused.contains(why), "{entry}: {refused}");
        }
        let not_array = mint(&claims(json!({"type": AUTHORIZATION_DETAIL_TYPE})), SECRET);
        assert_eq!(
            refusal(&auth, &not_array),
            "authorization_details is not an array"
        );
    }

    #[test]
    fn details_and_topics_are_limited() {
        let auth = auth(&config());
        let topics: Vec<Value> = (0..MAX_DETAIL_TOPICS)
            .map(|i| json!({"match": format!("https://example.com/{i}")}))
            .collect();
        let full = detail(&["subscribe"], json!(topics));
        let details: Vec<Value> = (0..MAX_DETAILS).map(|_| full.clone()).collect();
        assert!(
            auth.verify(&mint(&claims(json!(details)), SECRET), HUB, HUB)
                .is_ok()
        );
        let mut too_many = details.clone();
        too_many.push(full.clone());
        assert!(refusal(&auth, &mint(&claims(json!(too_many)), SECRET)).contains("more than 32"));
        let mut crowded = topics.clone();
        crowded.push(json!({"match": "one more"}));
        let token = mint(
            &claims(json!([detail(&["publish"], json!(crowded))])),
            SECRET,
        );
        assert!(refusal(&auth, &token).contains("more than 64 topics"));
        let others: Vec<Value> = (0..300).map(|_| json!({"type": "other"})).collect();
        assert!(refusal(&auth, &mint(&claims(json!(others)), SECRET)).contains("entries"));
    }

    #[test]
    fn the_payload_is_that_of_the_first_subscribe_grant_matching_the_subscription() {
        let auth = auth(&config());
        let token = mint(
            &claims(json!([
                {"type": AUTHORIZATION_DETAIL_TYPE, "actions": ["subscribe"],
                 "topics": [{"match": "https://example.com/foo"}], "payload": {"custom1": 1}},
                {"type": AUTHORIZATION_DETAIL_TYPE, "actions": ["subscribe"],
                 "topics": [{"match": "https://example.com/bar/:id", "match_type": "urlpattern"}],
                 "payload": {"custom2": 2}},
                {"type": AUTHORIZATION_DETAIL_TYPE, "actions": ["publish"],
                 "topics": [{"match": "*"}], "payload": {"ignored": true}},
                {"type": AUTHORIZATION_DETAIL_TYPE, "actions": ["subscribe"],
                 "topics": [{"match": "*"}], "payload": {"custom3": 3}},
            ])),
            SECRET,
        );
        let grants = auth
            .verify(&token, HUB, HUB)
            .unwrap_or_else(|e| panic!("{e}"));
        let payload = |text: &str| grants.payload_for(text).map(|p| p.get().to_owned());
        assert_eq!(
            payload("https://example.com/foo").as_deref(),
            Some(r#"{"custom1":1}"#)
        );
        // The subscription's own matcher string, matched as if it were a topic.
        assert_eq!(
            payload("https://example.com/bar/:id").as_deref(),
            Some(r#"{"custom2":2}"#)
        );
        assert_eq!(
            payload("https://example.com/bar/7").as_deref(),
            Some(r#"{"custom2":2}"#)
        );
        assert_eq!(
            payload("anything else").as_deref(),
            Some(r#"{"custom3":3}"#)
        );
        // A matching grant without a payload stops the search.
        let token = mint(
            &claims(json!([
                detail(&["subscribe"], json!([{"match": "https://example.com/foo"}])),
                {"type": AUTHORIZATION_DETAIL_TYPE, "actions": ["subscribe"],
                 "topics": [{"match": "*"}], "payload": {"default": true}},
            ])),
            SECRET,
        );
        let grants = auth
            .verify(&token, HUB, HUB)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(grants.payload_for("https://example.com/foo").is_none());
        assert!(grants.payload_for("https://example.com/other").is_some());
    }

    fn compat_token(claims: &Value) -> String {
        mint_with(
            &JwtHeader::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(COMPAT_SECRET.as_bytes()),
        )
    }

    #[test]
    fn compat_tokens_are_read_from_the_mercure_claim() {
        let auth = auth(&compat_config());
        assert!(auth.is_compat() && auth.has_keys());
        // The 0.x documentation's token: no exp, no aud, no iss, no typ.
        let token = compat_token(&json!({"mercure": {
            "publish": ["*"],
            "subscribe": ["https://example.com/books/{id}", "https://example.com/exact"],
            "payload": {"user": "https://example.com/users/1"},
        }}));
        let grants = auth
            .verify(&token, HUB, HUB)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(grants.expires_at.is_none());
        assert!(grants.may_publish("https://anything.example.com/"));
        assert!(grants.may_subscribe("https://example.com/books/1"));
        assert!(!grants.may_subscribe("https://example.com/books/1/x"));
        assert!(grants.may_subscribe("https://example.com/exact"));
        assert!(!grants.may_subscribe("https://example.com/exact/more"));
        assert_eq!(
            grants.subscribe.first().map(|g| g.matcher.kind()),
            Some(MatchType::Template)
        );
        assert_eq!(
            grants
                .payload_for("https://other.example.com/")
                .map(RawValue::get),
            Some(r#"{"user":"https://example.com/users/1"}"#)
        );
        // aud and iss are not checked; exp is when present.
        let other_hub = compat_token(&json!({"aud": "https://elsewhere/", "iss": "anyone",
                                             "exp": now() + 60, "mercure": {}}));
        let grants = auth
            .verify(&other_hub, HUB, HUB)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(grants.expires_at.is_some() && grants.publish.is_empty());
        let expired = compat_token(&json!({"exp": now() - 100}));
        assert_eq!(refusal(&auth, &expired), "the token expired");
        // Only the compatibility key verifies them.
        let wrong_key = mint_with(
            &JwtHeader::new(Algorithm::HS256),
            &json!({"mercure": {"publish": ["*"]}}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        );
        assert_eq!(refusal(&auth, &wrong_key), "signature invalid");
        for bad in [
            json!({"mercure": ["*"]}),
            json!({"mercure": {"publish": "*"}}),
            json!({"mercure": {"subscribe": [1]}}),
            json!({"mercure": {"subscribe": ["https://example.com/{id"]}}),
        ] {
            assert!(auth.verify(&compat_token(&bad), HUB, HUB).is_err(), "{bad}");
        }
        // 1.0 tokens keep the 1.0 rules in compatibility mode.
        let access = mint(
            &claims(json!([detail(&["publish"], json!([{"match": "*"}]))])),
            SECRET,
        );
        assert!(auth.verify(&access, HUB, HUB).is_ok());
        let mut wrong_aud = claims(json!([]));
        wrong_aud["aud"] = json!("https://elsewhere/");
        assert!(auth.verify(&mint(&wrong_aud, SECRET), HUB, HUB).is_err());
    }

    #[test]
    fn without_compat_mode_a_0x_token_is_refused() {
        let auth = auth(&config());
        assert!(!auth.is_compat());
        let token = mint_with(
            &JwtHeader::new(Algorithm::HS256),
            &json!({"mercure": {"publish": ["*"]}}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        );
        assert_eq!(refusal(&auth, &token), "the token's typ is not at+jwt");
    }

    #[test]
    fn pem_and_jwks_issuers_verify_es256_tokens() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap_or_else(|e| panic!("{e}"));
        let pem = dir.path().join("issuer.pem");
        std::fs::write(&pem, pair.public_key_pem()).unwrap_or_else(|e| panic!("{e}"));
        let point = pair.public_key_raw();
        assert_eq!(point.len(), 65);
        let jwks = dir.path().join("issuer.json");
        let set = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])}]});
        std::fs::write(&jwks, set.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let config = MercureConfig {
            issuers: vec![
                Issuer {
                    iss: "pem".into(),
                    key: KeySpec::Pem(pem),
                },
                Issuer {
                    iss: "jwks".into(),
                    key: KeySpec::Jwks(jwks),
                },
            ],
            ..MercureConfig::default()
        };
        let auth = auth(&config);
        let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let es256 = |iss: &str, kid: Option<&str>| {
            let header = JwtHeader {
                typ: Some("at+jwt".into()),
                kid: kid.map(str::to_owned),
                ..JwtHeader::new(Algorithm::ES256)
            };
            let mut body = claims(json!([detail(&["subscribe"], json!([{"match": "*"}]))]));
            body["iss"] = json!(iss);
            mint_with(&header, &body, &key)
        };
        assert!(auth.verify(&es256("pem", None), HUB, HUB).is_ok());
        assert!(auth.verify(&es256("jwks", Some("k1")), HUB, HUB).is_ok());
        assert!(auth.verify(&es256("jwks", None), HUB, HUB).is_ok());
        assert_eq!(refusal(&auth, &es256("jwks", Some("k2"))), "unknown key id");
        // Another P-256 key's signature.
        let stranger = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap_or_else(|e| panic!("{e}"));
        let forged = mint_with(
            &JwtHeader {
                typ: Some("at+jwt".into()),
                ..JwtHeader::new(Algorithm::ES256)
            },
            &{
                let mut body = claims(json!([]));
                body["iss"] = json!("pem");
                body
            },
            &EncodingKey::from_ec_pem(stranger.serialize_pem().as_bytes())
                .unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(refusal(&auth, &forged), "signature invalid");
        // An HS256 token "signed" with the public key as a secret (key confusion).
        let confused = mint_with(
            &at_jwt(),
            &{
                let mut body = claims(json!([]));
                body["iss"] = json!("pem");
                body
            },
            &EncodingKey::from_secret(pair.public_key_pem().as_bytes()),
        );
        assert_eq!(
            refusal(&auth, &confused),
            "the token's algorithm does not fit the issuer's key"
        );
    }

    #[test]
    fn pem_and_jwks_rsa_issuers_verify_rs256_tokens() {
        let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys");
        let config = MercureConfig {
            issuers: vec![Issuer {
                iss: ISS.into(),
                key: KeySpec::Pem(keys.join("rsa-public.pem")),
            }],
            ..MercureConfig::default()
        };
        let auth = auth(&config);
        let private = std::fs::read(keys.join("rsa-private.pem")).unwrap_or_else(|e| panic!("{e}"));
        let key = EncodingKey::from_rsa_pem(&private).unwrap_or_else(|e| panic!("{e}"));
        let rs256 = JwtHeader {
            typ: Some("at+jwt".into()),
            ..JwtHeader::new(Algorithm::RS256)
        };
        let body = claims(json!([detail(&["publish"], json!([{"match": "*"}]))]));
        let grants = auth
            .verify(&mint_with(&rs256, &body, &key), HUB, HUB)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(grants.may_publish("https://example.com/anything"));
        // The same key from a JWKS file, picked by kid.
        let jwks = MercureConfig {
            issuers: vec![Issuer {
                iss: ISS.into(),
                key: KeySpec::Jwks(keys.join("rsa.jwks.json")),
            }],
            ..MercureConfig::default()
        };
        let named = JwtHeader {
            kid: Some("rsa-1".into()),
            ..rs256.clone()
        };
        assert!(
            MercureAuth::new(&jwks)
                .map(|a| a.verify(&mint_with(&named, &body, &key), HUB, HUB).is_ok())
                .unwrap_or(false)
        );
        // The same claims as HS256 with the public key as the secret.
        let public = std::fs::read(keys.join("rsa-public.pem")).unwrap_or_else(|e| panic!("{e}"));
        let confused = mint_with(&at_jwt(), &body, &EncodingKey::from_secret(&public));
        assert_eq!(
            refusal(&auth, &confused),
            "the token's algorithm does not fit the issuer's key"
        );
    }

    #[test]
    fn secret_files_lose_one_line_break_and_bad_key_files_are_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("secret");
        std::fs::write(&file, format!("{SECRET}\n")).unwrap_or_else(|e| panic!("{e}"));
        let config = MercureConfig {
            issuers: vec![Issuer {
                iss: ISS.into(),
                key: KeySpec::Hs256File(file.clone()),
            }],
            ..MercureConfig::default()
        };
        let auth = auth(&config);
        assert!(
            auth.verify(&mint(&claims(json!([])), SECRET), HUB, HUB)
                .is_ok()
        );
        std::fs::write(&file, "\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            MercureAuth::new(&config),
            Err(AuthConfigError::Key { .. })
        ));
        let missing = MercureConfig {
            compat: Some(KeySpec::Pem(dir.path().join("nope.pem"))),
            ..MercureConfig::default()
        };
        assert!(matches!(
            MercureAuth::new(&missing),
            Err(AuthConfigError::Read { .. })
        ));
        let text = dir.path().join("not.pem");
        std::fs::write(&text, "hello").unwrap_or_else(|e| panic!("{e}"));
        let not_pem = MercureConfig {
            issuers: vec![Issuer {
                iss: ISS.into(),
                key: KeySpec::Pem(text),
            }],
            ..MercureConfig::default()
        };
        let error = MercureAuth::new(&not_pem).err().map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("not a PEM file")));
        let debug = format!("{auth:?}");
        assert!(debug.contains(ISS) && !debug.contains(SECRET));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                *name,
                HeaderValue::from_str(value).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        map
    }

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn found(
        headers: &HeaderMap,
        query: &[(String, String)],
        config: &MercureConfig,
    ) -> Option<(String, TokenSource)> {
        find_token(headers, query, config).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_header_wins_over_the_cookie() {
        let config = config();
        let both = headers(&[
            ("authorization", "Bearer h.e.ader"),
            ("cookie", "__Secure-mercure_access_token=c.o.okie"),
        ]);
        assert_eq!(
            found(&both, &[], &config),
            Some(("h.e.ader".into(), TokenSource::Header))
        );
        let lower = headers(&[("authorization", "bearer   a.b.c  ")]);
        assert_eq!(
            found(&lower, &[], &config),
            Some(("a.b.c".into(), TokenSource::Header))
        );
        assert_eq!(found(&HeaderMap::new(), &[], &config), None);
    }

    #[test]
    fn cookies_are_found_among_several_and_in_several_headers() {
        let config = config();
        let one_header = headers(&[(
            "cookie",
            "theme=dark; __Secure-mercure_access_token=a.b.c ;lang=fr",
        )]);
        assert_eq!(
            found(&one_header, &[], &config),
            Some(("a.b.c".into(), TokenSource::Cookie))
        );
        let several = headers(&[
            ("cookie", "theme=dark"),
            (
                "cookie",
                "x__Secure-mercure_access_token=no; __Secure-mercure_access_token=\"q.u.oted\"",
            ),
        ]);
        assert_eq!(
            found(&several, &[], &config),
            Some(("q.u.oted".into(), TokenSource::Cookie))
        );
        let empty = headers(&[("cookie", "__Secure-mercure_access_token=; other=1")]);
        assert_eq!(found(&empty, &[], &config), None);
        let renamed = MercureConfig {
            cookie: "hub_token".into(),
            ..config.clone()
        };
        let both = headers(&[(
            "cookie",
            "__Secure-mercure_access_token=a.b.c; hub_token=d.e.f",
        )]);
        assert_eq!(
            found(&both, &[], &renamed),
            Some(("d.e.f".into(), TokenSource::Cookie))
        );
    }

    #[test]
    fn tokens_in_urls_and_malformed_headers_are_invalid_requests() {
        let config = config();
        let bearer = headers(&[("authorization", "Bearer a.b.c")]);
        for name in ["authorization", "access_token"] {
            assert_eq!(
                find_token(&bearer, &query(&[(name, "a.b.c")]), &config),
                Err(MercureError::InvalidRequest(
                    "tokens are not accepted in URLs".into()
                ))
            );
        }
        for bad in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearera.b.c",
            "Bearer a,b",
        ] {
            assert!(
                matches!(
                    find_token(&headers(&[("authorization", bad)]), &[], &config),
                    Err(MercureError::InvalidRequest(_))
                ),
                "{bad}"
            );
        }
        let twice = headers(&[
            ("authorization", "Bearer a.b.c"),
            ("authorization", "Bearer d.e.f"),
        ]);
        assert!(matches!(
            find_token(&twice, &[], &config),
            Err(MercureError::InvalidRequest(_))
        ));
    }

    #[test]
    fn compat_sources_count_only_in_compat_mode() {
        let modern = config();
        let compat = compat_config();
        let old_cookie = headers(&[("cookie", "mercureAuthorization=o.l.d")]);
        assert_eq!(found(&old_cookie, &[], &modern), None);
        assert_eq!(
            found(&old_cookie, &[], &compat),
            Some(("o.l.d".into(), TokenSource::CompatCookie))
        );
        let in_query = query(&[("topic", "x"), ("authorization", "q.u.ery")]);
        assert!(find_token(&HeaderMap::new(), &in_query, &modern).is_err());
        assert_eq!(
            found(&old_cookie, &in_query, &compat),
            Some(("q.u.ery".into(), TokenSource::CompatQuery))
        );
        // The configured cookie comes before the 0.x one; the header before all.
        let both = headers(&[(
            "cookie",
            "mercureAuthorization=o.l.d; __Secure-mercure_access_token=n.e.w",
        )]);
        assert_eq!(
            found(&both, &[], &compat),
            Some(("n.e.w".into(), TokenSource::Cookie))
        );
        let header = headers(&[
            ("authorization", "Bearer h.e.ad"),
            ("cookie", "mercureAuthorization=o.l.d"),
        ]);
        assert_eq!(
            found(&header, &in_query, &compat),
            Some(("h.e.ad".into(), TokenSource::Header))
        );
        // access_token was never a source, in any mode.
        assert!(find_token(&HeaderMap::new(), &query(&[("access_token", "a")]), &compat).is_err());
    }

    #[test]
    fn grants_and_the_verifier_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Grants>();
        shared::<MercureAuth>();
        shared::<Matcher>();
    }
}
