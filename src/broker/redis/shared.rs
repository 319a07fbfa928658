//! The state the broker's handle and its two background tasks share, and the
//! messages they send each other.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use ::redis::aio::ConnectionManager;
use ::redis::{Client, RedisError, Value};
use tokio::sync::{Semaphore, mpsc, watch};

use super::RedisConfig;
use super::keys::Keys;
use super::replies::{Read, parse_read};
use super::scripts::Scripts;
use crate::broker::{BrokerError, Deliver};
use crate::clock::ttl_millis;
use crate::topic::{Epoch, HistoryConfig, Member, Position, Push, Topic};

/// What the broker, the pub/sub dispatcher and the presence worker share.
pub(super) struct Shared {
    pub(super) history: HistoryConfig,
    pub(super) config: RedisConfig,
    pub(super) client: Client,
    pub(super) conn: ConnectionManager,
    pub(super) hub: OnceLock<Weak<dyn Deliver>>,
    /// Topics with local subscribers: whether their channel is subscribed and
    /// caught up (recovery waits for it).
    pub(super) watched: Mutex<HashMap<Topic, Watched>>,
    pub(super) next_generation: AtomicU64,
    pub(super) control: mpsc::UnboundedSender<Control>,
    /// Local members, refreshed in Redis periodically.
    pub(super) members: Mutex<HashMap<Topic, HashMap<Arc<str>, Member>>>,
    pub(super) presence: mpsc::Sender<PresenceOp>,
    pub(super) pending: Arc<Semaphore>,
    pub(super) pubsub_up: AtomicBool,
    pub(super) scripts: Scripts,
    /// This broker's id in the occupancy keys (random, new on every start).
    pub(super) node: String,
}

/// A topic this node has local subscribers on.
pub(super) struct Watched {
    pub(super) generation: u64,
    /// How many times the hub said `watch` without `unwatch`.
    pub(super) count: usize,
    pub(super) progress: Arc<watch::Sender<Progress>>,
}

/// Where the pub/sub task stands on one watched topic.
#[derive(Default)]
pub(super) struct Progress {
    /// The channel is subscribed and caught up.
    pub(super) live: bool,
    /// Everything up to here was handed to the hub.
    pub(super) delivered: Option<Position>,
}

impl Progress {
    pub(super) fn reached(&self, position: &Position) -> bool {
        self.live
            && self
                .delivered
                .as_ref()
                .is_some_and(|d| d.epoch == position.epoch && d.offset >= position.offset)
    }
}

/// What the pub/sub task is asked to do (unbounded: at most two per topic change).
pub(super) enum Control {
    Watch(Topic, u64),
    Unwatch(Topic, u64),
    /// Read the topic's stream now: a recovery saw a position the task has not
    /// reached.
    CatchUp(Topic),
}

/// A join or leave for the presence worker to apply in Redis.
pub(super) enum PresenceOp {
    Join(Topic, Member),
    Leave(Topic, Arc<str>),
}

impl Shared {
    pub(super) fn hub(&self) -> Option<Arc<dyn Deliver>> {
        self.hub.get().and_then(Weak::upgrade)
    }

    pub(super) fn meta_ttl(&self) -> u64 {
        ttl_millis(self.history.ttl.max(self.config.refresh_every() * 3))
    }

    /// Runs a script with a timeout; `doing` names it in errors.
    pub(super) async fn run(
        &self,
        doing: &'static str,
        invocation: ::redis::ScriptInvocation<'_>,
    ) -> Result<Value, BrokerError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(
            self.config.command_timeout,
            invocation.invoke_async::<Value>(&mut conn),
        )
        .await
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(failed(doing, err)),
            Err(_) => Err(BrokerError::Unavailable(format!(
                "Redis did not answer within {:?}",
                self.config.command_timeout
            ))),
        }
    }

    /// The topic's position and the messages after `since` (creating the topic when
    /// missing).
    pub(super) async fn read(
        &self,
        topic: &Topic,
        since: Option<u64>,
    ) -> Result<Read, BrokerError> {
        let keys = Keys::of(topic);
        let since = since.map_or(-1, |s| i64::try_from(s).unwrap_or(i64::MAX));
        let mut invocation = self.scripts.read.key(&keys.meta);
        invocation
            .key(&keys.log)
            .arg(Epoch::random().as_str())
            .arg(since)
            .arg(ttl_millis(self.history.ttl))
            .arg(self.meta_ttl());
        let value = self.run("read", invocation).await?;
        parse_read(&value)
    }

    pub(super) fn deliver(&self, push: Push) {
        if let Some(hub) = self.hub() {
            hub.deliver(Arc::new(push));
        }
    }
}

/// The error for a Redis command that failed while the broker was `doing` it.
pub(super) fn failed(doing: &'static str, source: RedisError) -> BrokerError {
    BrokerError::Redis {
        doing,
        source: Arc::new(source),
    }
}
