/*! pushwire.js: the browser client for pushwire (protocol: docs/protocol.md; types: pushwire.d.ts).
 *
 *   <script src="/pushwire.js"></script>             defines window.pushwire
 *   import { connect } from '/pushwire.mjs';          the same, as an ES module
 *
 *   const client = pushwire.connect(location.origin);
 *   const sub = client.subscribe('news', (message) => console.log(message.offset, message.data));
 *   client.publish('news', { title: 'hello' });
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
 * backoff and full jitter and resumes every subscription from the last position it delivered:
 * each message is delivered once, in offset order; what cannot be recovered is reported
 * ('lost'), never skipped silently.
 *
 * Back to WebSocket: while it runs on SSE or long-polling because WebSocket failed, the client
 * probes WebSocket in the background (exponential backoff with jitter: after n failed probes in
 * a row the next waits a random time in [c/2, c], c = min(probeMaxDelay, probeMinDelay * 2^n);
 * `probe: false` turns it off). A probe that connects resubscribes every topic with `since` = the last position
 * delivered; both transports deliver into the same per-topic offset check while the answers
 * come, so nothing is delivered twice or skipped; once every topic is answered the WebSocket
 * takes over and the fallback is closed. `client.transport` names the transport in use, and the
 * 'transport' event fires when it changes.
 *
 * This file is a classic script (no `export`), so one file serves both <script> and, through
 * pushwire.mjs, `import`.
 */
(function (global) {
  'use strict';

  const TRANSPORTS = ['websocket', 'sse', 'poll'];
  const ALIASES = { ws: 'websocket', websocket: 'websocket', sse: 'sse', eventsource: 'sse', poll: 'poll', 'long-poll': 'poll' };
  const TOPIC = /^[A-Za-z0-9_.:/-]{1,128}$/;
  const EPOCH = /^[A-Za-z0-9]{1,32}$/;
  const DEFAULTS = {
    minDelay: 500, maxDelay: 10000, openTimeout: 10000, pollTimeout: 25000,
    probe: true, probeMinDelay: 5000, probeMaxDelay: 60000,
  };

  /** An error from the server (`code` as in docs/protocol.md) or from the client (`code` 0). */
  class PushwireError extends Error {
    constructor(message, code = 0, topic) {
      super(message);
      this.name = 'PushwireError';
      this.code = code;
      if (topic !== undefined) this.topic = topic;
    }
  }

  const fromServer = (err, topic) =>
    new PushwireError((err && err.message) || 'request failed', (err && err.code) || 0, topic);

  function checkTopic(topic) {
    if (typeof topic !== 'string' || !TOPIC.test(topic)) {
      throw new PushwireError(`invalid topic ${JSON.stringify(topic)}: 1 to 128 of A-Z a-z 0-9 _ - . : /`, 422, topic);
    }
  }

  function checkPosition(p, topic) {
    if (p === undefined || p === null) return null;
    if (typeof p !== 'object' || !EPOCH.test(p.epoch) || !Number.isSafeInteger(p.offset) || p.offset < 0) {
      throw new PushwireError(`invalid since ${JSON.stringify(p)}: {epoch: [A-Za-z0-9]{1,32}, offset: n >= 0}`, 422, topic);
    }
    return { epoch: p.epoch, offset: p.offset };
  }

  const parse = (text) => JSON.parse(text);

  /** A random key of 22 characters of A-Z a-z 0-9 - _: names this client on every long-poll. */
  function randomKey() {
    const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const bytes = new Uint8Array(22);
    if (global.crypto && typeof global.crypto.getRandomValues === 'function') global.crypto.getRandomValues(bytes);
    else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
    let key = '';
    for (const b of bytes) key += chars[b & 63];
    return key;
  }

  /** `query` with `token=…` added when there is a token, and a `sub_token=…` per subscription token. */
  const withToken = (query, token, subTokens) => {
    let out = token ? `${query}${query ? '&' : ''}token=${encodeURIComponent(token)}` : query;
    for (const t of subTokens || []) out += `&sub_token=${encodeURIComponent(t)}`;
    return out;
  };

  // ---------------------------------------------------------------------------------------
  // Transports. Each one is a function (ctx) -> { name, add(sub), remove(sub), close(),
  // request?(op, fields), refresh?() }, and reports to ctx: opened(), closed(why),
  // subscribed(entry, sub?), refused(sub, error), deliver(message), presence(event),
  // hello(hello), authenticated(ok), ended(unsub push), error(err). ctx.token() resolves the
  // current token (or null); ctx.subToken(topic) a subscription token for topic (or null), and
  // ctx.subTokens() those of every subscription; ctx.key names the client on every long-poll.

  function webSocketTransport(ctx) {
    const url = ctx.endpoint('/ws').replace(/^http/, 'ws');
    const ws = new global.WebSocket(url);
    const pending = new Map(); // request id -> { ok(result), fail(error) }
    let nextId = 1;
    let open = false; // authenticated (when there is a token) and ready for requests
    let stopped = false;

    function send(op, fields, ok, fail) {
      const id = nextId++;
      pending.set(id, { ok, fail });
      ws.send(JSON.stringify(Object.assign({ op, id }, fields)));
    }
    function failAll(why) {
      const waiting = [...pending.values()];
      pending.clear();
      for (const p of waiting) p.fail({ code: 0, message: why });
    }
    function add(sub) {
      if (!open) return; // every subscription is sent when the socket opens
      if (!ctx.opts.subscriptionToken) return sendSub(sub, null);
      ctx.subToken(sub.topic).then((token) => {
        if (open && !stopped && sub._active) sendSub(sub, token);
      }, (err) => ctx.refused(sub, { code: 0, message: 'the subscription token function failed: ' + ((err && err.message) || err) }));
    }
    function sendSub(sub, token) {
      const fields = { topic: sub.topic };
      if (sub._position) fields.since = sub._position;
      if (sub._info !== undefined) fields.info = sub._info;
      if (token) fields.token = token;
      // A sub lost with the connection (code 0) is sent again on the next one.
      send('sub', fields, (ok) => ctx.subscribed(ok, sub), (err) => { if (err.code) ctx.refused(sub, err); });
    }
    /** A fresh subscription token for a live subscription: `sub` again; it keeps its position. */
    function renew(sub) {
      if (!open) return;
      ctx.subToken(sub.topic).then((token) => {
        if (!open || stopped || !sub._active || !token) return;
        const fields = { topic: sub.topic, token };
        // If the server ended the subscription meanwhile, this resubscribes from the position.
        if (sub._position) fields.since = sub._position;
        send('sub', fields, (ok) => ctx.subscribed(ok, sub), (err) => { if (err.code) ctx.error(fromServer(err, sub.topic)); });
      }, (err) => ctx.error(new PushwireError('the subscription token function failed: ' + ((err && err.message) || err), 0, sub.topic)));
    }

    function ready() {
      open = true;
      for (const sub of ctx.subscriptions()) add(sub); // before 'open' is announced, so later requests queue behind them
      ctx.opened();
    }
    function refused(err) {
      ctx.error(err instanceof PushwireError ? err : fromServer(err));
      try { ws.close(1000); } catch { /* closing already */ }
    }
    ws.onopen = () => {
      // With a token, `auth` goes first: the server answers anything else before it with 401.
      ctx.token().then((token) => {
        if (stopped || ws.readyState !== 1) return;
        if (!token) return ready();
        send('auth', { token }, (ok) => { ctx.authenticated(ok); ready(); }, (err) => {
          if (err.code === 400) return ready(); // a server that needs no tokens
          if (err.code) refused(err);
        });
      }, (err) => refused(new PushwireError('the token function failed: ' + ((err && err.message) || err))));
    };
    ws.onmessage = (event) => {
      let m;
      try { m = parse(event.data); } catch (err) { return ctx.error(new PushwireError('unreadable frame: ' + err.message)); }
      if (m === null || typeof m !== 'object') return;
      if (m.hello) ctx.hello(m.hello);
      else if ('id' in m && ('ok' in m || 'error' in m)) {
        const p = pending.get(m.id);
        if (p) { pending.delete(m.id); if (m.error) p.fail(m.error); else p.ok(m.ok); }
        else if (m.error) ctx.error(fromServer(m.error));
      } else if (m.unsub) ctx.ended(m);
      else if (m.join || m.leave) ctx.presence(m);
      else if (typeof m.offset === 'number') ctx.deliver(m);
    };
    ws.onclose = (event) => {
      failAll('connection closed');
      ctx.closed(`WebSocket closed (${event.code}${event.reason ? ' ' + event.reason : ''})`);
    };

    return {
      name: 'websocket',
      add,
      renew,
      remove(sub) { if (open) send('unsub', { topic: sub.topic }, () => {}, () => {}); },
      request(op, fields) {
        return new Promise((resolve, reject) => {
          if (!open || ws.readyState !== 1) return reject(new PushwireError('not connected', 0, fields.topic));
          send(op, fields, resolve, (err) => reject(fromServer(err, fields.topic)));
        });
      },
      refresh() {
        return ctx.token().then((token) => {
          if (!token) throw new PushwireError('no token to send', 401);
          return this.request('auth', { token });
        }).then((ok) => { ctx.authenticated(ok); return ok; });
      },
      close() {
        stopped = true;
        ws.onopen = ws.onmessage = ws.onclose = null;
        failAll('client closed the connection');
        try { ws.close(1000); } catch { /* not open yet */ }
      },
    };
  }

  function sseTransport(ctx) {
    let source = null;
    let opened = false;
    let stopped = false;
    let restartQueued = false;

    function opening() { if (!opened) { opened = true; ctx.opened(); } }
    function start() {
      restartQueued = false;
      if (stopped) return;
      if (source) { source.close(); source = null; }
      const query = ctx.query();
      if (!query) return opening(); // no topic: nothing to stream until there is one
      // EventSource cannot send headers: the token goes in the URL. A stream ends when its token
      // expires; the reconnect asks for the token again.
      Promise.all([ctx.token(), ctx.subTokens()]).then(([token, subTokens]) => { if (!stopped && !restartQueued) open(withToken(query, token, subTokens)); },
        (err) => { ctx.error(new PushwireError('the token function failed: ' + ((err && err.message) || err))); ctx.closed('no token'); });
    }
    function open(query) {
      if (source) { source.close(); source = null; }
      const es = source = new global.EventSource(ctx.endpoint('/sse') + '?' + query);
      const guard = (fn) => (event) => {
        if (es !== source) return;
        let data;
        try { data = parse(event.data); } catch (err) { return ctx.error(new PushwireError('unreadable event: ' + err.message)); }
        fn(data);
      };
      es.onopen = () => { if (es === source) opening(); };
      es.addEventListener('subscribed', guard((d) => {
        if (d.client) ctx.hello({ client: d.client }); // the stream's id: a presence member, as on /ws
        for (const entry of d.subs || []) ctx.subscribed(entry);
      }));
      es.addEventListener('presence', guard((d) => ctx.presence(d)));
      es.addEventListener('unsub', guard((d) => ctx.ended(d)));
      es.onmessage = guard((m) => ctx.deliver(m));
      // The browser would reconnect by itself (with Last-Event-ID); we reconnect instead, with our
      // backoff and our own positions, like every other transport.
      es.onerror = () => {
        es.close();
        if (es !== source) return;
        source = null;
        ctx.closed('event stream failed');
      };
    }
    // The topics are part of the URL: a change of subscriptions reopens the stream from the
    // current positions (once per batch of changes).
    function restart() {
      if (!restartQueued) { restartQueued = true; Promise.resolve().then(start); }
    }

    restart(); // asynchronously: ctx is not called before this function has returned
    return { name: 'sse', add: restart, remove: restart, refresh: restart, renew: restart, close() { stopped = true; if (source) source.close(); source = null; } };
  }

  function pollTransport(ctx) {
    let opened = false;
    let stopped = false;
    let controller = null;
    let wake = null; // resolves the idle wait (no topics)
    let restarting = false;

    async function loop() {
      while (!stopped) {
        const query = ctx.query();
        if (!query) {
          if (!opened) { opened = true; ctx.opened(); }
          await new Promise((resolve) => { wake = resolve; });
          continue;
        }
        // Answer at once on the first poll and when a topic has no position yet.
        const quick = !opened || ctx.subscriptions().some((s) => !s.position);
        const timeout = quick ? 0 : ctx.opts.pollTimeout;
        const ac = controller = new AbortController();
        const timer = setTimeout(() => ac.abort(), quick ? ctx.opts.openTimeout : timeout + 10000);
        let body;
        try {
          const [token, subTokens] = await Promise.all([ctx.token(), ctx.subTokens()]);
          // `client`: the same key on every poll keeps this client a presence member between polls.
          const res = await global.fetch(`${ctx.endpoint('/poll')}?${withToken(query, token, subTokens)}&client=${ctx.key}&timeout=${timeout}`, { signal: ac.signal, cache: 'no-store' });
          body = await res.json().catch(() => null);
          if (!res.ok || !body) {
            const err = body && body.error;
            throw new PushwireError(`poll failed: ${(err && err.message) || 'HTTP ' + res.status}`, (err && err.code) || res.status);
          }
        } catch (err) {
          if (stopped) return;
          if (restarting) { restarting = false; continue; } // aborted on purpose: the topics changed
          if (err instanceof PushwireError && err.code >= 400 && err.code < 500) ctx.error(err);
          return ctx.closed(err.message);
        } finally {
          clearTimeout(timer);
        }
        if (stopped) return;
        if (body.client) ctx.hello({ client: body.client });
        if (!opened) { opened = true; ctx.opened(); }
        // Each poll carries its own positions (from ctx.query()); the server keeps only presence.
        for (const entry of body.subs || []) ctx.subscribed(entry);
        for (const m of body.messages || []) {
          if (m.unsub) ctx.ended(m);
          else if (m.join || m.leave) ctx.presence(m);
          else ctx.deliver(m);
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
      add: restart,
      remove: restart,
      refresh: restart,
      renew: restart,
      close() { stopped = true; if (controller) controller.abort(); if (wake) wake(); },
    };
  }

  const OPENERS = {
    websocket: { available: () => typeof global.WebSocket === 'function', open: webSocketTransport },
    sse: { available: () => typeof global.EventSource === 'function', open: sseTransport },
    poll: { available: () => typeof global.fetch === 'function' && typeof global.AbortController === 'function', open: pollTransport },
  };

  // ---------------------------------------------------------------------------------------
  // Subscription: what the application holds.

  class Subscription {
    constructor(client, topic, onMessage, options) {
      this.topic = topic;
      this._client = client;
      this._onMessage = onMessage;
      this._info = options.info;
      this._position = checkPosition(options.since, topic);
      this._confirmed = false; // the server answered the sub on the current connection
      this._resume = !!this._position; // a position to resume from: report 'recovered'/'lost'
      this._active = true;
      this._renewTimer = null; // renews the subscription token before it expires
      this.ready = new Promise((resolve, reject) => { this._settle = { resolve, reject }; });
      this.ready.catch(() => {}); // a refusal is also reported as 'error'; no unhandled rejection
    }
    /** The position of the last message delivered (or the subscription's start), or null. */
    get position() { return this._position ? { epoch: this._position.epoch, offset: this._position.offset } : null; }
    /** False once unsubscribed, refused by the server, or the client is closed. */
    get active() { return this._active; }
    unsubscribe() { this._client._unsubscribe(this); }
  }

  // ---------------------------------------------------------------------------------------
  // Client

  class Client {
    constructor(url, opts) {
      opts = opts || {};
      const here = global.location && global.location.href;
      const base = new URL(String(url || here).replace(/^ws(s?):/, 'http$1:'), here);
      this.url = base.origin;
      this.id = null; // the server's name for this client (WebSocket hello, SSE `subscribed`, poll answer), used by presence
      this._key = randomKey(); // names this client on every long-poll (`client=`): one presence member
      this.user = null; // the user id of the token, once the server accepted it (WebSocket)
      this.state = 'connecting';
      this.transport = null;
      this._opts = Object.assign({}, DEFAULTS, opts);
      const order = (opts.transports || TRANSPORTS).map((t) => {
        const name = ALIASES[String(t).toLowerCase()];
        if (!name) throw new PushwireError(`unknown transport ${JSON.stringify(t)} (known: ${TRANSPORTS.join(', ')})`);
        return name;
      });
      if (!order.length) throw new PushwireError('opts.transports is empty');
      this._order = order;
      this._subs = new Map(); // topic -> Subscription
      this._listeners = new Map(); // event -> Set(fn)
      this._conn = null; // the current transport instance
      this._lastGood = null; // the transport that last opened: tried first on reconnect
      this._failures = 0; // connection attempts since the last open (for backoff)
      this._waiters = []; // { resolve, reject } waiting for an open connection
      this._closed = false;
      this._refreshTimer = null;
      this._switch = null; // a WebSocket probe under way while on a fallback (see _probe)
      this._probeTimer = null;
      this._probeFailures = 0; // probes failed since the client last ran on WebSocket
      this._openTransport = null; // the transport of the last 'open' (for the 'transport' event)
      // Start after the caller's synchronous subscribe() calls, so they share the first request.
      this._timer = setTimeout(() => this._cycle(), 0);
    }

    // --- public API -------------------------------------------------------------------------

    subscribe(topic, onMessage, options) {
      checkTopic(topic);
      if (typeof onMessage !== 'function') throw new TypeError('subscribe(topic, onMessage): onMessage must be a function');
      if (this._closed) throw new PushwireError('client is closed', 0, topic);
      if (this._subs.has(topic)) throw new PushwireError(`already subscribed to "${topic}"`, 409, topic);
      const sub = new Subscription(this, topic, onMessage, options || {});
      this._subs.set(topic, sub);
      if (this._conn) this._conn.add(sub); // WebSocket: sent now if open, else on open; SSE/poll: reopen
      if (this._switch) this._probeEnd(this._switch, 'the subscriptions changed', false);
      return sub;
    }

    async publish(topic, data) {
      checkTopic(topic);
      if (data === undefined) throw new TypeError('publish(topic, data): data must be a JSON value');
      const conn = await this._whenOpen();
      if (conn.request) return conn.request('pub', { topic, data });
      // SSE and long-polling are one-way: publish through the HTTP API (with the token, if any).
      const headers = { 'Content-Type': 'application/json' };
      const token = await this._token();
      if (token) headers.Authorization = `Bearer ${token}`;
      const res = await global.fetch(`${this.url}/api/publish/${encodeURIComponent(topic)}`, {
        method: 'POST',
        headers,
        body: JSON.stringify(data),
      });
      const body = await res.json().catch(() => null);
      if (!res.ok || !body) throw fromServer((body && body.error) || { code: res.status, message: `publish failed: HTTP ${res.status}` }, topic);
      return body;
    }

    async presence(topic) {
      checkTopic(topic);
      const conn = await this._whenOpen();
      if (!conn.request) throw new PushwireError(`presence queries need the WebSocket transport (using ${conn.name})`, 0, topic);
      return (await conn.request('presence', { topic })).members;
    }

    /**
     * Send a new token now: `token` (a string or a function, which replaces the one given to
     * `connect`), or the current one again. Over WebSocket it resolves with the server's answer
     * `{user, expires}`; over SSE and long-poll the stream is reopened with it (resolves null).
     */
    async refreshToken(token) {
      if (token !== undefined) this._opts.token = token;
      const conn = await this._whenOpen();
      if (conn.request) return conn.refresh();
      conn.refresh();
      return null;
    }

    on(event, fn) {
      if (!this._listeners.has(event)) this._listeners.set(event, new Set());
      this._listeners.get(event).add(fn);
      return () => this.off(event, fn);
    }

    off(event, fn) {
      const set = this._listeners.get(event);
      if (set) set.delete(fn);
    }

    close() {
      if (this._closed) return;
      this._closed = true;
      clearTimeout(this._timer);
      clearTimeout(this._refreshTimer);
      this._drop();
      for (const w of this._waiters.splice(0)) w.reject(new PushwireError('client is closed'));
      for (const sub of this._subs.values()) sub._active = false;
      for (const sub of this._subs.values()) clearTimeout(sub._renewTimer);
      this._subs.clear();
      this._setState('closed', null);
    }

    // --- internals --------------------------------------------------------------------------

    _emit(event, payload) {
      const set = this._listeners.get(event);
      if (!set || !set.size) {
        if (event === 'error') console.error('pushwire:', payload);
        return;
      }
      for (const fn of [...set]) {
        try { fn(payload); } catch (err) {
          if (event === 'error') console.error('pushwire: an error listener threw', err);
          else this._emit('error', err);
        }
      }
    }

    _setState(state, transport, retry) {
      if (state === this.state && transport === this.transport && !retry) return;
      this.state = state;
      this.transport = transport;
      this._emit('state', Object.assign({ state, transport }, retry));
      if (state === 'open' && transport !== this._openTransport) {
        const previous = this._openTransport;
        this._openTransport = transport;
        this._emit('transport', { transport, previous });
      }
    }

    /** The current token: `opts.token`, called if it is a function; null without one. */
    _token() {
      const source = this._opts.token;
      return Promise.resolve(typeof source === 'function' ? source() : source)
        .then((token) => (token === undefined || token === null || token === '' ? null : String(token)));
    }

    /** A subscription token for `topic` from `opts.subscriptionToken`; null without one. */
    _subToken(topic) {
      const source = this._opts.subscriptionToken;
      if (typeof source !== 'function') return Promise.resolve(null);
      return Promise.resolve(source(topic))
        .then((token) => (token === undefined || token === null || token === '' ? null : String(token)));
    }

    /** Renew `sub`'s subscription token at 80% of its life (`expires`: Unix seconds). */
    _scheduleRenewal(sub, expires) {
      clearTimeout(sub._renewTimer);
      sub._renewTimer = null;
      if (typeof expires !== 'number' || typeof this._opts.subscriptionToken !== 'function') return;
      const left = expires * 1000 - Date.now();
      sub._renewTimer = setTimeout(() => {
        sub._renewTimer = null;
        if (sub._active && this._conn && this._conn.renew) this._conn.renew(sub);
      }, Math.max(1000, left * 0.8));
    }

    /** The server ended a subscription (`{topic, unsub: {code, reason}}`). */
    _ended(m) {
      const sub = this._subs.get(m.topic);
      if (!sub) return;
      const code = (m.unsub && m.unsub.code) || 0;
      const reason = (m.unsub && m.unsub.reason) || 'ended by the server';
      this._subs.delete(m.topic);
      sub._active = false;
      clearTimeout(sub._renewTimer);
      sub._settle.reject(new PushwireError(reason, code, sub.topic));
      // The server has dropped it already; over SSE and long-poll it leaves the next query.
      this._emit('unsubscribed', { topic: m.topic, code, reason });
    }

    /** The server accepted a token: remember the user; with a token function, refresh before expiry. */
    _authenticated(ok) {
      this.user = (ok && ok.user) || null;
      this._emit('auth', { user: this.user, expires: ok && ok.expires });
      clearTimeout(this._refreshTimer);
      this._refreshTimer = null;
      if (typeof this._opts.token === 'function' && ok && typeof ok.expires === 'number') {
        const left = ok.expires * 1000 - Date.now();
        this._refreshTimer = setTimeout(() => {
          this._refreshTimer = null;
          this.refreshToken().catch((err) => this._emit('error', err));
        }, Math.max(1000, left * 0.8));
      }
    }

    _whenOpen() {
      if (this._closed) return Promise.reject(new PushwireError('client is closed'));
      if (this.state === 'open' && this._conn) return Promise.resolve(this._conn);
      return new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
    }

    _unsubscribe(sub) {
      if (!sub._active) return;
      sub._active = false;
      clearTimeout(sub._renewTimer);
      if (this._subs.get(sub.topic) === sub) this._subs.delete(sub.topic);
      sub._settle.reject(new PushwireError('unsubscribed', 0, sub.topic));
      if (this._conn) this._conn.remove(sub);
      if (this._switch) this._probeEnd(this._switch, 'the subscriptions changed', false);
    }

    /** One round: try each transport in order (the last one that worked first). */
    _cycle() {
      this._timer = null;
      const order = this._lastGood ? [this._lastGood, ...this._order.filter((t) => t !== this._lastGood)] : this._order;
      this._try(order, 0);
    }

    /**
     * Open `order[i]` (or the next one that works). With `probe` (see _probe), the connection
     * opens beside the current one: the client's state stays as it is until the probe takes over.
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
      let conn = null;
      // A probe's connection delivers too (deduplicated by offset) while it is under way.
      const current = () => conn !== null && (this._conn === conn || (!!probe && this._switch === probe && probe.conn === conn));
      const ctx = {
        opts: this._opts,
        endpoint: (path) => this.url + path,
        subscriptions: () => [...this._subs.values()],
        query: () => this._query(),
        key: this._key,
        token: () => this._token(),
        subToken: (topic) => this._subToken(topic),
        subTokens: () => Promise.all([...this._subs.values()].map((s) => this._subToken(s.topic)))
          .then((tokens) => tokens.filter((t) => t !== null)),
        ended: (m) => { if (current()) this._ended(m); },
        authenticated: (ok) => { if (current()) this._authenticated(ok); },
        opened: () => {
          if (!current() || opened) return;
          opened = true;
          clearTimeout(openTimer);
          this._failures = 0;
          this._lastGood = name;
          this._setState('open', name);
          for (const w of this._waiters.splice(0)) w.resolve(conn);
          this._scheduleProbe();
        },
        closed: (why) => {
          if (!current()) return;
          clearTimeout(openTimer);
          this._drop();
          if (opened) {
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
      if (probe) Object.assign(ctx, this._probeContext(probe, Object.assign({}, ctx), () => conn));
      // For a probe this also bounds the switch: every topic must be answered within openTimeout.
      const openTimer = setTimeout(() => { if (!opened) ctx.closed(`${name} did not open within ${this._opts.openTimeout} ms`); }, this._opts.openTimeout);
      try {
        conn = OPENERS[name].open(ctx);
      } catch (err) {
        clearTimeout(openTimer);
        return this._try(order, i + 1, probe); // e.g. a constructor that throws (blocked URL)
      }
      if (probe) probe.conn = conn;
      else this._conn = conn;
    }

    /** Forget the current connection: every subscription must be confirmed again. */
    _drop() {
      this._stopProbe();
      const conn = this._conn;
      this._conn = null;
      this.id = null;
      clearTimeout(this._refreshTimer);
      this._refreshTimer = null;
      if (conn) conn.close();
      for (const sub of this._subs.values()) {
        sub._confirmed = false;
        clearTimeout(sub._renewTimer); // the next connection's answer schedules it again
        sub._renewTimer = null;
        if (sub._position) sub._resume = true;
      }
    }

    /** Backoff with full jitter: a random wait in [0, min(maxDelay, minDelay * 2^failures)]. */
    _retry(reason) {
      if (this._closed) return;
      const ceiling = Math.min(this._opts.maxDelay, this._opts.minDelay * 2 ** Math.min(this._failures, 30));
      const delay = Math.round(Math.random() * ceiling);
      this._failures += 1;
      this._setState('connecting', null, { retryIn: delay, reason });
      this._timer = setTimeout(() => this._cycle(), delay);
    }

    /** `topic=a&topic=b&since=a@E:1,b@F:2[&info={…}]` for the HTTP transports; '' without topics. */
    _query() {
      const params = new URLSearchParams();
      const since = [];
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

    /** A sub reply (or SSE/poll `subs` entry): where the stream continues, and whether it recovered. */
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
      const result = { topic: entry.topic, epoch: entry.epoch, offset: entry.offset };
      if (typeof entry.recovered === 'boolean') result.recovered = entry.recovered;
      if (typeof entry.expires === 'number') result.expires = entry.expires;
      sub._settle.resolve(result); // only the first answer counts: later calls do nothing
    }

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

    /** Deliver a message exactly once and in order; report a gap instead of hiding it. */
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
        this._emit('error', err);
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

    /** If the client is open on a fallback that WebSocket precedes: probe after a backoff with jitter. */
    _scheduleProbe(reason) {
      clearTimeout(this._probeTimer);
      this._probeTimer = null;
      if (this.state === 'open' && this.transport === 'websocket') this._probeFailures = 0; // however it got there
      if (this._closed || this._opts.probe === false || this._switch || this.state !== 'open' || !this._conn) return;
      const at = this._order.indexOf('websocket');
      if (at < 0 || at >= this._order.indexOf(this.transport) || !OPENERS.websocket.available()) return;
      // Equal jitter: a random wait in [c/2, c], c = min(probeMaxDelay, probeMinDelay * 2^failures).
      // A missing or unusable delay takes its default, so that probes never come back to back.
      const ms = (value, fallback) => (Number(value) > 0 ? Number(value) : fallback);
      const min = ms(this._opts.probeMinDelay, DEFAULTS.probeMinDelay);
      const ceiling = Math.min(ms(this._opts.probeMaxDelay, DEFAULTS.probeMaxDelay), min * 2 ** Math.min(this._probeFailures, 30));
      const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
      const event = { transport: 'websocket', attempt: this._probeFailures + 1, retryIn: delay };
      if (reason) event.reason = reason;
      this._emit('probe', event);
      this._probeTimer = setTimeout(() => this._probe(), delay);
    }

    _probe() {
      this._probeTimer = null;
      if (this._closed || this._switch || this.state !== 'open' || !this._conn) return;
      // Every topic must have a position to resume from (a new one gets it with its first answer).
      if ([...this._subs.values()].some((sub) => !sub._confirmed || !sub._position)) {
        return this._scheduleProbe('waiting for every subscription to have a position');
      }
      const probe = this._switch = { conn: null, open: false, answered: new Set(), id: null, auth: null, reason: null };
      this._try(['websocket'], 0, probe);
    }

    /** What a probe's connection reports, while it is one; `base` is _try's ctx (used after the take-over). */
    _probeContext(probe, base, conn) {
      const probing = () => this._switch === probe && probe.conn !== null && probe.conn === conn();
      return {
        opened: () => {
          if (!probing()) return base.opened();
          probe.open = true; // every topic's `sub` has been sent
          this._probeReady(probe, base);
        },
        closed: (why) => (probing() ? this._probeEnd(probe, why, true) : base.closed(why)),
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

    /** Every topic answered on the probe: the WebSocket becomes the connection, the fallback closes. */
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

    /** The probe stops (closed, refused, or given up); `failed` makes the next one wait longer. */
    _probeEnd(probe, reason, failed) {
      if (this._switch !== probe) return;
      this._switch = null;
      if (probe.conn) probe.conn.close();
      if (failed) this._probeFailures += 1;
      this._scheduleProbe((failed && probe.reason) || reason);
    }

    _stopProbe() {
      clearTimeout(this._probeTimer);
      this._probeTimer = null;
      const probe = this._switch;
      this._switch = null;
      if (probe && probe.conn) probe.conn.close();
    }
  }

  function connect(url, opts) {
    return new Client(url, opts);
  }

  global.pushwire = { connect, PushwireError, version: 1 };
})(typeof globalThis !== 'undefined' ? globalThis : this);
