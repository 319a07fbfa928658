// Types for pushwire.js, the browser client of pushwire (the wire protocol is docs/protocol.md).
//
// As a module:        import { connect } from '/pushwire.mjs';
// As a classic script: <script src="/pushwire.js"></script> defines `window.pushwire`
//                      (declared below as the global `pushwire`).

/** Any value JSON can carry: what is published, what is delivered, presence `info`. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A transport, in the order the client tries them by default. */
export type TransportName = 'websocket' | 'sse' | 'poll';

/**
 * A place in a topic's stream. `epoch` changes whenever the topic's history is lost (so offsets
 * from another epoch mean nothing); `offset` counts the topic's messages 1, 2, 3, … without gaps,
 * and 0 means "before the first message".
 */
export interface Position {
  epoch: string;
  offset: number;
}

/** A message published on a topic, as delivered to `subscribe`'s callback. */
export interface Message<T = Json> {
  topic: string;
  epoch: string;
  /** Exactly one more than the previous message's offset delivered on this subscription (see 'lost'). */
  offset: number;
  /** What was published: JSON as JSON, text as a string. */
  data: T;
}

/** Where a subscription starts, from the server's answer to it. */
export interface Subscribed extends Position {
  topic: string;
  /**
   * Present when the subscription resumed from `since`: `true` if every missed message follows
   * (offsets `since.offset + 1 ..= offset`), `false` if the gap could not be filled and the
   * stream continues after `offset`.
   */
  recovered?: boolean;
  /** When the subscription token it was made with expires (Unix seconds), if it was made with one. */
  expires?: number;
}

/** What `publish` resolves to: the position the message got. */
export interface Published extends Position {
  topic: string;
}

/** A client present on a topic of a presence namespace (`--presence chat`). */
export interface Member {
  /** The server's id for that client, whatever its transport (the `id` of the client, see `Client.id`). */
  client: string;
  /** The user id (`sub`) of that client's token, on a server that requires tokens. */
  user?: string;
  /** What that client passed as `info` when it subscribed; absent if nothing. */
  info?: Json;
}

/**
 * A token (JWT) for a server that requires them, or a function returning one (sync or async),
 * called again on every (re)connect and refresh so that it can fetch a fresh token.
 */
export type TokenSource = string | (() => string | null | undefined | Promise<string | null | undefined>);

/**
 * A function returning a subscription token for `topic` (sync or async), or null/undefined when
 * the topic needs none (it is public, or the connection token allows it).
 */
export type SubscriptionTokenSource = (topic: string) => string | null | undefined | Promise<string | null | undefined>;

/**
 * The 'unsubscribed' event: the server ended a subscription (docs/protocol.md, "Authentication").
 * The subscription is inactive from then on; its `ready` rejects if it had not resolved.
 */
export interface UnsubscribedEvent {
  topic: string;
  /** 401: its subscription token expired without a fresh one; 403: the connection token no longer allows it. */
  code: number;
  /** `subscription token expired` or `permission withdrawn`. */
  reason: string;
}

/** The 'auth' event: the server accepted the token (WebSocket). */
export interface AuthEvent {
  /** The token's user id (`sub`). */
  user: string | null;
  /** When the token expires, in Unix seconds. */
  expires: number | undefined;
}

export interface ConnectOptions {
  /**
   * The token to show (docs/protocol.md, "Authentication"). Over WebSocket it is sent as the first
   * request (`auth`) on every connection; over SSE and long-poll it goes in `?token=`; the HTTP
   * publish fallback sends it as `Authorization: Bearer`. With a function, the client also
   * refreshes the token over WebSocket before it expires.
   */
  token?: TokenSource;
  /**
   * Subscription tokens (docs/protocol.md, "Authentication"): called for each topic on every
   * subscribe and resubscribe, and again at 80% of each token's life, so that the subscription
   * outlives its tokens. Over WebSocket the token goes in the `sub` request (a renewal is `sub`
   * again, which keeps the subscription and its position); over SSE and long-poll in
   * `?sub_token=`, and a renewal reopens the stream from the current positions.
   */
  subscriptionToken?: SubscriptionTokenSource;
  /**
   * The transports to try, in order; the default is `['websocket', 'sse', 'poll']`.
   * A transport the browser lacks (no `WebSocket`, no `EventSource`) is skipped.
   * `'ws'` is accepted for `'websocket'`.
   */
  transports?: Array<TransportName | 'ws'>;
  /** Backoff base in ms (default 500): the n-th retry in a row waits a random time in [0, min(maxDelay, minDelay·2ⁿ)]. */
  minDelay?: number;
  /** Backoff ceiling in ms (default 10000). */
  maxDelay?: number;
  /** How long a transport may take to open before the next one is tried, in ms (default 10000). */
  openTimeout?: number;
  /** The server-side wait of one long-poll, in ms (default 25000, at most 60000). */
  pollTimeout?: number;
  /**
   * Back to WebSocket (default true). While the client runs on SSE or long-polling and
   * `'websocket'` comes before that transport in `transports`, it probes WebSocket in the
   * background; when a probe connects, every topic is resubscribed over it from the position last
   * delivered, and once all are answered the WebSocket takes over and the fallback is closed:
   * no message is delivered twice or skipped across the switch. Until then nothing changes
   * (`state` stays 'open' on the fallback). Each probe asks `token` for a token, as a reconnect
   * does. `false`: stay on the fallback until it fails.
   */
  probe?: boolean;
  /**
   * Probe backoff base in ms (default 5000): after n failed probes in a row, the next waits a
   * random time in [c/2, c], where c = min(probeMaxDelay, probeMinDelay·2ⁿ). The count starts
   * again once the client is on WebSocket.
   */
  probeMinDelay?: number;
  /** Probe backoff ceiling in ms (default 60000). */
  probeMaxDelay?: number;
}

export interface SubscribeOptions {
  /** Resume after this position: the messages after it are delivered first if history still has them. */
  since?: Position;
  /** Shown to others in presence (any JSON, at most 1 KiB), over every transport. */
  info?: Json;
}

export interface Subscription {
  readonly topic: string;
  /**
   * The position of the last message delivered, or where the subscription started if none was;
   * null until the server has answered (unless `since` was given). Pass it as `since` to a later
   * subscription to continue where this one stopped.
   */
  readonly position: Position | null;
  /** False once unsubscribed, refused or ended by the server, or after `client.close()`. */
  readonly active: boolean;
  /**
   * Resolves with the server's first answer to this subscription; rejects with a `PushwireError`
   * if the server refuses it (the refusal is also emitted as 'error'), or on `unsubscribe()` before that.
   */
  readonly ready: Promise<Subscribed>;
  /** Stop receiving messages (and leave presence). Safe to call twice. */
  unsubscribe(): void;
}

/** The 'state' event: where the connection is. */
export interface StateEvent {
  /**
   * `connecting`: trying `transport`, or waiting `retryIn` ms before the next round (then
   * `transport` is null and `reason` says what failed); `open`: connected over `transport`;
   * `closed`: after `client.close()`.
   */
  state: 'connecting' | 'open' | 'closed';
  transport: TransportName | null;
  /** Milliseconds until the next attempt (only while waiting for it). */
  retryIn?: number;
  /** Why the connection was lost or could not be made (only with `retryIn`). */
  reason?: string;
}

/** The 'transport' event: the client is open on another transport than the last time it was open. */
export interface TransportEvent {
  /** The transport now in use (also `client.transport`). */
  transport: TransportName;
  /** The transport used before; null on the first open. */
  previous: TransportName | null;
}

/** The 'probe' event: a WebSocket probe is scheduled while the client runs on a fallback. */
export interface ProbeEvent {
  transport: 'websocket';
  /** Which probe in a row this will be (1 for the first after falling back). */
  attempt: number;
  /** Milliseconds until it starts. */
  retryIn: number;
  /** Why the previous probe failed (or was put off); absent before the first one. */
  reason?: string;
}

/** A presence event: `client` joined or left `topic`. */
export interface PresenceEvent extends Member {
  topic: string;
}

/**
 * The 'recovered' and 'lost' events, about a subscription that resumed from `since`
 * (after a reconnect, or from `SubscribeOptions.since`).
 *
 * 'recovered': nothing was lost; the messages after `since` up to `offset` follow, in order.
 *
 * 'lost': messages after `since` cannot be delivered (history no longer has them, or the epoch
 * changed); the subscription continues after (`epoch`, `offset`). Reload the state this topic
 * feeds from your own source of truth. `since` is null if the subscription had no position.
 */
export interface RecoveryEvent extends Position {
  topic: string;
  since: Position | null;
}

export interface ClientEvents {
  state: StateEvent;
  /** The transport in use changed: the first open, a fallback, or back to WebSocket. */
  transport: TransportEvent;
  /** The next WebSocket probe is scheduled (see `ConnectOptions.probe`). */
  probe: ProbeEvent;
  join: PresenceEvent;
  leave: PresenceEvent;
  recovered: RecoveryEvent;
  lost: RecoveryEvent;
  /** The server accepted the token (on connect and on every refresh; WebSocket only). */
  auth: AuthEvent;
  /** The server ended a subscription: its token expired, or the permission was withdrawn. */
  unsubscribed: UnsubscribedEvent;
  /** A refused subscription, an unreadable frame, a failed poll, or an exception thrown by a callback. */
  error: Error;
}

export interface Client {
  /** The server's origin (`http:` or `https:`), derived from the `url` given to `connect`. */
  readonly url: string;
  /**
   * This client's id on the server, as presence shows it: from the WebSocket hello, the SSE
   * `subscribed` event or the long-poll answer (a long-poll client keeps one id for its lifetime).
   * Null until the server said it.
   */
  readonly id: string | null;
  /** The user id of the token the server accepted (WebSocket); null before that or without tokens. */
  readonly user: string | null;
  readonly state: StateEvent['state'];
  /**
   * The transport in use (or being tried); null while waiting to retry and once closed. A
   * WebSocket probe under way beside a fallback does not show here until it has taken over
   * (then the 'transport' event fires).
   */
  readonly transport: TransportName | null;

  /**
   * Receive every message published on `topic` from now on (or after `options.since`), once each
   * and in offset order, across reconnects. Throws `PushwireError` (code 422) for an invalid topic
   * name and (409) if this client is already subscribed to it.
   */
  subscribe<T = Json>(topic: string, onMessage: (message: Message<T>) => void, options?: SubscribeOptions): Subscription;

  /**
   * Publish `data` on `topic`. Waits for an open connection; over WebSocket it is a `pub`
   * request, over SSE and long-poll a `POST /api/publish/{topic}` with a JSON body. Rejects with
   * a `PushwireError` (the server's code, such as 403 or 413) if it is refused, or (code 0) if
   * the connection closed before the answer, in which case it may or may not have been published.
   */
  publish(topic: string, data: Json): Promise<Published>;

  /**
   * Who is on `topic` now (a presence namespace). Needs the WebSocket transport: over SSE and
   * long-poll it rejects (code 0); there, follow the 'join' and 'leave' events instead.
   */
  presence(topic: string): Promise<Member[]>;

  /**
   * Send a fresh token now: `token` replaces the one given to `connect` (or, without it, the
   * current one is asked for again). Over WebSocket it resolves with the server's `{user, expires}`
   * and rejects with a `PushwireError` (401: refused, 403: a token for another user); over SSE and
   * long-poll the stream reopens with it and it resolves with null.
   */
  refreshToken(token?: TokenSource): Promise<{ user: string; expires: number } | null>;

  /** Listen to an event; returns a function that removes the listener. */
  on<E extends keyof ClientEvents>(event: E, listener: (event: ClientEvents[E]) => void): () => void;
  off<E extends keyof ClientEvents>(event: E, listener: (event: ClientEvents[E]) => void): void;

  /** Close the connection for good: no reconnect; pending requests reject; state becomes 'closed'. */
  close(): void;
}

/** An error from the server (`code` is one of docs/protocol.md's codes) or from the client (`code` 0). */
export declare class PushwireError extends Error {
  constructor(message: string, code?: number, topic?: string);
  readonly name: 'PushwireError';
  readonly code: number;
  readonly topic?: string;
}

/**
 * Connect to the pushwire server at `url` (any URL of it: `http:`, `https:`, `ws:` or `wss:`;
 * default: the page's own) and keep connected until `close()`. `/ws`, `/sse`, `/poll` and
 * `/api/publish/…` are resolved against its origin. The first attempt starts after the current
 * task, so subscriptions made right after `connect` go into the first request.
 */
export declare function connect(url?: string, opts?: ConnectOptions): Client;

/** The protocol version this client speaks. */
export declare const version: 1;

declare const pushwire: {
  connect: typeof connect;
  PushwireError: typeof PushwireError;
  version: typeof version;
};
export default pushwire;

declare global {
  /** Defined by `<script src="/pushwire.js">`. */
  var pushwire: {
    connect: typeof connect;
    PushwireError: typeof PushwireError;
    version: typeof version;
  };
}
