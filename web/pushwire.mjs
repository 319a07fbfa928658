/*! pushwire.mjs: the browser client for pushwire (protocol: docs/protocol.md; types: pushwire.d.ts).
 *
 *   import { connect } from '/pushwire.mjs';          as an ES module (which also defines window.pushwire)
 *   <script src="/pushwire.js"></script>             as a classic script: defines window.pushwire
 *
 *   const client = connect(location.origin);          (or pushwire.connect, from pushwire.js)
 *   const sub = client.subscribe('news', (message) => console.log(message.offset, message.data));
 *   client.publish('news', { title: 'hello' });
 *
 * This file is the source: pushwire.js (the same code wrapped as a classic script) and
 * pushwire.d.ts (the types, from the JSDoc below) are generated from it by `scripts/gen-client`,
 * and `./scripts/test` fails if they differ from what it generates. Edit this file only.
 *
 * Tokens (servers that require them, see docs/protocol.md): `connect(url, { token })`, where
 * `token` is a string or a function (sync or async) that returns one. It is called again on every
 * (re)connect, so a function that fetches a fresh token from your backend keeps the client going:
 * over WebSocket the client sends `auth` first, over SSE and long-poll it adds `?token=`.
 * `client.refreshToken(token?)` sends a new one at once.
 * Subscription tokens: `connect(url, { subscriptionToken: (topic) => … })`, a function (sync or
 * async) that returns a subscription token for `topic` (or null when the topic needs none). It is
 * called on every subscribe (and resubscribe after a reconnect), and again at 80% of each token's
 * life: over WebSocket the client sends `sub` again with the fresh token (the subscription keeps
 * its position), over SSE and long-poll it reopens the stream with it (`?sub_token=`). A
 * subscription the server ends (its token expired, or the connection token no longer allows it)
 * is reported as 'unsubscribed' ({topic, code, reason}) and becomes inactive.
 *
 * Transports: WebSocket (/ws) first, then Server-Sent Events (/sse), then long-polling (/poll),
 * or the order in `opts.transports`. On a disconnect the client reconnects with exponential
 * backoff and full jitter and resumes every subscription from the last position it delivered
 * (a server that restarts says so: WebSocket close 1012, an SSE stream's end, a long-poll answered
 * at once with Retry-After; the client comes back within a second, on the same transport):
 * each message is delivered once, in offset order; what cannot be recovered is reported
 * ('lost'), never skipped silently. Each transport implements one interface (`Transport`, below)
 * and reports to the client through another (`TransportHost`).
 *
 * Back to WebSocket: while it runs on SSE or long-polling because WebSocket failed, the client
 * probes WebSocket in the background (exponential backoff with jitter: after n failed probes in
 * a row the next waits a random time in [c/2, c], c = min(probeMaxDelay, probeMinDelay * 2^n);
 * `probe: false` turns it off). A probe that connects resubscribes every topic with `since` = the last position
 * delivered; both transports deliver into the same per-topic offset check while the answers
 * come, so nothing is delivered twice or skipped; once every topic is answered the WebSocket
 * takes over and the fallback is closed. `client.transport` names the transport in use, and the
 * 'transport' event fires when it changes.
 */

// ---------------------------------------------------------------------------------------------
// Public types

/**
 * Any value JSON can carry: what is published, what is delivered, presence `info`. (What an
 * array or object holds is `unknown` here: a JSDoc type cannot refer to itself in TypeScript 5.)
 * @typedef {null | boolean | number | string | unknown[] | { [key: string]: unknown }} Json
 */

/**
 * A transport, in the order the client tries them by default.
 * @typedef {'websocket' | 'sse' | 'poll'} TransportName
 */

/**
 * A place in a topic's stream. `epoch` changes whenever the topic's history is lost (so offsets
 * from another epoch mean nothing); `offset` counts the topic's messages 1, 2, 3, … without gaps,
 * and 0 means "before the first message".
 * @typedef {object} Position
 * @property {string} epoch
 * @property {number} offset
 */

/**
 * A message published on a topic, as delivered to `subscribe`'s callback.
 * @template [T=Json]
 * @typedef {object} Message
 * @property {string} topic
 * @property {string} epoch
 * @property {number} offset Exactly one more than the previous message's offset delivered on this subscription (see 'lost').
 * @property {T} data What was published: JSON as JSON, text as a string.
 */

/**
 * Where a subscription starts, from the server's answer to it.
 * @typedef {object} Subscribed
 * @property {string} topic
 * @property {string} epoch
 * @property {number} offset
 * @property {boolean} [recovered] Present when the subscription resumed from `since`: `true` if
 *   every missed message follows (offsets `since.offset + 1 ..= offset`), `false` if the gap could
 *   not be filled and the stream continues after `offset`.
 * @property {number} [expires] When the subscription token it was made with expires (Unix
 *   seconds), if it was made with one.
 */

/**
 * What `publish` resolves to: the position the message got.
 * @typedef {object} Published
 * @property {string} topic
 * @property {string} epoch
 * @property {number} offset
 */

/**
 * A client present on a topic of a presence namespace (`--presence chat`).
 * @typedef {object} Member
 * @property {string} client The server's id for that client, whatever its transport (the `id` of the client, see `Client.id`).
 * @property {string} [user] The user id (`sub`) of that client's token, on a server that requires tokens.
 * @property {Json} [info] What that client passed as `info` when it subscribed; absent if nothing.
 */

/**
 * A token (JWT) for a server that requires them, or a function returning one (sync or async),
 * called again on every (re)connect and refresh so that it can fetch a fresh token.
 * @typedef {string | (() => string | null | undefined | Promise<string | null | undefined>)} TokenSource
 */

/**
 * A function returning a subscription token for `topic` (sync or async), or null/undefined when
 * the topic needs none (it is public, or the connection token allows it).
 * @typedef {(topic: string) => string | null | undefined | Promise<string | null | undefined>} SubscriptionTokenSource
 */

/**
 * The 'unsubscribed' event: the server ended a subscription (docs/protocol.md, "Authentication").
 * The subscription is inactive from then on; its `ready` rejects if it had not resolved.
 * @typedef {object} UnsubscribedEvent
 * @property {string} topic
 * @property {number} code 401: its subscription token expired without a fresh one; 403: the connection token no longer allows it.
 * @property {string} reason `subscription token expired` or `permission withdrawn`.
 */

/**
 * The 'auth' event: the server accepted the token (WebSocket).
 * @typedef {object} AuthEvent
 * @property {string | null} user The token's user id (`sub`).
 * @property {number | undefined} expires When the token expires, in Unix seconds.
 */

/**
 * @typedef {object} ConnectOptions
 * @property {TokenSource} [token] The token to show (docs/protocol.md, "Authentication"). Over
 *   WebSocket it is sent as the first request (`auth`) on every connection; over SSE and long-poll
 *   it goes in `?token=`; the HTTP publish fallback sends it as `Authorization: Bearer`. With a
 *   function, the client also refreshes the token over WebSocket before it expires.
 * @property {SubscriptionTokenSource} [subscriptionToken] Subscription tokens (docs/protocol.md,
 *   "Authentication"): called for each topic on every subscribe and resubscribe, and again at 80%
 *   of each token's life, so that the subscription outlives its tokens. Over WebSocket the token
 *   goes in the `sub` request (a renewal is `sub` again, which keeps the subscription and its
 *   position); over SSE and long-poll in `?sub_token=`, and a renewal reopens the stream from the
 *   current positions.
 * @property {Array<TransportName | 'ws'>} [transports] The transports to try, in order; the
 *   default is `['websocket', 'sse', 'poll']`. A transport the browser lacks (no `WebSocket`, no
 *   `EventSource`) is skipped. `'ws'` is accepted for `'websocket'`.
 * @property {number} [minDelay] Backoff base in ms (default 500): the n-th retry in a row waits a
 *   random time in [0, min(maxDelay, minDelay·2ⁿ)].
 * @property {number} [maxDelay] Backoff ceiling in ms (default 10000).
 * @property {number} [openTimeout] How long a transport may take to open before the next one is
 *   tried, in ms (default 10000).
 * @property {number} [pollTimeout] The server-side wait of one long-poll, in ms (default 25000, at most 60000).
 * @property {boolean} [probe] Back to WebSocket (default true). While the client runs on SSE or
 *   long-polling and `'websocket'` comes before that transport in `transports`, it probes
 *   WebSocket in the background; when a probe connects, every topic is resubscribed over it from
 *   the position last delivered, and once all are answered the WebSocket takes over and the
 *   fallback is closed: no message is delivered twice or skipped across the switch. Until then
 *   nothing changes (`state` stays 'open' on the fallback). Each probe asks `token` for a token,
 *   as a reconnect does. `false`: stay on the fallback until it fails.
 * @property {number} [probeMinDelay] Probe backoff base in ms (default 5000): after n failed
 *   probes in a row, the next waits a random time in [c/2, c], where c = min(probeMaxDelay,
 *   probeMinDelay·2ⁿ). The count starts again once the client is on WebSocket.
 * @property {number} [probeMaxDelay] Probe backoff ceiling in ms (default 60000).
 */

/**
 * @typedef {object} SubscribeOptions
 * @property {Position} [since] Resume after this position: the messages after it are delivered
 *   first if history still has them.
 * @property {Json} [info] Shown to others in presence (any JSON, at most 1 KiB), over every transport.
 */

/**
 * The 'state' event: where the connection is.
 * @typedef {object} StateEvent
 * @property {'connecting' | 'open' | 'closed'} state `connecting`: trying `transport`, or waiting
 *   `retryIn` ms before the next round (then `transport` is null and `reason` says what failed);
 *   `open`: connected over `transport`; `closed`: after `client.close()`.
 * @property {TransportName | null} transport
 * @property {number} [retryIn] Milliseconds until the next attempt (only while waiting for it).
 * @property {string} [reason] Why the connection was lost or could not be made (only with `retryIn`).
 */

/**
 * The 'transport' event: the client is open on another transport than the last time it was open.
 * @typedef {object} TransportEvent
 * @property {TransportName} transport The transport now in use (also `client.transport`).
 * @property {TransportName | null} previous The transport used before; null on the first open.
 */

/**
 * The 'probe' event: a WebSocket probe is scheduled while the client runs on a fallback.
 * @typedef {object} ProbeEvent
 * @property {'websocket'} transport
 * @property {number} attempt Which probe in a row this will be (1 for the first after falling back).
 * @property {number} retryIn Milliseconds until it starts.
 * @property {string} [reason] Why the previous probe failed (or was put off); absent before the first one.
 */

/**
 * A presence event: `client` joined or left `topic`.
 * @typedef {Member & { topic: string }} PresenceEvent
 */

/**
 * The 'recovered' and 'lost' events, about a subscription that resumed from `since`
 * (after a reconnect, or from `SubscribeOptions.since`).
 *
 * 'recovered': nothing was lost; the messages after `since` up to `offset` follow, in order.
 *
 * 'lost': messages after `since` cannot be delivered (history no longer has them, or the epoch
 * changed); the subscription continues after (`epoch`, `offset`). Reload the state this topic
 * feeds from your own source of truth. `since` is null if the subscription had no position.
 * @typedef {object} RecoveryEvent
 * @property {string} topic
 * @property {string} epoch
 * @property {number} offset
 * @property {Position | null} since
 */

/**
 * The events of a client, by name, with what their listeners receive.
 * @typedef {object} ClientEvents
 * @property {StateEvent} state
 * @property {TransportEvent} transport The transport in use changed: the first open, a fallback, or back to WebSocket.
 * @property {ProbeEvent} probe The next WebSocket probe is scheduled (see `ConnectOptions.probe`).
 * @property {PresenceEvent} join
 * @property {PresenceEvent} leave
 * @property {RecoveryEvent} recovered
 * @property {RecoveryEvent} lost
 * @property {AuthEvent} auth The server accepted the token (on connect and on every refresh; WebSocket only).
 * @property {UnsubscribedEvent} unsubscribed The server ended a subscription: its token expired, or the permission was withdrawn.
 * @property {Error} error A refused subscription, an unreadable frame, a failed poll, or an exception thrown by a callback.
 */

/**
 * A client, as `connect` returns it.
 * @typedef {PushwireClient} Client
 */

/**
 * A subscription, as `client.subscribe` returns it.
 * @typedef {PushwireSubscription} Subscription
 */

// ---------------------------------------------------------------------------------------------
// What the server sends (docs/protocol.md), as the client reads it

/**
 * An error object of the server: `{code, message}` (`code` 0: made by the client).
 * @internal
 * @typedef {{ code?: number, message?: string }} WireError
 */

/**
 * An answer to `sub` (or an entry of an SSE `subscribed` event or a poll's `subs`).
 * @internal
 * @typedef {object} SubEntry
 * @property {string} topic
 * @property {string} epoch
 * @property {number} offset
 * @property {boolean} [recovered]
 * @property {number} [expires]
 * @property {boolean} [refreshed] A renewal's answer: only the token's expiry changed.
 */

/**
 * A published message as it comes over the wire.
 * @internal
 * @typedef {{ topic: string, epoch: string, offset: number, data: Json }} WireMessage
 */

/**
 * A presence change: `{topic, join: member}` or `{topic, leave: member}`.
 * @internal
 * @typedef {{ topic: string, join?: Member, leave?: Member }} WirePresence
 */

/**
 * The server ended a subscription: `{topic, unsub: {code, reason}}`.
 * @internal
 * @typedef {{ topic: string, unsub?: { code?: number, reason?: string } }} WireEnded
 */

/**
 * The server's answer to `auth`.
 * @internal
 * @typedef {{ user?: string | null, expires?: number }} AuthOk
 */

/**
 * The connect options with every default filled in.
 * @internal
 * @typedef {ConnectOptions & { minDelay: number, maxDelay: number, openTimeout: number, pollTimeout: number,
 *   probe: boolean, probeMinDelay: number, probeMaxDelay: number }} Settings
 */

// ---------------------------------------------------------------------------------------------
// The transport interface

/**
 * One connection over one transport: what `webSocketTransport`, `sseTransport` and
 * `pollTransport` each return. The client calls it; it reports back through its `TransportHost`.
 *
 * @internal
 * @typedef {object} Transport
 * @property {TransportName} name
 * @property {boolean} requests Whether it carries requests (`request`, `refresh` with an answer):
 *   WebSocket does; SSE and long-poll are one-way (the client publishes through the HTTP API).
 * @property {(sub: PushwireSubscription) => void} add A subscription was added (WebSocket: `sub`
 *   now, or when the socket opens; SSE and long-poll: reopen with the new topic list).
 * @property {(sub: PushwireSubscription) => void} remove A subscription was removed.
 * @property {(sub: PushwireSubscription) => void} renew `sub`'s subscription token is about to
 *   expire: send a fresh one (WebSocket: `sub` again; SSE and long-poll: reopen).
 * @property {(op: string, fields: Record<string, Json>) => Promise<any>} request Send a request
 *   (`pub`, `presence`, `auth`) and resolve with the server's answer; rejects on a one-way transport.
 * @property {() => Promise<AuthOk | null>} refresh Show the current token again (WebSocket:
 *   `auth`, resolves with the answer; SSE and long-poll: reopen with it, resolves with null).
 * @property {() => void} close Close for good: nothing is reported after this.
 */

/**
 * What a transport is given: where to connect, what to subscribe, the tokens, and where to
 * report what happens. Every report is ignored once the transport is no longer the client's
 * connection (or its probe), so a transport need not know whether it still is.
 *
 * @internal
 * @typedef {object} TransportHost
 * @property {Settings} opts
 * @property {(path: string) => string} endpoint The server's URL for `path` (`/ws`, `/sse`, `/poll`).
 * @property {() => PushwireSubscription[]} subscriptions The client's subscriptions now.
 * @property {() => string} query `topic=…&since=…[&info=…]` for the HTTP transports; '' without topics.
 * @property {string} key Names the client on every long-poll (`client=`): one presence member.
 * @property {() => Promise<string | null>} token The current connection token (or null).
 * @property {(topic: string) => Promise<string | null>} subToken A subscription token for `topic` (or null).
 * @property {() => Promise<string[]>} subTokens The subscription tokens of every subscription.
 * @property {() => void} opened The connection is open (and authenticated); every `sub` is sent.
 * @property {(why: string, restart?: boolean) => void} closed The connection is gone (or could not be opened);
 *   `restart`: the server said it restarts (WebSocket close 1012), so the next attempts use the
 *   same transport rather than fall back to another.
 * @property {(entry: SubEntry, sub?: PushwireSubscription) => void} subscribed The server answered a
 *   subscription (`sub`: the one it answers, when the transport knows it).
 * @property {(sub: PushwireSubscription, error: WireError) => void} refused The server refused a subscription.
 * @property {(message: WireMessage) => void} deliver A published message.
 * @property {(event: WirePresence) => void} presence A join or a leave.
 * @property {(hello: { client: string }) => void} hello The server's id for this connection.
 * @property {(ok: AuthOk) => void} authenticated The server accepted the token.
 * @property {(ended: WireEnded) => void} ended The server ended a subscription.
 * @property {(err: Error) => void} error Something to tell the application (an unreadable frame, a refusal).
 */

/**
 * A WebSocket probe under way beside a fallback (see `_probe`).
 * @internal
 * @typedef {object} Probe
 * @property {Transport | null} conn
 * @property {boolean} open Every topic's `sub` has been sent.
 * @property {Set<PushwireSubscription>} answered
 * @property {string | null} id
 * @property {AuthOk | null} auth
 * @property {string | null} reason
 */

/**
 * A transport the client can try: whether this browser has it, and how to open it.
 * @internal
 * @typedef {{ available: () => boolean, open: (host: TransportHost) => Transport }} TransportOpener
 */

// ---------------------------------------------------------------------------------------------

/** @type {TransportName[]} */
const TRANSPORTS = ['websocket', 'sse', 'poll'];
/** @type {Record<string, TransportName>} */
const ALIASES = { ws: 'websocket', websocket: 'websocket', sse: 'sse', eventsource: 'sse', poll: 'poll', 'long-poll': 'poll' };
const TOPIC = /^[A-Za-z0-9_.:/%-]{1,256}$/;
const EPOCH = /^[A-Za-z0-9]{1,32}$/;
const DEFAULTS = {
  minDelay: 500, maxDelay: 10000, openTimeout: 10000, pollTimeout: 25000,
  probe: true, probeMinDelay: 5000, probeMaxDelay: 60000,
};

/** An error from the server (`code` is one of docs/protocol.md's codes) or from the client (`code` 0). */
class PushwireError extends Error {
  /**
   * @param {string} message
   * @param {number} [code]
   * @param {string} [topic]
   */
  constructor(message, code = 0, topic) {
    super(message);
    this.name = 'PushwireError';
    /** @type {number} */
    this.code = code;
    /** @type {string | undefined} */
    this.topic;
    if (topic !== undefined) this.topic = topic;
  }
}

/** The message of an error thrown by a token function (or whatever it threw). @param {unknown} err */
const why = (err) => (err && /** @type {Error} */ (err).message) || String(err);

/**
 * A `PushwireError` from the server's error object.
 * @param {WireError | null | undefined} err
 * @param {string} [topic]
 */
const fromServer = (err, topic) =>
  new PushwireError((err && err.message) || 'request failed', (err && err.code) || 0, topic);

/** @param {unknown} topic @returns {asserts topic is string} */
function checkTopic(topic) {
  if (typeof topic !== 'string' || !TOPIC.test(topic)) {
    throw new PushwireError(`invalid topic ${JSON.stringify(topic)}: 1 to 256 of A-Z a-z 0-9 _ - . : / %`, 422, /** @type {string} */ (topic));
  }
}

/**
 * `since` checked and copied; null without one.
 * @param {Position | null | undefined} p
 * @param {string} topic
 * @returns {Position | null}
 */
function checkPosition(p, topic) {
  if (p === undefined || p === null) return null;
  if (typeof p !== 'object' || !EPOCH.test(p.epoch) || !Number.isSafeInteger(p.offset) || p.offset < 0) {
    throw new PushwireError(`invalid since ${JSON.stringify(p)}: {epoch: [A-Za-z0-9]{1,32}, offset: n >= 0}`, 422, topic);
  }
  return { epoch: p.epoch, offset: p.offset };
}

/** @param {string} text @returns {any} */
const parse = (text) => JSON.parse(text);

/** A random key of 22 characters of A-Z a-z 0-9 - _: names this client on every long-poll. */
function randomKey() {
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const bytes = new Uint8Array(22);
  if (globalThis.crypto && typeof globalThis.crypto.getRandomValues === 'function') globalThis.crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  let key = '';
  for (const b of bytes) key += chars[b & 63];
  return key;
}

/**
 * `query` with `token=…` added when there is a token, and a `sub_token=…` per subscription token.
 * @param {string} query
 * @param {string | null} token
 * @param {string[]} [subTokens]
 */
const withToken = (query, token, subTokens) => {
  let out = token ? `${query}${query ? '&' : ''}token=${encodeURIComponent(token)}` : query;
  for (const t of subTokens || []) out += `&sub_token=${encodeURIComponent(t)}`;
  return out;
};

/** @param {string} name @returns {Promise<never>} */
const oneWay = (name) => Promise.reject(new PushwireError(`${name} carries no requests`));

// ---------------------------------------------------------------------------------------------
// Transports: each implements `Transport` and reports to its `TransportHost`.

/**
 * WebSocket (`/ws`): requests with ids, answers, pushes; the token goes first (`auth`).
 * @param {TransportHost} host
 * @returns {Transport}
 */
function webSocketTransport(host) {
  const url = host.endpoint('/ws').replace(/^http/, 'ws');
  const ws = new globalThis.WebSocket(url);
  /** @type {Map<number, { ok: (result: any) => void, fail: (error: WireError) => void }>} request id -> its answer's handlers */
  const pending = new Map();
  let nextId = 1;
  let open = false; // authenticated (when there is a token) and ready for requests
  let stopped = false;

  /**
   * @param {string} op
   * @param {Record<string, unknown>} fields
   * @param {(result: any) => void} ok
   * @param {(error: WireError) => void} fail
   */
  function send(op, fields, ok, fail) {
    const id = nextId++;
    pending.set(id, { ok, fail });
    ws.send(JSON.stringify(Object.assign({ op, id }, fields)));
  }
  /** @param {string} why */
  function failAll(why) {
    const waiting = [...pending.values()];
    pending.clear();
    for (const p of waiting) p.fail({ code: 0, message: why });
  }
  /** @param {PushwireSubscription} sub */
  function add(sub) {
    if (!open) return; // every subscription is sent when the socket opens
    if (!host.opts.subscriptionToken) return sendSub(sub, null);
    host.subToken(sub.topic).then((token) => {
      if (open && !stopped && sub._active) sendSub(sub, token);
    }, (err) => host.refused(sub, { code: 0, message: 'the subscription token function failed: ' + why(err) }));
  }
  /** @param {PushwireSubscription} sub @param {string | null} token */
  function sendSub(sub, token) {
    /** @type {Record<string, unknown>} */
    const fields = { topic: sub.topic };
    if (sub._position) fields.since = sub._position;
    if (sub._info !== undefined) fields.info = sub._info;
    if (token) fields.token = token;
    // A sub lost with the connection (code 0) is sent again on the next one.
    send('sub', fields, (ok) => host.subscribed(ok, sub), (err) => { if (err.code) host.refused(sub, err); });
  }
  /** A fresh subscription token for a live subscription: `sub` again; it keeps its position. @param {PushwireSubscription} sub */
  function renew(sub) {
    if (!open) return;
    host.subToken(sub.topic).then((token) => {
      if (!open || stopped || !sub._active || !token) return;
      /** @type {Record<string, unknown>} */
      const fields = { topic: sub.topic, token };
      // If the server ended the subscription meanwhile, this resubscribes from the position.
      if (sub._position) fields.since = sub._position;
      send('sub', fields, (ok) => host.subscribed(ok, sub), (err) => { if (err.code) host.error(fromServer(err, sub.topic)); });
    }, (err) => host.error(new PushwireError('the subscription token function failed: ' + why(err), 0, sub.topic)));
  }

  function ready() {
    open = true;
    for (const sub of host.subscriptions()) add(sub); // before 'open' is announced, so later requests queue behind them
    host.opened();
  }
  /** @param {WireError | PushwireError} err */
  function refused(err) {
    host.error(err instanceof PushwireError ? err : fromServer(err));
    try { ws.close(1000); } catch { /* closing already */ }
  }
  ws.onopen = () => {
    // With a token, `auth` goes first: the server answers anything else before it with 401.
    host.token().then((token) => {
      if (stopped || ws.readyState !== 1) return;
      if (!token) return ready();
      send('auth', { token }, (ok) => { host.authenticated(ok); ready(); }, (err) => {
        if (err.code === 400) return ready(); // a server that needs no tokens
        if (err.code) refused(err);
      });
    }, (err) => refused(new PushwireError('the token function failed: ' + why(err))));
  };
  ws.onmessage = (event) => {
    /** @type {any} */
    let m;
    try { m = parse(event.data); } catch (err) { return host.error(new PushwireError('unreadable frame: ' + /** @type {Error} */ (err).message)); }
    if (m === null || typeof m !== 'object') return;
    if (m.hello) host.hello(m.hello);
    else if ('id' in m && ('ok' in m || 'error' in m)) {
      const p = pending.get(m.id);
      if (p) { pending.delete(m.id); if (m.error) p.fail(m.error); else p.ok(m.ok); }
      else if (m.error) host.error(fromServer(m.error));
    } else if (m.unsub) host.ended(m);
    else if (m.join || m.leave) host.presence(m);
    else if (typeof m.offset === 'number') host.deliver(m);
  };
  ws.onclose = (event) => {
    failAll('connection closed');
    // 1012 "service restart": a draining server asks us to come back (to another node, or to
    // it once restarted) and resume; nothing says WebSocket itself is unwelcome.
    host.closed(`WebSocket closed (${event.code}${event.reason ? ' ' + event.reason : ''})`, event.code === 1012);
  };

  /** @type {Transport} */
  const transport = {
    name: 'websocket',
    requests: true,
    add,
    renew,
    remove(sub) { if (open) send('unsub', { topic: sub.topic }, () => {}, () => {}); },
    request(op, fields) {
      return new Promise((resolve, reject) => {
        const topic = typeof fields.topic === 'string' ? fields.topic : undefined;
        if (!open || ws.readyState !== 1) return reject(new PushwireError('not connected', 0, topic));
        send(op, fields, resolve, (err) => reject(fromServer(err, topic)));
      });
    },
    refresh() {
      return host.token().then((token) => {
        if (!token) throw new PushwireError('no token to send', 401);
        return transport.request('auth', { token });
      }).then((ok) => { host.authenticated(ok); return ok; });
    },
    close() {
      stopped = true;
      ws.onopen = ws.onmessage = ws.onclose = null;
      failAll('client closed the connection');
      try { ws.close(1000); } catch { /* not open yet */ }
    },
  };
  return transport;
}

/**
 * Server-Sent Events (`/sse`): one stream for every topic; the topics, positions and tokens are
 * in its URL, so any change reopens it.
 * @param {TransportHost} host
 * @returns {Transport}
 */
function sseTransport(host) {
  /** @type {EventSource | null} */
  let source = null;
  let opened = false;
  let stopped = false;
  let restartQueued = false;

  function opening() { if (!opened) { opened = true; host.opened(); } }
  function start() {
    restartQueued = false;
    if (stopped) return;
    if (source) { source.close(); source = null; }
    const query = host.query();
    if (!query) return opening(); // no topic: nothing to stream until there is one
    // EventSource cannot send headers: the token goes in the URL. A stream ends when its token
    // expires; the reconnect asks for the token again.
    Promise.all([host.token(), host.subTokens()]).then(([token, subTokens]) => { if (!stopped && !restartQueued) open(withToken(query, token, subTokens)); },
      (err) => { host.error(new PushwireError('the token function failed: ' + why(err))); host.closed('no token'); });
  }
  /** @param {string} query */
  function open(query) {
    if (source) { source.close(); source = null; }
    const es = source = new globalThis.EventSource(host.endpoint('/sse') + '?' + query);
    /** @param {(data: any) => void} fn @returns {(event: MessageEvent) => void} */
    const guard = (fn) => (event) => {
      if (es !== source) return;
      /** @type {any} */
      let data;
      try { data = parse(event.data); } catch (err) { return host.error(new PushwireError('unreadable event: ' + /** @type {Error} */ (err).message)); }
      fn(data);
    };
    es.onopen = () => { if (es === source) opening(); };
    es.addEventListener('subscribed', guard((d) => {
      if (d.client) host.hello({ client: d.client }); // the stream's id: a presence member, as on /ws
      for (const entry of d.subs || []) host.subscribed(entry);
    }));
    es.addEventListener('presence', guard((d) => host.presence(d)));
    es.addEventListener('unsub', guard((d) => host.ended(d)));
    es.onmessage = guard((m) => host.deliver(m));
    // The browser would reconnect by itself (with Last-Event-ID); we reconnect instead, with our
    // backoff and our own positions, like every other transport.
    es.onerror = () => {
      es.close();
      if (es !== source) return;
      source = null;
      host.closed('event stream failed');
    };
  }
  // The topics are part of the URL: a change of subscriptions reopens the stream from the
  // current positions (once per batch of changes).
  function restart() {
    if (!restartQueued) { restartQueued = true; Promise.resolve().then(start); }
  }

  restart(); // asynchronously: the host is not called before this function has returned
  return {
    name: 'sse',
    requests: false,
    add: restart,
    remove: restart,
    renew: restart,
    request: () => oneWay('sse'),
    refresh() { restart(); return Promise.resolve(null); },
    close() { stopped = true; if (source) source.close(); source = null; },
  };
}

/**
 * Long-polling (`/poll`): one request after another, each with every topic, position and token.
 * @param {TransportHost} host
 * @returns {Transport}
 */
function pollTransport(host) {
  let opened = false;
  let stopped = false;
  /** @type {AbortController | null} */
  let controller = null;
  /** @type {(() => void) | null} resolves the idle wait (no topics) */
  let wake = null;
  let restarting = false;

  async function loop() {
    while (!stopped) {
      const query = host.query();
      if (!query) {
        if (!opened) { opened = true; host.opened(); }
        await new Promise((resolve) => { wake = () => resolve(undefined); });
        continue;
      }
      // Answer at once on the first poll and when a topic has no position yet.
      const quick = !opened || host.subscriptions().some((s) => !s.position);
      const timeout = quick ? 0 : host.opts.pollTimeout;
      const ac = controller = new AbortController();
      const timer = setTimeout(() => ac.abort(), quick ? host.opts.openTimeout : timeout + 10000);
      /** @type {any} */
      let body;
      let retryAfter = 0;
      try {
        const [token, subTokens] = await Promise.all([host.token(), host.subTokens()]);
        // `client`: the same key on every poll keeps this client a presence member between polls.
        const res = await globalThis.fetch(`${host.endpoint('/poll')}?${withToken(query, token, subTokens)}&client=${host.key}&timeout=${timeout}`, { signal: ac.signal, cache: 'no-store' });
        body = await res.json().catch(() => null);
        retryAfter = Number(res.headers.get('retry-after')) || 0;
        if (!res.ok || !body) {
          const err = body && body.error;
          throw new PushwireError(`poll failed: ${(err && err.message) || 'HTTP ' + res.status}`, (err && err.code) || res.status);
        }
      } catch (err) {
        if (stopped) return;
        if (restarting) { restarting = false; continue; } // aborted on purpose: the topics changed
        if (err instanceof PushwireError && err.code >= 400 && err.code < 500) host.error(err);
        return host.closed(/** @type {Error} */ (err).message);
      } finally {
        clearTimeout(timer);
      }
      if (stopped) return;
      if (body.client) host.hello({ client: body.client });
      if (!opened) { opened = true; host.opened(); }
      // Each poll carries its own positions (from host.query()); the server keeps only presence.
      for (const entry of body.subs || []) host.subscribed(entry);
      for (const m of body.messages || []) {
        if (m.unsub) host.ended(m);
        else if (m.join || m.leave) host.presence(m);
        else host.deliver(m);
      }
      // A server that shuts down answers at once with Retry-After (seconds): poll again within
      // that time, at a random moment, so that its clients do not all come back at once.
      if (retryAfter > 0 && !stopped) {
        await new Promise((resolve) => {
          const done = () => { wake = null; clearTimeout(timer); resolve(undefined); };
          const timer = setTimeout(done, Math.random() * Math.min(retryAfter, 10) * 1000);
          wake = done;
        });
      }
    }
  }
  function restart() {
    if (wake) { const w = wake; wake = null; w(); return; }
    if (controller && !controller.signal.aborted) { restarting = true; controller.abort(); }
  }

  Promise.resolve().then(loop); // asynchronously, as for SSE
  return {
    name: 'poll',
    requests: false,
    add: restart,
    remove: restart,
    renew: restart,
    request: () => oneWay('poll'),
    refresh() { restart(); return Promise.resolve(null); },
    close() { stopped = true; if (controller) controller.abort(); if (wake) wake(); },
  };
}

/** @type {Record<TransportName, TransportOpener>} */
const OPENERS = {
  websocket: { available: () => typeof globalThis.WebSocket === 'function', open: webSocketTransport },
  sse: { available: () => typeof globalThis.EventSource === 'function', open: sseTransport },
  poll: { available: () => typeof globalThis.fetch === 'function' && typeof globalThis.AbortController === 'function', open: pollTransport },
};

// ---------------------------------------------------------------------------------------------
// Subscription: what the application holds.

/** A subscription, as `client.subscribe` returns it (the type `Subscription`). */
class PushwireSubscription {
  /** @internal @type {PushwireClient} */
  _client;
  /** @internal @type {(message: Message<any>) => void} */
  _onMessage;
  /** @internal @type {Json | undefined} */
  _info;
  /** @internal @type {Position | null} the position of the last message delivered (or where it started) */
  _position;
  /** @internal the server answered the sub on the current connection */
  _confirmed = false;
  /** @internal a position to resume from: report 'recovered'/'lost' */
  _resume = false;
  /** @internal */
  _active = true;
  /** @internal @type {ReturnType<typeof setTimeout> | null} renews the subscription token before it expires */
  _renewTimer = null;
  /** @internal @type {{ resolve: (value: Subscribed) => void, reject: (error: PushwireError) => void }} */
  _settle;

  /**
   * @internal
   * @param {PushwireClient} client
   * @param {string} topic
   * @param {(message: Message<any>) => void} onMessage
   * @param {SubscribeOptions} options
   */
  constructor(client, topic, onMessage, options) {
    /** @readonly @type {string} */
    this.topic = topic;
    this._client = client;
    this._onMessage = onMessage;
    this._info = options.info;
    this._position = checkPosition(options.since, topic);
    this._confirmed = false;
    this._resume = !!this._position;
    this._active = true;
    this._renewTimer = null;
    /** @type {{ resolve: (value: Subscribed) => void, reject: (error: PushwireError) => void }} */
    let settle = { resolve: () => {}, reject: () => {} };
    /**
     * Resolves with the server's first answer to this subscription; rejects with a `PushwireError`
     * if the server refuses it (the refusal is also emitted as 'error'), or on `unsubscribe()` before that.
     * @readonly
     * @type {Promise<Subscribed>}
     */
    this.ready = new Promise((resolve, reject) => { settle = { resolve, reject }; });
    this._settle = settle;
    this.ready.catch(() => {}); // a refusal is also reported as 'error'; no unhandled rejection
  }
  /**
   * The position of the last message delivered, or where the subscription started if none was;
   * null until the server has answered (unless `since` was given). Pass it as `since` to a later
   * subscription to continue where this one stopped.
   * @returns {Position | null}
   */
  get position() { return this._position ? { epoch: this._position.epoch, offset: this._position.offset } : null; }
  /** False once unsubscribed, refused or ended by the server, or after `client.close()`. */
  get active() { return this._active; }
  /** Stop receiving messages (and leave presence). Safe to call twice. */
  unsubscribe() { this._client._unsubscribe(this); }
}

// ---------------------------------------------------------------------------------------------
// Client

/** A client, as `connect` returns it (the type `Client`). */
class PushwireClient {
  /** @internal names this client on every long-poll (`client=`): one presence member */
  _key = randomKey();
  /** @internal @type {Settings} */
  _opts;
  /** @internal @type {TransportName[]} */
  _order;
  /** @internal @type {Map<string, PushwireSubscription>} topic -> subscription */
  _subs = new Map();
  /** @internal @type {Map<string, Set<(event: any) => void>>} event -> listeners */
  _listeners = new Map();
  /** @internal @type {Transport | null} the current connection */
  _conn = null;
  /** @internal @type {TransportName | null} the transport that last opened: tried first on reconnect */
  _lastGood = null;
  /** @internal @type {TransportName | null} the transport a server closed with 1012 (restart): the only one tried for a few rounds */
  _restarted = null;
  /** @internal connection attempts since the last open (for backoff) */
  _failures = 0;
  /** @internal @type {Array<{ resolve: (conn: Transport) => void, reject: (error: PushwireError) => void }>} waiting for an open connection */
  _waiters = [];
  /** @internal */
  _closed = false;
  /** @internal @type {ReturnType<typeof setTimeout> | null} */
  _refreshTimer = null;
  /** @internal @type {Probe | null} a WebSocket probe under way while on a fallback (see _probe) */
  _switch = null;
  /** @internal @type {ReturnType<typeof setTimeout> | null} */
  _probeTimer = null;
  /** @internal probes failed since the client last ran on WebSocket */
  _probeFailures = 0;
  /** @internal @type {TransportName | null} the transport of the last 'open' (for the 'transport' event) */
  _openTransport = null;
  /** @internal @type {ReturnType<typeof setTimeout> | null} the next connection round */
  _timer = null;

  /**
   * @internal
   * @param {string | undefined} url
   * @param {ConnectOptions | undefined} opts
   */
  constructor(url, opts) {
    opts = opts || {};
    const here = globalThis.location && globalThis.location.href;
    const base = new URL(String(url || here).replace(/^ws(s?):/, 'http$1:'), here);
    /** The server's origin (`http:` or `https:`), derived from the `url` given to `connect`. @readonly */
    this.url = base.origin;
    /**
     * This client's id on the server, as presence shows it: from the WebSocket hello, the SSE
     * `subscribed` event or the long-poll answer (a long-poll client keeps one id for its lifetime).
     * Null until the server said it.
     * @type {string | null}
     */
    this.id = null;
    /**
     * The user id of the token the server accepted (WebSocket); null before that or without tokens.
     * @type {string | null}
     */
    this.user = null;
    /** @type {StateEvent['state']} */
    this.state = 'connecting';
    /**
     * The transport in use (or being tried); null while waiting to retry and once closed. A
     * WebSocket probe under way beside a fallback does not show here until it has taken over
     * (then the 'transport' event fires).
     * @type {TransportName | null}
     */
    this.transport = null;
    this._opts = Object.assign({}, DEFAULTS, opts);
    const order = (opts.transports || TRANSPORTS).map((t) => {
      const name = ALIASES[String(t).toLowerCase()];
      if (!name) throw new PushwireError(`unknown transport ${JSON.stringify(t)} (known: ${TRANSPORTS.join(', ')})`);
      return name;
    });
    if (!order.length) throw new PushwireError('opts.transports is empty');
    this._order = order;
    // Start after the caller's synchronous subscribe() calls, so they share the first request.
    this._timer = setTimeout(() => this._cycle(), 0);
  }

  // --- public API -------------------------------------------------------------------------

  /**
   * Receive every message published on `topic` from now on (or after `options.since`), once each
   * and in offset order, across reconnects. Throws `PushwireError` (code 422) for an invalid topic
   * name and (409) if this client is already subscribed to it.
   * @template [T=Json]
   * @param {string} topic
   * @param {(message: Message<T>) => void} onMessage
   * @param {SubscribeOptions} [options]
   * @returns {Subscription}
   */
  subscribe(topic, onMessage, options) {
    checkTopic(topic);
    if (typeof onMessage !== 'function') throw new TypeError('subscribe(topic, onMessage): onMessage must be a function');
    if (this._closed) throw new PushwireError('client is closed', 0, topic);
    if (this._subs.has(topic)) throw new PushwireError(`already subscribed to "${topic}"`, 409, topic);
    const sub = new PushwireSubscription(this, topic, onMessage, options || {});
    this._subs.set(topic, sub);
    if (this._conn) this._conn.add(sub); // WebSocket: sent now if open, else on open; SSE/poll: reopen
    if (this._switch) this._probeEnd(this._switch, 'the subscriptions changed', false);
    return sub;
  }

  /**
   * Publish `data` on `topic`. Waits for an open connection; over WebSocket it is a `pub`
   * request, over SSE and long-poll a `POST /api/publish/{topic}` with a JSON body. Rejects with
   * a `PushwireError` (the server's code, such as 403 or 413) if it is refused, or (code 0) if
   * the connection closed before the answer, in which case it may or may not have been published.
   * @param {string} topic
   * @param {Json} data
   * @returns {Promise<Published>}
   */
  async publish(topic, data) {
    checkTopic(topic);
    if (data === undefined) throw new TypeError('publish(topic, data): data must be a JSON value');
    const conn = await this._whenOpen();
    if (conn.requests) return conn.request('pub', { topic, data });
    // SSE and long-polling are one-way: publish through the HTTP API (with the token, if any).
    /** @type {Record<string, string>} */
    const headers = { 'Content-Type': 'application/json' };
    const token = await this._token();
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await globalThis.fetch(`${this.url}/api/publish/${encodeURIComponent(topic)}`, {
      method: 'POST',
      headers,
      body: JSON.stringify(data),
    });
    const body = await res.json().catch(() => null);
    if (!res.ok || !body) throw fromServer((body && body.error) || { code: res.status, message: `publish failed: HTTP ${res.status}` }, topic);
    return body;
  }

  /**
   * Who is on `topic` now (a presence namespace). Needs the WebSocket transport: over SSE and
   * long-poll it rejects (code 0); there, follow the 'join' and 'leave' events instead.
   * @param {string} topic
   * @returns {Promise<Member[]>}
   */
  async presence(topic) {
    checkTopic(topic);
    const conn = await this._whenOpen();
    if (!conn.requests) throw new PushwireError(`presence queries need the WebSocket transport (using ${conn.name})`, 0, topic);
    return (await conn.request('presence', { topic })).members;
  }

  /**
   * Send a fresh token now: `token` replaces the one given to `connect` (or, without it, the
   * current one is asked for again). Over WebSocket it resolves with the server's `{user, expires}`
   * and rejects with a `PushwireError` (401: refused, 403: a token for another user); over SSE and
   * long-poll the stream reopens with it and it resolves with null.
   * @param {TokenSource} [token]
   * @returns {Promise<{ user: string, expires: number } | null>}
   */
  async refreshToken(token) {
    if (token !== undefined) this._opts.token = token;
    const conn = await this._whenOpen();
    return /** @type {Promise<{ user: string, expires: number } | null>} */ (conn.refresh());
  }

  /**
   * Listen to an event; returns a function that removes the listener.
   * @template {keyof ClientEvents} E
   * @param {E} event
   * @param {(event: ClientEvents[E]) => void} listener
   * @returns {() => void}
   */
  on(event, listener) {
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, set = new Set());
    set.add(listener);
    return () => this.off(event, listener);
  }

  /**
   * Remove a listener added with `on`.
   * @template {keyof ClientEvents} E
   * @param {E} event
   * @param {(event: ClientEvents[E]) => void} listener
   */
  off(event, listener) {
    const set = this._listeners.get(event);
    if (set) set.delete(listener);
  }

  /** Close the connection for good: no reconnect; pending requests reject; state becomes 'closed'. */
  close() {
    if (this._closed) return;
    this._closed = true;
    clearTimeout(this._timer ?? undefined);
    clearTimeout(this._refreshTimer ?? undefined);
    this._drop();
    for (const w of this._waiters.splice(0)) w.reject(new PushwireError('client is closed'));
    for (const sub of this._subs.values()) sub._active = false;
    for (const sub of this._subs.values()) clearTimeout(sub._renewTimer ?? undefined);
    this._subs.clear();
    this._setState('closed', null);
  }

  // --- internals --------------------------------------------------------------------------

  /**
   * @internal
   * @template {keyof ClientEvents} E
   * @param {E} event
   * @param {ClientEvents[E]} payload
   */
  _emit(event, payload) {
    const set = this._listeners.get(event);
    if (!set || !set.size) {
      if (event === 'error') console.error('pushwire:', payload);
      return;
    }
    for (const fn of [...set]) {
      try { fn(payload); } catch (err) {
        if (event === 'error') console.error('pushwire: an error listener threw', err);
        else this._emit('error', /** @type {Error} */ (err));
      }
    }
  }

  /**
   * @internal
   * @param {StateEvent['state']} state
   * @param {TransportName | null} transport
   * @param {{ retryIn: number, reason: string }} [retry]
   */
  _setState(state, transport, retry) {
    if (state === this.state && transport === this.transport && !retry) return;
    this.state = state;
    this.transport = transport;
    this._emit('state', Object.assign({ state, transport }, retry));
    if (state === 'open' && transport !== this._openTransport) {
      const previous = this._openTransport;
      this._openTransport = transport;
      this._emit('transport', { transport: /** @type {TransportName} */ (transport), previous });
    }
  }

  /**
   * The current token: `opts.token`, called if it is a function; null without one.
   * @internal
   * @returns {Promise<string | null>}
   */
  _token() {
    const source = this._opts.token;
    return Promise.resolve(typeof source === 'function' ? source() : source)
      .then((token) => (token === undefined || token === null || token === '' ? null : String(token)));
  }

  /**
   * A subscription token for `topic` from `opts.subscriptionToken`; null without one.
   * @internal
   * @param {string} topic
   * @returns {Promise<string | null>}
   */
  _subToken(topic) {
    const source = this._opts.subscriptionToken;
    if (typeof source !== 'function') return Promise.resolve(null);
    return Promise.resolve(source(topic))
      .then((token) => (token === undefined || token === null || token === '' ? null : String(token)));
  }

  /**
   * Renew `sub`'s subscription token at 80% of its life (`expires`: Unix seconds).
   * @internal
   * @param {PushwireSubscription} sub
   * @param {number | undefined} expires
   */
  _scheduleRenewal(sub, expires) {
    clearTimeout(sub._renewTimer ?? undefined);
    sub._renewTimer = null;
    if (typeof expires !== 'number' || typeof this._opts.subscriptionToken !== 'function') return;
    const left = expires * 1000 - Date.now();
    sub._renewTimer = setTimeout(() => {
      sub._renewTimer = null;
      if (sub._active && this._conn) this._conn.renew(sub);
    }, Math.max(1000, left * 0.8));
  }

  /**
   * The server ended a subscription (`{topic, unsub: {code, reason}}`).
   * @internal
   * @param {WireEnded} m
   */
  _ended(m) {
    const sub = this._subs.get(m.topic);
    if (!sub) return;
    const code = (m.unsub && m.unsub.code) || 0;
    const reason = (m.unsub && m.unsub.reason) || 'ended by the server';
    this._subs.delete(m.topic);
    sub._active = false;
    clearTimeout(sub._renewTimer ?? undefined);
    sub._settle.reject(new PushwireError(reason, code, sub.topic));
    // The server has dropped it already; over SSE and long-poll it leaves the next query.
    this._emit('unsubscribed', { topic: m.topic, code, reason });
  }

  /**
   * The server accepted a token: remember the user; with a token function, refresh before expiry.
   * @internal
   * @param {AuthOk} ok
   */
  _authenticated(ok) {
    this.user = (ok && ok.user) || null;
    this._emit('auth', { user: this.user, expires: ok && ok.expires });
    clearTimeout(this._refreshTimer ?? undefined);
    this._refreshTimer = null;
    if (typeof this._opts.token === 'function' && ok && typeof ok.expires === 'number') {
      const left = ok.expires * 1000 - Date.now();
      this._refreshTimer = setTimeout(() => {
        this._refreshTimer = null;
        this.refreshToken().catch((err) => this._emit('error', err));
      }, Math.max(1000, left * 0.8));
    }
  }

  /**
   * The connection, once it is open.
   * @internal
   * @returns {Promise<Transport>}
   */
  _whenOpen() {
    if (this._closed) return Promise.reject(new PushwireError('client is closed'));
    if (this.state === 'open' && this._conn) return Promise.resolve(this._conn);
    return new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
  }

  /** @internal @param {PushwireSubscription} sub */
  _unsubscribe(sub) {
    if (!sub._active) return;
    sub._active = false;
    clearTimeout(sub._renewTimer ?? undefined);
    if (this._subs.get(sub.topic) === sub) this._subs.delete(sub.topic);
    sub._settle.reject(new PushwireError('unsubscribed', 0, sub.topic));
    if (this._conn) this._conn.remove(sub);
    if (this._switch) this._probeEnd(this._switch, 'the subscriptions changed', false);
  }

  /**
   * One round: try each transport in order (the last one that worked first).
   * @internal
   */
  _cycle() {
    this._timer = null;
    let order = this._lastGood ? [this._lastGood, ...this._order.filter((t) => t !== this._lastGood)] : this._order;
    // After a restart the server asked for (close 1012), the same transport again, for a few
    // rounds: a node that is down for a moment is no reason to fall back to long-polling.
    if (this._restarted && this._failures <= 3) order = [this._restarted];
    this._try(order, 0);
  }

  /**
   * Open `order[i]` (or the next one that works). With `probe` (see _probe), the connection
   * opens beside the current one: the client's state stays as it is until the probe takes over.
   * @internal
   * @param {TransportName[]} order
   * @param {number} i
   * @param {Probe} [probe]
   * @returns {void}
   */
  _try(order, i, probe) {
    if (this._closed) return;
    if (i >= order.length) {
      if (probe) return this._probeEnd(probe, `${order.join(', ')} could not be opened`, true);
      return this._retry(`no transport could connect (tried ${order.join(', ')})`);
    }
    const name = order[i];
    if (!OPENERS[name].available()) return this._try(order, i + 1, probe);
    if (!probe) this._setState('connecting', name);
    let opened = false;
    /** @type {Transport | null} */
    let conn = null;
    // A probe's connection delivers too (deduplicated by offset) while it is under way.
    const current = () => conn !== null && (this._conn === conn || (!!probe && this._switch === probe && probe.conn === conn));
    /** @type {TransportHost} */
    const host = {
      opts: this._opts,
      endpoint: (path) => this.url + path,
      subscriptions: () => [...this._subs.values()],
      query: () => this._query(),
      key: this._key,
      token: () => this._token(),
      subToken: (topic) => this._subToken(topic),
      subTokens: () => Promise.all([...this._subs.values()].map((s) => this._subToken(s.topic)))
        .then((tokens) => /** @type {string[]} */ (tokens.filter((t) => t !== null))),
      ended: (m) => { if (current()) this._ended(m); },
      authenticated: (ok) => { if (current()) this._authenticated(ok); },
      opened: () => {
        if (!current() || opened) return;
        opened = true;
        clearTimeout(openTimer);
        this._failures = 0;
        this._lastGood = name;
        this._restarted = null;
        this._setState('open', name);
        for (const w of this._waiters.splice(0)) w.resolve(/** @type {Transport} */ (conn));
        this._scheduleProbe();
      },
      closed: (why, restart) => {
        if (!current()) return;
        clearTimeout(openTimer);
        this._drop();
        if (opened) {
          if (restart) this._restarted = name;
          this._retry(why);
        } else {
          this._try(order, i + 1); // fall back to the next transport
        }
      },
      subscribed: (entry, sub) => { if (current()) this._subscribed(entry, sub); },
      refused: (sub, err) => { if (current()) this._refused(sub, err); },
      deliver: (m) => { if (current()) this._deliver(m); },
      presence: (m) => {
        if (!current()) return;
        if (m.join) this._emit('join', Object.assign({ topic: m.topic }, m.join));
        if (m.leave) this._emit('leave', Object.assign({ topic: m.topic }, m.leave));
      },
      hello: (h) => { if (current()) this.id = h.client; },
      error: (err) => { if (current()) this._emit('error', err); },
    };
    if (probe) Object.assign(host, this._probeHost(probe, Object.assign({}, host), () => conn));
    // For a probe this also bounds the switch: every topic must be answered within openTimeout.
    const openTimer = setTimeout(() => { if (!opened) host.closed(`${name} did not open within ${this._opts.openTimeout} ms`); }, this._opts.openTimeout);
    try {
      conn = OPENERS[name].open(host);
    } catch (err) {
      clearTimeout(openTimer);
      return this._try(order, i + 1, probe); // e.g. a constructor that throws (blocked URL)
    }
    if (probe) probe.conn = conn;
    else this._conn = conn;
  }

  /**
   * Forget the current connection: every subscription must be confirmed again.
   * @internal
   */
  _drop() {
    this._stopProbe();
    const conn = this._conn;
    this._conn = null;
    this.id = null;
    clearTimeout(this._refreshTimer ?? undefined);
    this._refreshTimer = null;
    if (conn) conn.close();
    for (const sub of this._subs.values()) {
      sub._confirmed = false;
      clearTimeout(sub._renewTimer ?? undefined); // the next connection's answer schedules it again
      sub._renewTimer = null;
      if (sub._position) sub._resume = true;
    }
  }

  /**
   * Backoff with full jitter: a random wait in [0, min(maxDelay, minDelay * 2^failures)].
   * @internal
   * @param {string} reason
   */
  _retry(reason) {
    if (this._closed) return;
    const ceiling = Math.min(this._opts.maxDelay, this._opts.minDelay * 2 ** Math.min(this._failures, 30));
    const delay = Math.round(Math.random() * ceiling);
    this._failures += 1;
    this._setState('connecting', null, { retryIn: delay, reason });
    this._timer = setTimeout(() => this._cycle(), delay);
  }

  /**
   * `topic=a&topic=b&since=a@E:1,b@F:2[&info={…}]` for the HTTP transports; '' without topics.
   * @internal
   * @returns {string}
   */
  _query() {
    const params = new URLSearchParams();
    const since = [];
    /** @type {Record<string, Json>} */
    const info = {};
    let hasInfo = false;
    for (const sub of this._subs.values()) {
      params.append('topic', sub.topic);
      if (sub._position) since.push(`${sub.topic}@${sub._position.epoch}:${sub._position.offset}`);
      if (sub._info !== undefined) { info[sub.topic] = sub._info; hasInfo = true; }
    }
    if (since.length) params.set('since', since.join(','));
    if (hasInfo) params.set('info', JSON.stringify(info)); // shown in presence, as `sub`'s info on /ws
    return params.toString();
  }

  /**
   * A sub reply (or SSE/poll `subs` entry): where the stream continues, and whether it recovered.
   * @internal
   * @param {SubEntry} entry
   * @param {PushwireSubscription} [sub]
   */
  _subscribed(entry, sub) {
    sub = sub || this._subs.get(entry.topic);
    if (!sub || this._subs.get(entry.topic) !== sub || !sub._active) {
      // A renewal that the server took as a new subscription of a topic given up meanwhile.
      if (sub && !sub._active && this._conn && this._conn.name === 'websocket' && !this._subs.has(entry.topic)) {
        this._conn.remove(sub);
      }
      return;
    }
    this._scheduleRenewal(sub, entry.expires);
    if (entry.refreshed) return; // a fresh subscription token: nothing else changes
    const since = sub._position;
    sub._confirmed = true;
    if (entry.recovered === true) {
      // The missed messages (since.offset+1 ..= entry.offset) follow: keep the position.
      if (sub._resume) this._emit('recovered', { topic: sub.topic, epoch: entry.epoch, offset: entry.offset, since });
    } else {
      sub._position = { epoch: entry.epoch, offset: entry.offset };
      if (entry.recovered === false) {
        this._emit('lost', { topic: sub.topic, epoch: entry.epoch, offset: entry.offset, since });
      }
    }
    sub._resume = false;
    /** @type {Subscribed} */
    const result = { topic: entry.topic, epoch: entry.epoch, offset: entry.offset };
    if (typeof entry.recovered === 'boolean') result.recovered = entry.recovered;
    if (typeof entry.expires === 'number') result.expires = entry.expires;
    sub._settle.resolve(result); // only the first answer counts: later calls do nothing
  }

  /**
   * The server refused a subscription.
   * @internal
   * @param {PushwireSubscription} sub
   * @param {WireError} err
   */
  _refused(sub, err) {
    const error = fromServer(err, sub.topic);
    if (error.code === 503) {
      // The broker (or the connection) is unavailable: reconnect with backoff, then retry.
      this._emit('error', error);
      if (this._conn) { this._drop(); this._retry(error.message); }
      return;
    }
    if (this._subs.get(sub.topic) === sub) this._subs.delete(sub.topic);
    sub._active = false;
    sub._settle.reject(error);
    this._emit('error', error);
  }

  /**
   * Deliver a message exactly once and in order; report a gap instead of hiding it.
   * @internal
   * @param {WireMessage} m
   */
  _deliver(m) {
    const sub = this._subs.get(m.topic);
    if (!sub || !sub._confirmed || typeof m.offset !== 'number') return;
    const p = sub._position;
    if (p && p.epoch === m.epoch && m.offset <= p.offset) return; // already delivered
    if (p && (p.epoch !== m.epoch || m.offset > p.offset + 1)) {
      this._emit('lost', { topic: m.topic, epoch: m.epoch, offset: m.offset - 1, since: { epoch: p.epoch, offset: p.offset } });
    }
    sub._position = { epoch: m.epoch, offset: m.offset };
    try {
      sub._onMessage({ topic: m.topic, epoch: m.epoch, offset: m.offset, data: m.data });
    } catch (err) {
      this._emit('error', /** @type {Error} */ (err));
    }
  }

  // --- back to WebSocket ---------------------------------------------------------------------
  //
  // On a fallback (SSE or long-poll) that WebSocket precedes in the order, a timer opens a
  // WebSocket beside it now and then (_probe). That probe authenticates and sends `sub` with
  // `since` = the position last delivered for every topic. Until every topic is answered, both
  // connections deliver into _deliver, whose per-topic offset check drops whatever one of them
  // already delivered; each connection's stream is gapless from a position at or before the
  // one delivered, so merging them skips nothing. Then the WebSocket becomes the connection
  // and the fallback is closed. A probe that fails (refused upgrade, closed, a topic refused,
  // not done within openTimeout) leaves the fallback alone and the next one waits longer.

  /**
   * If the client is open on a fallback that WebSocket precedes: probe after a backoff with jitter.
   * @internal
   * @param {string} [reason]
   */
  _scheduleProbe(reason) {
    clearTimeout(this._probeTimer ?? undefined);
    this._probeTimer = null;
    if (this.state === 'open' && this.transport === 'websocket') this._probeFailures = 0; // however it got there
    if (this._closed || this._opts.probe === false || this._switch || this.state !== 'open' || !this._conn) return;
    const at = this._order.indexOf('websocket');
    if (at < 0 || at >= this._order.indexOf(/** @type {TransportName} */ (this.transport)) || !OPENERS.websocket.available()) return;
    // Equal jitter: a random wait in [c/2, c], c = min(probeMaxDelay, probeMinDelay * 2^failures).
    // A missing or unusable delay takes its default, so that probes never come back to back.
    /** @param {unknown} value @param {number} fallback */
    const ms = (value, fallback) => (Number(value) > 0 ? Number(value) : fallback);
    const min = ms(this._opts.probeMinDelay, DEFAULTS.probeMinDelay);
    const ceiling = Math.min(ms(this._opts.probeMaxDelay, DEFAULTS.probeMaxDelay), min * 2 ** Math.min(this._probeFailures, 30));
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    /** @type {ProbeEvent} */
    const event = { transport: 'websocket', attempt: this._probeFailures + 1, retryIn: delay };
    if (reason) event.reason = reason;
    this._emit('probe', event);
    this._probeTimer = setTimeout(() => this._probe(), delay);
  }

  /** @internal */
  _probe() {
    this._probeTimer = null;
    if (this._closed || this._switch || this.state !== 'open' || !this._conn) return;
    // Every topic must have a position to resume from (a new one gets it with its first answer).
    if ([...this._subs.values()].some((sub) => !sub._confirmed || !sub._position)) {
      return this._scheduleProbe('waiting for every subscription to have a position');
    }
    /** @type {Probe} */
    const probe = this._switch = { conn: null, open: false, answered: new Set(), id: null, auth: null, reason: null };
    this._try(['websocket'], 0, probe);
  }

  /**
   * What a probe's connection reports, while it is one; `base` is _try's host (used after the take-over).
   * @internal
   * @param {Probe} probe
   * @param {TransportHost} base
   * @param {() => Transport | null} conn
   * @returns {Partial<TransportHost>}
   */
  _probeHost(probe, base, conn) {
    const probing = () => this._switch === probe && probe.conn !== null && probe.conn === conn();
    return {
      opened: () => {
        if (!probing()) return base.opened();
        probe.open = true; // every topic's `sub` has been sent
        this._probeReady(probe, base);
      },
      closed: (why, restart) => (probing() ? this._probeEnd(probe, why, true) : base.closed(why, restart)),
      subscribed: (entry, sub) => {
        if (!probing()) return base.subscribed(entry, sub);
        sub = sub || this._subs.get(entry.topic);
        if (!sub) return;
        const p = sub._position;
        if (entry.recovered === false) {
          // The WebSocket cannot resume from the position it was sent. If the fallback has
          // delivered up to the reply's position meanwhile, nothing is missing; otherwise keep
          // the fallback (which reports what it cannot deliver) and try again later.
          if (!(p && p.epoch === entry.epoch && entry.offset <= p.offset)) {
            return this._probeEnd(probe, `could not resume ${entry.topic} over websocket`, true);
          }
        } else if (entry.recovered !== true) {
          return this._probeEnd(probe, `${entry.topic} had no position`, false);
        } else {
          base.subscribed(entry, sub); // recovered: the position stays, the missed messages follow
        }
        probe.answered.add(sub);
        this._probeReady(probe, base);
      },
      refused: (sub, err) => (probing() ? this._probeEnd(probe, `${sub.topic} refused over websocket: ${err.message}`, true) : base.refused(sub, err)),
      authenticated: (ok) => { if (probing()) probe.auth = ok; else base.authenticated(ok); },
      hello: (h) => { if (probing()) probe.id = h.client; else base.hello(h); },
      // The fallback still works: a probe's errors are its reason to fail, not the application's.
      error: (err) => { if (probing()) probe.reason = err.message; else base.error(err); },
    };
  }

  /**
   * Every topic answered on the probe: the WebSocket becomes the connection, the fallback closes.
   * @internal
   * @param {Probe} probe
   * @param {TransportHost} base
   */
  _probeReady(probe, base) {
    if (!probe.open || this._switch !== probe) return;
    for (const sub of this._subs.values()) if (!probe.answered.has(sub)) return;
    const old = this._conn;
    this._switch = null;
    this._conn = probe.conn;
    if (old) old.close(); // from now on only the WebSocket delivers
    this.id = probe.id;
    base.opened(); // state 'open' over websocket, the 'transport' event; the probe count starts over
    if (probe.auth) this._authenticated(probe.auth);
  }

  /**
   * The probe stops (closed, refused, or given up); `failed` makes the next one wait longer.
   * @internal
   * @param {Probe} probe
   * @param {string} reason
   * @param {boolean} failed
   */
  _probeEnd(probe, reason, failed) {
    if (this._switch !== probe) return;
    this._switch = null;
    if (probe.conn) probe.conn.close();
    if (failed) this._probeFailures += 1;
    this._scheduleProbe((failed && probe.reason) || reason);
  }

  /** @internal */
  _stopProbe() {
    clearTimeout(this._probeTimer ?? undefined);
    this._probeTimer = null;
    const probe = this._switch;
    this._switch = null;
    if (probe && probe.conn) probe.conn.close();
  }
}

/**
 * Connect to the pushwire server at `url` (any URL of it: `http:`, `https:`, `ws:` or `wss:`;
 * default: the page's own) and keep connected until `close()`. `/ws`, `/sse`, `/poll` and
 * `/api/publish/…` are resolved against its origin. The first attempt starts after the current
 * task, so subscriptions made right after `connect` go into the first request.
 * @param {string} [url]
 * @param {ConnectOptions} [opts]
 * @returns {Client}
 */
function connect(url, opts) {
  return new PushwireClient(url, opts);
}

/** The protocol version this client speaks. */
const version = /** @type {const} */ (1);

/** Everything this module exports, as one object: also the global `pushwire`. */
const api = { connect, PushwireError, version };

// The global of <script src="/pushwire.js">; importing the module defines it too, as it always has.
globalThis.pushwire = api;

// The exports. scripts/gen-client makes pushwire.js by wrapping everything above in a function
// and leaving these two lines out.
export { connect, PushwireError, version };
export default api;
