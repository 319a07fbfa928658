//! Who may receive what on SSE and long-poll: the connection token, subscription
//! tokens, and what ends when they expire.

use super::error::HttpError;
use super::query::{MAX_TOPICS, Wanted, bearer};
use crate::auth::{Permission, TokenError, TokenVerifier};
use crate::hub::HubConfig;
use crate::protocol::Ended;
use crate::topic::ErrorCode;
use crate::topic::Topic;

/// Checks that an SSE or long-poll request may subscribe to every topic it names:
/// its connection token comes from `?token=` or `Authorization: Bearer`, its
/// subscription tokens from `?sub_token=` (repeatable). Without `auth` everything
/// is allowed but the hub's guarded topics (403). A topic the request resumes (it has a position for it) that it may
/// no longer receive is not refused: it is taken out of `wanted` and answered in
/// [`Access::ended`], to be ended with an `unsub` event; any other topic it may not
/// receive refuses the request (401 or 403).
pub(crate) fn authorize(
    auth: Option<&TokenVerifier>,
    hub: &HubConfig,
    headers: &http::HeaderMap,
    wanted: &mut Wanted,
) -> Result<Access, HttpError> {
    let Some(verifier) = auth else {
        // Without tokens nobody is granted a guarded topic (a Pusher app's
        // private channel): its own protocol authorizes its clients.
        if let Some(topic) = wanted.topics.iter().find(|t| hub.guards(t.as_str())) {
            return Err(HttpError::new(
                ErrorCode::Forbidden,
                format!(
                    "{topic:?} needs a token that grants it (a Pusher private, presence or user channel)"
                ),
            ));
        }
        return Ok(Access::default());
    };
    let token = wanted
        .rest
        .iter()
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.as_str())
        .or_else(|| bearer(headers));
    let identity = match token {
        Some(token) => Some(verifier.connection(token).map_err(|err| {
            tracing::debug!(error = %err, "token refused");
            HttpError::from(err.reply())
        })?),
        None => None,
    };
    // Subscription tokens, by topic: (`exp`, expired). Each costs a signature
    // check: no more of them than topics.
    let given = wanted
        .rest
        .iter()
        .filter(|(key, _)| key == "sub_token")
        .count();
    if given > MAX_TOPICS {
        return Err(HttpError::new(
            ErrorCode::BadRequest,
            format!("at most {MAX_TOPICS} subscription tokens per request, not {given}"),
        ));
    }
    let mut held: Vec<(String, u64, bool)> = Vec::new();
    for (_, token) in wanted.rest.iter().filter(|(key, _)| key == "sub_token") {
        let (grant, expired) = verifier
            .subscription_even_expired(token)
            .map_err(|err| HttpError::from(err.reply()))?;
        let Some(identity) = &identity else {
            return Err(HttpError::new(
                ErrorCode::Unauthorized,
                "a subscription token needs a connection token (token=…) too",
            ));
        };
        if *identity.user != *grant.user {
            return Err(HttpError::new(
                ErrorCode::Forbidden,
                "the subscription token is for another user",
            ));
        }
        held.push((grant.topic, grant.expires, expired));
    }
    let leeway = verifier.leeway().as_secs();
    let mut access = Access {
        expires: identity
            .as_ref()
            .map(|identity| identity.expires.saturating_add(leeway)),
        ..Access::default()
    };
    let mut kept = Vec::with_capacity(wanted.topics.len());
    for topic in std::mem::take(&mut wanted.topics) {
        let token = held
            .iter()
            .filter(|(t, _, _)| t == topic.as_str())
            .max_by_key(|(_, exp, _)| *exp);
        let decision = verifier.decide(identity.as_ref(), &topic, Permission::Sub);
        match (token, decision) {
            // The connection allows it: a subscription token adds nothing.
            (_, Ok(())) => kept.push(topic),
            (Some((_, exp, false)), Err(_)) => {
                access.grants.push(Held {
                    topic: topic.clone(),
                    expires: *exp,
                    ends_at: exp.saturating_add(leeway).saturating_mul(1000),
                });
                kept.push(topic);
            }
            (token, Err(err)) => {
                if wanted.since.get(&topic).is_none() {
                    return Err(HttpError::from(match token {
                        Some(_) => TokenError::Expired.reply(),
                        None => err,
                    }));
                }
                let why = match token {
                    Some(_) => Ended::Expired,
                    None => Ended::Withdrawn,
                };
                access.ended.push((topic, why));
            }
        }
    }
    wanted.topics = kept;
    Ok(access)
}

/// What an SSE or long-poll request may receive, and until when.
#[derive(Debug, Default)]
pub(crate) struct Access {
    /// When the whole request must end (Unix seconds: the connection token's
    /// expiry plus the allowed clock skew), if a token was given.
    pub(crate) expires: Option<u64>,
    /// Topics held by a subscription token (the connection token does not allow
    /// them by itself).
    pub(crate) grants: Vec<Held>,
    /// Topics the request resumes but may no longer receive, and why.
    pub(crate) ended: Vec<(Topic, Ended)>,
}

/// A topic held by a subscription token.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) topic: Topic,
    /// The token's `exp` (Unix seconds), as the `subs` entry says.
    pub(crate) expires: u64,
    /// When the topic ends without a fresh token (Unix milliseconds).
    pub(crate) ends_at: u64,
}

impl Access {
    /// The next moment something ends (Unix milliseconds): the connection token
    /// or a subscription token.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.grants
            .iter()
            .map(|held| held.ends_at)
            .chain(self.expires.map(|at| at.saturating_mul(1000)))
            .min()
    }

    /// Whether the connection token has ended (at Unix milliseconds `now`).
    pub(crate) fn connection_ended(&self, now: u64) -> bool {
        self.expires
            .is_some_and(|at| at.saturating_mul(1000) <= now)
    }

    /// Takes out the topics whose subscription token ended by `now` (Unix ms).
    pub(crate) fn take_expired(&mut self, now: u64) -> Vec<Topic> {
        let (gone, kept): (Vec<Held>, Vec<Held>) = std::mem::take(&mut self.grants)
            .into_iter()
            .partition(|held| held.ends_at <= now);
        self.grants = kept;
        gone.into_iter().map(|held| held.topic).collect()
    }

    /// Adds `"expires"` to the `subs` entries of topics held by a subscription
    /// token (`subs` in the order of `topics`).
    pub(crate) fn annotate(&self, topics: &[Topic], subs: &mut [String]) {
        for (topic, entry) in topics.iter().zip(subs.iter_mut()) {
            if let Some(held) = self.grants.iter().find(|held| held.topic == *topic) {
                entry.pop();
                entry.push_str(&format!(",\"expires\":{}}}", held.expires));
            }
        }
    }
}
