//! One Pusher connection (`/app/{key}`, protocol 7) as a sans-IO state machine:
//! a [`PusherSession`] is told what happened and answers what to do, and never
//! waits on anything. It is the Pusher twin of our own `/ws` session
//! (`crate::protocol::session`), driven the same way (by `socket.rs` today) and
//! onto the same hub.
//!
//! ```text
//!  driver                                   PusherSession (this module)
//!  ──────                                   ───────────────────────────
//!  connection opened ─────────────────────► PusherSession::open(socket id, app, ?protocol, now)
//!  a text message ────────────────────────► receive_text(text, ticks, now)
//!  a binary message ──────────────────────► receive_binary(now)
//!  the deadline passed ───────────────────► tick(now)      (ask deadline() when to)
//!                      ◄──────────────────── poll_action(): Send, Subscribe, Members,
//!                                            GoLive, Abandon, Unsubscribe, Publish,
//!                                            Notify, Close, End
//!  hub.subscribe(…) answered ─────────────► subscribed(result)
//!  hub.members(…) answered ───────────────► members(result)
//!  pending.go_live() answered ────────────► went_live(result)
//!  hub.publish(…) answered ───────────────► published(result)
//! ```
//!
//! Requests are handled one at a time: after an action that asks the hub
//! something, the driver feeds the answer back before it reads the next message.
//!
//! # What the protocol says here
//!
//! - The query's `protocol` must be 5 to 7 (missing: 4008; not a number: 4006;
//!   another number: 4007); a disabled app is refused with 4003. (An unknown key,
//!   4001, and an app over its `max_connections`, 4004, are the driver's: it has
//!   no app, or counts connections.) A refusal is a `pusher:error` and a close
//!   with the same code.
//! - `pusher:connection_established` gives the socket id and the app's
//!   `activity_timeout`; after that long without a message the server sends
//!   `pusher:ping`, and closes with 4201 when nothing arrives within the pong
//!   timeout (30 s, or the activity timeout when shorter). `pusher:ping` is
//!   answered with `pusher:pong`.
//! - `pusher:subscribe` to public, `private-`, `private-encrypted-` and
//!   `presence-` channels, with the auth signature over
//!   `socket_id:channel[:channel_data]`; success is
//!   `pusher_internal:subscription_succeeded` (for presence with the member list,
//!   users deduplicated), failure `pusher:subscription_error` on the channel with
//!   `{"type":…,"error":…,"status":…}` (the shape pusher-js itself emits:
//!   `AuthError` 401 for a missing or bad signature or channel data, 403 for
//!   another user's channel; `LimitReached` 4100 for a full presence channel or
//!   a connection at [`MAX_CHANNELS`]; `InvalidChannel` 4009 for a bad or
//!   overlong name; `ServerError` 503 when the broker fails).
//! - `client-*` events on private and presence channels the socket subscribed to,
//!   when the app enables them; not on `private-encrypted-`; at most the app's
//!   rate per second (over it: `pusher:error` 4301) and size. They are published
//!   to the channel's topic as an envelope excluding the sender (`user_id` on
//!   presence channels), and reported to the webhooks.
//! - `pusher:signin` with `auth` = `KEY:HMAC(secret, "socket_id::user::user_data")`
//!   and `user_data` (a JSON object with a non-empty string `id`) answers
//!   `pusher:signin_success` and subscribes the connection to its user's channel
//!   `#server-to-user-{id}` (pusher-js then subscribes to it too: that is
//!   answered with success, without auth, for the signed-in user only). An event
//!   named [`TERMINATE_EVENT`](super::event::TERMINATE_EVENT) on that channel's
//!   topic closes every connection of the user with 4009 (the HTTP API's
//!   `terminate_connections`); any other is delivered.
//! - Anything else (not JSON, no event name, an unknown `pusher:` event, a binary
//!   frame) is answered with `pusher:error` (code `null`): nothing is closed
//!   silently, and nothing the client sends can end the connection but its
//!   rate of client events.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::app::PusherApp;
use super::channel::{Channel, ChannelKind};
use super::event::Envelope;
use super::notice::Notice;
use super::roster::Roster;
use super::signature::verify_auth;
use super::socket_id::SocketId;
use crate::broker::BrokerError;
use crate::hub::{Lagged, PublishError};
use crate::rate::TokenBucket;
use crate::topic::{Data, Member, Topic};
use crate::ws::CloseCode;

/// The longest the server waits for a `pusher:pong` after its ping (Pusher's
/// recommendation), in milliseconds; shorter when the activity timeout is.
pub const PONG_TIMEOUT_MS: u64 = 30_000;

/// The most channels one connection may subscribe to (as `/ws`'s default
/// `max_subscriptions`); more are refused with `LimitReached`.
pub const MAX_CHANNELS: usize = 1000;

/// What the session asks its driver to do, in order.
#[derive(Debug)]
pub enum PusherAction<H> {
    /// Send this text frame.
    Send(String),
    /// The next frame refuses something (for the metrics): a Pusher error code
    /// or, for a subscription, its `status`; 400 for a code-less `pusher:error`.
    Rejected(u16),
    /// Ask the hub to subscribe the connection to `topic` (step 1), delivering
    /// `channel`'s pushes; answer with [`PusherSession::subscribed`].
    Subscribe {
        /// The channel.
        channel: Channel,
        /// Its topic.
        topic: Topic,
        /// Who joins, on a presence channel.
        member: Option<Member>,
    },
    /// Ask the hub who is present on `topic`; answer with
    /// [`PusherSession::members`].
    Members {
        /// The topic.
        topic: Topic,
    },
    /// Switch the pending subscription to live delivery (step 2), its presence
    /// events judged by `roster` on a presence channel; answer with
    /// [`PusherSession::went_live`].
    GoLive {
        /// The roster of a presence channel.
        roster: Option<Roster>,
    },
    /// Drop the pending subscription: it was refused.
    Abandon,
    /// Drop this live subscription of `channel`: it has ended. On a presence
    /// channel, `user` is who leaves (the driver tells the webhooks when that
    /// was the user's last connection in the channel).
    Unsubscribe {
        /// The channel.
        channel: Channel,
        /// The handle.
        handle: H,
        /// The user leaving a presence channel.
        user: Option<Arc<str>>,
    },
    /// Ask the hub to publish; answer with [`PusherSession::published`].
    Publish {
        /// The topic.
        topic: Topic,
        /// The envelope.
        data: Data,
    },
    /// Tell the app's webhooks.
    Notify(Notice),
    /// Start the close handshake with `code` and `reason` (after what is queued).
    Close {
        /// The close code.
        code: CloseCode,
        /// The reason.
        reason: String,
    },
    /// The session is over.
    End,
}

/// A live subscription: the driver's handle and, on presence channels, the user.
#[derive(Debug)]
struct Joined<H> {
    handle: H,
    user: Option<Arc<str>>,
}

/// The hub request the session waits for the answer to.
#[derive(Debug)]
enum Waiting {
    /// `silent`: the server's own subscription (the user channel), not answered.
    Subscribe {
        channel: Channel,
        user: Option<Arc<str>>,
        info: Option<Data>,
        silent: bool,
    },
    Members {
        channel: Channel,
        user: Arc<str>,
        info: Option<Data>,
    },
    GoLive {
        channel: Channel,
        user: Option<Arc<str>>,
    },
    Publish {
        channel: Channel,
    },
}

/// One Pusher connection; `H` is the driver's handle of a live subscription.
pub struct PusherSession<H> {
    socket_id: SocketId,
    app: Arc<PusherApp>,
    channels: BTreeMap<Channel, Joined<H>>,
    bucket: TokenBucket,
    /// The signed-in user.
    user: Option<Arc<str>>,
    /// When the last message arrived (ms).
    seen: u64,
    /// When the server pinged and waits for any answer (ms; 0: not waiting).
    pinged: u64,
    waiting: Option<Box<Waiting>>,
    #[allow(clippy::box_collection)] // deliberate: 8 bytes instead of 32 when idle
    actions: Option<Box<VecDeque<PusherAction<H>>>>,
}

impl<H> std::fmt::Debug for PusherSession<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PusherSession")
            .field("socket_id", &self.socket_id)
            .field("app", &self.app.id)
            .field("channels", &self.channels.len())
            .finish_non_exhaustive()
    }
}

/// A `pusher:error` frame; `code` `None` writes `null`.
pub fn error_frame(code: Option<u16>, message: &str) -> String {
    serde_json::json!({"event": "pusher:error", "data": {"code": code, "message": message}})
        .to_string()
}

/// A message from the client.
#[derive(Deserialize)]
struct Incoming<'a> {
    event: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct SubscribeData {
    channel: String,
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    channel_data: Option<String>,
}

#[derive(Deserialize)]
struct ChannelData<'a> {
    user_id: Option<serde_json::Value>,
    #[serde(borrow, default)]
    user_info: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct SigninData {
    auth: String,
    user_data: String,
}

/// Reads an event's data as `T`, whether it came as an object or as a JSON
/// string holding one.
fn data_as<T: serde::de::DeserializeOwned>(data: Option<&RawValue>) -> Option<T> {
    let raw = data?.get();
    match serde_json::from_str::<T>(raw) {
        Ok(value) => Some(value),
        Err(_) => {
            let text: String = serde_json::from_str(raw).ok()?;
            serde_json::from_str(&text).ok()
        }
    }
}

impl<H> PusherSession<H> {
    /// A session for a connection of `app` just opened with the query's
    /// `protocol`, at `now` (ms): its first action sends
    /// `pusher:connection_established`, or refuses the connection.
    pub fn open(
        socket_id: SocketId,
        app: Arc<PusherApp>,
        protocol: Option<&str>,
        now: u64,
    ) -> Self {
        let mut session = Self {
            socket_id,
            app,
            channels: BTreeMap::new(),
            bucket: TokenBucket::full(),
            user: None,
            seen: now,
            pinged: 0,
            waiting: None,
            actions: None,
        };
        let refusal = match protocol.map(str::parse::<u32>) {
            None => Some((4008, "No protocol version supplied")),
            Some(Err(_)) => Some((4006, "Invalid version string format")),
            Some(Ok(5..=7)) => None,
            Some(Ok(_)) => Some((4007, "Unsupported protocol version")),
        };
        let refusal =
            refusal.or((!session.app.enabled).then_some((4003, "Application is disabled")));
        if let Some((code, message)) = refusal {
            session.refuse(code, message);
            return session;
        }
        let data = serde_json::json!({
            "socket_id": session.socket_id.as_str(),
            "activity_timeout": session.app.limits.activity_timeout,
        })
        .to_string();
        session.send(
            serde_json::json!({"event": "pusher:connection_established", "data": data}).to_string(),
        );
        session
    }

    /// Sends `pusher:error` (`code` `None`: `null`).
    fn error(&mut self, code: Option<u16>, message: &str) {
        self.act(PusherAction::Rejected(code.unwrap_or(400)));
        self.send(error_frame(code, message));
    }

    /// Sends `pusher:error` `code` and closes with it.
    fn refuse(&mut self, code: u16, message: &str) {
        self.error(Some(code), message);
        self.act(PusherAction::Close {
            code: CloseCode(code),
            reason: message.to_owned(),
        });
        self.act(PusherAction::End);
    }

    /// The socket id.
    pub fn socket_id(&self) -> &SocketId {
        &self.socket_id
    }

    /// The app.
    pub fn app(&self) -> &Arc<PusherApp> {
        &self.app
    }

    /// The next thing to do, in order; `None` until the next event.
    pub fn poll_action(&mut self) -> Option<PusherAction<H>> {
        let queue = self.actions.as_mut()?;
        let action = queue.pop_front();
        if queue.is_empty() {
            self.actions = None;
        }
        action
    }

    /// How many channels are subscribed.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// The live subscriptions' handles, taken out (for a driver that ends the
    /// connection), each with its channel and, on presence channels, its user.
    pub fn take_all(&mut self) -> Vec<(Channel, H, Option<Arc<str>>)> {
        std::mem::take(&mut self.channels)
            .into_iter()
            .map(|(channel, joined)| (channel, joined.handle, joined.user))
            .collect()
    }

    fn activity_ms(&self) -> u64 {
        u64::from(self.app.limits.activity_timeout).saturating_mul(1000)
    }

    /// When [`tick`](Self::tick) must be called next (ms).
    pub fn deadline(&self) -> u64 {
        if self.pinged != 0 {
            self.pinged
                .saturating_add(PONG_TIMEOUT_MS.min(self.activity_ms()))
        } else {
            self.seen.saturating_add(self.activity_ms())
        }
    }

    /// The time is `now` (ms): pings a quiet client, closes one that did not
    /// answer the ping with 4201.
    pub fn tick(&mut self, now: u64) {
        if now < self.deadline() {
            return;
        }
        if self.pinged == 0 {
            self.pinged = now.max(1);
            self.send(r#"{"event":"pusher:ping","data":{}}"#.to_owned());
        } else {
            self.refuse(4201, "Pong reply not received");
        }
    }

    fn heard(&mut self, now: u64) {
        self.seen = now;
        self.pinged = 0;
    }

    /// A binary message: Pusher's protocol is text.
    pub fn receive_binary(&mut self, now: u64) {
        self.heard(now);
        self.error(None, "Binary frames are not supported");
    }

    /// A text message, at `ticks` (a `crate::clock::ticks` reading, for the rate
    /// of client events) and `now` (ms, for the activity timeout).
    pub fn receive_text(&mut self, text: &str, ticks: u32, now: u64) {
        self.heard(now);
        let Ok(incoming) = serde_json::from_str::<Incoming<'_>>(text) else {
            return self.error(
                None,
                "Invalid message: send a JSON object with an \"event\"",
            );
        };
        match incoming.event.as_str() {
            "pusher:ping" => self.send(r#"{"event":"pusher:pong","data":{}}"#.to_owned()),
            "pusher:pong" => {}
            "pusher:subscribe" => match data_as::<SubscribeData>(incoming.data) {
                Some(data) => self.subscribe(data),
                None => self.error(None, "pusher:subscribe needs data {\"channel\":…}"),
            },
            "pusher:unsubscribe" => {
                #[derive(Deserialize)]
                struct Unsubscribe {
                    channel: String,
                }
                match data_as::<Unsubscribe>(incoming.data) {
                    Some(data) => self.unsubscribe(&data.channel),
                    None => self.error(None, "pusher:unsubscribe needs data {\"channel\":…}"),
                }
            }
            "pusher:signin" => match data_as::<SigninData>(incoming.data) {
                Some(data) => self.signin(data),
                None => self.error(
                    Some(4009),
                    "pusher:signin needs data {\"auth\":…,\"user_data\":…}",
                ),
            },
            event if event.starts_with("client-") => {
                self.client_event(event, incoming.channel.as_deref(), incoming.data, ticks);
            }
            event => self.error(None, &format!("Unsupported event {event:?}")),
        }
    }

    fn subscription_error(&mut self, channel: &str, kind: &str, error: &str, status: u16) {
        self.act(PusherAction::Rejected(status));
        self.send(
            serde_json::json!({
                "event": "pusher:subscription_error",
                "channel": channel,
                "data": {"type": kind, "error": error, "status": status},
            })
            .to_string(),
        );
    }

    fn subscribe(&mut self, data: SubscribeData) {
        let name = data.channel.as_str();
        let channel = match Channel::parse(name) {
            Ok(channel) if self.app.fits(&channel) => channel,
            Ok(_) => {
                let max = self.app.limits.max_channel_name;
                return self.subscription_error(
                    name,
                    "InvalidChannel",
                    &format!("Channel names have at most {max} characters"),
                    4009,
                );
            }
            Err(err) => {
                return self.subscription_error(name, "InvalidChannel", &err.to_string(), 4009);
            }
        };
        if channel.kind() == ChannelKind::User {
            // The server subscribed the connection at sign-in; pusher-js asks
            // too, without auth.
            let own = self
                .user
                .as_ref()
                .and_then(|user| Channel::for_user(user).ok())
                .is_some_and(|own| own == channel);
            if own && self.channels.contains_key(&channel) {
                return self.succeeded(&channel, "{}");
            }
            return self.subscription_error(
                name,
                "AuthError",
                "Only the signed-in user subscribes to its own channel",
                403,
            );
        }
        if self.channels.contains_key(&channel) {
            if channel.kind() != ChannelKind::Presence {
                self.succeeded(&channel, "{}");
            }
            return;
        }
        if self.channels.len() >= MAX_CHANNELS {
            return self.subscription_error(
                name,
                "LimitReached",
                &format!("At most {MAX_CHANNELS} channels per connection"),
                4100,
            );
        }
        let mut member = None;
        let mut user = None;
        let mut info = None;
        if PusherApp::needs_auth(&channel) {
            let signed = match &data.channel_data {
                None => format!("{}:{}", self.socket_id, channel),
                Some(extra) => format!("{}:{}:{}", self.socket_id, channel, extra),
            };
            let valid = data
                .auth
                .as_deref()
                .is_some_and(|auth| verify_auth(&self.app.key, &self.app.secret, &signed, auth));
            if !valid {
                let error = if data.auth.is_none() {
                    "Subscribing to this channel needs an auth signature"
                } else {
                    "Invalid signature: expected the HMAC-SHA256 hex digest of \
                     socket_id:channel[:channel_data] with the app's secret"
                };
                return self.subscription_error(name, "AuthError", error, 401);
            }
        }
        if channel.kind() == ChannelKind::Presence {
            match self.presence_member(data.channel_data.as_deref()) {
                Ok(joining) => {
                    user = joining.user.clone();
                    info = joining.info.clone();
                    member = Some(joining);
                }
                Err(error) => return self.subscription_error(name, "AuthError", &error, 401),
            }
        }
        self.wait(Waiting::Subscribe {
            channel: channel.clone(),
            user,
            info,
            silent: false,
        });
        let topic = self.app.topic(&channel);
        self.act(PusherAction::Subscribe {
            channel,
            topic,
            member,
        });
    }

    fn socket_id_arc(&self) -> Arc<str> {
        Arc::from(self.socket_id.as_str())
    }

    /// The member a presence subscription's `channel_data` makes.
    fn presence_member(&self, channel_data: Option<&str>) -> Result<Member, String> {
        let text = channel_data.ok_or("A presence channel needs channel_data")?;
        let data: ChannelData<'_> = serde_json::from_str(text)
            .map_err(|_| "channel_data must be a JSON object".to_owned())?;
        let user = match data.user_id {
            Some(serde_json::Value::String(id)) if !id.is_empty() => id,
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => return Err("channel_data needs a user_id (a non-empty string)".to_owned()),
        };
        let info = match data.user_info {
            Some(info) if info.get().len() > self.app.limits.max_user_info => {
                return Err(format!(
                    "user_info is {} bytes; at most {} allowed",
                    info.get().len(),
                    self.app.limits.max_user_info
                ));
            }
            Some(info) => Some(
                Data::json(info.get().to_owned())
                    .map_err(|err| format!("user_info is not usable JSON: {err}"))?,
            ),
            None => None,
        };
        Ok(Member {
            client: self.socket_id_arc(),
            user: Some(Arc::from(user)),
            info,
        })
    }

    fn succeeded(&mut self, channel: &Channel, data: &str) {
        self.send(
            serde_json::json!({
                "event": "pusher_internal:subscription_succeeded",
                "channel": channel.as_str(),
                "data": data,
            })
            .to_string(),
        );
    }

    /// The hub's answer to [`PusherAction::Subscribe`].
    pub fn subscribed(&mut self, result: Result<(), BrokerError>) {
        let Some(Waiting::Subscribe {
            channel,
            user,
            info,
            silent,
        }) = self.take_waiting()
        else {
            return;
        };
        if let Err(err) = result {
            if !silent {
                self.subscription_error(channel.as_str(), "ServerError", &err.to_string(), 503);
            }
            return self.act(PusherAction::Abandon);
        }
        match (channel.kind(), user) {
            (ChannelKind::Presence, Some(user)) => {
                let topic = self.app.topic(&channel);
                self.wait(Waiting::Members {
                    channel,
                    user,
                    info,
                });
                self.act(PusherAction::Members { topic });
            }
            _ => {
                if !silent {
                    self.succeeded(&channel, "{}");
                }
                self.wait(Waiting::GoLive {
                    channel,
                    user: None,
                });
                self.act(PusherAction::GoLive { roster: None });
            }
        }
    }

    /// The hub's answer to [`PusherAction::Members`]: who was on the presence
    /// channel before this connection joined.
    pub fn members(&mut self, result: Result<Vec<Member>, BrokerError>) {
        let Some(Waiting::Members {
            channel,
            user,
            info,
        }) = self.take_waiting()
        else {
            return;
        };
        let members = match result {
            Ok(members) => members,
            Err(err) => {
                self.subscription_error(channel.as_str(), "ServerError", &err.to_string(), 503);
                return self.act(PusherAction::Abandon);
            }
        };
        let me = self.socket_id_arc();
        // Without this connection (it is not live yet, but a retry may linger).
        let others: Vec<Member> = members.into_iter().filter(|m| m.client != me).collect();
        let mut roster = Roster::new(&others);
        let new_user = !roster.has(&user);
        let max = self.app.limits.max_presence_members;
        if new_user && roster.count() >= max {
            self.subscription_error(
                channel.as_str(),
                "LimitReached",
                &format!("The presence channel is full: at most {max} members"),
                4100,
            );
            return self.act(PusherAction::Abandon);
        }
        // This connection's own join, with the info it gave (when the user was
        // present already, the info of its first connection stays).
        roster.join(&Member {
            client: me,
            user: Some(Arc::clone(&user)),
            info,
        });
        self.succeeded(&channel, &roster.subscription_data());
        if new_user {
            self.act(PusherAction::Notify(Notice::MemberAdded {
                channel: channel.clone(),
                user_id: user.to_string(),
            }));
        }
        self.wait(Waiting::GoLive {
            channel,
            user: Some(user),
        });
        self.act(PusherAction::GoLive {
            roster: Some(roster),
        });
    }

    /// The hub's answer to [`PusherAction::GoLive`]: the live subscription's
    /// handle, or [`Lagged`] (the connection was closed as a slow consumer).
    pub fn went_live(&mut self, result: Result<H, Lagged>) {
        let Some(Waiting::GoLive { channel, user }) = self.take_waiting() else {
            return;
        };
        match result {
            Ok(handle) => {
                self.channels.insert(channel, Joined { handle, user });
            }
            Err(Lagged) => self.act(PusherAction::End),
        }
    }

    fn unsubscribe(&mut self, name: &str) {
        let Ok(channel) = Channel::parse(name) else {
            return;
        };
        if channel.kind() == ChannelKind::User {
            // The user channel is the server's: it lasts as long as the sign-in.
            return;
        }
        // Pusher answers nothing, not even for a channel not subscribed.
        if let Some(joined) = self.channels.remove(&channel) {
            self.act(PusherAction::Unsubscribe {
                channel,
                handle: joined.handle,
                user: joined.user,
            });
        }
    }

    fn client_event(
        &mut self,
        event: &str,
        channel: Option<&str>,
        data: Option<&RawValue>,
        ticks: u32,
    ) {
        let limits = &self.app.limits;
        let refusal = if !self.app.client_events {
            Some("Client events are not enabled for this app".to_owned())
        } else if event.len() > limits.max_event_name {
            Some(format!(
                "Event names have at most {} characters",
                limits.max_event_name
            ))
        } else {
            None
        };
        if let Some(message) = refusal {
            return self.error(None, &message);
        }
        let Some((channel, joined)) = channel
            .and_then(|name| Channel::parse(name).ok())
            .and_then(|channel| self.channels.get_key_value(&channel))
        else {
            return self.error(
                None,
                "Client events go to a channel this connection subscribed to",
            );
        };
        if !matches!(channel.kind(), ChannelKind::Private | ChannelKind::Presence) {
            return self.error(
                None,
                "Client events are allowed on private- and presence- channels only \
                 (not public or private-encrypted-)",
            );
        }
        let data = data.map_or("null", RawValue::get);
        if data.len() > limits.max_event_size {
            let max = limits.max_event_size;
            return self.error(
                None,
                &format!("Event data is {} bytes; at most {max} allowed", data.len()),
            );
        }
        let rate = limits.max_client_events_per_second;
        if rate > 0 && !self.bucket.try_take(rate, ticks) {
            return self.error(
                Some(4301),
                &format!("Client event rejected: at most {rate} per second"),
            );
        }
        let (channel, user) = (channel.clone(), joined.user.clone());
        let Some(mut envelope) = Envelope::new(event, data) else {
            return self.error(None, "Event data is not JSON");
        };
        envelope.user_id = user.as_deref().map(str::to_owned);
        envelope.exclude = Some(self.socket_id.as_str().to_owned());
        let published = match envelope.to_data() {
            Ok(published) => published,
            Err(err) => return self.error(None, &format!("Event data refused: {err}")),
        };
        let topic = self.app.topic(&channel);
        self.wait(Waiting::Publish {
            channel: channel.clone(),
        });
        self.act(PusherAction::Publish {
            topic,
            data: published,
        });
        self.act(PusherAction::Notify(Notice::ClientEvent {
            channel,
            event: event.to_owned(),
            data: data.to_owned(),
            socket_id: self.socket_id.as_str().to_owned(),
            user_id: user.as_deref().map(str::to_owned),
        }));
    }

    /// The hub's answer to [`PusherAction::Publish`].
    pub fn published(&mut self, result: Result<(), PublishError>) {
        let Some(Waiting::Publish { channel }) = self.take_waiting() else {
            return;
        };
        if let Err(err) = result {
            self.error(
                None,
                &format!("Client event on {channel} not delivered: {err}"),
            );
        }
    }

    fn signin(&mut self, data: SigninData) {
        let text = format!("{}::user::{}", self.socket_id, data.user_data);
        if !verify_auth(&self.app.key, &self.app.secret, &text, &data.auth) {
            return self.error(
                Some(4009),
                "Invalid signature: expected the HMAC-SHA256 hex digest of \
                 socket_id::user::user_data with the app's secret",
            );
        }
        #[derive(Deserialize)]
        struct UserData {
            id: serde_json::Value,
        }
        let id = match serde_json::from_str::<UserData>(&data.user_data).map(|u| u.id) {
            Ok(serde_json::Value::String(id)) if !id.is_empty() => id,
            _ => {
                return self.error(
                    Some(4009),
                    "user_data must be a JSON object with a non-empty string id",
                );
            }
        };
        let Ok(channel) = Channel::for_user(&id)
            .map_err(|_| ())
            .and_then(|c| if self.app.fits(&c) { Ok(c) } else { Err(()) })
        else {
            return self.error(
                Some(4009),
                "The user id must be characters of channel names (A-Z a-z 0-9 _ - = @ , . ;)",
            );
        };
        // A second sign-in replaces the first.
        let previous = self
            .user
            .take()
            .and_then(|old| Channel::for_user(&old).ok());
        if let Some(old) = previous
            && let Some(joined) = self.channels.remove(&old)
        {
            self.act(PusherAction::Unsubscribe {
                channel: old,
                handle: joined.handle,
                user: None,
            });
        }
        self.user = Some(Arc::from(id));
        self.send(
            serde_json::json!({
                "event": "pusher:signin_success",
                "data": {"user_data": data.user_data},
            })
            .to_string(),
        );
        self.wait(Waiting::Subscribe {
            channel: channel.clone(),
            user: None,
            info: None,
            silent: true,
        });
        let topic = self.app.topic(&channel);
        self.act(PusherAction::Subscribe {
            channel,
            topic,
            member: None,
        });
    }

    fn act(&mut self, action: PusherAction<H>) {
        self.actions.get_or_insert_default().push_back(action);
    }

    fn send(&mut self, text: String) {
        self.act(PusherAction::Send(text));
    }

    fn wait(&mut self, waiting: Waiting) {
        self.waiting = Some(Box::new(waiting));
    }

    fn take_waiting(&mut self) -> Option<Waiting> {
        self.waiting.take().map(|waiting| *waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interop::pusher::signature::sign;
    use crate::interop::pusher::socket_id::SocketIds;
    use serde_json::json;

    fn app(options: &str) -> Arc<PusherApp> {
        Arc::new(
            PusherApp::parse(&format!("1:key:secret{options}")).unwrap_or_else(|e| panic!("{e}")),
        )
    }

    fn open(options: &str) -> PusherSession<u32> {
        let mut session =
            PusherSession::open(SocketIds::new().next_id(), app(options), Some("7"), 0);
        let sent = drain(&mut session);
        assert!(
            sent[0].contains("pusher:connection_established"),
            "{sent:?}"
        );
        session
    }

    /// The frames sent, answering the hub as a driver would (success, nobody
    /// present, handle 1).
    fn drain(session: &mut PusherSession<u32>) -> Vec<String> {
        let mut sent = Vec::new();
        for _ in 0..100 {
            let Some(action) = session.poll_action() else {
                return sent;
            };
            match action {
                PusherAction::Send(text) => sent.push(text),
                PusherAction::Subscribe { .. } => session.subscribed(Ok(())),
                PusherAction::Members { .. } => session.members(Ok(Vec::new())),
                PusherAction::GoLive { .. } => session.went_live(Ok(1)),
                PusherAction::Publish { .. } => session.published(Ok(())),
                PusherAction::Close { code, .. } => sent.push(format!("close {}", code.0)),
                _ => {}
            }
        }
        panic!("endless actions");
    }

    fn auth(session: &PusherSession<u32>, text: &str) -> String {
        format!(
            "key:{}",
            sign("secret", &format!("{}:{text}", session.socket_id()))
        )
    }

    #[test]
    fn refusals_come_with_their_code_and_a_close() {
        for (protocol, options, code) in [
            (None, "", "4008"),
            (Some("seven"), "", "4006"),
            (Some("8"), "", "4007"),
            (Some("7"), "?enabled=false", "4003"),
        ] {
            let mut session: PusherSession<u32> =
                PusherSession::open(SocketIds::new().next_id(), app(options), protocol, 0);
            let sent = drain(&mut session);
            assert!(sent[0].contains(&format!("\"code\":{code}")), "{sent:?}");
            assert_eq!(sent[1], format!("close {code}"));
        }
    }

    #[test]
    fn silence_brings_a_ping_then_4201() {
        let mut session = open("?activity-timeout=10");
        assert_eq!(session.deadline(), 10_000);
        session.tick(9_999);
        assert!(drain(&mut session).is_empty());
        session.tick(10_000);
        assert_eq!(
            drain(&mut session),
            [r#"{"event":"pusher:ping","data":{}}"#]
        );
        assert_eq!(
            session.deadline(),
            20_000,
            "the pong wait is at most the activity timeout"
        );
        session.receive_text(r#"{"event":"pusher:pong","data":{}}"#, 0, 15_000);
        assert_eq!(session.deadline(), 25_000, "any message counts as activity");
        session.tick(25_000);
        drain(&mut session);
        session.tick(35_000);
        let sent = drain(&mut session);
        assert!(
            sent[0].contains("4201") && sent[1] == "close 4201",
            "{sent:?}"
        );
    }

    #[test]
    fn private_subscriptions_check_the_signature() {
        let mut session = open("");
        let good = auth(&session, "private-a");
        session.receive_text(
            &json!({"event": "pusher:subscribe", "data": {"channel": "private-a", "auth": good}})
                .to_string(),
            0,
            1,
        );
        let sent = drain(&mut session);
        assert!(sent[0].contains("subscription_succeeded"), "{sent:?}");
        session.receive_text(
            &json!({"event": "pusher:subscribe", "data": {"channel": "private-b", "auth": good}})
                .to_string(),
            0,
            1,
        );
        let sent = drain(&mut session);
        assert!(
            sent[0].contains("\"AuthError\"") && sent[0].contains("401"),
            "{sent:?}"
        );
        assert_eq!(session.channel_count(), 1);
    }

    #[test]
    fn presence_needs_a_user_id_and_small_user_info() {
        let mut session = open("");
        for channel_data in [
            json!({"user_info": {}}).to_string(),
            json!({"user_id": ""}).to_string(),
            json!({"user_id": "a", "user_info": "x".repeat(2000)}).to_string(),
        ] {
            let signed = auth(&session, &format!("presence-a:{channel_data}"));
            session.receive_text(
                &json!({"event": "pusher:subscribe", "data": {"channel": "presence-a", "auth": signed, "channel_data": channel_data}}).to_string(),
                0,
                1,
            );
            let sent = drain(&mut session);
            assert!(sent[0].contains("subscription_error"), "{sent:?}");
        }
        let channel_data = json!({"user_id": 7}).to_string();
        let signed = auth(&session, &format!("presence-a:{channel_data}"));
        session.receive_text(
            &json!({"event": "pusher:subscribe", "data": {"channel": "presence-a", "auth": signed, "channel_data": channel_data}}).to_string(),
            0,
            1,
        );
        let sent = drain(&mut session);
        assert!(
            sent[0].contains(r#"\"ids\":[\"7\"]"#),
            "a numeric id is its text: {sent:?}"
        );
    }

    #[test]
    fn client_events_are_checked_then_published_excluding_the_sender() {
        let mut session = open("?client-events=true&max-client-events-per-second=2");
        let good = auth(&session, "private-a");
        session.receive_text(
            &json!({"event": "pusher:subscribe", "data": {"channel": "private-a", "auth": good}})
                .to_string(),
            0,
            1,
        );
        drain(&mut session);
        let event =
            json!({"event": "client-x", "channel": "private-a", "data": {"a": 1}}).to_string();
        session.receive_text(&event, 0, 1);
        let mut published = None;
        while let Some(action) = session.poll_action() {
            if let PusherAction::Publish { data, .. } = action {
                published = Some(data);
                session.published(Ok(()));
            }
        }
        let envelope = published
            .and_then(|data| Envelope::read(&data))
            .unwrap_or_else(|| panic!("published"));
        assert_eq!(envelope.event, "client-x");
        assert_eq!(envelope.data.get(), r#"{"a":1}"#);
        assert_eq!(
            envelope.exclude.as_deref(),
            Some(session.socket_id().as_str())
        );
        session.receive_text(&event, 0, 1);
        drain(&mut session);
        session.receive_text(&event, 0, 1);
        let sent = drain(&mut session);
        assert!(
            sent[0].contains("4301"),
            "the third within a second: {sent:?}"
        );
        let public = json!({"event": "client-x", "channel": "news", "data": {}}).to_string();
        session.receive_text(&public, 2000, 1);
        assert!(drain(&mut session)[0].contains("pusher:error"));
    }

    #[test]
    fn a_client_event_nested_too_deep_is_refused_and_not_published() {
        let mut session = open("?client-events=true");
        let good = auth(&session, "private-a");
        session.receive_text(
            &json!({"event": "pusher:subscribe", "data": {"channel": "private-a", "auth": good}})
                .to_string(),
            0,
            1,
        );
        drain(&mut session);
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let event = format!(r#"{{"event":"client-x","channel":"private-a","data":{deep}}}"#);
        session.receive_text(&event, 0, 1);
        let mut sent = Vec::new();
        while let Some(action) = session.poll_action() {
            match action {
                PusherAction::Publish { .. } => panic!("a too deep event was published"),
                PusherAction::Send(text) => sent.push(text),
                _ => {}
            }
        }
        assert!(
            sent.len() == 1 && sent[0].contains("pusher:error") && sent[0].contains("nest"),
            "{sent:?}"
        );
        assert_eq!(session.channel_count(), 1, "the connection carries on");
    }

    #[test]
    fn client_events_are_refused_on_encrypted_channels() {
        let mut session = open("?client-events=true");
        let good = auth(&session, "private-encrypted-a");
        let subscribe = json!({"event": "pusher:subscribe", "data": {"channel": "private-encrypted-a", "auth": good}});
        session.receive_text(&subscribe.to_string(), 0, 1);
        assert!(drain(&mut session)[0].contains("subscription_succeeded"));
        let event = json!({"event": "client-x", "channel": "private-encrypted-a", "data": {}});
        session.receive_text(&event.to_string(), 0, 1);
        let sent = drain(&mut session);
        assert!(sent[0].contains("private-encrypted-"), "{sent:?}");
    }

    #[test]
    fn signin_checks_the_signature_then_subscribes_the_user_channel() {
        let mut session = open("");
        let user_data = json!({"id": "ann"}).to_string();
        let signed = format!(
            "key:{}",
            sign(
                "secret",
                &format!("{}::user::{user_data}", session.socket_id())
            )
        );
        let bad =
            json!({"event": "pusher:signin", "data": {"auth": "key:00", "user_data": user_data}});
        session.receive_text(&bad.to_string(), 0, 1);
        assert!(drain(&mut session)[0].contains("4009"));
        let good =
            json!({"event": "pusher:signin", "data": {"auth": signed, "user_data": user_data}});
        session.receive_text(&good.to_string(), 0, 1);
        let mut topic = None;
        while let Some(action) = session.poll_action() {
            match action {
                PusherAction::Subscribe {
                    topic: t, member, ..
                } => {
                    assert!(member.is_none());
                    topic = Some(t);
                    session.subscribed(Ok(()));
                }
                PusherAction::GoLive { roster } => {
                    assert!(roster.is_none());
                    session.went_live(Ok(1));
                }
                PusherAction::Send(text) => assert!(text.contains("signin_success"), "{text}"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            topic.map(|t| t.to_string()),
            Some(String::from("1:/23server-to-user-ann"))
        );
        // pusher-js subscribes to it too; another user's is refused.
        let own = json!({"event": "pusher:subscribe", "data": {"channel": "#server-to-user-ann", "auth": ""}});
        session.receive_text(&own.to_string(), 0, 1);
        assert!(drain(&mut session)[0].contains("subscription_succeeded"));
        let other =
            json!({"event": "pusher:subscribe", "data": {"channel": "#server-to-user-bob"}});
        session.receive_text(&other.to_string(), 0, 1);
        assert!(drain(&mut session)[0].contains("subscription_error"));
    }

    #[test]
    fn a_connection_holds_at_most_max_channels() {
        let mut session = open("");
        for n in 0..=MAX_CHANNELS {
            let subscribe =
                json!({"event": "pusher:subscribe", "data": {"channel": format!("c{n}")}});
            session.receive_text(&subscribe.to_string(), 0, 1);
            let sent = drain(&mut session);
            let wanted = if n < MAX_CHANNELS {
                "subscription_succeeded"
            } else {
                "LimitReached"
            };
            assert!(sent[0].contains(wanted), "{n}: {sent:?}");
        }
        assert_eq!(session.channel_count(), MAX_CHANNELS);
    }

    #[test]
    fn client_events_need_the_app_to_allow_them() {
        let mut session = open("");
        let event = json!({"event": "client-x", "channel": "private-a", "data": {}}).to_string();
        session.receive_text(&event, 0, 1);
        let sent = drain(&mut session);
        assert!(sent[0].contains("not enabled"), "{sent:?}");
    }

    #[test]
    fn garbage_is_answered_not_closed() {
        let mut session = open("");
        for text in [
            "",
            "[]",
            "{\"event\":1}",
            "{\"event\":\"pusher:nope\"}",
            "{\"event\":\"pusher:subscribe\"}",
        ] {
            session.receive_text(text, 0, 1);
            let sent = drain(&mut session);
            assert_eq!(sent.len(), 1, "{text}: {sent:?}");
            assert!(
                sent[0].contains("pusher:error") && sent[0].contains(r#""code":null"#),
                "{sent:?}"
            );
        }
    }
}
