//! [`RedisBroker`]: the [`Broker`] handle a hub holds, and what it does itself
//! (publish, recover, watch, presence bookkeeping); the pub/sub dispatcher and the
//! presence worker do the rest in the background.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, Value};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use super::RedisConfig;
use super::dispatch::{BACKOFF_MAX, Dispatcher};
use super::keys::Keys;
use super::member_text::member_of;
use super::presence::{PRESENCE_QUEUE, presence_worker};
use super::replies::{covers, position_of, text};
use super::scripts::Scripts;
use super::shared::{Control, PresenceOp, Progress, Shared, Watched, failed};
use crate::broker::{Broker, BrokerError, Deliver, NodeInfo, OccupancyReport, Recovery};
use crate::clock::ttl_millis;
use crate::sync::lock;
use crate::topic::{Data, Epoch, HistoryConfig, Member, Position, Push, Topic};

/// The broker for many nodes: offsets, epochs, history and presence in Redis,
/// messages between nodes over Redis pub/sub. See the module docs for the design.
///
/// Created inside a Tokio runtime; it starts its background tasks there and stops
/// them when dropped.
pub struct RedisBroker {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl RedisBroker {
    /// A broker on the Redis at `config.url`, keeping history as `history` says.
    /// Connects lazily: a node starts (unready) while Redis is away. Fails only on
    /// a malformed URL. Must be called inside a Tokio runtime.
    pub fn new(history: HistoryConfig, config: RedisConfig) -> Result<Self, BrokerError> {
        let client = Client::open(config.url.as_str()).map_err(|err| BrokerError::RedisUrl {
            source: Arc::new(err),
        })?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.command_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(BACKOFF_MAX);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(|err| failed("connect", err))?;
        let (control, control_rx) = mpsc::unbounded_channel();
        let (presence, presence_rx) = mpsc::channel(PRESENCE_QUEUE);
        let shared = Arc::new(Shared {
            history,
            pending: Arc::new(Semaphore::new(config.max_pending.max(1))),
            config,
            client,
            conn,
            hub: OnceLock::new(),
            watched: Mutex::new(HashMap::new()),
            next_generation: AtomicU64::new(1),
            control,
            members: Mutex::new(HashMap::new()),
            presence,
            pubsub_up: AtomicBool::new(false),
            scripts: Scripts::new(),
            node: Epoch::random().to_string(),
        });
        let tasks = vec![
            tokio::spawn(Dispatcher::new(Arc::clone(&shared)).run(control_rx)),
            tokio::spawn(presence_worker(Arc::clone(&shared), presence_rx)),
        ];
        Ok(Self { shared, tasks })
    }

    /// How many publishes are waiting for Redis now (at most
    /// [`RedisConfig::max_pending`]).
    pub fn pending_publishes(&self) -> usize {
        self.shared.config.max_pending.max(1) - self.shared.pending.available_permits()
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Broker for RedisBroker {
    fn attach(&self, hub: Weak<dyn Deliver>) {
        let _ = self.shared.hub.set(hub);
    }

    fn publish(&self, topic: &Topic, data: Data) -> BoxFuture<'_, Result<Position, BrokerError>> {
        let Ok(permit) = Arc::clone(&self.shared.pending).try_acquire_owned() else {
            let max = self.shared.config.max_pending;
            return futures_util::future::ready(Err(BrokerError::Unavailable(format!(
                "{max} publishes are already waiting for Redis"
            ))))
            .boxed();
        };
        let topic = topic.clone();
        async move {
            let shared = &self.shared;
            let keys = Keys::of(&topic);
            let mut invocation = shared.scripts.publish.key(&keys.meta);
            invocation
                .key(&keys.log)
                .arg(&keys.channel)
                .arg(data.as_bytes().as_ref())
                .arg(Epoch::random().as_str())
                .arg(shared.history.size)
                .arg(ttl_millis(shared.history.ttl))
                .arg(shared.meta_ttl());
            let value = shared.run("publish", invocation).await;
            drop(permit);
            match value? {
                Value::Array(values) => position_of(&values).ok_or_else(|| {
                    BrokerError::Unavailable(String::from("redis: unexpected answer to a publish"))
                }),
                _ => Err(BrokerError::Unavailable(String::from(
                    "redis: unexpected answer to a publish",
                ))),
            }
        }
        .boxed()
    }

    fn recover(
        &self,
        topic: &Topic,
        since: Option<Position>,
    ) -> BoxFuture<'_, Result<Recovery, BrokerError>> {
        let topic = topic.clone();
        async move {
            let shared = &self.shared;
            // Recover only once the node hears the topic's channel: every message
            // after the position read below then reaches the hub.
            let progress = lock(&shared.watched)
                .get(&topic)
                .map(|watched| watched.progress.subscribe());
            let timeout = shared.config.command_timeout;
            if let Some(progress) = &progress
                && !reach(&mut progress.clone(), timeout, |p| p.live).await
            {
                return Err(BrokerError::Unavailable(String::from(
                    "not subscribed to Redis (reconnecting)",
                )));
            }
            let read = shared
                .read(&topic, since.as_ref().map(|s| s.offset))
                .await?;
            let position = read.position;
            // And only once the hub has had every message up to that position:
            // the subscriber's pending buffer drops those, so none of them can
            // arrive after it goes live.
            if let Some(mut progress) = progress
                && !reach(&mut progress, timeout / 2, |p| p.reached(&position)).await
            {
                let _ = shared.control.send(Control::CatchUp(topic.clone()));
                if !reach(&mut progress, timeout, |p| p.reached(&position)).await {
                    return Err(BrokerError::Unavailable(String::from(
                        "this node has not caught up with Redis yet",
                    )));
                }
            }
            let Some(since) = since else {
                return Ok(Recovery {
                    position,
                    recovered: None,
                    messages: Vec::new(),
                });
            };
            let coverable = since.epoch == position.epoch
                && covers(&read.entries, since.offset, position.offset);
            let messages = if coverable {
                pushes(&topic, &position.epoch, read.entries)
            } else {
                Vec::new()
            };
            Ok(Recovery {
                position,
                recovered: Some(coverable),
                messages,
            })
        }
        .boxed()
    }

    fn kept(&self, topic: &Topic) -> BoxFuture<'_, Result<Recovery, BrokerError>> {
        let topic = topic.clone();
        async move {
            // Everything after offset 0 that the stream still holds (within the
            // history's age), like a recovery from the very start.
            let read = self.shared.read(&topic, Some(0)).await?;
            let position = read.position;
            let whole = covers(&read.entries, 0, position.offset);
            let messages = pushes(&topic, &position.epoch, read.entries);
            Ok(Recovery {
                position,
                recovered: Some(whole),
                messages,
            })
        }
        .boxed()
    }

    fn watch(&self, topic: &Topic) {
        // Counted, like the in-process broker's watchers: the hub may announce a
        // new first subscriber before the previous last one's unwatch.
        let mut watched = lock(&self.shared.watched);
        if let Some(entry) = watched.get_mut(topic) {
            entry.count += 1;
            return;
        }
        let generation = self.shared.next_generation.fetch_add(1, Ordering::Relaxed);
        watched.insert(
            topic.clone(),
            Watched {
                generation,
                count: 1,
                progress: Arc::new(watch::Sender::new(Progress::default())),
            },
        );
        let _ = self
            .shared
            .control
            .send(Control::Watch(topic.clone(), generation));
    }

    fn unwatch(&self, topic: &Topic) {
        let mut watched = lock(&self.shared.watched);
        let Some(entry) = watched.get_mut(topic) else {
            return;
        };
        entry.count = entry.count.saturating_sub(1);
        if entry.count == 0 {
            let generation = entry.generation;
            watched.remove(topic);
            let _ = self
                .shared
                .control
                .send(Control::Unwatch(topic.clone(), generation));
        }
    }

    fn join(&self, topic: &Topic, member: Member) {
        lock(&self.shared.members)
            .entry(topic.clone())
            .or_default()
            .insert(Arc::clone(&member.client), member.clone());
        if self
            .shared
            .presence
            .try_send(PresenceOp::Join(topic.clone(), member))
            .is_err()
        {
            tracing::warn!(%topic, "redis: presence queue full; the join is announced at the next refresh");
        }
    }

    fn leave(&self, topic: &Topic, client: &str) {
        {
            let mut members = lock(&self.shared.members);
            if let Some(local) = members.get_mut(topic) {
                local.remove(client);
                if local.is_empty() {
                    members.remove(topic);
                }
            }
        }
        if self
            .shared
            .presence
            .try_send(PresenceOp::Leave(topic.clone(), Arc::from(client)))
            .is_err()
        {
            tracing::warn!(%topic, "redis: presence queue full; the member expires instead");
        }
    }

    fn members(&self, topic: &Topic) -> BoxFuture<'_, Result<Vec<Member>, BrokerError>> {
        let topic = topic.clone();
        async move {
            let shared = &self.shared;
            let keys = Keys::of(&topic);
            let mut invocation = shared.scripts.members.key(&keys.members);
            invocation.key(&keys.info).arg(&keys.channel);
            let Value::Array(values) = shared.run("members", invocation).await? else {
                return Err(BrokerError::Unavailable(String::from(
                    "redis: unexpected answer to members",
                )));
            };
            let mut members: Vec<Member> = values
                .chunks(2)
                .filter_map(|pair| {
                    let client = text(pair.first()?)?;
                    Some(member_of(&client, &text(pair.get(1)?)?))
                })
                .collect();
            members.sort_by(|a, b| a.client.cmp(&b.client));
            Ok(members)
        }
        .boxed()
    }

    fn ready(&self) -> BoxFuture<'_, bool> {
        async move {
            if !self.shared.pubsub_up.load(Ordering::Relaxed) {
                return false;
            }
            let mut conn = self.shared.conn.clone();
            let cmd = ::redis::cmd("PING");
            let ping = cmd.query_async::<String>(&mut conn);
            matches!(
                tokio::time::timeout(self.shared.config.command_timeout, ping).await,
                Ok(Ok(_))
            )
        }
        .boxed()
    }

    fn heartbeat(
        &self,
        me: &NodeInfo,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<Vec<NodeInfo>, BrokerError>> {
        let me = me.clone();
        async move { super::nodes::heartbeat(&self.shared, &me, ttl).await }.boxed()
    }

    fn occupancy_flush(
        &self,
        counts: Vec<(Topic, u64)>,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<OccupancyReport, BrokerError>> {
        async move { super::occupancy::flush(&self.shared, &counts, ttl).await }.boxed()
    }

    fn remote_occupancy(&self, topic: &Topic) -> BoxFuture<'_, Result<u64, BrokerError>> {
        let topic = topic.clone();
        async move { super::occupancy::remote(&self.shared, &topic).await }.boxed()
    }

    fn remote_occupied(
        &self,
        prefix: &str,
    ) -> BoxFuture<'_, Result<Vec<(Topic, u64)>, BrokerError>> {
        let prefix = prefix.to_owned();
        async move { super::occupancy::remote_list(&self.shared, &prefix).await }.boxed()
    }
}

/// Waits up to `timeout` for `progress` to satisfy `condition`.
async fn reach(
    progress: &mut watch::Receiver<Progress>,
    timeout: Duration,
    condition: impl FnMut(&Progress) -> bool,
) -> bool {
    tokio::time::timeout(timeout, progress.wait_for(condition))
        .await
        .is_ok_and(|waited| waited.is_ok())
}

/// History entries (offset, data) of `topic` in `epoch` as the pushes they were.
fn pushes(topic: &Topic, epoch: &Epoch, entries: Vec<(u64, Data)>) -> Vec<Arc<Push>> {
    entries
        .into_iter()
        .map(|(offset, data)| Arc::new(Push::message(topic.clone(), epoch.clone(), offset, data)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_malformed_url_is_refused_with_the_redis_clients_reason() {
        let refused = RedisBroker::new(HistoryConfig::default(), RedisConfig::new("http://x"));
        let Err(err) = refused else {
            panic!("a malformed URL was accepted");
        };
        assert!(matches!(err, BrokerError::RedisUrl { .. }), "{err:?}");
        assert!(err.to_string().starts_with("invalid Redis URL: "), "{err}");
        assert!(err.source().is_some());
    }

    #[tokio::test]
    async fn a_publish_to_an_absent_redis_fails_saying_what_and_why() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let config = RedisConfig::new(format!("redis://127.0.0.1:{port}/0"));
        let broker =
            RedisBroker::new(HistoryConfig::default(), config).unwrap_or_else(|e| panic!("{e}"));
        let topic = Topic::new("news").unwrap_or_else(|e| panic!("{e}"));
        let err = match broker.publish(&topic, Data::text("1")).await {
            Err(err) => err,
            Ok(position) => panic!("published at {position:?} with no Redis"),
        };
        let BrokerError::Redis { doing, source } = &err else {
            panic!("not a Redis failure: {err:?}");
        };
        assert_eq!(*doing, "publish");
        assert!(source.is_io_error(), "{source:?}");
        assert!(
            err.to_string()
                .starts_with("broker unavailable: redis publish failed: "),
            "{err}"
        );
    }
}
