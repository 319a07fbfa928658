//! Presence for the HTTP transports: SSE streams and long-poll clients are members
//! of the presence topics they subscribe to, exactly as `/ws` clients are (the same
//! `{"client","user"}` member, the same join and leave events, on every node).
//!
//! - An **SSE stream** is one connection: it gets a client id like a WebSocket's,
//!   joins when the stream starts and leaves when it ends (client gone, token
//!   expired, server shutting down), through the [`Membership`]s it holds.
//! - A **long-poll client** makes many requests, each of which subscribes and
//!   unsubscribes, so membership cannot hang on a request. The client names itself
//!   with `?client=<key>` (a random key it keeps for its lifetime), and
//!   [`PollMembers`] keeps it present for as long as it keeps polling: it joins
//!   with its first poll and leaves [`SessionConfig::poll_lapse`](crate::protocol::session::SessionConfig::poll_lapse)
//!   after its last poll ended, once, with no leave and join between consecutive
//!   polls. The member id is derived from the key (and the token's user) by a hash,
//!   so every node gives the same client the same id, and knowing a member's id
//!   (which presence shows to everyone) does not let anyone poll in its name.
//!
//! Bounds: an SSE stream's memberships live and die with its connection (bounded by
//! the connection limits); a poll client's end at most `poll_lapse` after its last
//! poll, and a node keeps at most [`PollMembers::new`]'s `max` poll clients (more
//! are answered, but are not members), each with at most
//! [`MAX_TOPICS`](super::MAX_TOPICS) topics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio_util::sync::CancellationToken;

use serde_json::value::RawValue;

use super::error::HttpError;
use super::query::{Wanted, bearer};
use crate::auth::TokenVerifier;
use crate::hub::{Hub, Membership};
use crate::protocol::MAX_INFO_SIZE;
use crate::sync::lock;
use crate::topic::ErrorCode;
use crate::topic::{Data, Member, Topic};

/// The most long-poll clients one node keeps as members when the node has no
/// connection limit (`--max-connections`); with one, that limit is used instead.
pub const MAX_POLL_MEMBERS: usize = 100_000;

/// The poll members of a node that keeps poll clients `lapse` after their last
/// poll: at most `max_connections` of them (the node's connection limit) when it is
/// set, else [`MAX_POLL_MEMBERS`].
pub(crate) fn poll_members(lapse: Duration, max_connections: usize) -> PollMembers {
    let max = if max_connections > 0 {
        max_connections
    } else {
        MAX_POLL_MEMBERS
    };
    PollMembers::new(lapse, max)
}

/// The shortest and longest `?client=` key.
const KEY_LEN: std::ops::RangeInclusive<usize> = 8..=64;

/// The user of the request's connection token (`?token=` or `Authorization:
/// Bearer`), when tokens are on and the token is valid: what presence shows as the
/// member's `user`.
///
/// The token was already checked by [`authorize`](super::authorize); it is read
/// again here so that presence stays apart from the permission checks.
pub(crate) fn token_user(
    auth: Option<&TokenVerifier>,
    headers: &http::HeaderMap,
    wanted: &Wanted,
) -> Option<Arc<str>> {
    let verifier = auth?;
    let token = wanted
        .rest
        .iter()
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.as_str())
        .or_else(|| bearer(headers))?;
    verifier
        .connection(token)
        .ok()
        .map(|identity| identity.user)
}

/// What an SSE or long-poll client shows as `info` on each topic: the request's
/// `info={"<topic>": <JSON>, …}` (what `/ws` gives in each `sub`).
#[derive(Debug, Default)]
pub(crate) struct Infos(Vec<(Topic, Data)>);

impl Infos {
    /// The `info` of the request's `info=` parameter, if any: a JSON object whose
    /// keys are topics of the request, each value any JSON of at most
    /// [`MAX_INFO_SIZE`] bytes (else 413); anything else is a 400.
    pub(crate) fn of(wanted: &Wanted) -> Result<Self, HttpError> {
        let Some(text) = wanted
            .rest
            .iter()
            .find(|(key, _)| key == "info")
            .map(|(_, value)| value.as_str())
        else {
            return Ok(Self::default());
        };
        let object: std::collections::BTreeMap<String, Box<RawValue>> = serde_json::from_str(text)
            .map_err(|err| {
                HttpError::new(
                    ErrorCode::BadRequest,
                    format!("invalid info: a JSON object of topic: info is expected ({err})"),
                )
            })?;
        let mut infos = Vec::with_capacity(object.len());
        for (name, value) in object {
            let Some(topic) = wanted.topics.iter().find(|t| t.as_str() == name) else {
                return Err(HttpError::new(
                    ErrorCode::BadRequest,
                    format!(
                        "invalid info: {:?} is not a topic of this request",
                        name.chars().take(64).collect::<String>()
                    ),
                ));
            };
            let json = value.get();
            if json.len() > MAX_INFO_SIZE {
                return Err(HttpError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "info is {} bytes; at most {MAX_INFO_SIZE} allowed",
                        json.len()
                    ),
                ));
            }
            let data = Data::json(json.as_bytes().to_vec()).map_err(|err| {
                HttpError::new(ErrorCode::BadRequest, format!("invalid info: {err}"))
            })?;
            infos.push((topic.clone(), data));
        }
        Ok(Self(infos))
    }

    /// The info for `topic`.
    fn get(&self, topic: &Topic) -> Option<Data> {
        self.0
            .iter()
            .find(|(t, _)| t == topic)
            .map(|(_, info)| info.clone())
    }
}

/// Makes the client `client` (of the token's `user`) present on every topic of
/// `topics` that tracks presence, with its info there: an SSE stream holds the
/// answer for as long as it runs.
pub(crate) fn join_all(
    hub: &Hub,
    topics: &[Topic],
    client: &Arc<str>,
    user: Option<&Arc<str>>,
    infos: &Infos,
) -> Vec<Membership> {
    topics
        .iter()
        .filter_map(|topic| {
            let member = Member {
                client: Arc::clone(client),
                user: user.cloned(),
                info: infos.get(topic),
            };
            hub.join(topic, member)
        })
        .collect()
}

/// The `?client=` key of a long-poll, if it names one: 8 to 64 of `A-Z a-z 0-9 - _`.
pub(crate) fn poll_key(wanted: &Wanted) -> Result<Option<&str>, HttpError> {
    let Some(key) = wanted
        .rest
        .iter()
        .find(|(key, _)| key == "client")
        .map(|(_, value)| value.as_str())
    else {
        return Ok(None);
    };
    let valid = KEY_LEN.contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(Some(key))
    } else {
        Err(HttpError::new(
            ErrorCode::BadRequest,
            format!(
                "invalid client: {} to {} characters of A-Z, a-z, 0-9, - and _",
                KEY_LEN.start(),
                KEY_LEN.end()
            ),
        ))
    }
}

/// The member id of the long-poll client with `key` (and the token's `user`):
/// `p-` and 22 characters of a hash, the same on every node.
fn member_id(key: &str, user: Option<&str>) -> Arc<str> {
    let mut hash = sha1_smol::Sha1::new();
    hash.update(user.unwrap_or("").as_bytes());
    hash.update(b"\n");
    hash.update(key.as_bytes());
    let digest = hash.digest().bytes();
    Arc::from(format!("p-{}", URL_SAFE_NO_PAD.encode(&digest[..16])))
}

/// The long-poll clients of one node that are present on topics, each for as long
/// as it keeps polling (see the module docs). Cheap to clone: clones share it.
#[derive(Clone)]
pub(crate) struct PollMembers {
    shared: Arc<Shared>,
}

struct Shared {
    lapse: Duration,
    max: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    clients: HashMap<Arc<str>, PollClient>,
    /// A sweeper task runs (it stops when no client is left).
    sweeping: bool,
}

struct PollClient {
    /// Polls of this client being answered now.
    polls: usize,
    /// When its last poll ended.
    ended: Instant,
    /// Its presence, one per topic of its latest poll that tracks presence, with
    /// the info it joined with.
    held: Vec<(Membership, Option<Data>)>,
}

impl PollMembers {
    /// Keeps poll clients present `lapse` after their last poll, at most `max` of
    /// them at once.
    pub(crate) fn new(lapse: Duration, max: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                lapse,
                max,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// A poll of the client with `key` begins: it becomes (or stays) present on
    /// each of `topics` that tracks presence (with its info there), and leaves
    /// those of its earlier polls that this one no longer names; a topic whose info
    /// changed is left and joined again, as a `/ws` client does by subscribing
    /// anew. Hold the answer while the poll is answered.
    /// `None` when the node already keeps its most poll clients: this one is
    /// answered, but is not a member.
    pub(crate) fn begin(
        &self,
        hub: &Hub,
        shutdown: &CancellationToken,
        key: &str,
        user: Option<Arc<str>>,
        topics: &[Topic],
        infos: &Infos,
    ) -> Option<PollLease> {
        let client = member_id(key, user.as_deref());
        let mut state = lock(&self.shared.state);
        if !state.clients.contains_key(&client) && state.clients.len() >= self.shared.max {
            tracing::debug!(
                max = self.shared.max,
                "poll presence: the node keeps its most poll clients; this one is not a member"
            );
            return None;
        }
        let entry = state
            .clients
            .entry(Arc::clone(&client))
            .or_insert_with(|| PollClient {
                polls: 0,
                ended: Instant::now(),
                held: Vec::new(),
            });
        entry.polls += 1;
        // Leaves and joins happen under the lock, so that two polls of one client
        // cannot join a topic twice.
        entry.held.retain(|(held, info)| {
            topics.contains(held.topic()) && *info == infos.get(held.topic())
        });
        for topic in topics {
            if entry.held.iter().any(|(held, _)| held.topic() == topic) {
                continue;
            }
            let info = infos.get(topic);
            let member = Member {
                client: Arc::clone(&client),
                user: user.clone(),
                info: info.clone(),
            };
            entry
                .held
                .extend(hub.join(topic, member).map(|held| (held, info)));
        }
        if !state.sweeping {
            state.sweeping = true;
            tokio::spawn(sweep(Arc::downgrade(&self.shared), shutdown.clone()));
        }
        drop(state);
        Some(PollLease {
            shared: Arc::clone(&self.shared),
            client,
        })
    }

    /// How many poll clients are present now.
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.shared.state).clients.len()
    }
}

/// One poll being answered; dropping it (the answer went out, or the request was
/// dropped) starts the client's lapse unless another of its polls is under way.
pub(crate) struct PollLease {
    shared: Arc<Shared>,
    client: Arc<str>,
}

impl PollLease {
    /// The client's member id, as presence shows it.
    pub(crate) fn client(&self) -> &str {
        &self.client
    }
}

impl Drop for PollLease {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        if let Some(client) = state.clients.get_mut(&self.client) {
            client.polls = client.polls.saturating_sub(1);
            client.ended = Instant::now();
        }
    }
}

/// Removes (and so makes leave) every poll client whose lapse has passed; every
/// one at shutdown. Runs while there are clients.
async fn sweep(shared: Weak<Shared>, shutdown: CancellationToken) {
    let every = shared
        .upgrade()
        .map_or(Duration::from_secs(1), |shared| shared.lapse / 4)
        .clamp(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep(every) => false,
            () = shutdown.cancelled() => true,
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut state = lock(&shared.state);
        let gone: Vec<PollClient> = if stopping {
            state.clients.drain().map(|(_, client)| client).collect()
        } else {
            let now = Instant::now();
            let lapsed: Vec<Arc<str>> = state
                .clients
                .iter()
                .filter(|(_, c)| c.polls == 0 && now.duration_since(c.ended) >= shared.lapse)
                .map(|(id, _)| Arc::clone(id))
                .collect();
            lapsed
                .iter()
                .filter_map(|id| state.clients.remove(id))
                .collect()
        };
        let done = stopping || state.clients.is_empty();
        if done {
            state.sweeping = false;
        }
        // Leaving under the lock: a poll of the same client waits, then joins anew.
        drop(gone);
        drop(state);
        if done {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::HubConfig;

    fn hub() -> Hub {
        Hub::new(HubConfig {
            presence: vec![String::from("chat")],
            ..HubConfig::default()
        })
    }

    fn topic(name: &str) -> Topic {
        Topic::new(name).unwrap_or_else(|e| panic!("{e}"))
    }

    async fn members(hub: &Hub, name: &str) -> Vec<String> {
        hub.members(&topic(name))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|m| m.client.to_string())
            .collect()
    }

    #[test]
    fn member_ids_depend_on_key_and_user_only() {
        let a = member_id("key-0123456789", None);
        assert_eq!(a, member_id("key-0123456789", None));
        assert_ne!(a, member_id("key-0123456789", Some("alice")));
        assert_ne!(a, member_id("key-0123456780", None));
        assert!(a.starts_with("p-") && a.len() == 24, "{a}");
    }

    #[tokio::test]
    async fn a_poll_client_stays_through_its_polls_and_leaves_after_the_lapse() {
        let hub = hub();
        let polls = PollMembers::new(Duration::from_millis(200), 10);
        let shutdown = CancellationToken::new();
        let topics = [topic("chat:a"), topic("news")];
        let lease = polls.begin(
            &hub,
            &shutdown,
            "client-key-1",
            None,
            &topics,
            &Infos::default(),
        );
        let id = lease.as_ref().map(|l| l.client().to_owned());
        assert_eq!(members(&hub, "chat:a").await, Vec::from_iter(id.clone()));
        drop(lease);
        let again = polls.begin(
            &hub,
            &shutdown,
            "client-key-1",
            None,
            &topics,
            &Infos::default(),
        );
        assert_eq!(again.as_ref().map(|l| l.client().to_owned()), id);
        drop(again);
        for _ in 0..500 {
            if polls.len() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(polls.len(), 0, "the lapse passed");
        assert!(members(&hub, "chat:a").await.is_empty());
    }

    #[tokio::test]
    async fn a_poll_without_a_topic_leaves_it_at_once() {
        let hub = hub();
        let polls = PollMembers::new(Duration::from_secs(60), 10);
        let shutdown = CancellationToken::new();
        let both = [topic("chat:a"), topic("chat:b")];
        let first = polls.begin(
            &hub,
            &shutdown,
            "client-key-1",
            None,
            &both,
            &Infos::default(),
        );
        assert_eq!(members(&hub, "chat:b").await.len(), 1);
        let second = polls.begin(
            &hub,
            &shutdown,
            "client-key-1",
            None,
            &both[..1],
            &Infos::default(),
        );
        assert!(members(&hub, "chat:b").await.is_empty());
        assert_eq!(members(&hub, "chat:a").await.len(), 1);
        drop((first, second));
        shutdown.cancel();
        for _ in 0..500 {
            if polls.len() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(members(&hub, "chat:a").await.is_empty(), "shutdown leaves");
    }

    #[tokio::test]
    async fn a_flood_of_poll_clients_is_bounded() {
        let hub = hub();
        let polls = PollMembers::new(Duration::from_secs(60), 3);
        let shutdown = CancellationToken::new();
        let topics = [topic("chat:a")];
        let mut members_made = 0;
        for n in 0..10 {
            let key = format!("flood-key-{n}");
            if polls
                .begin(&hub, &shutdown, &key, None, &topics, &Infos::default())
                .is_some()
            {
                members_made += 1;
            }
        }
        assert_eq!(members_made, 3);
        assert_eq!(polls.len(), 3);
        assert_eq!(members(&hub, "chat:a").await.len(), 3);
        assert!(
            polls
                .begin(
                    &hub,
                    &shutdown,
                    "flood-key-1",
                    None,
                    &topics,
                    &Infos::default()
                )
                .is_some(),
            "a client already present keeps polling"
        );
        shutdown.cancel();
    }

    #[test]
    fn infos_are_an_object_of_the_requests_topics() {
        let infos = |query: &str| {
            let wanted =
                super::super::query::wanted(Some(query)).unwrap_or_else(|e| panic!("{e:?}"));
            Infos::of(&wanted).map_err(|e| e.reply.code)
        };
        let ok = infos("topic=chat:a&topic=b&info=%7B%22chat:a%22:%7B%22n%22:1%7D%7D");
        assert_eq!(
            ok.ok()
                .and_then(|i| i.get(&topic("chat:a")))
                .map(|d| d.as_str().to_owned()),
            Some(String::from("{\"n\":1}"))
        );
        assert!(infos("topic=a").is_ok_and(|i| i.get(&topic("a")).is_none()));
        assert_eq!(
            infos("topic=a&info=%5B1%5D").err(),
            Some(400),
            "not an object"
        );
        assert_eq!(
            infos("topic=a&info=%7B%22b%22:1%7D").err(),
            Some(400),
            "not a topic of the request"
        );
        let big = format!("topic=a&info=%7B%22a%22:%22{}%22%7D", "x".repeat(1100));
        assert_eq!(infos(&big).err(), Some(413));
    }

    #[test]
    fn keys_are_checked() {
        let wanted = |query: &str| {
            super::super::query::wanted(Some(query)).unwrap_or_else(|e| panic!("{e:?}"))
        };
        let w = wanted("topic=a&client=abcdefgh");
        assert_eq!(poll_key(&w).ok().flatten(), Some("abcdefgh"));
        assert!(poll_key(&wanted("topic=a")).is_ok_and(|k| k.is_none()));
        for bad in ["short", "has+space0", "x%2Fyyyyyyyyy"] {
            let w = wanted(&format!("topic=a&client={bad}"));
            assert_eq!(
                poll_key(&w).map_err(|e| e.reply.code).err(),
                Some(400),
                "{bad}"
            );
        }
        let long = "k".repeat(65);
        let w = wanted(&format!("topic=a&client={long}"));
        assert!(poll_key(&w).is_err());
    }
}
