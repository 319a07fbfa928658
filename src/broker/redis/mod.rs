//! [`RedisBroker`]: topics shared by many nodes through one Redis server.
//!
//! # What lives where
//!
//! For a topic `T` (its name cannot hold `{` or `}`, so `{T}` is also a Redis
//! Cluster hash tag):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `pushwire:{T}:meta` | hash | `epoch`, `last` (the last offset given out) |
//! | `pushwire:{T}:log` | stream | history: entry id `<offset>-0`, fields `t` (ms) and `d` (data) |
//! | `pushwire:{T}:members` | sorted set | present clients, scored by their deadline (ms) |
//! | `pushwire:{T}:info` | hash | each present client's `info` |
//! | `pushwire:{T}` | pub/sub channel | every message and presence event, in order |
//!
//! # Publishing
//!
//! One Lua script assigns the next offset (creating the topic with a random epoch
//! when its meta key is missing), appends to the stream (trimmed to the history size,
//! expiring with the history's age), and `PUBLISH`es the message on the topic's
//! channel. Redis runs scripts one at a time, so the order of messages on a channel
//! is their offset order, whichever node published them.
//!
//! # Delivering
//!
//! Each node has one pub/sub connection, subscribed to the channels of the topics
//! it has local subscribers on, and one task that reads it and hands everything to
//! the hub: one at a time, so never concurrently for one topic. The task remembers
//! the last offset it delivered per topic. When it sees a hole (offset n+2 after
//! n, another epoch, or a reconnected pub/sub connection) it reads the missing
//! messages from the stream before anything newer; if the stream no longer holds
//! them (Redis lost its data, or history was trimmed), the topic's local subscribers
//! are dropped ([`Deliver::lost`]) and learn, when they resubscribe, that they cannot
//! recover. Never a silent gap.
//!
//! # Presence
//!
//! Members sit in a sorted set scored by a deadline that their node pushes forward
//! every third of [`RedisConfig::presence_ttl`]. A node that dies stops refreshing,
//! and its members are removed (with leave events) by any node that watches the
//! topic, within the presence TTL plus one refresh interval.
//!
//! # When Redis is away
//!
//! Every command has a timeout ([`RedisConfig::command_timeout`]); publishes fail
//! with [`BrokerError::Unavailable`] (503 on the wire), and at most
//! [`RedisConfig::max_pending`] publishes wait for Redis at once (more fail at
//! once). The pub/sub connection is pinged every second and reconnected with
//! backoff (100 ms doubling to 5 s); `/readyz` says 503 meanwhile.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use ::redis::{Client, Script, Value};
use futures_util::FutureExt as _;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use super::{Broker, BrokerError, Deliver, Recovery};
use crate::clock::ttl_millis;
use crate::hub::{Data, Epoch, HistoryConfig, Member, Position, Push, Topic};
use crate::sync::lock;

/// How often the pub/sub connection is pinged.
const PING_EVERY: Duration = Duration::from_secs(1);
/// The first wait before reconnecting the pub/sub connection.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest wait between two reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How many presence updates may wait for Redis; beyond that they are dropped (the
/// periodic refresh and the expiry put membership right within one TTL).
const PRESENCE_QUEUE: usize = 10_000;

/// How a [`RedisBroker`] reaches Redis and how patient it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://host:port/db` (also `redis://:password@host:port/db`).
    pub url: String,
    /// The longest a command may take before the request that needed it fails.
    pub command_timeout: Duration,
    /// A member whose node stopped refreshing it (a crashed node) is removed after
    /// at most this long plus a third of it.
    pub presence_ttl: Duration,
    /// The most publishes that may wait for Redis at once; more fail at once.
    pub max_pending: usize,
}

impl RedisConfig {
    /// The defaults for `url`: 1 s command timeout, 15 s presence TTL, 1000 pending
    /// publishes.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            command_timeout: Duration::from_secs(1),
            presence_ttl: Duration::from_secs(15),
            max_pending: 1000,
        }
    }

    fn refresh_every(&self) -> Duration {
        (self.presence_ttl / 3).max(Duration::from_millis(100))
    }
}

/// The broker for many nodes: offsets, epochs, history and presence in Redis,
/// messages between nodes over Redis pub/sub. See the module docs for the design.
///
/// Created inside a Tokio runtime; it starts its background tasks there and stops
/// them when dropped.
pub struct RedisBroker {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

struct Shared {
    history: HistoryConfig,
    config: RedisConfig,
    client: Client,
    conn: ConnectionManager,
    hub: OnceLock<Weak<dyn Deliver>>,
    /// Topics with local subscribers: whether their channel is subscribed and
    /// caught up (recovery waits for it).
    watched: Mutex<HashMap<Topic, Watched>>,
    next_generation: AtomicU64,
    control: mpsc::UnboundedSender<Control>,
    /// Local members, refreshed in Redis periodically.
    members: Mutex<HashMap<Topic, HashMap<Arc<str>, Member>>>,
    presence: mpsc::Sender<PresenceOp>,
    pending: Arc<Semaphore>,
    pubsub_up: AtomicBool,
    scripts: Scripts,
}

struct Watched {
    generation: u64,
    /// How many times the hub said `watch` without `unwatch`.
    count: usize,
    progress: Arc<watch::Sender<Progress>>,
}

/// Where the pub/sub task stands on one watched topic.
#[derive(Default)]
struct Progress {
    /// The channel is subscribed and caught up.
    live: bool,
    /// Everything up to here was handed to the hub.
    delivered: Option<Position>,
}

impl Progress {
    fn reached(&self, position: &Position) -> bool {
        self.live
            && self
                .delivered
                .as_ref()
                .is_some_and(|d| d.epoch == position.epoch && d.offset >= position.offset)
    }
}

/// What the pub/sub task is asked to do (unbounded: at most two per topic change).
enum Control {
    Watch(Topic, u64),
    Unwatch(Topic, u64),
    /// Read the topic's stream now: a recovery saw a position the task has not
    /// reached.
    CatchUp(Topic),
}

enum PresenceOp {
    Join(Topic, Member),
    Leave(Topic, Arc<str>),
}

struct Scripts {
    publish: Script,
    read: Script,
    join: Script,
    leave: Script,
    refresh: Script,
    members: Script,
}

/// Keys: meta, log. Args: channel, data, new epoch, history size, history ttl ms,
/// meta ttl ms. Returns {epoch, offset}.
const PUBLISH: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[3]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'last', 0)
end
local offset = redis.call('HINCRBY', KEYS[1], 'last', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local size = tonumber(ARGV[4])
if size > 0 then
  local now = redis.call('TIME')
  local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  redis.call('XADD', KEYS[2], 'MAXLEN', size, offset .. '-0', 't', ms, 'd', ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
redis.call('PUBLISH', ARGV[1], 'm' .. epoch .. ' ' .. offset .. ' ' .. ARGV[2])
return {epoch, offset}
";

/// Keys: meta, log. Args: new epoch, since offset (-1: none), history ttl ms, meta
/// ttl ms. Returns {epoch, last, offset1, data1, offset2, data2, ...}: the messages
/// after `since` still within the history's age.
const READ: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'last', 0)
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local last = tonumber(redis.call('HGET', KEYS[1], 'last'))
local since = tonumber(ARGV[2])
local out = {epoch, last}
if since >= 0 and since < last then
  local now = redis.call('TIME')
  local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[3])
  local entries = redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', '+')
  for _, entry in ipairs(entries) do
    local fields = entry[2]
    local t, d = 0, nil
    for i = 1, #fields, 2 do
      if fields[i] == 't' then t = tonumber(fields[i + 1]) end
      if fields[i] == 'd' then d = fields[i + 1] end
    end
    if d and t >= cutoff then
      table.insert(out, string.match(entry[1], '^(%d+)'))
      table.insert(out, d)
    end
  end
end
return out
";

/// Keys: members, info. Args: channel, client, ttl ms, info ('' for none), key ttl
/// ms.
const JOIN: &str = r"
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[3]), ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('PUBLISH', ARGV[1], 'j' .. ARGV[2] .. ' ' .. ARGV[4])
return 1
";

/// Keys: members, info. Args: channel, client.
const LEAVE: &str = r"
if redis.call('ZREM', KEYS[1], ARGV[2]) == 1 then
  local info = redis.call('HGET', KEYS[2], ARGV[2]) or ''
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('PUBLISH', ARGV[1], 'l' .. ARGV[2] .. ' ' .. info)
  return 1
end
return 0
";

/// Removes expired members (publishing their leave). Shared by REFRESH and MEMBERS.
const REAP: &str = r"
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ms)
for _, client in ipairs(expired) do
  redis.call('ZREM', KEYS[1], client)
  local info = redis.call('HGET', KEYS[2], client) or ''
  redis.call('HDEL', KEYS[2], client)
  redis.call('PUBLISH', ARGV[1], 'l' .. client .. ' ' .. info)
end
";

/// Keys: members, info, meta. Args: channel, ttl ms, key ttl ms, meta ttl ms, then
/// (client, info) pairs of this node's members. Reaps, pushes this node's deadlines
/// forward (re-adding, with a join, a member reaped meanwhile), keeps the keys of a
/// watched topic alive.
const REFRESH_TAIL: &str = r"
for i = 5, #ARGV, 2 do
  local client = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], client) then
    redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), client)
  else
    redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), client)
    redis.call('HSET', KEYS[2], client, ARGV[i + 1])
    redis.call('PUBLISH', ARGV[1], 'j' .. client .. ' ' .. ARGV[i + 1])
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
end
return 1
";

/// Keys: members, info. Args: channel. Reaps, then returns {client, info, …}.
const MEMBERS_TAIL: &str = r"
local out = {}
for _, client in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  table.insert(out, client)
  table.insert(out, redis.call('HGET', KEYS[2], client) or '')
end
return out
";

impl Scripts {
    fn new() -> Self {
        Self {
            publish: Script::new(PUBLISH),
            read: Script::new(READ),
            join: Script::new(JOIN),
            leave: Script::new(LEAVE),
            refresh: Script::new(&format!("{REAP}{REFRESH_TAIL}")),
            members: Script::new(&format!("{REAP}{MEMBERS_TAIL}")),
        }
    }
}

/// The Redis keys and channel of one topic.
struct Keys {
    meta: String,
    log: String,
    members: String,
    info: String,
    channel: String,
}

impl Keys {
    fn of(topic: &Topic) -> Self {
        let base = format!("pushwire:{{{topic}}}");
        Self {
            meta: format!("{base}:meta"),
            log: format!("{base}:log"),
            members: format!("{base}:members"),
            info: format!("{base}:info"),
            channel: base,
        }
    }
}

/// The topic a channel name belongs to.
fn topic_of_channel(channel: &str) -> Option<Topic> {
    let name = channel.strip_prefix("pushwire:{")?.strip_suffix('}')?;
    Topic::new(name).ok()
}

fn unavailable(err: impl std::fmt::Display) -> BrokerError {
    BrokerError::Unavailable(format!("redis: {err}"))
}

/// What the READ script answered.
struct Read {
    position: Position,
    /// (offset, data) after `since`, in order.
    entries: Vec<(u64, Data)>,
}

/// What Redis keeps of a member besides its client id (in the info hash, and after
/// the client id in join and leave notices): `{"user":…,"info":…}`, each `null`
/// when absent.
fn stored_member(member: &Member) -> String {
    let user = member
        .user
        .as_deref()
        .and_then(|user| serde_json::to_string(user).ok());
    let mut out = String::from("{\"user\":");
    out.push_str(user.as_deref().unwrap_or("null"));
    out.push_str(",\"info\":");
    out.push_str(member.info.as_ref().map_or("null", Data::as_str));
    out.push('}');
    out
}

/// The member `client` whose [`stored_member`] text is `stored`. Text in the older
/// form (the info alone, or nothing) still reads, as a member without a user.
fn member_of(client: &str, stored: &str) -> Member {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Stored<'a> {
        #[serde(borrow)]
        user: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        info: Option<&'a serde_json::value::RawValue>,
    }
    let (user, info) = match serde_json::from_str::<Stored<'_>>(stored) {
        Ok(Stored { user, info }) => (user.map(|u| Arc::from(&*u)), info.map(|i| i.get())),
        Err(_) => (None, Some(stored).filter(|s| !s.is_empty())),
    };
    Member {
        client: Arc::from(client),
        user,
        info: info.and_then(|info| Data::json(info.as_bytes().to_vec()).ok()),
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text(other)?.parse().ok(),
    }
}

fn position_of(values: &[Value]) -> Option<Position> {
    let epoch = Epoch::new(&text(values.first()?)?).ok()?;
    let offset = number(values.get(1)?)?;
    Some(Position { epoch, offset })
}

fn parse_read(value: &Value) -> Result<Read, BrokerError> {
    let bad = || BrokerError::Unavailable(String::from("redis: unexpected answer to a read"));
    let Value::Array(values) = value else {
        return Err(bad());
    };
    let position = position_of(values).ok_or_else(bad)?;
    let mut entries = Vec::new();
    for pair in values.get(2..).unwrap_or_default().chunks(2) {
        let [offset, data] = pair else {
            return Err(bad());
        };
        let offset = number(offset).ok_or_else(bad)?;
        let data = match data {
            Value::BulkString(bytes) => Data::json(bytes.clone()),
            _ => return Err(bad()),
        };
        match data {
            Ok(data) => entries.push((offset, data)),
            Err(err) => {
                // Skipped: the gap makes recovery answer `false` rather than lie.
                tracing::warn!(offset, error = %err, "redis: a stored message is not JSON");
            }
        }
    }
    Ok(Read { position, entries })
}

/// Whether `entries` are exactly the messages after `since` up to `last`.
fn covers(entries: &[(u64, Data)], since: u64, last: u64) -> bool {
    since <= last
        && entries.len() as u64 == last - since
        && entries
            .iter()
            .enumerate()
            .all(|(i, (offset, _))| *offset == since + 1 + i as u64)
}

impl RedisBroker {
    /// A broker on the Redis at `config.url`, keeping history as `history` says.
    /// Connects lazily: a node starts (unready) while Redis is away. Fails only on
    /// a malformed URL. Must be called inside a Tokio runtime.
    pub fn new(history: HistoryConfig, config: RedisConfig) -> Result<Self, BrokerError> {
        let client = Client::open(config.url.as_str())
            .map_err(|err| BrokerError::Unavailable(format!("invalid Redis URL: {err}")))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.command_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(BACKOFF_MAX);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(unavailable)?;
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

impl Shared {
    fn hub(&self) -> Option<Arc<dyn Deliver>> {
        self.hub.get().and_then(Weak::upgrade)
    }

    fn meta_ttl(&self) -> u64 {
        ttl_millis(self.history.ttl.max(self.config.refresh_every() * 3))
    }

    /// Runs `script` with a timeout.
    async fn run(&self, invocation: ::redis::ScriptInvocation<'_>) -> Result<Value, BrokerError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(
            self.config.command_timeout,
            invocation.invoke_async::<Value>(&mut conn),
        )
        .await
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(unavailable(err)),
            Err(_) => Err(BrokerError::Unavailable(format!(
                "Redis did not answer within {:?}",
                self.config.command_timeout
            ))),
        }
    }

    /// The topic's position and the messages after `since` (creating the topic when
    /// missing).
    async fn read(&self, topic: &Topic, since: Option<u64>) -> Result<Read, BrokerError> {
        let keys = Keys::of(topic);
        let since = since.map_or(-1, |s| i64::try_from(s).unwrap_or(i64::MAX));
        let mut invocation = self.scripts.read.key(&keys.meta);
        invocation
            .key(&keys.log)
            .arg(Epoch::random().as_str())
            .arg(since)
            .arg(ttl_millis(self.history.ttl))
            .arg(self.meta_ttl());
        let value = self.run(invocation).await?;
        parse_read(&value)
    }

    fn deliver(&self, push: Push) {
        if let Some(hub) = self.hub() {
            hub.deliver(Arc::new(push));
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
            let value = shared.run(invocation).await;
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
                read.entries
                    .into_iter()
                    .map(|(offset, data)| {
                        Arc::new(Push::message(
                            topic.clone(),
                            position.epoch.clone(),
                            offset,
                            data,
                        ))
                    })
                    .collect()
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
            let Value::Array(values) = shared.run(invocation).await? else {
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

/// Applies joins and leaves in order, and every refresh interval pushes this
/// node's members' deadlines forward and reaps expired members of watched topics.
async fn presence_worker(shared: Arc<Shared>, mut ops: mpsc::Receiver<PresenceOp>) {
    let mut refresh = tokio::time::interval(shared.config.refresh_every());
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ttl = ttl_millis(shared.config.presence_ttl);
    let key_ttl = ttl_millis(shared.config.presence_ttl * 2);
    loop {
        tokio::select! {
            op = ops.recv() => {
                let Some(op) = op else { return };
                apply(&shared, op, ttl, key_ttl).await;
            }
            _ = refresh.tick() => {
                // Joins and leaves queued before this tick go first.
                while let Ok(op) = ops.try_recv() {
                    apply(&shared, op, ttl, key_ttl).await;
                }
                refresh_all(&shared, ttl, key_ttl).await;
            }
        }
    }
}

async fn apply(shared: &Shared, op: PresenceOp, ttl: u64, key_ttl: u64) {
    let result = match op {
        PresenceOp::Join(topic, member) => {
            let keys = Keys::of(&topic);
            let mut invocation = shared.scripts.join.key(&keys.members);
            invocation
                .key(&keys.info)
                .arg(&keys.channel)
                .arg(&*member.client)
                .arg(ttl)
                .arg(stored_member(&member))
                .arg(key_ttl);
            shared.run(invocation).await
        }
        PresenceOp::Leave(topic, client) => {
            let keys = Keys::of(&topic);
            let mut invocation = shared.scripts.leave.key(&keys.members);
            invocation.key(&keys.info).arg(&keys.channel).arg(&*client);
            shared.run(invocation).await
        }
    };
    if let Err(err) = result {
        tracing::debug!(error = %err, "redis: presence update failed; the next refresh repairs it");
    }
}

async fn refresh_all(shared: &Shared, ttl: u64, key_ttl: u64) {
    let mut topics: HashMap<Topic, Vec<Member>> = lock(&shared.watched)
        .keys()
        .map(|topic| (topic.clone(), Vec::new()))
        .collect();
    for (topic, members) in lock(&shared.members).iter() {
        topics
            .entry(topic.clone())
            .or_default()
            .extend(members.values().cloned());
    }
    for (topic, members) in topics {
        let keys = Keys::of(&topic);
        let mut invocation = shared.scripts.refresh.key(&keys.members);
        invocation
            .key(&keys.info)
            .key(&keys.meta)
            .arg(&keys.channel)
            .arg(ttl)
            .arg(key_ttl)
            .arg(shared.meta_ttl());
        for member in &members {
            invocation.arg(&*member.client).arg(stored_member(member));
        }
        if let Err(err) = shared.run(invocation).await {
            tracing::debug!(error = %err, "redis: presence refresh failed");
            return;
        }
    }
}

/// The task that reads the pub/sub connection and delivers, one at a time.
struct Dispatcher {
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
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            topics: HashMap::new(),
        }
    }

    async fn run(mut self, mut control: mpsc::UnboundedReceiver<Control>) {
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
                    Data::json(data.as_bytes().to_vec()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: u64) -> (u64, Data) {
        (n, Data::text(&n.to_string()))
    }

    #[test]
    fn members_keep_their_user_and_info_in_redis_and_older_entries_still_read() {
        let member = Member {
            client: Arc::from("c1"),
            user: Some(Arc::from("ann \"the\" user")),
            info: Data::json(&b"{\"seat\":[1,2]}"[..]).ok(),
        };
        let back = member_of("c1", &stored_member(&member));
        assert_eq!(back.user, member.user);
        assert_eq!(back.info, member.info);
        let bare = member_of(
            "c2",
            &stored_member(&Member {
                client: Arc::from("c2"),
                user: None,
                info: None,
            }),
        );
        assert_eq!((bare.user, bare.info), (None, None));
        // What nodes stored before users were kept: the info alone, or nothing.
        let old = member_of("c3", "{\"name\":\"bo\"}");
        assert_eq!(old.user, None);
        assert_eq!(
            old.info.map(|i| i.as_str().to_owned()),
            Some(String::from("{\"name\":\"bo\"}"))
        );
        assert_eq!(member_of("c4", "").info, None);
    }

    #[test]
    fn coverage_needs_every_offset_after_since() {
        assert!(covers(&[], 5, 5));
        assert!(covers(&[data(6), data(7)], 5, 7));
        assert!(!covers(&[data(7)], 5, 7), "6 is missing");
        assert!(!covers(&[data(6)], 5, 7), "7 is missing");
        assert!(!covers(&[], 8, 7), "since is ahead");
    }

    #[test]
    fn channels_name_their_topic() {
        let topic = Topic::new("chat:lobby").unwrap_or_else(|e| panic!("{e}"));
        let keys = Keys::of(&topic);
        assert_eq!(keys.channel, "pushwire:{chat:lobby}");
        assert_eq!(keys.log, "pushwire:{chat:lobby}:log");
        assert_eq!(topic_of_channel(&keys.channel), Some(topic));
        assert_eq!(topic_of_channel("other"), None);
    }
}
