//! One `/ws` connection of our protocol as a sans-IO state machine: a [`Session`]
//! is told what happened and answers what to do, and never waits on anything.
//!
//! # How it is driven
//!
//! A *driver* owns the socket, the hub and the clock (today the tokio task in
//! `crate::session`; later, perhaps, a readiness loop with connections in a slab).
//! It feeds the session every event and carries out, in order, every [`Action`]
//! the session answers:
//!
//! ```text
//!  driver                                   Session (this module)
//!  ──────                                   ─────────────────────
//!  connection opened ─────────────────────► Session::open(client, auth, token, now)
//!  a text message ────────────────────────► receive_text(text, config, ticks)
//!  a binary message ──────────────────────► receive_binary()
//!  the deadline passed ───────────────────► tick(now)      (ask deadline() when to)
//!                      ◄──────────────────── poll_action(): Send, SendPush, Subscribe,
//!                                            GoLive, Unsubscribe, Publish, Presence,
//!                                            Close, End
//!  hub.subscribe(…) answered ─────────────► subscribed(result)
//!  pending.go_live() answered ────────────► went_live(result)
//!  hub.publish(…) answered ───────────────► published(result)
//!  hub.members(…) answered ───────────────► members(result)
//! ```
//!
//! Requests are handled one at a time, in order: after an action that asks the
//! hub something (`Subscribe`, `GoLive`, `Publish`, `Presence`), the driver feeds
//! the answer back before it reads the next message. So a client sees the reply to
//! a `sub` before the messages it recovered, and those before any live message.
//!
//! A subscription is a two-step affair (see `crate::hub`): `Subscribe` registers
//! it and answers what was recovered; the session then asks to send the reply and
//! every recovered push, and only then `GoLive`, which switches the hub to live
//! delivery. The live subscription's handle (a `Subscription` in the tokio driver;
//! any type `H`) is handed back to the session, which keeps it per topic and hands
//! it out again in `Unsubscribe` when the subscription ends: dropping it is what
//! unsubscribes.
//!
//! A driver in a few lines (a real one sends the frames and calls the hub):
//!
//! ```
//! use std::sync::Arc;
//! use pushwire::HubConfig;
//! use pushwire::protocol::session::{Action, Rules, Session, SessionConfig};
//!
//! let hub = HubConfig::default();
//! let config = Rules::new(&SessionConfig::default(), &hub);
//! // `()` stands for the driver's subscription handle.
//! let mut session: Session<()> = Session::open(Arc::from("n-1"), None, None, 0);
//! session.receive_text(r#"{"op":"unsub","id":1,"topic":"news"}"#, &config, 0);
//! let mut sent = Vec::new();
//! while let Some(action) = session.poll_action() {
//!     match action {
//!         Action::Send(text) => sent.push(text),
//!         other => unreachable!("{other:?}"),
//!     }
//! }
//! assert!(sent[0].starts_with(r#"{"hello":"#));
//! assert_eq!(sent[1], r#"{"id":1,"error":{"code":404,"message":"not subscribed to \"news\""}}"#);
//! ```
//!
//! Another protocol spoken over a WebSocket (Pusher's, say) would be another
//! machine beside this one, with its own events and actions, driven the same way
//! and onto the same hub.
//!
//! # What does not pass through it
//!
//! Live pushes go from the hub straight into the connection's outbound queue,
//! without waking the connection: the driver gives the hub a sink that queues
//! [`PushJson::frame`](super::PushJson::frame), the frame encoded once for every
//! subscriber. What a full queue or a loss means is this protocol's:
//! [`SLOW_CONSUMER`] and [`MESSAGES_LOST`].
//!
//! # Time
//!
//! The session reads no clock for its deadlines: the driver passes `now` (Unix
//! milliseconds) with the events that need it, asks [`Session::deadline`] when the
//! next one falls, and calls [`Session::tick`] then. The deadlines are the
//! connection token's (to authenticate, then its expiry plus the allowed clock skew:
//! a close with 3000) and each subscription token's (an `unsub` push with 401). The
//! request rate is measured on the monotonic `crate::clock::ticks` the driver
//! passes with each message.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::reply::{self, Ended};
use super::request::{self, Request};
use crate::auth::{self, Identity, Permission, TokenVerifier};
use crate::broker::{BrokerError, Recovery};
use crate::hub::{HubConfig, Lagged, PublishError};
use crate::rate::{Overdrawn, TokenBucket};
use crate::topic::{Data, ErrorCode, ErrorReply, Member, Position, Push, Topic};
use crate::ws::CloseCode;

/// The reason sent with 1008 to a client that does not read fast enough.
pub const SLOW_CONSUMER: &str = "slow consumer";

/// The reason sent with 1008 to a client that keeps sending over its request rate.
pub const RATE_LIMITED: &str = "rate limit exceeded";

/// The reason sent with 1011 to a client whose messages the broker lost (Redis lost
/// its data): it should resubscribe from its last position to learn where it stands.
pub const MESSAGES_LOST: &str = "messages lost: resubscribe";

/// The rules one client of our protocol follows, whichever way it came (`/ws`,
/// SSE, long-poll). The hub's own rules (history, presence, the largest data) are
/// [`HubConfig`]'s; [`App::session_config`](crate::App::session_config) sets these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// The most subscriptions one `/ws` connection may hold (default 1000).
    pub max_subscriptions: usize,
    /// The most requests a `/ws` client may send per second, as a token bucket
    /// holding one second's worth (0: no limit; default 1000). Requests over it are
    /// answered `429`; a client that keeps sending a whole second's worth more than
    /// it may is closed with 1008.
    pub max_requests_per_second: u32,
    /// Whether WebSocket clients may publish (`pub`; default yes); the HTTP API
    /// always may.
    pub client_publish: bool,
    /// How long a long-poll client stays present on its topics after its last poll
    /// ended (default 15 s: a client polls again as soon as an answer arrives, and
    /// after a failed poll within the browser client's longest backoff, 10 s; it is
    /// also the time a crashed node's members stay with Redis). See
    /// `http/presence.rs`.
    pub poll_lapse: Duration,
    /// Whether the client may subscribe to system topics (`$sys/…`, see
    /// [`Topic::system`]): only a `/ws` connection opened with the admin
    /// credential (default no). No client may ever publish to one.
    pub system_topics: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            max_subscriptions: 1000,
            max_requests_per_second: 1000,
            client_publish: true,
            poll_lapse: Duration::from_secs(15),
            system_topics: false,
        }
    }
}

/// What the machine checks each request against: the session's rules and the
/// hub's largest data. A driver builds it with [`Rules::new`] and hands it in with
/// each message (so that an idle session does not hold it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules<'a> {
    /// The largest published value, in bytes of JSON ([`HubConfig::max_data_size`]).
    pub max_data_size: usize,
    /// See [`SessionConfig::max_subscriptions`].
    pub max_subscriptions: usize,
    /// See [`SessionConfig::max_requests_per_second`].
    pub max_requests_per_second: u32,
    /// See [`SessionConfig::client_publish`].
    pub client_publish: bool,
    /// See [`SessionConfig::system_topics`].
    pub system_topics: bool,
    /// Topic prefixes that need a token ([`HubConfig::guarded`]).
    pub guarded: &'a [String],
}

impl<'a> Rules<'a> {
    /// The rules of `session` on a hub configured with `hub`.
    pub fn new(session: &SessionConfig, hub: &'a HubConfig) -> Self {
        Self {
            max_data_size: hub.max_data_size,
            max_subscriptions: session.max_subscriptions,
            max_requests_per_second: session.max_requests_per_second,
            client_publish: session.client_publish,
            system_topics: session.system_topics,
            guarded: &hub.guarded,
        }
    }

    /// Whether `topic` needs a token ([`HubConfig::guards`]).
    fn guards(&self, topic: &str) -> bool {
        crate::hub::guards(self.guarded, topic)
    }
}

/// What the session asks its driver to do, in order.
#[derive(Debug)]
pub enum Action<H> {
    /// Send this text frame (waiting while the outbound queue is full).
    Send(String),
    /// Send this push's shared frame (a recovered message).
    SendPush(Arc<Push>),
    /// Ask the hub to subscribe (step 1); answer with [`Session::subscribed`].
    Subscribe {
        /// The topic.
        topic: Topic,
        /// Where the client says it is.
        since: Option<Position>,
        /// Who the client is, for presence.
        member: Member,
    },
    /// Switch the pending subscription to live delivery (step 2); answer with
    /// [`Session::went_live`].
    GoLive {
        /// The topic.
        topic: Topic,
    },
    /// Drop this subscription: it has ended.
    Unsubscribe(H),
    /// Ask the hub to publish; answer with [`Session::published`].
    Publish {
        /// The topic.
        topic: Topic,
        /// The value.
        data: Data,
    },
    /// Ask the hub who is present on `topic`; answer with [`Session::members`].
    Presence {
        /// The topic.
        topic: Topic,
    },
    /// Start the close handshake with `code` and `reason` (after what is queued).
    Close {
        /// The close code.
        code: CloseCode,
        /// The reason, at most 123 bytes.
        reason: String,
    },
    /// The session is over: drop it and everything it holds.
    End,
}

/// Why the hub did not answer who is present.
#[derive(Debug)]
pub enum PresenceRefused {
    /// The topic's namespace does not track presence.
    NotEnabled,
    /// The broker could not answer.
    Broker(BrokerError),
}

/// The hub request the session waits for the answer to.
#[derive(Debug)]
enum Waiting {
    Subscribe {
        id: String,
        topic: Topic,
        grant: Option<Grant>,
    },
    GoLive {
        topic: Topic,
    },
    Publish {
        id: String,
        topic: Topic,
    },
    Presence {
        id: String,
        topic: Topic,
    },
}

/// One `/ws` connection of our protocol; `H` is the driver's handle of a live
/// subscription (dropping it unsubscribes).
pub struct Session<H> {
    client: Arc<str>,
    /// A `BTreeMap`: half the size of a `HashMap` in every idle session, and no
    /// allocation until the first subscription.
    subscriptions: BTreeMap<Topic, H>,
    bucket: TokenBucket,
    /// `Some` when tokens are required; boxed, so a session without them stays small.
    auth: Option<Box<AuthState>>,
    waiting: Option<Box<Waiting>>,
    /// What to do next; `None` when nothing (boxed and dropped when drained, so an
    /// idle session holds one pointer for it).
    #[allow(clippy::box_collection)] // deliberate: 8 bytes instead of 32 when idle
    actions: Option<Box<VecDeque<Action<H>>>>,
}

impl<H> std::fmt::Debug for Session<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("client", &self.client)
            .field("subscriptions", &self.subscriptions.len())
            .finish_non_exhaustive()
    }
}

/// What a session knows about its client's tokens.
struct AuthState {
    verifier: Arc<TokenVerifier>,
    /// The connection token's identity, once `auth` succeeded.
    identity: Option<Identity>,
    /// Topics subscribed with a subscription token (which also grants presence),
    /// each with the moment it ends without a fresh one (Unix milliseconds: the
    /// token's `exp` plus the allowed clock skew).
    granted: Vec<(Topic, u64)>,
    /// When the connection is closed with 3000 (Unix milliseconds; 0: never): the
    /// time to authenticate, then the token's expiry plus the allowed clock skew.
    deadline: u64,
    /// Whether `deadline` is a token's expiry (rather than the time to
    /// authenticate).
    authenticated: bool,
}

/// What a verified subscription token grants: its `exp` (Unix seconds, as the
/// reply says) and the moment the subscription ends without a fresh one (Unix
/// milliseconds, the leeway included).
#[derive(Debug, Clone, Copy)]
struct Grant {
    expires: u64,
    ends_at: u64,
}

impl<H> Session<H> {
    /// A session for a connection just opened, with `client` its id. With
    /// `verifier` it requires a token; `token` (from `?token=`) authenticates the
    /// connection from the start, and a refused one closes it with 3000 and the
    /// reason. The first action sends the hello.
    pub fn open(
        client: Arc<str>,
        verifier: Option<Arc<TokenVerifier>>,
        token: Option<&str>,
        now: u64,
    ) -> Self {
        let hello = reply::hello(&client);
        let auth = verifier.map(|verifier| {
            let timeout = u64::try_from(verifier.auth_timeout().as_millis()).unwrap_or(u64::MAX);
            Box::new(AuthState {
                verifier,
                identity: None,
                granted: Vec::new(),
                deadline: now.saturating_add(timeout),
                authenticated: false,
            })
        });
        let mut session = Self {
            client,
            subscriptions: BTreeMap::new(),
            bucket: TokenBucket::full(),
            auth,
            waiting: None,
            actions: None,
        };
        session.act(Action::Send(hello));
        if let (Some(auth), Some(token)) = (&mut session.auth, token)
            && let Err(err) = auth.authenticate(token)
        {
            session.act(Action::Close {
                code: CloseCode(auth::CLOSE_UNAUTHORIZED),
                reason: truncate_reason(&err.message),
            });
        }
        session
    }

    /// The client id (from the hello).
    pub fn client(&self) -> &Arc<str> {
        &self.client
    }

    /// The next thing to do, in order; `None` when there is nothing to do until
    /// the next event.
    pub fn poll_action(&mut self) -> Option<Action<H>> {
        let queue = self.actions.as_mut()?;
        let action = queue.pop_front();
        if queue.is_empty() {
            self.actions = None;
        }
        action
    }

    /// Whether the session waits for the answer to a hub request (the driver then
    /// reads no further message).
    pub fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// How many subscriptions are live.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    /// When [`tick`](Self::tick) must be called next (Unix milliseconds), if ever.
    pub fn deadline(&self) -> Option<u64> {
        let auth = self.auth.as_ref()?;
        let sub = auth.granted.iter().map(|(_, at)| *at).min();
        [Some(auth.deadline).filter(|&at| at != 0), sub]
            .into_iter()
            .flatten()
            .min()
    }

    /// The time is `now`: closes a connection whose token expired (or that did not
    /// authenticate in time), and ends the subscriptions whose subscription token
    /// expired without a fresh one.
    pub fn tick(&mut self, now: u64) {
        let Some(auth) = &mut self.auth else {
            return;
        };
        if auth.deadline != 0 && now >= auth.deadline {
            let reason = if auth.authenticated {
                auth::TOKEN_EXPIRED
            } else {
                auth::AUTH_TIMED_OUT
            };
            auth.deadline = 0;
            auth.granted.clear();
            self.act(Action::Close {
                code: CloseCode(auth::CLOSE_UNAUTHORIZED),
                reason: reason.to_owned(),
            });
            return;
        }
        if auth.granted.iter().any(|(_, ends_at)| *ends_at <= now) {
            self.expire_grants(now);
        }
    }

    /// A binary message: requests are text.
    pub fn receive_binary(&mut self) {
        let err = ErrorCode::BadRequest.reply("invalid request: send requests as text frames");
        self.send(reply::error("null", &err));
    }

    /// A text message: one request, under the rules of `config` (passed with each
    /// message rather than kept: every idle connection would pay for a copy), at
    /// `ticks` (a `crate::clock::ticks` reading, for the request rate).
    pub fn receive_text(&mut self, text: &str, config: &Rules<'_>, ticks: u32) {
        let (id, mut request) = request::parse(text, config.max_data_size);
        let rate = config.max_requests_per_second;
        if rate > 0
            && let Err(overdrawn) = self.bucket.take_on_credit(rate, ticks)
        {
            if overdrawn == Overdrawn::Exhausted {
                self.act(Action::Close {
                    code: CloseCode::POLICY,
                    reason: RATE_LIMITED.to_owned(),
                });
                self.act(Action::End);
                return;
            }
            let err =
                ErrorCode::TooMany.reply(format!("rate limit: at most {rate} requests per second"));
            self.send(reply::error(&id, &err));
            return;
        }
        let mut grant = None;
        let mut system = false;
        if let Ok(checked) = &request
            && let Some(topic) = checked.topic().filter(|topic| topic.is_system())
        {
            // System topics are the server's: the admin credential, not a token,
            // decides (`sub` and `unsub` only; nobody publishes or asks presence).
            system = true;
            let allowed = config.system_topics
                && matches!(checked, Request::Sub { .. } | Request::Unsub { .. });
            if !allowed {
                request = Err(ErrorCode::Forbidden.reply(format!(
                    "{topic:?} is a system topic: only the admin page may subscribe to it, \
                     and nobody may publish to it"
                )));
            } else if let Some(auth) = &mut self.auth
                && auth.identity.is_none()
            {
                // The admin connection need not authenticate with a token.
                auth.deadline = 0;
                auth.authenticated = false;
            }
        }
        if let (None, Ok(checked)) = (&self.auth, &request)
            && let Some(topic) = checked.topic().filter(|t| config.guards(t.as_str()))
        {
            // Without tokens nobody is granted a guarded topic (a Pusher app's
            // private channel): its own protocol authorizes its clients.
            request = Err(ErrorCode::Forbidden.reply(format!(
                "{topic:?} needs a token that grants it (a Pusher private, presence or user channel)"
            )));
        }
        if let (false, Some(auth), Ok(checked)) = (system, &mut self.auth, &request) {
            match auth.authorize(checked) {
                Ok(granted) => grant = granted,
                Err(err) => request = Err(err),
            }
        }
        let id = id.into_owned();
        let result = match request {
            Ok(Request::Sub {
                topic, since, info, ..
            }) => return self.subscribe(id, topic, since, info, grant, config),
            Ok(Request::Auth { token }) => match &mut self.auth {
                Some(auth) => match auth.authenticate(&token) {
                    Ok(ok) => {
                        // The reply first, then the end of every subscription the
                        // new token no longer allows.
                        self.send(reply::ok(&id, &ok));
                        return self.withdraw();
                    }
                    Err(err) => Err(err),
                },
                None => {
                    Err(ErrorCode::BadRequest.reply("authentication is not enabled on this server"))
                }
            },
            Ok(Request::Unsub { topic }) => match self.subscriptions.remove(&topic) {
                Some(subscription) => {
                    self.act(Action::Unsubscribe(subscription));
                    if let Some(auth) = &mut self.auth {
                        auth.forget(&topic);
                    }
                    Ok(reply::topic(&topic))
                }
                None => Err(ErrorCode::NotSubscribed.reply(format!("not subscribed to {topic:?}"))),
            },
            Ok(Request::Pub { topic, data }) => {
                if config.client_publish {
                    self.wait(Waiting::Publish {
                        id,
                        topic: topic.clone(),
                    });
                    self.act(Action::Publish { topic, data });
                    return;
                }
                Err(ErrorCode::Forbidden.reply("publishing from clients is disabled"))
            }
            Ok(Request::Presence { topic }) => {
                self.wait(Waiting::Presence {
                    id,
                    topic: topic.clone(),
                });
                self.act(Action::Presence { topic });
                return;
            }
            Err(err) => Err(err),
        };
        self.answer(&id, result);
    }

    /// The hub's answer to [`Action::Subscribe`]: the recovery, or why not.
    pub fn subscribed(&mut self, result: Result<Recovery, BrokerError>) {
        let Some(Waiting::Subscribe { id, topic, grant }) = self.take_waiting() else {
            return;
        };
        let recovery = match result {
            Ok(recovery) => recovery,
            Err(err) => {
                let err = ErrorCode::Unavailable.reply(err.to_string());
                return self.send(reply::error(&id, &err));
            }
        };
        let mut ok = reply::position(&topic, &recovery.position, recovery.recovered);
        if let (Some(grant), Some(auth)) = (grant, &mut self.auth) {
            auth.grant(&topic, grant);
            ok = reply::with_expires(ok, grant.expires);
        }
        self.send(reply::ok(&id, &ok));
        self.actions
            .get_or_insert_default()
            .extend(recovery.messages.into_iter().map(Action::SendPush));
        self.wait(Waiting::GoLive {
            topic: topic.clone(),
        });
        self.act(Action::GoLive { topic });
    }

    /// The hub's answer to [`Action::GoLive`]: the live subscription's handle, or
    /// [`Lagged`] when the client fell behind meanwhile (the hub has closed it as
    /// a slow consumer; the session ends).
    pub fn went_live(&mut self, result: Result<H, Lagged>) {
        let Some(Waiting::GoLive { topic }) = self.take_waiting() else {
            return;
        };
        match result {
            Ok(subscription) => {
                self.subscriptions.insert(topic, subscription);
            }
            Err(Lagged) => self.act(Action::End),
        }
    }

    /// The hub's answer to [`Action::Publish`].
    pub fn published(&mut self, result: Result<Position, PublishError>) {
        let Some(Waiting::Publish { id, topic }) = self.take_waiting() else {
            return;
        };
        let result = match result {
            Ok(position) => Ok(reply::position(&topic, &position, None)),
            Err(err @ PublishError::TooLarge { .. }) => {
                Err(ErrorCode::TooLarge.reply(err.to_string()))
            }
            Err(PublishError::Broker(err)) => Err(ErrorCode::Unavailable.reply(err.to_string())),
        };
        self.answer(&id, result);
    }

    /// The hub's answer to [`Action::Presence`].
    pub fn members(&mut self, result: Result<Vec<Member>, PresenceRefused>) {
        let Some(Waiting::Presence { id, topic }) = self.take_waiting() else {
            return;
        };
        let result = match result {
            Ok(members) => Ok(reply::members(&topic, &members)),
            Err(PresenceRefused::NotEnabled) => Err(ErrorCode::Forbidden.reply(format!(
                "presence is not enabled for namespace {:?}",
                topic.namespace()
            ))),
            Err(PresenceRefused::Broker(err)) => Err(ErrorCode::Unavailable.reply(err.to_string())),
        };
        self.answer(&id, result);
    }

    fn act(&mut self, action: Action<H>) {
        self.actions.get_or_insert_default().push_back(action);
    }

    fn send(&mut self, text: String) {
        self.act(Action::Send(text));
    }

    fn answer(&mut self, id: &str, result: Result<String, ErrorReply>) {
        let text = match result {
            Ok(ok) => reply::ok(id, &ok),
            Err(err) => reply::error(id, &err),
        };
        self.send(text);
    }

    fn wait(&mut self, waiting: Waiting) {
        self.waiting = Some(Box::new(waiting));
    }

    fn take_waiting(&mut self) -> Option<Waiting> {
        self.waiting.take().map(|waiting| *waiting)
    }

    fn subscribe(
        &mut self,
        id: String,
        topic: Topic,
        since: Option<Position>,
        info: Option<Data>,
        grant: Option<Grant>,
        config: &Rules<'_>,
    ) {
        if let (Some(grant), Some(auth)) = (grant, &mut self.auth)
            && self.subscriptions.contains_key(&topic)
        {
            // A fresh subscription token for a subscription that goes on: it keeps
            // its position; nothing is sent again.
            auth.grant(&topic, grant);
            return self.send(reply::ok(&id, &reply::refreshed(&topic, grant.expires)));
        }
        let refusal = if self.subscriptions.contains_key(&topic) {
            Some(ErrorCode::AlreadySubscribed.reply(format!("already subscribed to {topic:?}")))
        } else if self.subscriptions.len() >= config.max_subscriptions {
            Some(ErrorCode::TooMany.reply(format!(
                "at most {} subscriptions per connection",
                config.max_subscriptions
            )))
        } else {
            None
        };
        if let Some(err) = refusal {
            return self.send(reply::error(&id, &err));
        }
        let member = Member {
            client: Arc::clone(&self.client),
            user: self.auth.as_ref().and_then(|auth| auth.user().cloned()),
            info,
        };
        self.wait(Waiting::Subscribe {
            id,
            topic: topic.clone(),
            grant,
        });
        self.act(Action::Subscribe {
            topic,
            since,
            member,
        });
    }

    /// Ends the subscriptions a refreshed connection token no longer allows, each
    /// with an `unsub` push (403).
    fn withdraw(&mut self) {
        let Some(auth) = &self.auth else {
            return;
        };
        let gone: Vec<Topic> = self
            .subscriptions
            .keys()
            .filter(|topic| !auth.still_allows(topic))
            .cloned()
            .collect();
        self.end(gone, Ended::Withdrawn);
    }

    /// Ends the subscriptions whose subscription token expired without a fresh
    /// one, each with an `unsub` push (401), unless the connection token allows the
    /// topic by itself.
    fn expire_grants(&mut self, now: u64) {
        let Some(auth) = &mut self.auth else {
            return;
        };
        let (ended, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut auth.granted)
            .into_iter()
            .partition(|(_, ends_at)| *ends_at <= now);
        auth.granted = kept;
        let gone: Vec<Topic> = ended
            .into_iter()
            .map(|(topic, _)| topic)
            .filter(|topic| !auth.still_allows(topic))
            .collect();
        self.end(gone, Ended::Expired);
    }

    /// Drops the subscriptions to `topics` and tells the client why.
    fn end(&mut self, topics: Vec<Topic>, why: Ended) {
        for topic in topics {
            let Some(subscription) = self.subscriptions.remove(&topic) else {
                continue;
            };
            self.act(Action::Unsubscribe(subscription));
            if let Some(auth) = &mut self.auth {
                auth.forget(&topic);
            }
            tracing::debug!("{}: ended {topic:?}: {}", self.client, why.reason());
            self.send(reply::unsub(&topic, why));
        }
    }
}

impl AuthState {
    fn user(&self) -> Option<&Arc<str>> {
        self.identity.as_ref().map(|identity| &identity.user)
    }

    /// Whether `request` may go ahead (`auth` itself always may). A `sub` with a
    /// valid subscription token answers the grant it makes.
    fn authorize(&mut self, request: &Request) -> Result<Option<Grant>, ErrorReply> {
        let decision = match request {
            Request::Auth { .. } | Request::Unsub { .. } => return Ok(None),
            Request::Sub {
                topic,
                token: Some(token),
                ..
            } => {
                let grant = self
                    .verifier
                    .subscription(token)
                    .map_err(|err| err.reply())?;
                let Some(user) = self.user() else {
                    return Err(not_authenticated());
                };
                if **user != *grant.user {
                    return Err(
                        ErrorCode::Forbidden.reply("the subscription token is for another user")
                    );
                }
                if grant.topic != topic.as_str() {
                    return Err(ErrorCode::Forbidden.reply(format!(
                        "the subscription token is for topic {:?}, not {:?}",
                        grant.topic,
                        topic.as_str()
                    )));
                }
                return Ok(Some(Grant {
                    expires: grant.expires,
                    ends_at: grant
                        .expires
                        .saturating_add(self.verifier.leeway().as_secs())
                        .saturating_mul(1000),
                }));
            }
            Request::Sub { topic, .. } => {
                let decision = self
                    .verifier
                    .decide(self.identity.as_ref(), topic, Permission::Sub);
                if decision.is_ok() && self.identity.is_none() {
                    // A client of public topics only: it need not authenticate.
                    self.deadline = 0;
                    self.authenticated = false;
                }
                decision
            }
            Request::Pub { topic, .. } => {
                self.verifier
                    .decide(self.identity.as_ref(), topic, Permission::Pub)
            }
            Request::Presence { topic } => {
                if self.identity.is_some() && self.granted.iter().any(|(t, _)| t == topic) {
                    return Ok(None);
                }
                self.verifier
                    .decide(self.identity.as_ref(), topic, Permission::Presence)
            }
        };
        decision.map(|()| None).map_err(|err| {
            if self.identity.is_none() && err.error_code() == Some(ErrorCode::Unauthorized) {
                not_authenticated()
            } else {
                err
            }
        })
    }

    /// Records (or renews) the grant of a subscription token for `topic`.
    fn grant(&mut self, topic: &Topic, grant: Grant) {
        match self.granted.iter_mut().find(|(t, _)| t == topic) {
            Some(entry) => entry.1 = grant.ends_at,
            None => self.granted.push((topic.clone(), grant.ends_at)),
        }
    }

    /// Forgets the grant for `topic` (unsubscribed or ended).
    fn forget(&mut self, topic: &Topic) {
        self.granted.retain(|(t, _)| t != topic);
    }

    /// Whether the client may go on receiving `topic`: under a subscription token
    /// that has not ended, or by its connection token (or the topic is public).
    fn still_allows(&self, topic: &Topic) -> bool {
        self.granted.iter().any(|(t, _)| t == topic)
            || self
                .verifier
                .allows_sub(self.identity.as_ref(), topic.as_str())
    }

    /// `auth`: checks the token and (re)sets the connection's deadline to its
    /// expiry.
    fn authenticate(&mut self, token: &str) -> Result<String, ErrorReply> {
        let identity = self.verifier.connection(token).map_err(|err| {
            tracing::debug!(error = %err, "token refused");
            err.reply()
        })?;
        if let Some(user) = self.user()
            && *user != identity.user
        {
            return Err(ErrorCode::Forbidden.reply(format!(
                "the connection is authenticated as {user:?}; the token is for another user"
            )));
        }
        self.deadline = identity
            .expires
            .saturating_add(self.verifier.leeway().as_secs())
            .saturating_mul(1000);
        self.authenticated = true;
        let reply = reply::authenticated(&identity.user, identity.expires);
        self.identity = Some(identity);
        Ok(reply)
    }
}

/// A close reason fits in 123 bytes.
fn truncate_reason(text: &str) -> String {
    let mut end = text.len().min(123);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn not_authenticated() -> ErrorReply {
    ErrorCode::Unauthorized.reply("authenticate first: {\"op\":\"auth\",\"id\":…,\"token\":…}")
}

#[cfg(test)]
mod tests {
    //! The machine driven directly: events in, actions checked; no socket, no hub.

    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::auth::{AuthConfig, Claims, SigningKey};
    use crate::topic::Epoch;

    const SECRET: &str = "a secret long enough for HS256 tests";

    static HUB: std::sync::LazyLock<HubConfig> = std::sync::LazyLock::new(HubConfig::default);

    fn config() -> Rules<'static> {
        Rules::new(&SessionConfig::default(), &HUB)
    }

    fn open() -> Session<u32> {
        let mut session = Session::open(Arc::from("n-1"), None, None, 0);
        let hello = actions(&mut session);
        assert!(
            matches!(&hello[..], [Action::Send(text)] if text.contains("\"hello\"")),
            "{hello:?}"
        );
        session
    }

    fn actions(session: &mut Session<u32>) -> Vec<Action<u32>> {
        std::iter::from_fn(|| session.poll_action()).collect()
    }

    /// The one text the session answered.
    fn reply(session: &mut Session<u32>) -> serde_json::Value {
        match &actions(session)[..] {
            [Action::Send(text)] => serde_json::from_str(text).unwrap_or_default(),
            other => panic!("expected one reply, got {other:?}"),
        }
    }

    fn topic(name: &str) -> Topic {
        Topic::new(name).unwrap_or_else(|e| panic!("{e}"))
    }

    fn position(offset: u64) -> Position {
        Position {
            epoch: Epoch::new("E1").unwrap_or_else(|e| panic!("{e}")),
            offset,
        }
    }

    fn message(offset: u64) -> Arc<Push> {
        let position = position(offset);
        Arc::new(Push::message(
            topic("news"),
            position.epoch,
            offset,
            Data::text("x"),
        ))
    }

    /// Subscribes to `name` and goes live with `handle`, checking each step.
    fn subscribe(session: &mut Session<u32>, cfg: &Rules<'_>, name: &str, handle: u32) {
        session.receive_text(
            &format!(r#"{{"op":"sub","id":1,"topic":"{name}"}}"#),
            cfg,
            0,
        );
        assert!(matches!(
            &actions(session)[..],
            [Action::Subscribe { topic: t, since: None, .. }] if t.as_str() == name
        ));
        assert!(session.is_waiting());
        session.subscribed(Ok(Recovery {
            position: position(0),
            recovered: None,
            messages: Vec::new(),
        }));
        let done = actions(session);
        assert!(
            matches!(&done[..], [Action::Send(_), Action::GoLive { .. }]),
            "{done:?}"
        );
        session.went_live(Ok(handle));
        assert!(!session.is_waiting());
    }

    #[test]
    fn a_subscription_replies_then_sends_what_it_recovered_then_goes_live() {
        let cfg = config();
        let mut session = open();
        session.receive_text(
            r#"{"op":"sub","id":7,"topic":"news","since":{"epoch":"E1","offset":1},"info":"ann"}"#,
            &cfg,
            0,
        );
        let Some(Action::Subscribe {
            topic: t,
            since,
            member,
        }) = session.poll_action()
        else {
            panic!("no subscribe");
        };
        assert_eq!((t.as_str(), since.map(|s| s.offset)), ("news", Some(1)));
        assert_eq!(&*member.client, "n-1");
        assert_eq!(member.info, Some(Data::text("ann")));
        session.subscribed(Ok(Recovery {
            position: position(3),
            recovered: Some(true),
            messages: vec![message(2), message(3)],
        }));
        let done = actions(&mut session);
        let [
            Action::Send(ok),
            Action::SendPush(first),
            Action::SendPush(second),
            Action::GoLive { topic: live },
        ] = &done[..]
        else {
            panic!("{done:?}");
        };
        assert_eq!(
            ok,
            r#"{"id":7,"ok":{"topic":"news","epoch":"E1","offset":3,"recovered":true}}"#
        );
        assert_eq!((first.offset(), second.offset()), (Some(2), Some(3)));
        assert_eq!(live.as_str(), "news");
        session.went_live(Ok(11));
        assert_eq!(session.subscription_count(), 1);

        session.receive_text(r#"{"op":"sub","id":8,"topic":"news"}"#, &cfg, 0);
        assert_eq!(reply(&mut session)["error"]["code"], 409);
        session.receive_text(r#"{"op":"unsub","id":9,"topic":"news"}"#, &cfg, 0);
        let done = actions(&mut session);
        assert!(
            matches!(&done[..], [Action::Unsubscribe(11), Action::Send(ok)]
                if ok == r#"{"id":9,"ok":{"topic":"news"}}"#),
            "{done:?}"
        );
        session.receive_text(r#"{"op":"unsub","id":10,"topic":"news"}"#, &cfg, 0);
        assert_eq!(reply(&mut session)["error"]["code"], 404);
    }

    #[test]
    fn a_subscriber_that_fell_behind_while_subscribing_ends_the_session() {
        let cfg = config();
        let mut session = open();
        session.receive_text(r#"{"op":"sub","id":1,"topic":"news"}"#, &cfg, 0);
        actions(&mut session);
        session.subscribed(Ok(Recovery {
            position: position(0),
            recovered: None,
            messages: Vec::new(),
        }));
        actions(&mut session);
        session.went_live(Err(Lagged));
        assert!(matches!(&actions(&mut session)[..], [Action::End]));
        assert_eq!(session.subscription_count(), 0);
    }

    #[test]
    fn system_topics_are_for_the_admin_connection_to_subscribe_and_nobody_to_publish() {
        let normal = config();
        let admin = Rules {
            system_topics: true,
            ..config()
        };
        for request in [
            r#"{"op":"sub","id":1,"topic":"$sys/admin"}"#,
            r#"{"op":"pub","id":1,"topic":"$sys/admin","data":1}"#,
            r#"{"op":"presence","id":1,"topic":"$sys/admin"}"#,
        ] {
            let mut session = open();
            session.receive_text(request, &normal, 0);
            assert_eq!(reply(&mut session)["error"]["code"], 403, "{request}");
        }
        for request in [
            r#"{"op":"pub","id":1,"topic":"$sys/admin","data":1}"#,
            r#"{"op":"presence","id":1,"topic":"$sys/admin"}"#,
        ] {
            let mut session = open();
            session.receive_text(request, &admin, 0);
            assert_eq!(reply(&mut session)["error"]["code"], 403, "{request}");
        }
        let mut session = open();
        session.receive_text(r#"{"op":"sub","id":1,"topic":"$sys/admin"}"#, &admin, 0);
        assert!(matches!(
            &actions(&mut session)[..],
            [Action::Subscribe { topic, .. }] if topic.is_system()
        ));
        // Outside `$sys/` the `$` is still no topic character.
        let mut session = open();
        session.receive_text(r#"{"op":"sub","id":1,"topic":"$other"}"#, &admin, 0);
        assert_eq!(reply(&mut session)["error"]["code"], 422);
    }

    #[test]
    fn hub_failures_and_limits_have_their_codes() {
        let cfg = Rules {
            max_subscriptions: 1,
            ..config()
        };
        let mut session = open();
        session.receive_text(r#"{"op":"sub","id":1,"topic":"a"}"#, &cfg, 0);
        actions(&mut session);
        session.subscribed(Err(BrokerError::Unavailable("down".into())));
        let answer = reply(&mut session);
        assert_eq!(answer["error"]["code"], 503);
        assert!(!session.is_waiting());
        subscribe(&mut session, &cfg, "a", 1);
        session.receive_text(r#"{"op":"sub","id":2,"topic":"b"}"#, &cfg, 0);
        assert_eq!(reply(&mut session)["error"]["code"], 429);
    }

    #[test]
    fn bad_requests_are_answered_and_the_session_goes_on() {
        let cfg = config();
        let mut session = open();
        session.receive_text("not json", &cfg, 0);
        let answer = reply(&mut session);
        assert_eq!(
            (answer["id"].is_null(), &answer["error"]["code"]),
            (true, &400.into())
        );
        session.receive_binary();
        assert_eq!(reply(&mut session)["error"]["code"], 400);
        session.receive_text(r#"{"op":"subscribe","id":"x","topic":"n"}"#, &cfg, 0);
        let answer = reply(&mut session);
        assert_eq!(
            (&answer["id"], &answer["error"]["code"]),
            (&"x".into(), &405.into())
        );
        session.receive_text(r#"{"op":"auth","id":3,"token":"t"}"#, &cfg, 0);
        let answer = reply(&mut session);
        assert_eq!(answer["error"]["code"], 400, "no tokens on this server");
        assert!(!session.is_waiting());
    }

    #[test]
    fn a_publish_is_asked_of_the_hub_and_its_answer_replied() {
        let cfg = config();
        let mut session = open();
        session.receive_text(
            r#"{"op":"pub","id":4,"topic":"news","data":{"a":1}}"#,
            &cfg,
            0,
        );
        let done = actions(&mut session);
        assert!(
            matches!(&done[..], [Action::Publish { topic: t, data }]
                if t.as_str() == "news" && data.as_str() == r#"{"a":1}"#),
            "{done:?}"
        );
        session.published(Ok(position(5)));
        assert_eq!(
            reply(&mut session),
            serde_json::json!({"id":4,"ok":{"topic":"news","epoch":"E1","offset":5}})
        );
        session.receive_text(r#"{"op":"pub","id":5,"topic":"news","data":1}"#, &cfg, 0);
        actions(&mut session);
        session.published(Err(PublishError::TooLarge { size: 9, max: 4 }));
        assert_eq!(reply(&mut session)["error"]["code"], 413);
        session.receive_text(r#"{"op":"pub","id":6,"topic":"news","data":1}"#, &cfg, 0);
        actions(&mut session);
        session.published(Err(PublishError::Broker(BrokerError::Unavailable(
            "down".into(),
        ))));
        assert_eq!(reply(&mut session)["error"]["code"], 503);

        let closed_cfg = Rules {
            client_publish: false,
            ..config()
        };
        let mut closed = open();
        closed.receive_text(
            r#"{"op":"pub","id":1,"topic":"news","data":1}"#,
            &closed_cfg,
            0,
        );
        assert_eq!(reply(&mut closed)["error"]["code"], 403);
    }

    #[test]
    fn presence_is_asked_of_the_hub_and_its_answer_replied() {
        let cfg = config();
        let mut session = open();
        session.receive_text(r#"{"op":"presence","id":1,"topic":"chat:x"}"#, &cfg, 0);
        assert!(matches!(
            &actions(&mut session)[..],
            [Action::Presence { topic: t }] if t.as_str() == "chat:x"
        ));
        session.members(Ok(vec![Member {
            client: Arc::from("n-2"),
            user: Some(Arc::from("bob")),
            info: None,
        }]));
        assert_eq!(
            reply(&mut session),
            serde_json::json!({"id":1,"ok":{"topic":"chat:x","members":[{"client":"n-2","user":"bob"}]}})
        );
        session.receive_text(r#"{"op":"presence","id":2,"topic":"news"}"#, &cfg, 0);
        actions(&mut session);
        session.members(Err(PresenceRefused::NotEnabled));
        let answer = reply(&mut session);
        assert_eq!(answer["error"]["code"], 403);
        assert_eq!(
            answer["error"]["message"],
            "presence is not enabled for namespace \"\""
        );
        session.receive_text(r#"{"op":"presence","id":3,"topic":"chat:x"}"#, &cfg, 0);
        actions(&mut session);
        session.members(Err(PresenceRefused::Broker(BrokerError::Unavailable(
            "down".into(),
        ))));
        assert_eq!(reply(&mut session)["error"]["code"], 503);
    }

    #[test]
    fn requests_over_the_rate_are_refused_then_the_client_is_closed() {
        let cfg = Rules {
            max_requests_per_second: 5,
            ..config()
        };
        let mut session = open();
        let mut refused = 0;
        for n in 0..50 {
            session.receive_text(
                &format!(r#"{{"op":"unsub","id":{n},"topic":"news"}}"#),
                &cfg,
                0,
            );
            let done = actions(&mut session);
            match &done[..] {
                [Action::Send(text)] if text.contains("\"code\":429") => refused += 1,
                [Action::Send(text)] => assert!(text.contains("\"code\":404"), "{text}"),
                [Action::Close { code, reason }, Action::End] => {
                    assert_eq!((*code, reason.as_str()), (CloseCode::POLICY, RATE_LIMITED));
                    assert!(refused >= 4, "closed after {refused} refusals");
                    return;
                }
                other => panic!("{other:?}"),
            }
        }
        panic!("never closed; {refused} refused");
    }

    fn verifier() -> Arc<TokenVerifier> {
        let config = AuthConfig {
            secret: Some(SECRET.into()),
            leeway: Duration::from_secs(5),
            public_topics: vec![String::from("public:*")],
            auth_timeout: Duration::from_secs(10),
            ..AuthConfig::default()
        };
        match TokenVerifier::from_config(&config) {
            Ok(Some(verifier)) => Arc::new(verifier),
            other => panic!("{other:?}"),
        }
    }

    fn sign(claims: &Claims) -> String {
        auth::sign(claims, &SigningKey::Secret(SECRET.into()), None)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A connection token for `user` granting `sub` and `presence` on `pattern`,
    /// expiring at `exp`.
    fn connection_token(user: &str, pattern: &str, exp: u64) -> String {
        let mut topics = BTreeMap::new();
        topics.insert(
            pattern.to_owned(),
            vec![String::from("sub"), String::from("presence")],
        );
        sign(&Claims {
            sub: Some(user.into()),
            exp,
            topics: Some(topics),
            ..Claims::default()
        })
    }

    fn subscription_token(user: &str, topic: &str, exp: u64) -> String {
        sign(&Claims {
            sub: Some(user.into()),
            exp,
            topic: Some(topic.into()),
            ..Claims::default()
        })
    }

    fn open_with_tokens(now: u64) -> Session<u32> {
        let mut session = Session::open(Arc::from("n-1"), Some(verifier()), None, now);
        actions(&mut session);
        session
    }

    #[test]
    fn without_a_token_only_public_topics_and_the_time_to_authenticate_runs_out() {
        let now = auth::now() * 1000;
        let cfg = config();
        let mut session = open_with_tokens(now);
        assert_eq!(session.deadline(), Some(now + 10_000));
        session.receive_text(r#"{"op":"sub","id":1,"topic":"news"}"#, &cfg, 0);
        let answer = reply(&mut session);
        assert_eq!(answer["error"]["code"], 401);
        session.tick(now + 9_999);
        assert!(actions(&mut session).is_empty());
        session.tick(now + 10_000);
        assert!(matches!(
            &actions(&mut session)[..],
            [Action::Close { code: CloseCode(3000), reason }] if reason == auth::AUTH_TIMED_OUT
        ));
        assert_eq!(session.deadline(), None);

        // A client of public topics need not authenticate.
        let mut public = open_with_tokens(now);
        subscribe(&mut public, &cfg, "public:x", 1);
        assert_eq!(public.deadline(), None);
    }

    #[test]
    fn a_connection_token_authenticates_until_it_expires() {
        let now = auth::now();
        let exp = now + 60;
        let cfg = config();
        let mut session = open_with_tokens(now * 1000);
        let token = connection_token("ann", "chat:*", exp);
        session.receive_text(
            &format!(r#"{{"op":"auth","id":1,"token":"{token}"}}"#),
            &cfg,
            0,
        );
        assert_eq!(
            reply(&mut session),
            serde_json::json!({"id":1,"ok":{"user":"ann","expires":exp}})
        );
        let closes_at = (exp + 5) * 1000;
        assert_eq!(session.deadline(), Some(closes_at));
        subscribe(&mut session, &cfg, "chat:a", 1);
        session.receive_text(r#"{"op":"pub","id":2,"topic":"chat:a","data":1}"#, &cfg, 0);
        assert_eq!(reply(&mut session)["error"]["code"], 403, "no pub grant");
        session.tick(closes_at);
        assert!(matches!(
            &actions(&mut session)[..],
            [Action::Close { code: CloseCode(3000), reason }] if reason == auth::TOKEN_EXPIRED
        ));
    }

    #[test]
    fn a_refreshed_token_withdraws_what_it_no_longer_allows() {
        let now = auth::now();
        let cfg = config();
        let mut session = open_with_tokens(now * 1000);
        let token = connection_token("ann", "chat:*", now + 60);
        session.receive_text(
            &format!(r#"{{"op":"auth","id":1,"token":"{token}"}}"#),
            &cfg,
            0,
        );
        actions(&mut session);
        subscribe(&mut session, &cfg, "chat:a", 4);
        let narrower = connection_token("ann", "news", now + 120);
        session.receive_text(
            &format!(r#"{{"op":"auth","id":2,"token":"{narrower}"}}"#),
            &cfg,
            0,
        );
        let done = actions(&mut session);
        let [
            Action::Send(ok),
            Action::Unsubscribe(4),
            Action::Send(unsub),
        ] = &done[..]
        else {
            panic!("{done:?}");
        };
        assert!(ok.starts_with(r#"{"id":2,"ok":"#), "{ok}");
        assert_eq!(
            unsub,
            r#"{"topic":"chat:a","unsub":{"code":403,"reason":"permission withdrawn"}}"#
        );
        let other = connection_token("bob", "news", now + 120);
        session.receive_text(
            &format!(r#"{{"op":"auth","id":3,"token":"{other}"}}"#),
            &cfg,
            0,
        );
        assert_eq!(reply(&mut session)["error"]["code"], 403);
    }

    #[test]
    fn a_subscription_token_is_renewed_in_place_and_ends_the_subscription_when_it_expires() {
        let now = auth::now();
        let cfg = config();
        let mut session = open_with_tokens(now * 1000);
        let token = connection_token("ann", "news", now + 3600);
        session.receive_text(
            &format!(r#"{{"op":"auth","id":1,"token":"{token}"}}"#),
            &cfg,
            0,
        );
        actions(&mut session);

        let exp = now + 60;
        let grant = subscription_token("ann", "private:x", exp);
        session.receive_text(
            &format!(r#"{{"op":"sub","id":2,"topic":"private:x","token":"{grant}"}}"#),
            &cfg,
            0,
        );
        assert!(matches!(
            &actions(&mut session)[..],
            [Action::Subscribe { .. }]
        ));
        session.subscribed(Ok(Recovery {
            position: position(0),
            recovered: None,
            messages: Vec::new(),
        }));
        let done = actions(&mut session);
        assert!(
            matches!(&done[..], [Action::Send(ok), Action::GoLive { .. }]
                if ok.contains(&format!("\"expires\":{exp}"))),
            "{done:?}"
        );
        session.went_live(Ok(9));
        assert_eq!(session.deadline(), Some((exp + 5) * 1000));
        // The grant also allows presence.
        session.receive_text(r#"{"op":"presence","id":3,"topic":"private:x"}"#, &cfg, 0);
        assert!(matches!(
            &actions(&mut session)[..],
            [Action::Presence { .. }]
        ));
        session.members(Ok(Vec::new()));
        actions(&mut session);

        // Renewed: same subscription, a later end, nothing sent again.
        let later = now + 120;
        let fresh = subscription_token("ann", "private:x", later);
        session.receive_text(
            &format!(r#"{{"op":"sub","id":4,"topic":"private:x","token":"{fresh}"}}"#),
            &cfg,
            0,
        );
        assert_eq!(
            reply(&mut session),
            serde_json::json!({"id":4,"ok":{"topic":"private:x","expires":later,"refreshed":true}})
        );
        assert_eq!(session.deadline(), Some((later + 5) * 1000));
        session.tick((exp + 5) * 1000);
        assert!(
            actions(&mut session).is_empty(),
            "the old end no longer counts"
        );

        session.tick((later + 5) * 1000);
        let done = actions(&mut session);
        let [Action::Unsubscribe(9), Action::Send(unsub)] = &done[..] else {
            panic!("{done:?}");
        };
        assert_eq!(
            unsub,
            r#"{"topic":"private:x","unsub":{"code":401,"reason":"subscription token expired"}}"#
        );
        assert_eq!(session.subscription_count(), 0);

        // A token for someone else's topic or user is refused.
        let wrong = subscription_token("bob", "private:x", later);
        session.receive_text(
            &format!(r#"{{"op":"sub","id":5,"topic":"private:x","token":"{wrong}"}}"#),
            &cfg,
            0,
        );
        assert_eq!(reply(&mut session)["error"]["code"], 403);
    }
}
