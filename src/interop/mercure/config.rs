//! The settings of a Mercure hub ([`MercureConfig`]): who may issue tokens and
//! with which key ([`Issuer`], [`KeySpec`]), the hub's resource identifier,
//! anonymous subscribers, the 0.x compatibility mode, active subscriptions, and
//! the topics it keeps its updates in.

use std::path::PathBuf;
use std::time::Duration;

use crate::hub::HubConfig;
use crate::hub::journal::Journal;
use crate::topic::Topic;

/// The namespace of Mercure topics by default: the IRI `I` is the topic
/// `mercure:<I percent-encoded>` (see [`super::topic`]).
pub const DEFAULT_NAMESPACE: &str = "mercure";

/// The cookie a browser's token comes in by default (Mercure 1.0).
pub const DEFAULT_COOKIE: &str = "__Secure-mercure_access_token";

/// The cookie of 0.x clients (compatibility mode only).
pub const COMPAT_COOKIE: &str = "mercureAuthorization";

/// How often an idle stream gets a comment line by default.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// The most topic matchers one subscription request may have.
pub const MAX_MATCHERS: usize = 64;

/// The longest matcher (pattern or exact topic) accepted, in bytes.
pub const MAX_MATCHER_LEN: usize = 1024;

/// A Mercure hub's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MercureConfig {
    /// The trusted token issuers (`iss`), each bound to the key its tokens are
    /// verified with. Without any, only anonymous subscribers are served (when
    /// [`anonymous`](Self::anonymous)) and nobody may publish.
    pub issuers: Vec<Issuer>,
    /// The hub's resource identifier that tokens' `aud` must hold. `None`: derived
    /// from each request, `{scheme}://{host}/.well-known/mercure`.
    pub audience: Option<String>,
    /// Whether subscribers without a token get public updates. Off: a token is
    /// needed to subscribe at all (401 without one).
    pub anonymous: bool,
    /// The name of the cookie browsers send their token in.
    pub cookie: String,
    /// The 0.x compatibility mode (off: `None`): tokens without `typ`, `aud` or
    /// `iss` verified with this key, the `mercure` claim, `topic=` URI Template
    /// selectors, the `mercureAuthorization` cookie and the `authorization` query
    /// parameter (see `docs/security.md` for what that weakens).
    pub compat: Option<KeySpec>,
    /// Whether subscriptions are announced as private updates and listed by the
    /// subscriptions API (`/.well-known/mercure/subscriptions…`).
    pub subscriptions: bool,
    /// The namespace of Mercure topics ([`DEFAULT_NAMESPACE`]).
    pub namespace: String,
    /// How often an idle stream gets a comment line.
    pub heartbeat: Duration,
}

impl Default for MercureConfig {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            audience: None,
            anonymous: false,
            cookie: DEFAULT_COOKIE.to_owned(),
            compat: None,
            subscriptions: false,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            heartbeat: DEFAULT_HEARTBEAT,
        }
    }
}

impl MercureConfig {
    /// The topic prefix of Mercure topics: `{namespace}:`.
    pub fn prefix(&self) -> String {
        format!("{}:", self.namespace)
    }

    /// The journal: the one topic every Mercure update is kept in, in the order
    /// the hub saw them (`{namespace}.journal`). Subscribers read it and resume
    /// from it; the hub copies every message of a `{namespace}:` topic into it
    /// (see [`crate::hub::journal`]). Guarded: no `/ws`, SSE or long-poll client
    /// reads it without a token that grants it.
    pub fn journal(&self) -> Result<Topic, crate::topic::NameError> {
        Topic::new(&format!("{}.journal", self.namespace))
    }

    /// `hub` with what serving this Mercure hub on it needs: the journal
    /// ([`Journal`]: every message of a `{namespace}:` topic copied to
    /// [`journal`](Self::journal)), the journal and the subscriptions topics
    /// guarded (no `/ws`, SSE or long-poll client reads them without a token that
    /// grants them), presence in `{namespace}.subscriptions` (active
    /// subscriptions). A namespace that makes no valid topic adds no journal, and
    /// [`Mercure::new`](super::Mercure::new) then refuses the hub.
    pub fn hub_config(&self, mut hub: HubConfig) -> HubConfig {
        if let Ok(topic) = self.journal() {
            let journal = Journal {
                prefix: self.prefix(),
                topic,
            };
            if !hub.journals.contains(&journal) {
                hub.journals.push(journal);
            }
        }
        for prefix in [
            format!("{}.journal", self.namespace),
            format!("{}.subscriptions:", self.namespace),
        ] {
            if !hub.guarded.contains(&prefix) {
                hub.guarded.push(prefix);
            }
        }
        let presence = format!("{}.subscriptions", self.namespace);
        if !hub.presence.contains(&presence) {
            hub.presence.push(presence);
        }
        hub
    }

    /// The presence topic each subscriber joins with its subscriptions, so that
    /// every node can list them (`{namespace}.subscriptions:all`). Guarded.
    pub fn subscriptions_topic(&self) -> Result<Topic, crate::topic::NameError> {
        Topic::new(&format!("{}.subscriptions:all", self.namespace))
    }
}

/// A trusted token issuer and the key its tokens are verified with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    /// The `iss` its tokens carry.
    pub iss: String,
    /// The key.
    pub key: KeySpec,
}

/// Where a verification key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySpec {
    /// An HS256 shared secret (`hs256:SECRET`).
    Hs256(String),
    /// An HS256 shared secret read from a file (`hs256-file:PATH`; one trailing
    /// line break is dropped).
    Hs256File(PathBuf),
    /// A PEM public key: RSA (RS256) or P-256 (ES256) (`pem:PATH`).
    Pem(PathBuf),
    /// A JWKS file, keys picked by `kid` (`jwks:PATH`).
    Jwks(PathBuf),
}

impl std::fmt::Debug for KeySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Never print a secret.
            Self::Hs256(_) => f.write_str("Hs256(…)"),
            Self::Hs256File(path) => f.debug_tuple("Hs256File").field(path).finish(),
            Self::Pem(path) => f.debug_tuple("Pem").field(path).finish(),
            Self::Jwks(path) => f.debug_tuple("Jwks").field(path).finish(),
        }
    }
}

/// Why an issuer or a key cannot be read from its text form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// An issuer is written `ISS=KEY`.
    #[error(
        "write an issuer as ISS=KEY (KEY: hs256:SECRET, hs256-file:PATH, pem:PATH or jwks:PATH)"
    )]
    Issuer,
    /// A key is one of the four forms.
    #[error("{0:?} is not a key: write hs256:SECRET, hs256-file:PATH, pem:PATH or jwks:PATH")]
    Key(String),
}

impl KeySpec {
    /// Reads `hs256:SECRET`, `hs256-file:PATH`, `pem:PATH` or `jwks:PATH`.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let (kind, value) = text
            .split_once(':')
            .filter(|(_, value)| !value.is_empty())
            .ok_or_else(|| SpecError::Key(redact(text)))?;
        match kind {
            "hs256" => Ok(Self::Hs256(value.to_owned())),
            "hs256-file" => Ok(Self::Hs256File(PathBuf::from(value))),
            "pem" => Ok(Self::Pem(PathBuf::from(value))),
            "jwks" => Ok(Self::Jwks(PathBuf::from(value))),
            _ => Err(SpecError::Key(redact(text))),
        }
    }
}

/// The kind of a key spec without what follows it (which may be a secret).
fn redact(text: &str) -> String {
    match text.split_once(':') {
        Some((kind, _)) => format!("{kind}:…"),
        None => String::from("…"),
    }
}

impl Issuer {
    /// Reads `ISS=KEY`: the issuer is everything before the first `=` (so an
    /// issuer cannot hold one), the key as [`KeySpec::parse`] reads it.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let (iss, key) = text
            .split_once('=')
            .filter(|(iss, _)| !iss.is_empty())
            .ok_or(SpecError::Issuer)?;
        Ok(Self {
            iss: iss.to_owned(),
            key: KeySpec::parse(key)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_and_keys_read_from_text() {
        assert_eq!(
            Issuer::parse("https://auth.example.com/=hs256:s3cr=t"),
            Ok(Issuer {
                iss: "https://auth.example.com/".into(),
                key: KeySpec::Hs256("s3cr=t".into())
            })
        );
        assert_eq!(
            KeySpec::parse("jwks:/etc/keys.json"),
            Ok(KeySpec::Jwks("/etc/keys.json".into()))
        );
        assert_eq!(Issuer::parse("nokey"), Err(SpecError::Issuer));
        assert_eq!(
            KeySpec::parse("hs512:secret"),
            Err(SpecError::Key("hs512:…".into()))
        );
        assert_eq!(
            KeySpec::parse("hs256:"),
            Err(SpecError::Key("hs256:…".into()))
        );
        assert!(!format!("{:?}", KeySpec::Hs256("topsecret".into())).contains("topsecret"));
    }

    #[test]
    fn the_hub_config_gets_the_journal_its_guards_and_presence_once() {
        let config = MercureConfig::default();
        let hub = config.hub_config(config.hub_config(HubConfig::default()));
        let journal = config.journal().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            hub.journals,
            vec![Journal {
                prefix: "mercure:".into(),
                topic: journal.clone()
            }]
        );
        assert!(hub.guards(journal.as_str()));
        assert!(hub.guards("mercure.subscriptions:all"));
        assert!(!hub.guards("mercure:https://example.com/a"));
        assert_eq!(hub.presence, vec!["mercure.subscriptions".to_owned()]);
    }

    #[test]
    fn the_journal_and_the_subscriptions_topic_are_outside_the_namespace() {
        let config = MercureConfig::default();
        let journal = config.journal().unwrap_or_else(|e| panic!("{e}"));
        assert!(!journal.as_str().starts_with(&config.prefix()));
        let subs = config
            .subscriptions_topic()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!subs.as_str().starts_with(&config.prefix()));
        assert_eq!(subs.namespace(), "mercure.subscriptions");
    }
}
