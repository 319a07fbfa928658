//! The pub/sub dispatcher: the one task per node that reads the pub/sub
//! connection and hands every message and presence event to the hub, in order,
//! filling holes from the topic's stream (see "Delivering" in the
//! [module docs](super)).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ::redis::Value;
use ::redis::aio::{PubSubSink, PubSubStream};
use futures_util::StreamExt as _;
use tokio::sync::{mpsc, watch};

use super::keys::{Keys, topic_of_channel};
use super::member_text::member_of;
use super::replies::covers;
use super::shared::{Control, Progress, Shared};
use crate::sync::lock;
use crate::topic::{Data, Epoch, Position, Push, Topic};

/// How often the pub/sub connection is pinged.
const PING_EVERY: Duration = Duration::from_secs(1);
/// The first wait before reconnecting the pub/sub connection.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest wait between two reconnection attempts.
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The task that reads the pub/sub connection and delivers, one at a time.
pub(super) struct Dispatcher {
    shared: Arc<Shared>,
    /// Per subscribed topic: its watch generation and the last message delivered.
    topics: HashMap<Topic, Track>,
}

struct Track {
    generation: u64,
    last: Option<Position>,
    /// Where recoveries wait for this task (set once the topic is live).
    progress: Option<Arc<watch::Sender<Progress>>>,
}

impl Track {
    fn new(generation: u64) -> Self {
        Self {
            generation,
            last: None,
            progress: None,
        }
    }

    /// Tells waiting recoveries that everything up to `last` reached the hub.
    fn publish_progress(&self) {
        if let Some(progress) = &self.progress {
            let last = self.last.clone();
            progress.send_modify(|p| p.delivered = last);
        }
    }
}

/// The pub/sub connection must be made again.
struct Reconnect;

impl Dispatcher {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            topics: HashMap::new(),
        }
    }

    pub(super) async fn run(mut self, mut control: mpsc::UnboundedReceiver<Control>) {
        let mut backoff = BACKOFF_MIN;
        loop {
            self.set_down();
            let connected = tokio::time::timeout(
                self.shared.config.command_timeout,
                self.shared.client.get_async_pubsub(),
            )
            .await;
            let pubsub = match connected {
                Ok(Ok(pubsub)) => pubsub,
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "redis: pub/sub connection failed; retrying in {backoff:?}");
                    self.wait(&mut control, backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
                Err(_) => {
                    tracing::warn!("redis: pub/sub connection timed out; retrying in {backoff:?}");
                    self.wait(&mut control, backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            let (mut sink, mut stream) = pubsub.split();
            if self.resume(&mut sink).await.is_err() {
                self.wait(&mut control, backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
            backoff = BACKOFF_MIN;
            self.shared.pubsub_up.store(true, Ordering::Relaxed);
            tracing::info!("redis: pub/sub connected");
            if self
                .serve(&mut sink, &mut stream, &mut control)
                .await
                .is_err()
            {
                tracing::warn!("redis: pub/sub connection lost; reconnecting");
            }
        }
    }

    /// Marks every watched topic not live, and the connection down.
    fn set_down(&self) {
        self.shared.pubsub_up.store(false, Ordering::Relaxed);
        for watched in lock(&self.shared.watched).values() {
            watched.progress.send_modify(|p| p.live = false);
        }
    }

    /// Waits `delay`, keeping up with watch changes meanwhile.
    async fn wait(&mut self, control: &mut mpsc::UnboundedReceiver<Control>, delay: Duration) {
        let deadline = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                cmd = control.recv() => match cmd {
                    Some(Control::Watch(topic, generation)) => {
                        self.topics.insert(topic, Track::new(generation));
                    }
                    Some(Control::Unwatch(topic, generation)) => {
                        if self.topics.get(&topic).is_some_and(|t| t.generation == generation) {
                            self.topics.remove(&topic);
                        }
                    }
                    Some(Control::CatchUp(_)) => {} // done on reconnecting
                    None => return,
                },
            }
        }
    }

    /// On a fresh connection: subscribes every tracked topic and catches each up
    /// from the stream.
    async fn resume(&mut self, sink: &mut PubSubSink) -> Result<(), Reconnect> {
        let topics: Vec<Topic> = self.topics.keys().cloned().collect();
        for topic in topics {
            self.subscribe(sink, &topic).await?;
            self.catch_up(&topic).await?;
            self.set_live(&topic);
        }
        Ok(())
    }

    async fn subscribe(&self, sink: &mut PubSubSink, topic: &Topic) -> Result<(), Reconnect> {
        let channel = Keys::of(topic).channel;
        match tokio::time::timeout(self.shared.config.command_timeout, sink.subscribe(channel))
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                tracing::warn!(%topic, error = %err, "redis: subscribe failed");
                Err(Reconnect)
            }
            Err(_) => {
                tracing::warn!(%topic, "redis: subscribe timed out");
                Err(Reconnect)
            }
        }
    }

    fn set_live(&mut self, topic: &Topic) {
        let Some(track) = self.topics.get_mut(topic) else {
            return;
        };
        if let Some(watched) = lock(&self.shared.watched).get(topic)
            && watched.generation == track.generation
        {
            let last = track.last.clone();
            watched.progress.send_modify(|p| {
                p.live = true;
                p.delivered = last;
            });
            track.progress = Some(Arc::clone(&watched.progress));
        }
    }

    async fn serve(
        &mut self,
        sink: &mut PubSubSink,
        stream: &mut PubSubStream,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Result<(), Reconnect> {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else { return Err(Reconnect) };
                    let Some(topic) = topic_of_channel(message.get_channel_name()) else {
                        continue;
                    };
                    self.on_message(&topic, message.get_payload_bytes()).await?;
                }
                cmd = control.recv() => match cmd {
                    Some(Control::Watch(topic, generation)) => {
                        self.topics.insert(topic.clone(), Track::new(generation));
                        self.subscribe(sink, &topic).await?;
                        self.catch_up(&topic).await?;
                        self.set_live(&topic);
                    }
                    Some(Control::Unwatch(topic, generation)) => {
                        if self.topics.get(&topic).is_some_and(|t| t.generation == generation) {
                            self.topics.remove(&topic);
                            let channel = Keys::of(&topic).channel;
                            match tokio::time::timeout(
                                self.shared.config.command_timeout,
                                sink.unsubscribe(channel),
                            ).await {
                                Ok(Ok(())) => {}
                                _ => return Err(Reconnect),
                            }
                        }
                    }
                    Some(Control::CatchUp(topic)) => {
                        if self.topics.contains_key(&topic) {
                            self.catch_up(&topic).await?;
                        }
                    }
                    None => return Ok(()),
                },
                _ = ping.tick() => {
                    let pong = tokio::time::timeout(
                        self.shared.config.command_timeout,
                        sink.ping::<Value>(),
                    ).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        return Err(Reconnect);
                    }
                }
            }
        }
    }

    async fn on_message(&mut self, topic: &Topic, payload: &[u8]) -> Result<(), Reconnect> {
        let Some((&kind, rest)) = payload.split_first() else {
            return Ok(());
        };
        let Ok(rest) = std::str::from_utf8(rest) else {
            return Ok(());
        };
        match kind {
            b'm' => {
                let mut parts = rest.splitn(3, ' ');
                let (Some(epoch), Some(offset), Some(data)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Ok(());
                };
                let (Ok(epoch), Ok(offset), Ok(data)) = (
                    Epoch::new(epoch),
                    offset.parse::<u64>(),
                    Data::stored(data.as_bytes().to_vec()),
                ) else {
                    tracing::warn!(%topic, "redis: a malformed message on the channel");
                    return Ok(());
                };
                self.on_offset(topic, Position { epoch, offset }, data)
                    .await
            }
            b'j' | b'l' => {
                if !self.topics.contains_key(topic) {
                    return Ok(());
                }
                let (client, stored) = rest.split_once(' ').unwrap_or((rest, ""));
                let member = member_of(client, stored);
                self.shared
                    .deliver(Push::presence(topic.clone(), kind == b'j', member));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Delivers message `at` unless already delivered; fills a hole before it from
    /// the stream first.
    async fn on_offset(
        &mut self,
        topic: &Topic,
        at: Position,
        data: Data,
    ) -> Result<(), Reconnect> {
        for attempt in 0..2 {
            let Some(track) = self.topics.get_mut(topic) else {
                return Ok(());
            };
            match &track.last {
                Some(last) if last.epoch == at.epoch && at.offset <= last.offset => {
                    return Ok(()); // already delivered
                }
                Some(last) if last.epoch == at.epoch && at.offset == last.offset + 1 => {}
                None => {}
                Some(_) if attempt == 0 => {
                    self.catch_up(topic).await?;
                    continue;
                }
                Some(last) => {
                    // Still not the next one after catching up: the stream has moved
                    // on (another epoch); this message is not part of it.
                    tracing::debug!(%topic, ?last, ?at, "redis: a message of a stale epoch");
                    return Ok(());
                }
            }
            let push = Push::message(topic.clone(), at.epoch.clone(), at.offset, data);
            track.last = Some(at);
            self.shared.deliver(push);
            track.publish_progress();
            return Ok(());
        }
        Ok(())
    }

    /// Reads the topic's position and, when this node delivered something before,
    /// every message after it; delivers them, or drops the local subscribers when
    /// the stream no longer holds them.
    async fn catch_up(&mut self, topic: &Topic) -> Result<(), Reconnect> {
        let since = self.topics.get(topic).and_then(|track| track.last.clone());
        let read = match self
            .shared
            .read(topic, since.as_ref().map(|s| s.offset))
            .await
        {
            Ok(read) => read,
            Err(err) => {
                tracing::warn!(%topic, error = %err, "redis: cannot read the topic's stream");
                return Err(Reconnect);
            }
        };
        let Some(track) = self.topics.get_mut(topic) else {
            return Ok(());
        };
        let position = read.position;
        match since {
            None => {}
            Some(since) if since.epoch == position.epoch && since.offset == position.offset => {}
            Some(since)
                if since.epoch == position.epoch
                    && covers(&read.entries, since.offset, position.offset) =>
            {
                for (offset, data) in read.entries {
                    self.shared.deliver(Push::message(
                        topic.clone(),
                        position.epoch.clone(),
                        offset,
                        data,
                    ));
                }
            }
            Some(since) => {
                tracing::warn!(
                    %topic,
                    delivered = %format!("{}:{}", since.epoch, since.offset),
                    now = %format!("{}:{}", position.epoch, position.offset),
                    "redis: messages lost; dropping the topic's local subscribers"
                );
                if let Some(hub) = self.shared.hub() {
                    hub.lost(topic);
                }
            }
        }
        track.last = Some(position);
        track.publish_progress();
        Ok(())
    }
}
