//! The tokio driver of one Pusher connection (`/app/{key}`): it owns the socket,
//! calls the hub, keeps the clock, and feeds it all to the sans-IO
//! [`PusherSession`] (`session.rs`), carrying out its actions in order, as
//! `crate::session` does for `/ws`.
//!
//! Live pushes do not pass through here: each subscription has a
//! [`ChannelSink`] that the hub offers pushes to. It queues the push's Pusher
//! frame, encoded once for every subscriber of the topic
//! ([`PusherFrame::of`]), skips pushes that exclude this socket, turns presence
//! joins and leaves into `member_added` / `member_removed` as the subscription's
//! [`Roster`] judges them, and on the user channel closes the connection when
//! [`TERMINATE_EVENT`] arrives. A full outbound queue closes the connection as a
//! slow consumer (4100: pusher-js reconnects after a back-off).

use std::sync::{Arc, Mutex};

use super::channel::{Channel, ChannelKind};
use super::context::Pusher;
use super::event::{PusherFrame, TERMINATE_EVENT, frame_text};
use super::notice::Notice;
use super::roster::Roster;
use super::session::{PusherAction, PusherSession, error_frame};
use super::socket_id::SocketId;
use crate::clock::{ticks, unix_millis, until_millis};
use crate::hub::{Hub, Lagged, Pending, Sink, Subscription};
use crate::ops::{Metrics, Rejection};
use crate::protocol::session::{MESSAGES_LOST, SLOW_CONSUMER};
use crate::sync::lock;
use crate::topic::{Push, PushKind};
use crate::ws::{CloseCode, Message, Sender, Socket, TrySendError};

/// Pusher's "over capacity" close: pusher-js reconnects after a back-off.
const CLOSE_SLOW: CloseCode = CloseCode(4100);
/// Pusher's generic "reconnect now" close.
const CLOSE_RECONNECT: CloseCode = CloseCode(4200);
/// The close of a connection terminated by the app (pusher-js does not reconnect).
const CLOSE_TERMINATED: CloseCode = CloseCode(4009);

/// One subscription of one Pusher connection as the hub sees it.
struct ChannelSink {
    sender: Sender,
    socket_id: SocketId,
    channel: Channel,
    metrics: Option<Arc<Metrics>>,
    /// On presence channels: the members as this connection shows them.
    roster: Option<Mutex<Roster>>,
}

impl ChannelSink {
    fn queued(&self, result: Result<(), TrySendError>) -> bool {
        match result {
            Ok(()) => true,
            Err(TrySendError::Full) => {
                self.lagged();
                false
            }
            Err(TrySendError::Closed) => false,
        }
    }

    fn member_event(&self, push: &Push, joined: bool) -> bool {
        let Some(roster) = &self.roster else {
            return true;
        };
        let (PushKind::Join(member) | PushKind::Leave(member)) = push.kind() else {
            return true;
        };
        let event = {
            let mut roster = lock(roster);
            if joined {
                roster
                    .join(member)
                    .map(|user| ("pusher_internal:member_added", roster.added_data(&user)))
            } else {
                roster.leave(member).map(|user| {
                    (
                        "pusher_internal:member_removed",
                        Roster::removed_data(&user),
                    )
                })
            }
        };
        let Some((event, data)) = event else {
            return true;
        };
        let data = serde_json::Value::String(data).to_string();
        let text = frame_text(event, &self.channel, &data, None);
        self.queued(self.sender.try_send(Message::Text(text)))
    }

    /// Whether `user` has a connection in this presence channel besides this one.
    fn others_of(&self, user: &str) -> bool {
        self.roster
            .as_ref()
            .is_some_and(|roster| lock(roster).has_other(user, self.socket_id.as_str()))
    }
}

impl Sink for ChannelSink {
    fn push(&self, push: &Arc<Push>) -> bool {
        match push.kind() {
            PushKind::Join(_) => return self.member_event(push, true),
            PushKind::Leave(_) => return self.member_event(push, false),
            PushKind::Message { .. } => {}
        }
        let frame = PusherFrame::of(push, &self.channel);
        if !frame.is_for(self.socket_id.as_str()) {
            return true;
        }
        if &*frame.event == TERMINATE_EVENT {
            if self.channel.kind() == ChannelKind::User {
                tracing::info!(socket_id = %self.socket_id, "pusher connection terminated by the app");
                let message = "Connection terminated by the app";
                let _ = self.sender.try_send(error_frame(Some(4009), message));
                self.sender.close(CLOSE_TERMINATED, message);
                return false;
            }
            // Only a user channel carries it; elsewhere it is nobody's business.
            return true;
        }
        match &frame.frame {
            Some(prepared) => self.queued(self.sender.try_send_prepared(prepared)),
            None => true,
        }
    }

    fn lagged(&self) {
        tracing::info!(socket_id = %self.socket_id, "closing a slow pusher consumer");
        if let Some(metrics) = &self.metrics {
            metrics.slow_consumer();
        }
        self.sender.close(CLOSE_SLOW, SLOW_CONSUMER);
    }

    fn lost(&self) {
        tracing::info!(socket_id = %self.socket_id, "closing a pusher client whose messages were lost");
        self.sender.close(CLOSE_RECONNECT, MESSAGES_LOST);
    }
}

/// A live subscription: dropping it unsubscribes.
pub(crate) struct Handle {
    sink: Arc<ChannelSink>,
    _subscription: Subscription,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("channel", &self.sink.channel)
            .finish_non_exhaustive()
    }
}

/// Serves one Pusher client until its connection closes; `key` is the app key
/// of its URL, `protocol` its query's `protocol`.
///
/// A function returning an `async move` block (not an `async fn`): the block
/// holds its captures once, and every idle connection pays for its size.
#[allow(clippy::manual_async_fn)] // deliberate: see above
pub(crate) fn run(
    mut socket: Socket,
    pusher: Pusher,
    key: String,
    protocol: Option<String>,
) -> impl Future<Output = ()> + Send {
    // Opened before the future is made, so that the future holds the session but
    // neither the key nor the query.
    let mut opened = match pusher.app_by_key(&key).cloned() {
        None => Err((4001, "App key does not exist")),
        Some(app) => match pusher.admit(&app) {
            None => Err((4004, "Application is over connection quota")),
            Some(admitted) => {
                let session: PusherSession<Handle> = PusherSession::open(
                    pusher.next_socket_id(),
                    app,
                    protocol.as_deref(),
                    unix_millis(),
                );
                Ok((session, admitted))
            }
        },
    };
    async move {
        // Used in place: moving it out would keep a second copy in the future.
        let session = match &mut opened {
            Ok((session, _admitted)) => session,
            Err((code, message)) => {
                refuse(&socket, &pusher, *code, message).await;
                return;
            }
        };
        tracing::debug!(app = %session.app().id, socket_id = %session.socket_id(), "pusher connection");
        if Box::pin(act(&socket, &pusher, session)).await {
            loop {
                let wait = until_millis(session.deadline());
                let recv = socket.recv();
                let next = Box::pin(async move {
                    tokio::select! {
                        message = recv => Some(message),
                        () = tokio::time::sleep(wait) => None,
                    }
                })
                .await;
                match next {
                    None => session.tick(unix_millis()),
                    Some(None) => break,
                    Some(Some(Message::Text(text))) => {
                        session.receive_text(text.as_str(), ticks(), unix_millis());
                    }
                    Some(Some(Message::Binary(_))) => session.receive_binary(unix_millis()),
                }
                if !Box::pin(act(&socket, &pusher, session)).await {
                    break;
                }
            }
        }
        for (channel, handle, user) in session.take_all() {
            leave(&pusher, session, channel, handle, user);
        }
    }
}

/// Refuses a connection that has no session: `pusher:error` `code`, then the
/// close with it.
async fn refuse(socket: &Socket, pusher: &Pusher, code: u16, message: &str) {
    if let Some(metrics) = pusher.hub().metrics() {
        metrics.rejected(rejection(code));
    }
    let _ = socket.send(error_frame(Some(code), message)).await;
    socket.sender().close(CloseCode(code), message);
}

/// The metrics' reason for a Pusher error code.
fn rejection(code: u16) -> Rejection {
    match code {
        4001 | 4005 => Rejection::BadRequest,
        4003 => Rejection::Forbidden,
        4004 | 4100 => Rejection::Unavailable,
        4009 | 401 => Rejection::Unauthorized,
        403 => Rejection::Forbidden,
        4301 => Rejection::RateLimited,
        503 => Rejection::Unavailable,
        _ => Rejection::BadRequest,
    }
}

/// Ends a live subscription, telling the webhooks when a user's last connection
/// left a presence channel.
fn leave(
    pusher: &Pusher,
    session: &PusherSession<Handle>,
    channel: Channel,
    handle: Handle,
    user: Option<Arc<str>>,
) {
    let Some(user) = user else {
        drop(handle);
        return;
    };
    // What this node has seen; the broker's list, asked after the leave, is the
    // one that also knows of joins on other nodes not yet delivered here.
    let seen_others = handle.sink.others_of(&user);
    let me = handle.sink.socket_id.clone();
    drop(handle);
    let (pusher, app) = (pusher.clone(), Arc::clone(session.app()));
    let topic = app.topic(&channel);
    tokio::spawn(async move {
        let others = match pusher.hub().members(&topic).await {
            Ok(members) => members
                .iter()
                .any(|m| m.user.as_deref() == Some(&*user) && &*m.client != me.as_str()),
            Err(err) => {
                tracing::warn!(%topic, error = %err, "cannot list members; member_removed decided from this node's view");
                seen_others
            }
        };
        if !others {
            pusher.notify(
                &app,
                Notice::MemberRemoved {
                    channel,
                    user_id: user.to_string(),
                },
            );
        }
    });
}

/// Carries out the session's actions in order, feeding the hub's answers back;
/// `false` when the connection is done for.
async fn act(socket: &Socket, pusher: &Pusher, session: &mut PusherSession<Handle>) -> bool {
    let hub: &Hub = pusher.hub();
    // The subscription between `Subscribe` and `GoLive`, and its sink.
    let mut pending: Option<(Pending, Arc<ChannelSink>)> = None;
    while let Some(action) = session.poll_action() {
        match action {
            PusherAction::Send(text) => {
                if socket.send(text).await.is_err() {
                    return false;
                }
            }
            PusherAction::Rejected(code) => {
                if let Some(metrics) = hub.metrics() {
                    metrics.rejected(rejection(code));
                }
            }
            PusherAction::Subscribe {
                channel,
                topic,
                member,
            } => {
                let roster = (channel.kind() == ChannelKind::Presence)
                    .then(|| Mutex::new(Roster::default()));
                let sink = Arc::new(ChannelSink {
                    sender: socket.sender(),
                    socket_id: session.socket_id().clone(),
                    channel,
                    metrics: hub.metrics().cloned(),
                    roster,
                });
                let dyn_sink: Arc<dyn Sink> = Arc::clone(&sink) as Arc<dyn Sink>;
                let result = hub
                    .subscribe(topic, dyn_sink, None, member)
                    .await
                    .map(|subscribing| pending = Some((subscribing, sink)));
                session.subscribed(result);
            }
            PusherAction::Members { topic } => {
                session.members(hub.members(&topic).await);
            }
            PusherAction::GoLive { roster } => {
                let result = match pending.take() {
                    Some((subscribing, sink)) => {
                        if let (Some(roster), Some(slot)) = (roster, &sink.roster) {
                            *lock(slot) = roster;
                        }
                        subscribing.go_live().map(|subscription| Handle {
                            sink,
                            _subscription: subscription,
                        })
                    }
                    None => Err(Lagged),
                };
                session.went_live(result);
            }
            PusherAction::Abandon => drop(pending.take()),
            PusherAction::Unsubscribe {
                channel,
                handle,
                user,
            } => leave(pusher, session, channel, handle, user),
            PusherAction::Publish { topic, data } => {
                session.published(hub.publish(&topic, data).await.map(|_| ()));
            }
            PusherAction::Notify(notice) => pusher.notify(session.app(), notice),
            PusherAction::Close { code, reason } => {
                tracing::info!(socket_id = %session.socket_id(), "closing a pusher connection: {reason}");
                socket.sender().close(code, reason);
            }
            PusherAction::End => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interop::pusher::{PusherApp, PusherApps};

    fn future_size<F, Fut>(_: &F) -> usize
    where
        F: Fn(Socket) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    /// Every idle Pusher connection holds one of these futures: keep it small
    /// (like `/ws`'s, see `crate::session`): 384 bytes with rustc 1.95, the
    /// session opened before the future is made and used in place.
    #[test]
    fn an_idle_connection_is_small() {
        let app = PusherApp::new("1", "k", "s").unwrap_or_else(|e| panic!("{e}"));
        let apps = PusherApps::new(vec![app]).unwrap_or_else(|e| panic!("{e}"));
        let hub = Hub::new(apps.hub_config(crate::HubConfig::default()));
        let pusher = Pusher::new(apps, hub).unwrap_or_else(|e| panic!("{e}"));
        let handler = |socket: Socket| {
            run(
                socket,
                pusher.clone(),
                String::from("k"),
                Some(String::from("7")),
            )
        };
        let size = future_size(&handler);
        assert!(
            size <= 400,
            "the pusher connection future grew to {size} bytes"
        );
    }
}
