//! One `/ws` client: it reads requests, asks the [`Hub`] to act, and answers, while
//! the hub delivers the client's messages straight into its outbound queue.
//!
//! Requests are handled one at a time, in order, so a client sees the reply to a
//! `sub` before the messages it recovered, and those before any live message.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::auth::{self, Identity, Permission, TokenVerifier};
use crate::hub::{Hub, Member, PublishError, Push, Sink, Subscription, Topic};
use crate::protocol::{self, Ended, ErrorReply, Request};
use crate::ws::{CloseCode, Message, Sender, Socket, TrySendError};

/// The reason sent with 1008 to a client that does not read fast enough.
pub const SLOW_CONSUMER: &str = "slow consumer";

/// The reason sent with 1008 to a client that keeps sending over its request rate.
pub const RATE_LIMITED: &str = "rate limit exceeded";

/// The reason sent with 1011 to a client whose messages the broker lost (Redis lost
/// its data): it should resubscribe from its last position to learn where it stands.
pub const MESSAGES_LOST: &str = "messages lost: resubscribe";

/// A WebSocket connection as the hub sees it: pushes go into its outbound queue,
/// encoded once for all subscribers; a full queue closes it as a slow consumer.
struct SocketSink(Sender);

impl Sink for SocketSink {
    fn push(&self, push: &Arc<Push>) -> bool {
        match self.0.try_send_prepared(push.frame()) {
            Ok(()) => true,
            Err(TrySendError::Full) => {
                self.lagged();
                false
            }
            Err(TrySendError::Closed) => false,
        }
    }

    fn lagged(&self) {
        tracing::info!("{}: closing a slow consumer", self.0.id());
        self.0.close(CloseCode::POLICY, SLOW_CONSUMER);
    }

    fn lost(&self) {
        tracing::info!("{}: closing a client whose messages were lost", self.0.id());
        self.0.close(CloseCode::INTERNAL, MESSAGES_LOST);
    }
}

/// Serves one `/ws` client until its connection closes. With `verifier` it requires
/// a token; `token` (from `?token=`) authenticates the connection from the start, and
/// a refused one closes it with 3000 and the reason.
///
/// A function returning an `async move` block rather than an `async fn`: the
/// block holds its captures once, where an `async fn` keeps its arguments twice,
/// and every idle connection pays for this future's size.
#[allow(clippy::manual_async_fn)] // deliberate: see above
pub(crate) fn run(
    mut socket: Socket,
    hub: Hub,
    verifier: Option<Arc<TokenVerifier>>,
    token: Option<Box<str>>,
) -> impl Future<Output = ()> + Send {
    async move {
        let client = hub.new_client_id();
        let sink: Arc<dyn Sink> = Arc::new(SocketSink(socket.sender()));
        let auth = verifier.map(|verifier| AuthState::start(verifier, socket.sender()));
        let mut session = Session {
            hub,
            client,
            sink,
            subscriptions: BTreeMap::new(),
            bucket: Bucket::full(),
            auth,
        };
        if Box::pin(socket.send(protocol::hello(&session.client)))
            .await
            .is_err()
        {
            return;
        }
        if let (Some(auth), Some(token)) = (&mut session.auth, token)
            && let Err(err) = auth.authenticate(&token)
        {
            socket.sender().close(
                CloseCode(auth::CLOSE_UNAUTHORIZED),
                truncate_reason(&err.message),
            );
        }
        loop {
            let message = match &session.auth {
                // Boxed, and only with tokens: the wait for a subscription token's
                // expiry costs a session without tokens nothing.
                Some(auth) => {
                    let watchdog = Arc::clone(&auth.watchdog);
                    let recv = socket.recv();
                    let next = Box::pin(async move {
                        tokio::select! {
                            message = recv => Some(message),
                            () = watchdog.expired.notified() => None,
                        }
                    })
                    .await;
                    match next {
                        Some(message) => message,
                        None => {
                            if !Box::pin(session.expire_grants(&socket)).await {
                                return;
                            }
                            continue;
                        }
                    }
                }
                None => socket.recv().await,
            };
            let Some(message) = message else {
                return;
            };
            let keep_going = match message {
                // Boxed: the idle state of this future (what every quiet connection
                // holds) stays small; only a request being handled needs the space.
                Message::Text(text) => Box::pin(session.handle(&socket, text.as_str())).await,
                Message::Binary(_) => {
                    let err = ErrorReply::new(400, "invalid request: send requests as text frames");
                    Box::pin(socket.send(protocol::error("null", &err)))
                        .await
                        .is_ok()
                }
            };
            if !keep_going {
                return;
            }
        }
    }
}

struct Session {
    hub: Hub,
    client: Arc<str>,
    sink: Arc<dyn Sink>,
    /// A `BTreeMap`: half the size of a `HashMap` in every idle session, and no
    /// allocation until the first subscription.
    subscriptions: BTreeMap<Topic, Subscription>,
    bucket: Bucket,
    /// `Some` when tokens are required; boxed, so a session without them stays small.
    auth: Option<Box<AuthState>>,
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
    watchdog: Arc<Watchdog>,
}

/// The deadlines of a connection, watched by a task of its own (so the idle session
/// holds no timer): first the time to authenticate, then the token's expiry (plus
/// the allowed clock skew). At the deadline the connection is closed with 3000.
/// The same task watches the earliest subscription-token expiry and wakes the
/// session (`expired`) when it passes, so that the session ends those
/// subscriptions: one timer per connection, however many subscriptions it has.
struct Watchdog {
    /// Unix milliseconds; 0: none.
    deadline: AtomicU64,
    /// The earliest end of a subscription granted by a subscription token (Unix
    /// milliseconds; 0: none).
    sub_deadline: AtomicU64,
    /// Wakes the session when `sub_deadline` passed.
    expired: Notify,
    authenticated: AtomicBool,
    stopped: AtomicBool,
    wake: Notify,
}

impl Watchdog {
    fn set(&self, deadline: u64, authenticated: bool) {
        self.authenticated.store(authenticated, Ordering::Release);
        self.deadline.store(deadline, Ordering::Release);
        self.wake.notify_one();
    }

    fn set_sub_deadline(&self, deadline: u64) {
        self.sub_deadline.store(deadline, Ordering::Release);
        self.wake.notify_one();
    }
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl AuthState {
    fn start(verifier: Arc<TokenVerifier>, sender: Sender) -> Box<Self> {
        let timeout = u64::try_from(verifier.auth_timeout().as_millis()).unwrap_or(u64::MAX);
        let watchdog = Arc::new(Watchdog {
            deadline: AtomicU64::new(unix_millis().saturating_add(timeout)),
            sub_deadline: AtomicU64::new(0),
            expired: Notify::new(),
            authenticated: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            wake: Notify::new(),
        });
        tokio::spawn(watch(sender, Arc::clone(&watchdog)));
        Box::new(Self {
            verifier,
            identity: None,
            granted: Vec::new(),
            watchdog,
        })
    }

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
                    return Err(ErrorReply::new(
                        403,
                        "the subscription token is for another user",
                    ));
                }
                if grant.topic != topic.as_str() {
                    return Err(ErrorReply::new(
                        403,
                        format!(
                            "the subscription token is for topic {:?}, not {:?}",
                            grant.topic,
                            topic.as_str()
                        ),
                    ));
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
                    self.watchdog.set(0, false);
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
            if self.identity.is_none() && err.code == 401 {
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
        self.arm();
    }

    /// Forgets the grant for `topic` (unsubscribed or ended).
    fn forget(&mut self, topic: &Topic) {
        let before = self.granted.len();
        self.granted.retain(|(t, _)| t != topic);
        if self.granted.len() != before {
            self.arm();
        }
    }

    /// Tells the watchdog the earliest grant's end.
    fn arm(&self) {
        let next = self.granted.iter().map(|(_, at)| *at).min().unwrap_or(0);
        self.watchdog.set_sub_deadline(next);
    }

    /// Whether the client may go on receiving `topic`: under a subscription token
    /// that has not ended, or by its connection token (or the topic is public).
    fn still_allows(&self, topic: &Topic) -> bool {
        self.granted.iter().any(|(t, _)| t == topic)
            || self
                .verifier
                .allows_sub(self.identity.as_ref(), topic.as_str())
    }

    /// `auth`: checks the token and (re)arms the expiry.
    fn authenticate(&mut self, token: &str) -> Result<String, ErrorReply> {
        let identity = self.verifier.connection(token).map_err(|err| {
            tracing::debug!(error = %err, "token refused");
            err.reply()
        })?;
        if let Some(user) = self.user()
            && *user != identity.user
        {
            return Err(ErrorReply::new(
                403,
                format!(
                    "the connection is authenticated as {user:?}; the token is for another user"
                ),
            ));
        }
        let close_at = identity
            .expires
            .saturating_add(self.verifier.leeway().as_secs())
            .saturating_mul(1000);
        self.watchdog.set(close_at, true);
        let reply = serde_json::json!({"user": &*identity.user, "expires": identity.expires});
        self.identity = Some(identity);
        Ok(reply.to_string())
    }
}

/// What a verified subscription token grants: its `exp` (Unix seconds, as the
/// reply says) and the moment the subscription ends without a fresh one (Unix
/// milliseconds, the leeway included).
#[derive(Debug, Clone, Copy)]
struct Grant {
    expires: u64,
    ends_at: u64,
}

impl Drop for AuthState {
    fn drop(&mut self) {
        self.watchdog.stopped.store(true, Ordering::Release);
        self.watchdog.wake.notify_one();
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
    ErrorReply::new(
        401,
        "authenticate first: {\"op\":\"auth\",\"id\":…,\"token\":…}",
    )
}

/// Closes the connection with 3000 when its deadline passes without a refresh, and
/// wakes the session when a subscription token's grant ends.
async fn watch(sender: Sender, watchdog: Arc<Watchdog>) {
    loop {
        if watchdog.stopped.load(Ordering::Acquire) {
            return;
        }
        let deadline = watchdog.deadline.load(Ordering::Acquire);
        let sub_deadline = watchdog.sub_deadline.load(Ordering::Acquire);
        let now = unix_millis();
        if deadline != 0 && now >= deadline {
            let reason = if watchdog.authenticated.load(Ordering::Acquire) {
                auth::TOKEN_EXPIRED
            } else {
                auth::AUTH_TIMED_OUT
            };
            tracing::info!("{}: closing: {reason}", sender.id());
            sender.close(CloseCode(auth::CLOSE_UNAUTHORIZED), reason);
            return;
        }
        if sub_deadline != 0 && now >= sub_deadline {
            // Cleared unless the session set a new one meanwhile; the session sets
            // the next one when it has ended the expired subscriptions.
            let _ = watchdog.sub_deadline.compare_exchange(
                sub_deadline,
                0,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            watchdog.expired.notify_one();
            continue;
        }
        let next = [deadline, sub_deadline]
            .into_iter()
            .filter(|&at| at != 0)
            .min();
        let wait = next.map(|at| Duration::from_millis(at.saturating_sub(now)));
        tokio::select! {
            () = sender.closed() => return,
            () = watchdog.wake.notified() => {}
            () = async {
                match wait {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    }
}

/// A token bucket of requests: one second's worth of tokens, refilled at the rate.
/// It may go into debt by one more second's worth; past that the client is closed.
struct Bucket {
    tokens: f32,
    /// [`millis`] at the last refill.
    refilled: u32,
}

impl Bucket {
    /// Marks a bucket to fill on its first use.
    fn full() -> Self {
        Self {
            tokens: f32::INFINITY,
            refilled: 0,
        }
    }

    /// Takes a token at `rate` per second: `Ok` if there was one, `Err(true)` when
    /// the debt is a whole second's worth (close), `Err(false)` otherwise.
    fn take(&mut self, rate: u32) -> Result<(), bool> {
        let rate = rate as f32;
        let now = millis();
        let elapsed = now.wrapping_sub(self.refilled) as f32 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.refilled = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Ok(())
        } else {
            Err(self.tokens <= -rate)
        }
    }
}

/// Milliseconds since the first call, wrapping after 49 days (a bucket quiet that
/// long is full either way).
fn millis() -> u32 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u32
}

impl Session {
    /// Handles one request; `false` when the connection is done for.
    async fn handle(&mut self, socket: &Socket, text: &str) -> bool {
        let max_data = self.hub.config().max_data_size;
        let (id, mut request) = protocol::parse(text, max_data);
        let rate = self.hub.config().max_requests_per_second;
        if rate > 0
            && let Err(close) = self.bucket.take(rate)
        {
            if close {
                tracing::info!("{}: closing a client over its request rate", socket.id());
                socket.sender().close(CloseCode::POLICY, RATE_LIMITED);
                return false;
            }
            let err = ErrorReply::new(
                429,
                format!("rate limit: at most {rate} requests per second"),
            );
            return socket.send(protocol::error(&id, &err)).await.is_ok();
        }
        let mut grant = None;
        if let (Some(auth), Ok(checked)) = (&mut self.auth, &request) {
            match auth.authorize(checked) {
                Ok(granted) => grant = granted,
                Err(err) => request = Err(err),
            }
        }
        let reply = match request {
            Ok(Request::Sub {
                topic, since, info, ..
            }) => {
                return self.subscribe(socket, &id, topic, since, info, grant).await;
            }
            Ok(Request::Auth { token }) => match &mut self.auth {
                Some(auth) => match auth.authenticate(&token) {
                    Ok(ok) => {
                        // The reply first, then the end of every subscription the
                        // new token no longer allows.
                        if socket.send(protocol::ok(&id, &ok)).await.is_err() {
                            return false;
                        }
                        return self.withdraw(socket).await;
                    }
                    Err(err) => Err(err),
                },
                None => Err(ErrorReply::new(
                    400,
                    "authentication is not enabled on this server",
                )),
            },
            Ok(Request::Unsub { topic }) => match self.subscriptions.remove(&topic) {
                Some(subscription) => {
                    drop(subscription);
                    if let Some(auth) = &mut self.auth {
                        auth.forget(&topic);
                    }
                    Ok(format!("{{\"topic\":\"{topic}\"}}"))
                }
                None => Err(ErrorReply::new(404, format!("not subscribed to {topic:?}"))),
            },
            Ok(Request::Pub { topic, data }) => {
                if self.hub.config().client_publish {
                    match self.hub.publish(&topic, data).await {
                        Ok(position) => Ok(protocol::position(&topic, &position, None)),
                        Err(err @ PublishError::TooLarge { .. }) => {
                            Err(ErrorReply::new(413, err.to_string()))
                        }
                        Err(PublishError::Broker(err)) => {
                            Err(ErrorReply::new(503, err.to_string()))
                        }
                    }
                } else {
                    Err(ErrorReply::new(403, "publishing from clients is disabled"))
                }
            }
            Ok(Request::Presence { topic }) => {
                if self.hub.presence_enabled(&topic) {
                    match self.hub.members(&topic).await {
                        Ok(members) => Ok(protocol::members(&topic, &members)),
                        Err(err) => Err(ErrorReply::new(503, err.to_string())),
                    }
                } else {
                    Err(ErrorReply::new(
                        403,
                        format!(
                            "presence is not enabled for namespace {:?}",
                            topic.namespace()
                        ),
                    ))
                }
            }
            Err(err) => Err(err),
        };
        let text = match reply {
            Ok(ok) => protocol::ok(&id, &ok),
            Err(err) => protocol::error(&id, &err),
        };
        socket.send(text).await.is_ok()
    }

    /// Ends the subscriptions a refreshed connection token no longer allows, each
    /// with an `unsub` push (403); `false` when the connection is gone.
    async fn withdraw(&mut self, socket: &Socket) -> bool {
        let Some(auth) = &self.auth else {
            return true;
        };
        let gone: Vec<Topic> = self
            .subscriptions
            .keys()
            .filter(|topic| !auth.still_allows(topic))
            .cloned()
            .collect();
        self.end(socket, gone, Ended::Withdrawn).await
    }

    /// Ends the subscriptions whose subscription token expired without a fresh
    /// one, each with an `unsub` push (401), unless the connection token allows the
    /// topic by itself; then tells the watchdog the next expiry.
    async fn expire_grants(&mut self, socket: &Socket) -> bool {
        let Some(auth) = &mut self.auth else {
            return true;
        };
        let now = unix_millis();
        let (ended, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut auth.granted)
            .into_iter()
            .partition(|(_, ends_at)| *ends_at <= now);
        auth.granted = kept;
        auth.arm();
        let gone: Vec<Topic> = ended
            .into_iter()
            .map(|(topic, _)| topic)
            .filter(|topic| !auth.still_allows(topic))
            .collect();
        self.end(socket, gone, Ended::Expired).await
    }

    /// Drops the subscriptions to `topics` and tells the client why.
    async fn end(&mut self, socket: &Socket, topics: Vec<Topic>, why: Ended) -> bool {
        for topic in topics {
            let Some(subscription) = self.subscriptions.remove(&topic) else {
                continue;
            };
            drop(subscription);
            if let Some(auth) = &mut self.auth {
                auth.forget(&topic);
            }
            tracing::debug!("{}: ended {topic:?}: {}", socket.id(), why.reason());
            if socket.send(protocol::unsub(&topic, why)).await.is_err() {
                return false;
            }
        }
        true
    }

    async fn subscribe(
        &mut self,
        socket: &Socket,
        id: &str,
        topic: Topic,
        since: Option<crate::hub::Position>,
        info: Option<crate::hub::Data>,
        grant: Option<Grant>,
    ) -> bool {
        if let (Some(grant), Some(auth)) = (grant, &mut self.auth)
            && self.subscriptions.contains_key(&topic)
        {
            // A fresh subscription token for a subscription that goes on: it keeps
            // its position; nothing is sent again.
            auth.grant(&topic, grant);
            let mut ok = String::from("{\"topic\":");
            ok.push_str(&serde_json::to_string(topic.as_str()).unwrap_or_default());
            ok.push_str(&format!(
                ",\"expires\":{},\"refreshed\":true}}",
                grant.expires
            ));
            return socket.send(protocol::ok(id, &ok)).await.is_ok();
        }
        let refusal = if self.subscriptions.contains_key(&topic) {
            Some(ErrorReply::new(
                409,
                format!("already subscribed to {topic:?}"),
            ))
        } else if self.subscriptions.len() >= self.hub.config().max_subscriptions {
            Some(ErrorReply::new(
                429,
                format!(
                    "at most {} subscriptions per connection",
                    self.hub.config().max_subscriptions
                ),
            ))
        } else {
            None
        };
        if let Some(err) = refusal {
            return socket.send(protocol::error(id, &err)).await.is_ok();
        }
        let member = Member {
            client: Arc::clone(&self.client),
            user: self.auth.as_ref().and_then(|auth| auth.user().cloned()),
            info,
        };
        let pending = self
            .hub
            .subscribe(topic.clone(), Arc::clone(&self.sink), since, Some(member))
            .await;
        let mut pending = match pending {
            Ok(pending) => pending,
            Err(err) => {
                let err = ErrorReply::new(503, err.to_string());
                return socket.send(protocol::error(id, &err)).await.is_ok();
            }
        };
        let recovery = pending.recovery();
        let mut ok = protocol::position(&topic, &recovery.position, recovery.recovered);
        if let (Some(grant), Some(auth)) = (grant, &mut self.auth) {
            auth.grant(&topic, grant);
            ok.pop();
            ok.push_str(&format!(",\"expires\":{}}}", grant.expires));
        }
        if socket.send(protocol::ok(id, &ok)).await.is_err() {
            return false;
        }
        for push in pending.take_messages() {
            if socket.send_prepared(push.frame()).await.is_err() {
                return false;
            }
        }
        match pending.go_live() {
            Ok(subscription) => {
                self.subscriptions.insert(topic, subscription);
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn future_size<F, Fut>(_: &F) -> usize
    where
        F: Fn(Socket) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    /// Every idle `/ws` connection holds one of these futures: keep it small (it
    /// was 1416 bytes before request handling was boxed and `run` stopped being an
    /// `async fn`; 328 with rustc 1.95).
    #[test]
    fn an_idle_session_is_small() {
        let hub = Hub::default();
        let handler = |socket: Socket| run(socket, hub.clone(), None, None);
        let size = future_size(&handler);
        assert!(size <= 400, "the session future grew to {size} bytes");
    }
}
