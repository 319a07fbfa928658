//! The Lua scripts that keep a topic's offsets, history and presence in Redis.
//!
//! Redis runs a script at once and alone, so each of them is one atomic step: the
//! next offset and its `PUBLISH` (so that a channel carries messages in offset
//! order), a read of the history with the position it is taken at, a join or leave
//! and its notice, an occupancy flush and the transitions it makes.

use ::redis::Script;

/// The scripts, loaded once per broker (`EVALSHA` after the first call).
pub(super) struct Scripts {
    pub(super) publish: Script,
    pub(super) read: Script,
    pub(super) join: Script,
    pub(super) leave: Script,
    pub(super) refresh: Script,
    pub(super) members: Script,
    pub(super) occupancy_flush: Script,
    pub(super) occupancy_list: Script,
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

/// Keys: the nodes' deadlines (zset), this node's topics (set), the occupied
/// topics (zset, score 0). Args: this node, ttl ms, the most dead nodes to sweep,
/// then (topic, count) pairs. Sets this node's count of each topic (in the
/// topic's hash `pushwire:{T}:occ`, node → count), pushes its deadline forward,
/// removes the share of every node whose deadline passed; returns {known, kind,
/// topic, kind, topic, …}: `known` 0 when this node had no deadline (it must send
/// all its counts), `kind` `o` (occupied) or `v` (vacated) for each transition.
const OCCUPANCY_FLUSH: &str = r"
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local me = ARGV[1]
local known = redis.call('ZSCORE', KEYS[1], me) and 1 or 0
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), me)
local out = {known}
local function settle(topic, key)
  local total = 0
  for _, n in ipairs(redis.call('HVALS', key)) do total = total + tonumber(n) end
  local was = redis.call('ZSCORE', KEYS[3], topic)
  if total > 0 and not was then
    redis.call('ZADD', KEYS[3], 0, topic)
    table.insert(out, 'o')
    table.insert(out, topic)
  elseif total == 0 and was then
    redis.call('ZREM', KEYS[3], topic)
    table.insert(out, 'v')
    table.insert(out, topic)
  end
end
for i = 4, #ARGV, 2 do
  local topic = ARGV[i]
  local key = 'pushwire:{' .. topic .. '}:occ'
  if tonumber(ARGV[i + 1]) > 0 then
    redis.call('HSET', key, me, ARGV[i + 1])
    redis.call('SADD', KEYS[2], topic)
  else
    redis.call('HDEL', key, me)
    redis.call('SREM', KEYS[2], topic)
  end
  settle(topic, key)
end
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ms, 'LIMIT', 0, tonumber(ARGV[3]))
for _, node in ipairs(dead) do
  local topics = 'pushwire:occupancy:node:' .. node
  for _, topic in ipairs(redis.call('SMEMBERS', topics)) do
    local key = 'pushwire:{' .. topic .. '}:occ'
    redis.call('HDEL', key, node)
    settle(topic, key)
  end
  redis.call('DEL', topics)
  redis.call('ZREM', KEYS[1], node)
end
return out
";

/// Keys: the occupied topics. Args: the lowest and highest name (ZRANGEBYLEX
/// bounds), this node. Returns {topic, count, …}: the occupied topics in range
/// with the other nodes' subscribers, those with none left out.
const OCCUPANCY_LIST: &str = r"
local out = {}
for _, topic in ipairs(redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2])) do
  local counts = redis.call('HGETALL', 'pushwire:{' .. topic .. '}:occ')
  local total = 0
  for i = 1, #counts, 2 do
    if counts[i] ~= ARGV[3] then total = total + tonumber(counts[i + 1]) end
  end
  if total > 0 then
    table.insert(out, topic)
    table.insert(out, total)
  end
end
return out
";

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            publish: Script::new(PUBLISH),
            read: Script::new(READ),
            join: Script::new(JOIN),
            leave: Script::new(LEAVE),
            refresh: Script::new(&format!("{REAP}{REFRESH_TAIL}")),
            members: Script::new(&format!("{REAP}{MEMBERS_TAIL}")),
            occupancy_flush: Script::new(OCCUPANCY_FLUSH),
            occupancy_list: Script::new(OCCUPANCY_LIST),
        }
    }
}
