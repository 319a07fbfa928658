//! The tokio driver of a `/ws` session: one task per connection that owns the
//! socket, calls the hub, keeps the clock, and feeds it all to the sans-IO
//! [`Session`] machine (`crate::protocol::session`), carrying out its actions in
//! order.
//!
//! The machine decides everything the protocol says; this file only moves bytes
//! and awaits: a message from the socket becomes `receive_text`, an action
//! `Subscribe` becomes `hub.subscribe(…).await` whose answer goes back in as
//! `subscribed`, and so on. Live pushes do not pass through here: the hub offers
//! them straight to [`SocketSink`], which queues the push's shared frame.

use std::sync::Arc;

use crate::auth::{TOKEN_EXPIRED, TokenVerifier};
use crate::broker::Recovery;
use crate::clock::{ticks, unix_millis, until_millis};
use crate::hub::{Hub, Lagged, Pending, Sink, Subscription};
use crate::ops::{Metrics, Rejection};
use crate::protocol::PushJson;
use crate::protocol::session::{
    Action, MESSAGES_LOST, PresenceRefused, Rules, SLOW_CONSUMER, Session, SessionConfig,
};
use crate::topic::Push;
use crate::ws::{CloseCode, Message, Sender, Socket, TrySendError};

/// A WebSocket connection as the hub sees it: pushes go into its outbound queue,
/// encoded once for all subscribers; a full queue closes it as a slow consumer
/// (counted in the metrics, when there are any).
struct SocketSink(Sender, Option<Arc<Metrics>>);

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
        if let Some(metrics) = &self.1 {
            metrics.slow_consumer();
        }
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
    config: Arc<SessionConfig>,
) -> impl Future<Output = ()> + Send {
    // Opened before the future is made, so that the future holds the session but
    // neither the verifier nor the token.
    let mut session = Session::open(
        hub.new_client_id(),
        verifier,
        token.as_deref(),
        unix_millis(),
    );
    async move {
        let sink: Arc<dyn Sink> = Arc::new(SocketSink(socket.sender(), hub.metrics().cloned()));
        // Boxed: the idle state of this future (what every quiet connection holds)
        // stays small; only the handling of an event needs the space.
        if !Box::pin(act(&socket, &hub, &sink, &mut session)).await {
            return;
        }
        loop {
            let message = match session.deadline() {
                // Boxed, and only with token deadlines: the wait costs a session
                // without them nothing.
                Some(deadline) => {
                    let recv = socket.recv();
                    let wait = until_millis(deadline);
                    let next = Box::pin(async move {
                        tokio::select! {
                            message = recv => Some(message),
                            () = tokio::time::sleep(wait) => None,
                        }
                    })
                    .await;
                    match next {
                        Some(message) => message,
                        None => {
                            let held = session.subscription_count();
                            session.tick(unix_millis());
                            // A tick ends only subscriptions whose token expired.
                            let ended = held.saturating_sub(session.subscription_count());
                            if let Some(metrics) = hub.metrics() {
                                for _ in 0..ended {
                                    metrics.token_expired();
                                }
                            }
                            if !Box::pin(act(&socket, &hub, &sink, &mut session)).await {
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
            match message {
                Message::Text(text) => {
                    let rules = Rules::new(&config, hub.config());
                    session.receive_text(text.as_str(), &rules, ticks());
                }
                Message::Binary(_) => session.receive_binary(),
            }
            if !Box::pin(act(&socket, &hub, &sink, &mut session)).await {
                return;
            }
        }
    }
}

/// Carries out the session's actions in order, feeding the hub's answers back;
/// `false` when the connection is done for.
async fn act(
    socket: &Socket,
    hub: &Hub,
    sink: &Arc<dyn Sink>,
    session: &mut Session<Subscription>,
) -> bool {
    // The subscription between `Subscribe` and `GoLive`.
    let mut pending: Option<Pending> = None;
    while let Some(action) = session.poll_action() {
        match action {
            Action::Send(text) => {
                if let (Some(metrics), Some(code)) = (hub.metrics(), refused(&text)) {
                    metrics.rejected(Rejection::of_status(code));
                }
                if socket.send(text).await.is_err() {
                    return false;
                }
            }
            Action::SendPush(push) => {
                if socket.send_prepared(push.frame()).await.is_err() {
                    return false;
                }
            }
            Action::Subscribe {
                topic,
                since,
                member,
            } => {
                let result = hub
                    .subscribe(topic, Arc::clone(sink), since, Some(member))
                    .await
                    .map(|mut subscribing| {
                        let messages = subscribing.take_messages();
                        let recovery = subscribing.recovery();
                        let recovery = Recovery {
                            position: recovery.position.clone(),
                            recovered: recovery.recovered,
                            messages,
                        };
                        pending = Some(subscribing);
                        recovery
                    });
                session.subscribed(result);
            }
            Action::GoLive { .. } => {
                let result = pending.take().map_or(Err(Lagged), Pending::go_live);
                session.went_live(result);
            }
            Action::Unsubscribe(subscription) => drop(subscription),
            Action::Publish { topic, data } => {
                session.published(hub.publish(&topic, data).await);
            }
            Action::Presence { topic } => {
                let result = if hub.presence_enabled(&topic) {
                    hub.members(&topic).await.map_err(PresenceRefused::Broker)
                } else {
                    Err(PresenceRefused::NotEnabled)
                };
                session.members(result);
            }
            Action::Close { code, reason } => {
                tracing::info!("{}: closing: {reason}", socket.id());
                if reason == TOKEN_EXPIRED
                    && let Some(metrics) = hub.metrics()
                {
                    metrics.token_expired();
                }
                socket.sender().close(code, reason);
            }
            Action::End => return false,
        }
    }
    true
}

/// The code of an error reply (`{"id":…,"error":{"code":403,…}}`), for the
/// metrics; `None` for anything else. The last match is the reply's own: inside
/// the id and the message a quote is escaped.
fn refused(text: &str) -> Option<u16> {
    const MARK: &str = ",\"error\":{\"code\":";
    if !text.starts_with("{\"id\":") {
        return None;
    }
    let rest = &text[text.rfind(MARK)? + MARK.len()..];
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_replies_are_told_apart() {
        assert_eq!(
            refused(r#"{"id":1,"error":{"code":403,"message":"no"}}"#),
            Some(403)
        );
        assert_eq!(
            refused(r#"{"id":"x\",\"error\":{\"code\":1","error":{"code":422,"message":"m"}}"#),
            Some(422)
        );
        assert_eq!(refused(r#"{"id":1,"ok":{"topic":"a"}}"#), None);
        assert_eq!(refused(r#"{"topic":"a","unsub":{"code":401}}"#), None);
    }

    fn future_size<F, Fut>(_: &F) -> usize
    where
        F: Fn(Socket) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    /// Every idle `/ws` connection holds one of these futures: keep it small (it
    /// was 1416 bytes before request handling was boxed and `run` stopped being an
    /// `async fn`; 328 with rustc 1.95; 336 since the session is a sans-IO machine
    /// the future drives, whose action queue is boxed only while it holds actions;
    /// 344 with the session's rules behind an `Arc`).
    #[test]
    fn an_idle_session_is_small() {
        let hub = Hub::default();
        let config = Arc::new(SessionConfig::default());
        let handler = |socket: Socket| run(socket, hub.clone(), None, None, Arc::clone(&config));
        let size = future_size(&handler);
        assert!(size <= 400, "the session future grew to {size} bytes");
    }
}
