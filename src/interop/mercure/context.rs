//! [`Mercure`]: what every subscriber and publisher of a Mercure hub shares — the
//! settings, the token checks, the hub and the journal topic.

use std::sync::Arc;

use http::uri::Authority;
use http::{HeaderMap, Uri, header};

use super::config::MercureConfig;
use super::error::MercureError;
use super::token::{Grants, MercureAuth, find_token};
use crate::auth::AuthConfigError;
use crate::hub::Hub;
use crate::hub::journal::Journal;
use crate::topic::{NameError, Topic};

/// Why a Mercure hub cannot be served on a hub.
#[derive(Debug, thiserror::Error)]
pub enum MercureSetupError {
    /// The namespace makes no valid journal topic.
    #[error("Mercure namespace {namespace:?}: {source}")]
    Namespace {
        /// The namespace.
        namespace: String,
        /// What is wrong with the journal topic it makes.
        source: NameError,
    },
    /// The hub does not copy the namespace's topics into the journal, so
    /// subscribers would get nothing.
    #[error(
        "Mercure: the hub must keep the journal {journal:?} of the topics starting with {prefix:?} (HubConfig::journals; MercureConfig::hub_config does it)"
    )]
    NoJournal {
        /// The journal topic.
        journal: String,
        /// The prefix of the topics it copies.
        prefix: String,
    },
    /// The hub does not guard the journal, so `/ws` clients could read private
    /// updates.
    #[error(
        "Mercure: the hub must guard the topics starting with {prefix:?} (HubConfig::guarded; MercureConfig::hub_config does it)"
    )]
    NotGuarded {
        /// The prefix not guarded.
        prefix: String,
    },
    /// A key cannot be read.
    #[error("Mercure: {0}")]
    Keys(#[from] AuthConfigError),
}

/// A Mercure hub on a [`Hub`]. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Mercure {
    config: Arc<MercureConfig>,
    auth: Arc<MercureAuth>,
    hub: Hub,
    journal: Topic,
}

impl std::fmt::Debug for Mercure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mercure")
            .field("config", &self.config)
            .field("journal", &self.journal)
            .finish_non_exhaustive()
    }
}

impl Mercure {
    /// Serves the Mercure hub `config` describes on `hub`, whose settings must
    /// come from [`MercureConfig::hub_config`] (the journal, its guard); reads
    /// the keys `config` names.
    pub fn new(config: MercureConfig, hub: Hub) -> Result<Self, MercureSetupError> {
        let journal = config
            .journal()
            .map_err(|source| MercureSetupError::Namespace {
                namespace: config.namespace.clone(),
                source,
            })?;
        let wanted = Journal {
            prefix: config.prefix(),
            topic: journal.clone(),
        };
        if !hub.config().journals.contains(&wanted) {
            return Err(MercureSetupError::NoJournal {
                journal: journal.to_string(),
                prefix: wanted.prefix,
            });
        }
        if !hub.config().guards(journal.as_str()) {
            return Err(MercureSetupError::NotGuarded {
                prefix: journal.to_string(),
            });
        }
        let auth = MercureAuth::new(&config)?;
        Ok(Self {
            config: Arc::new(config),
            auth: Arc::new(auth),
            hub,
            journal,
        })
    }

    /// The settings.
    pub fn config(&self) -> &MercureConfig {
        &self.config
    }

    /// The token checks.
    pub fn auth(&self) -> &MercureAuth {
        &self.auth
    }

    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The journal topic every subscriber reads.
    pub fn journal(&self) -> &Topic {
        &self.journal
    }

    /// The namespace of the hub's topics.
    pub fn namespace(&self) -> &str {
        &self.config.namespace
    }

    /// The resource identifier tokens' `aud` must hold: the configured one, or
    /// the hub's URL `hub_url` (see [`hub_url`]).
    pub fn audience<'a>(&'a self, hub_url: &'a str) -> &'a str {
        self.config.audience.as_deref().unwrap_or(hub_url)
    }

    /// The grants of the request's token (see [`find_token`]): `None` when it
    /// has none, the refusal when it has one that cannot be used.
    pub fn grants(
        &self,
        headers: &HeaderMap,
        query: &[(String, String)],
        hub_url: &str,
    ) -> Result<Option<Grants>, MercureError> {
        let Some((token, _source)) = find_token(headers, query, &self.config)? else {
            return Ok(None);
        };
        self.auth
            .verify(&token, self.audience(hub_url), hub_url)
            .map(Some)
    }
}

/// The hub's URL as a request reaches it: `{scheme}://{host}/.well-known/mercure`,
/// `https` when the server has TLS (`secure`), the host from the request's
/// authority (HTTP/2) or its `Host` header (400 `invalid_request` without one).
pub fn hub_url(uri: &Uri, headers: &HeaderMap, secure: bool) -> Result<String, MercureError> {
    let host = match uri.authority() {
        Some(authority) => authority.as_str().to_owned(),
        None => headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .filter(|host| !host.is_empty() && host.parse::<Authority>().is_ok())
            .ok_or_else(|| MercureError::InvalidRequest("the request has no valid Host".into()))?
            .to_owned(),
    };
    let scheme = if secure { "https" } else { "http" };
    Ok(format!("{scheme}://{host}{PATH}"))
}

/// Where the hub is served.
pub const PATH: &str = "/.well-known/mercure";
