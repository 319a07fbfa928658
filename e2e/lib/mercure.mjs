// Mercure (issue 19, item 8) with independent clients: tokens minted by npm `jose` (here) and PyPI
// `pyjwt` (lib/mercure-httpx-sse.py), streams read by the browsers' own `EventSource` and `fetch`
// (Chromium and Firefox), by npm `eventsource` 5.1.5 and by PyPI `httpx-sse` 0.4.3, updates
// crossing to pushwire's own browser client (`/pushwire.mjs` over /ws) and to pusher-js.
//
// The browser scenario (runMercureBrowserScenario; test/chromium-mercure.test.mjs and
// test/firefox-mercure.test.mjs): one pushwire (`--mercure-issuer ISS=hs256:SECRET --static-dir`),
// a TCP relay in front of it that can be cut (lib/topics.mjs), one browser, one page
// (/static/mercure.html, same origin as the hub through the relay), every wait bounded:
//
//   context     http://127.0.0.1 is a secure context in both browsers, so the page may set the
//               `__Secure-mercure_access_token` cookie itself (checked: `isSecureContext`)
//   errors      through fetch (no cookie): 401 + bare `WWW-Authenticate: Bearer` without a token;
//               401 invalid_token for a wrong key, an expired token, `typ` JWT, a wrong `aud`, an
//               unknown `iss`; 403 insufficient_scope (subscribe-only token publishing, and a
//               publish grant that misses an alternate topic); 400 invalid_request (`match_regex`,
//               no matcher, a token in the URL, type `mercure`, a JSON body)
//   cookie      the same request with the cookie: 200; Authorization wins over the cookie
//   matchers    EventSources (cookie token) on `match`, `match_exact`, `match_urlpattern`
//               (absolute and relative) and a fetch stream with a Bearer token granted one topic:
//               public, private, alternate-topic, typed and multi-line updates go exactly where
//               they should (a final marker update that every stream matches shows nothing else
//               came: the hub sends in one order)
//   /ws         pushwire.mjs subscribed to `mercure:<IRI>` gets a Mercure publish as its envelope
//               (never a private one), and a /ws publish reaches the EventSource with a
//               `urn:pushwire:` id
//   reconnect   the relay is cut; two updates are published straight to the hub; the relay comes
//               back: the EventSource reconnects (after the `retry` an update set) with
//               `Last-Event-ID`, and gets exactly the two it missed, then live ones
//   resume      fetch with `last_event_id=<id>` / `earliest`: `Mercure-Last-Event-ID` and the
//               first event replayed
//   active      (`--mercure-subscriptions`) an EventSource on the subscriptions' URL pattern gets
//               `event: mercure` with the document of a subscriber that came (a payload from its
//               token) and went; the subscriptions API answers it as JSON (401 without a token)
//
// The non-browser clients (test/mercure-clients.test.mjs) use the helpers below.

import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { EventSource } from 'eventsource';
import { SignJWT } from 'jose';
import { launchBrowser, startPushwire, startRelay } from './topics.mjs';
import { saveFailureScreenshot, saveScreenshot, writeReport } from './artifacts.mjs';
import { makeTempDir, now, removeDir, waitFor, withTimeout } from './server.mjs';

/** The one trusted issuer of the tests and its HS256 secret. */
export const ISSUER = 'https://issuer.e2e.test';
export const SECRET = 'e2e-mercure-secret-0123456789-abcdef';
/** The 0.x compatibility key (HS256). */
export const COMPAT_SECRET = 'e2e-mercure-compat-key-9876543210';
/** The authorization detail type of Mercure 1.0 grants. */
export const DETAIL_TYPE = 'https://mercure.rocks/authorization-detail';
/** The cookie a browser's token comes in (Mercure 1.0). */
export const COOKIE = '__Secure-mercure_access_token';
export const HUB_PATH = '/.well-known/mercure';

const STEP_TIMEOUT_MS = 10000;
const PROTOCOL_TIMEOUT_MS = 15000;

/** `--mercure-issuer` for the tests' issuer. */
export const issuerFlag = () => ['--mercure-issuer', `${ISSUER}=hs256:${SECRET}`];

/** The hub URL (the tokens' audience) of a server reached at 127.0.0.1:`port`. */
export const hubUrl = (port) => `http://127.0.0.1:${port}${HUB_PATH}`;

// ---------------------------------------------------------------------------------------------
// Tokens, minted with npm `jose`

const key = (secret) => new TextEncoder().encode(secret);
const asTopics = (list) => list.map((t) => (typeof t === 'string' ? { match: t } : t));

/**
 * A Mercure 1.0 access token (RFC 9068 header `typ: at+jwt`, `iss`, `aud`, `exp`, RFC 9396
 * `authorization_details`) granting `publish` and `subscribe` on the given matchers (strings are
 * exact `{match}`, objects are kept: `{match, match_type: 'urlpattern'}`). The other options make
 * tokens the hub must refuse.
 */
export async function mintToken({
  audience, publish = [], subscribe = [], payload, expiresIn = 600, issuer = ISSUER, secret = SECRET,
  typ = 'at+jwt', subject = 'e2e',
} = {}) {
  const details = [];
  if (publish.length) details.push({ type: DETAIL_TYPE, actions: ['publish'], topics: asTopics(publish) });
  if (subscribe.length) {
    details.push({ type: DETAIL_TYPE, actions: ['subscribe'], topics: asTopics(subscribe), ...(payload ? { payload } : {}) });
  }
  const nowS = Math.floor(Date.now() / 1000);
  return new SignJWT({ authorization_details: details })
    .setProtectedHeader({ alg: 'HS256', ...(typ ? { typ } : {}) })
    .setIssuer(issuer)
    .setAudience(audience)
    .setSubject(subject)
    .setIssuedAt(nowS)
    .setExpirationTime(nowS + expiresIn)
    .sign(key(secret));
}

/** A 0.x token (no `typ`, `aud` or `iss`): the `mercure` claim, signed with the compatibility key. */
export async function mintCompatToken({ publish = [], subscribe = [], payload, secret = COMPAT_SECRET, expiresIn = 600 } = {}) {
  const nowS = Math.floor(Date.now() / 1000);
  return new SignJWT({ mercure: { publish, subscribe, ...(payload ? { payload } : {}) } })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(nowS + expiresIn)
    .sign(key(secret));
}

// ---------------------------------------------------------------------------------------------
// Publishing and reading, from Node

/**
 * POST a form to the hub at `hub` (fields: [[name, value], …], names may repeat); `token` as
 * `Authorization: Bearer`. Resolves to { status, text, headers }.
 */
export async function postForm(hub, fields, { token, headers = {} } = {}) {
  const res = await fetch(hub, {
    method: 'POST',
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: new URLSearchParams(fields),
    signal: AbortSignal.timeout(STEP_TIMEOUT_MS),
  });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

/** Publish and expect 200: resolves to the id the hub answered. */
export async function publishUpdate(hub, fields, token) {
  const { status, text, headers } = await postForm(hub, fields, { token });
  assert.equal(status, 200, `publish ${JSON.stringify(fields)} answered ${status}: ${text}`);
  assert.match(headers.get('content-type') ?? '', /^text\/plain/, 'the publish answer is text/plain');
  const wanted = fields.find(([k]) => k === 'id')?.[1];
  if (wanted) assert.equal(text, wanted, 'the hub answers the id it was given');
  return text;
}

/**
 * A Mercure subscription read by npm `eventsource` 5.1.5. `url`: the full hub URL with its
 * query; `token` goes in `Authorization: Bearer` (through the library's `fetch` option, which
 * also lets the test see each connection's request and response headers); `headers` are added
 * to every request; `route(url)` may rewrite each connection's URL (a load balancer sending a
 * reconnect to another node); `gate()` is awaited before each reconnect (not the first
 * connection). Returns { events, connections, errors, es, close(), until() }: `connections`
 * holds, per request, the Last-Event-ID it sent and the status and `Mercure-Last-Event-ID` it got.
 */
export function openEventSource(url, { token, headers = {}, types = [], route = (u) => u, gate } = {}) {
  const stream = { url, events: [], connections: [], errors: [], opens: 0 };
  stream.es = new EventSource(url, {
    fetch: async (input, init) => {
      if (stream.connections.length && gate) await gate();
      const h = new Headers(init?.headers);
      if (token) h.set('authorization', `Bearer ${token}`);
      for (const [k, v] of Object.entries(headers)) h.set(k, v);
      const target = route(String(input));
      const conn = { url: target, lastEventId: h.get('last-event-id'), status: null, mercureLastEventId: null };
      stream.connections.push(conn);
      const res = await fetch(target, { ...init, headers: h });
      conn.status = res.status;
      conn.mercureLastEventId = res.headers.get('mercure-last-event-id');
      conn.contentType = res.headers.get('content-type');
      conn.cacheControl = res.headers.get('cache-control');
      if (res.status !== 200) conn.body = await res.clone().text().catch(() => null);
      return res;
    },
  });
  const on = (e) => stream.events.push({ type: e.type, id: e.lastEventId, data: e.data });
  stream.es.addEventListener('message', on);
  for (const t of types) stream.es.addEventListener(t, on);
  stream.es.addEventListener('open', () => { stream.opens += 1; });
  stream.es.addEventListener('error', (e) => stream.errors.push(e.message ?? e.code ?? 'error'));
  stream.close = () => stream.es.close();
  const describe = () => JSON.stringify({ events: stream.events, connections: stream.connections, errors: stream.errors });
  stream.describe = describe;
  stream.until = (check, what, timeout = STEP_TIMEOUT_MS) =>
    waitFor(() => check(stream), { timeout, interval: 20, what: `${url}: ${what}`, describe });
  /** Wait for the event with id `id` (and every one before it): the events up to it. */
  stream.untilId = async (id, what = `the event ${id}`) => {
    await stream.until((s) => s.events.some((e) => e.id === id), what);
    return stream.events.slice(0, stream.events.findIndex((e) => e.id === id) + 1);
  };
  return stream;
}

/** Only the fields a test compares: [id, type, data]. */
export const brief = (events) => events.map((e) => [e.id, e.type, e.data]);

// ---------------------------------------------------------------------------------------------
// The page (served by pushwire itself with --static-dir, so it is same-origin with the hub)

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>Mercure on pushwire</title>
<script src="mercure-harness.js"></script>
<style>body{font:13px monospace;margin:8px} li{white-space:pre-wrap}</style>
</head><body><h3>Mercure: EventSource and fetch</h3><ul id="log"></ul></body></html>
`;

/** In the page: window.h, the test's hands (EventSources, fetch, cookies, pushwire.mjs). */
function harness() {
  const show = (text) => {
    const li = document.createElement('li');
    li.textContent = text;
    document.getElementById('log')?.appendChild(li);
  };
  const pick = (headers) => Object.fromEntries(['content-type', 'www-authenticate', 'mercure-last-event-id', 'cache-control']
    .map((k) => [k, headers.get(k)]));
  // A small SSE parser for fetch streams: events as { type, id, data }.
  const parser = (onEvent) => {
    let buffer = '';
    let id = '';
    return (text) => {
      buffer += text;
      let at;
      while ((at = buffer.search(/\r\n\r\n|\n\n|\r\r/)) >= 0) {
        const block = buffer.slice(0, at);
        buffer = buffer.slice(at + (buffer.startsWith('\r\n\r\n', at) ? 4 : 2));
        let type = 'message';
        const data = [];
        let any = false;
        for (const line of block.split(/\r\n|\n|\r/)) {
          if (!line || line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? '' : line.slice(colon + 1);
          if (value.startsWith(' ')) value = value.slice(1);
          if (field === 'data') { data.push(value); any = true; } else if (field === 'event') type = value;
          else if (field === 'id') id = value;
        }
        if (any) onEvent({ type, id, data: data.join('\n') });
      }
    };
  };
  const h = {
    streams: {},
    fetches: {},
    ws: { got: [], ready: null, error: null },
    context() { return { secure: window.isSecureContext, origin: location.origin }; },
    setCookie(name, value, path) {
      document.cookie = `${name}=${value}; Secure; Path=${path}; SameSite=Strict`;
      show(`cookie ${name} set for ${path}`);
    },
    /** An EventSource named `label` on `url`; also listens to the event `types`. */
    open(label, url, types = []) {
      const es = new EventSource(url);
      const s = { url, events: [], opens: 0, errors: 0 };
      h.streams[label] = s;
      Object.defineProperty(s, 'es', { value: es, enumerable: false });
      const on = (e) => { s.events.push({ type: e.type, id: e.lastEventId, data: e.data }); show(`${label} ${e.type} ${e.lastEventId} ${JSON.stringify(e.data)}`); };
      es.addEventListener('message', on);
      for (const t of types) es.addEventListener(t, on);
      es.addEventListener('open', () => { s.opens += 1; show(`${label} open`); });
      es.addEventListener('error', () => { s.errors += 1; show(`${label} error (readyState ${es.readyState})`); });
    },
    closeStream(label) { h.streams[label]?.es.close(); },
    /** A one-shot request: { status, headers, body }. */
    async request(url, { method = 'GET', token, body, credentials = 'same-origin', headers = {} } = {}) {
      const init = { method, credentials, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } };
      if (body !== undefined) init.body = Array.isArray(body) ? new URLSearchParams(body) : body;
      const res = await fetch(url, init);
      return { status: res.status, headers: pick(res.headers), body: await res.text() };
    },
    /**
     * A stream read with fetch, named `label`: its response headers and events are recorded as
     * they come; it stops once an event with id `untilId` came (or `stopFetch(label)`).
     */
    startFetch(label, url, { token, credentials = 'same-origin', headers = {}, untilId } = {}) {
      const f = { url, status: null, headers: null, events: [], done: false, error: null };
      h.fetches[label] = f;
      const controller = new AbortController();
      Object.defineProperty(f, 'controller', { value: controller, enumerable: false });
      (async () => {
        const res = await fetch(url, { credentials, signal: controller.signal, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } });
        f.status = res.status;
        f.headers = pick(res.headers);
        if (res.status !== 200) { f.body = await res.text(); f.done = true; return; }
        let stopped = false;
        const feed = parser((e) => {
          if (stopped) return; // the rest of the chunk that held the last event wanted
          f.events.push(e);
          if (untilId && e.id === untilId) { stopped = true; controller.abort(); }
        });
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          feed(value);
        }
        f.done = true;
      })().catch((err) => { f.done = true; if (err.name !== 'AbortError') f.error = String(err); });
    },
    stopFetch(label) { h.fetches[label]?.controller.abort(); },
    /** pushwire's own client (/pushwire.mjs, over /ws) subscribed to `topic`. */
    async wsSubscribe(topic) {
      const m = await import('/pushwire.mjs');
      h.ws.client = m.connect(location.origin);
      const sub = h.ws.client.subscribe(topic, (message) => {
        h.ws.got.push({ offset: message.offset, data: message.data });
        show(`/ws ${message.offset} ${JSON.stringify(message.data)}`);
      });
      const ready = await sub.ready;
      h.ws.ready = { topic: ready.topic, offset: ready.offset };
      return { ready: h.ws.ready, transport: h.ws.client.transport };
    },
    async wsPublish(topic, data) {
      const published = await h.ws.client.publish(topic, data);
      return { topic: published.topic, offset: published.offset };
    },
    snapshot() {
      return JSON.stringify({ streams: h.streams, fetches: h.fetches, ws: { got: h.ws.got, ready: h.ws.ready, transport: h.ws.client?.transport ?? null } });
    },
  };
  window.h = h;
}

/** Write the page and its script into `dir` (served as /static/ by --static-dir). */
async function writePage(dir) {
  await fsp.writeFile(path.join(dir, 'mercure.html'), PAGE);
  await fsp.writeFile(path.join(dir, 'mercure-harness.js'), `(${harness.toString()})();\n`);
}

// ---------------------------------------------------------------------------------------------
// The browser scenario

const BOOKS = 'https://example.com/books';
const MARKER = 'urn:e2e:marker';
const q = (pairs) => new URLSearchParams(pairs).toString();

export async function runMercureBrowserScenario({ engine }) {
  const name = `${engine}-mercure`;
  const t0 = now();
  const report = { scenario: name, engine, steps: [] };
  const step = (msg) => { report.steps.push(`${Math.round(now() - t0)} ms: ${msg}`); console.log(`[${name}] ${msg}`); };
  let server = null;
  let relay = null;
  let browser = null;
  let page = null;
  let dir = null;
  let last = null;
  let failed = true;
  const evaluate = (fn, ...args) => withTimeout(page.evaluate(fn, ...args), PROTOCOL_TIMEOUT_MS, `${name}: evaluate`);
  const read = async () => { last = JSON.parse(await evaluate(() => window.h.snapshot())); return last; };
  const until = async (check, what, timeout = STEP_TIMEOUT_MS) => {
    let value;
    await waitFor(async () => { value = check(await read()); return value; }, {
      timeout, interval: 30, what: `${name}: ${what}`, describe: () => JSON.stringify(last),
    });
    return value;
  };
  try {
    dir = await makeTempDir('mercure');
    await writePage(dir);
    server = await startPushwire({ args: ['--static-dir', dir, ...issuerFlag(), '--mercure-subscriptions'] });
    relay = await startRelay(server.port);
    const origin = `http://127.0.0.1:${relay.port}`;
    const hub = `${origin}${HUB_PATH}`; // what the page talks to: the audience of its tokens
    const direct = hubUrl(server.port); // the test's own publishes, around the relay
    step(`server ${server.command}; relay ${relay.port} -> ${server.port}`);
    browser = await launchBrowser(engine);
    report.browser = browser.version;
    page = await browser.newPage();
    await withTimeout(page.goto(`${origin}/static/mercure.html`, { waitUntil: 'load', timeout: 15000 }), 20000, 'open the page');
    step(`browser up: ${browser.version}`);

    const tokens = {
      publish: await mintToken({ audience: hub, publish: ['*'] }),
      publishDirect: await mintToken({ audience: direct, publish: ['*'] }),
      subscribeAll: await mintToken({ audience: hub, subscribe: ['*'] }),
      book1: await mintToken({ audience: hub, subscribe: [`${BOOKS}/1`] }),
      publishBook1: await mintToken({ audience: hub, publish: [`${BOOKS}/1`] }),
      wrongKey: await mintToken({ audience: hub, subscribe: ['*'], secret: 'not-the-secret-of-this-issuer' }),
      expired: await mintToken({ audience: hub, subscribe: ['*'], expiresIn: -120 }),
      plainJwt: await mintToken({ audience: hub, subscribe: ['*'], typ: 'JWT' }),
      wrongAudience: await mintToken({ audience: 'https://elsewhere.example/.well-known/mercure', subscribe: ['*'] }),
      unknownIssuer: await mintToken({ audience: hub, subscribe: ['*'], issuer: 'https://stranger.example' }),
    };

    // context: http://127.0.0.1 is a secure context, so __Secure- cookies may be set from it.
    const context = await evaluate(() => window.h.context());
    assert.deepEqual(context, { secure: true, origin }, 'the page is a secure context on http://127.0.0.1');
    step(`isSecureContext on ${origin}: ${context.secure}`);

    // errors, through fetch, without cookies.
    const request = (url, options) => evaluate((u, o) => window.h.request(u, o), url, { credentials: 'omit', ...options });
    const challenge = (r) => r.headers['www-authenticate'] ?? '';
    const sub = `${hub}?${q([['match', `${BOOKS}/1`]])}`;
    let r = await request(sub, {});
    assert.equal(r.status, 401, `no token: ${JSON.stringify(r)}`);
    assert.match(challenge(r), /^Bearer\b/, 'no token: a Bearer challenge');
    assert.doesNotMatch(challenge(r), /error=/, 'no token: the challenge has no error code (RFC 6750 §3.1)');
    for (const bad of ['wrongKey', 'expired', 'plainJwt', 'wrongAudience', 'unknownIssuer']) {
      r = await request(sub, { token: tokens[bad] });
      assert.equal(r.status, 401, `${bad}: ${JSON.stringify(r)}`);
      assert.match(challenge(r), /^Bearer\b.*error="invalid_token"/, `${bad}: invalid_token`);
    }
    r = await request(sub, { token: 'not.a.jwt' });
    assert.equal(r.status, 401, `garbage token: ${JSON.stringify(r)}`);
    assert.match(challenge(r), /error="invalid_token"/);
    r = await request(hub, { method: 'POST', token: tokens.subscribeAll, body: [['topic', `${BOOKS}/1`], ['data', 'x']] });
    assert.equal(r.status, 403, `publish with a subscribe-only token: ${JSON.stringify(r)}`);
    assert.match(challenge(r), /^Bearer\b.*error="insufficient_scope"/, 'insufficient_scope');
    r = await request(hub, { method: 'POST', token: tokens.publishBook1, body: [['topic', `${BOOKS}/1`], ['topic', `${BOOKS}/2`], ['data', 'x']] });
    assert.equal(r.status, 403, `publish to an alternate topic the token does not grant: ${JSON.stringify(r)}`);
    assert.match(challenge(r), /error="insufficient_scope"/);
    const invalid = [
      ['match_regex', await request(`${hub}?${q([['match_regex', '.*']])}`, { token: tokens.subscribeAll })],
      ['no matcher', await request(hub, { token: tokens.subscribeAll })],
      ['access_token in the URL', await request(`${sub}&${q([['access_token', tokens.subscribeAll]])}`, {})],
      ['authorization in the URL', await request(`${sub}&${q([['authorization', tokens.subscribeAll]])}`, {})],
      ['type mercure', await request(hub, { method: 'POST', token: tokens.publish, body: [['topic', `${BOOKS}/1`], ['type', 'mercure'], ['data', 'x']] })],
      ['a JSON body', await request(hub, { method: 'POST', token: tokens.publish, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: `${BOOKS}/1` }) })],
    ];
    for (const [what, answer] of invalid) {
      assert.equal(answer.status, 400, `${what}: ${JSON.stringify(answer)}`);
      assert.match(challenge(answer), /^Bearer\b.*error="invalid_request"/, `${what}: invalid_request`);
    }
    step('RFC 6750 through fetch: 401 Bearer, 401 invalid_token (5 kinds + garbage), 403 insufficient_scope (2), 400 invalid_request (6)');

    // cookie: the page sets the token cookie; the same request now gets a stream.
    await evaluate((n, v, p) => window.h.setCookie(n, v, p), COOKIE, tokens.subscribeAll, HUB_PATH);
    await evaluate((u) => window.h.startFetch('cookie', u, {}), sub);
    let s = await until((x) => x.fetches.cookie?.status && x, 'the cookie request answered');
    assert.equal(s.fetches.cookie.status, 200, `with the cookie: ${JSON.stringify(s.fetches.cookie)}`);
    assert.match(s.fetches.cookie.headers['content-type'], /^text\/event-stream/);
    await evaluate(() => window.h.stopFetch('cookie'));
    r = await evaluate((u, t) => window.h.request(u, { token: t }), sub, tokens.wrongKey);
    assert.equal(r.status, 401, `Authorization wins over the cookie: ${JSON.stringify(r)}`);
    step('the __Secure- cookie authorizes (401 without it, 200 with it); Authorization wins over it');

    // matchers: EventSources with the cookie, one fetch stream with a one-topic Bearer token.
    const types = ['book.updated'];
    const streams = {
      exact: [['match', `${BOOKS}/1`]],
      exact2: [['match_exact', `${BOOKS}/2`]],
      pattern: [['match_urlpattern', `${BOOKS}/:id`]],
      relative: [['match_urlpattern', '/relative/:x']],
    };
    for (const [label, pairs] of Object.entries(streams)) {
      await evaluate((l, u, t) => window.h.open(l, u, t), label, `${hub}?${q([...pairs, ['match', MARKER]])}`, types);
    }
    await evaluate((u, t) => window.h.startFetch('book1', u, { token: t, credentials: 'omit', untilId: 'e2e-8' }),
      `${hub}?${q([['match_urlpattern', `${BOOKS}/:id`], ['match', MARKER]])}`, tokens.book1);
    s = await until((x) => Object.keys(streams).every((l) => x.streams[l]?.opens === 1) && x.fetches.book1?.status && x, 'every stream open');
    assert.equal(s.fetches.book1.status, 200, `the fetch stream: ${JSON.stringify(s.fetches.book1)}`);
    assert.match(s.fetches.book1.headers['content-type'], /^text\/event-stream/, 'Content-Type');
    assert.match(s.fetches.book1.headers['cache-control'] ?? '', /no-cache/, 'Cache-Control');
    const pagePublish = async (fields) => {
      const a = await evaluate((u, t, b) => window.h.request(u, { method: 'POST', token: t, body: b }), hub, tokens.publish, fields);
      assert.equal(a.status, 200, `publish ${JSON.stringify(fields)}: ${JSON.stringify(a)}`);
      assert.match(a.headers['content-type'] ?? '', /^text\/plain/);
      return a.body;
    };
    assert.equal(await pagePublish([['topic', `${BOOKS}/1`], ['data', 'one'], ['id', 'e2e-1']]), 'e2e-1');
    await pagePublish([['topic', `${BOOKS}/2`], ['data', 'two\nlines\r\nthree'], ['type', 'book.updated'], ['id', 'e2e-2']]);
    const generated = await pagePublish([['topic', `${BOOKS}/3/reviews`], ['data', 'not a book']]);
    assert.match(generated, /^urn:uuid:[0-9a-f-]{36}$/, 'an id the hub made up');
    await pagePublish([['topic', 'https://example.com/other'], ['topic', `${BOOKS}/4`], ['data', 'alternate'], ['id', 'e2e-4']]);
    await pagePublish([['topic', `${BOOKS}/5`], ['data', 'private five'], ['private', 'on'], ['id', 'e2e-5']]);
    await pagePublish([['topic', `${BOOKS}/1`], ['data', 'private one'], ['private', 'on'], ['id', 'e2e-6']]);
    await pagePublish([['topic', '/relative/7'], ['data', 'relative'], ['id', 'e2e-7']]);
    await pagePublish([['topic', MARKER], ['data', 'marker'], ['retry', '300'], ['id', 'e2e-8']]);
    s = await until((x) => Object.keys(streams).every((l) => x.streams[l].events.some((e) => e.id === 'e2e-8')) &&
      x.fetches.book1.events.some((e) => e.id === 'e2e-8') && x, 'the marker on every stream');
    const ev = (id, data, type = 'message') => [id, type, data];
    const one = ev('e2e-1', 'one');
    const two = ev('e2e-2', 'two\nlines\nthree', 'book.updated');
    const four = ev('e2e-4', 'alternate');
    const five = ev('e2e-5', 'private five');
    const six = ev('e2e-6', 'private one');
    const marker = ev('e2e-8', 'marker');
    assert.deepEqual(brief(s.streams.exact.events), [one, six, marker], 'match (exact): books/1, public and private');
    assert.deepEqual(brief(s.streams.exact2.events), [two, marker], 'match_exact: books/2, its type, its lines');
    assert.deepEqual(brief(s.streams.pattern.events), [one, two, four, five, six, marker],
      'match_urlpattern books/:id: not books/3/reviews, books/4 by its alternate topic, private ones with a subscribe-* cookie');
    assert.deepEqual(brief(s.streams.relative.events), [ev('e2e-7', 'relative'), marker], 'a relative pattern and topic, resolved against the hub');
    assert.deepEqual(brief(s.fetches.book1.events), [one, two, four, six, marker],
      'fetch with a token granted books/1: the private update of books/1, not that of books/5');
    step('matchers: match, match_exact, match_urlpattern (absolute, relative, alternate topic); private updates by grant; type, multi-line data, generated urn:uuid id');

    // /ws: pushwire's own client on the Mercure topic, both ways.
    const crossIri = `${BOOKS}/9`;
    const crossTopic = `mercure:${crossIri}`;
    const ws = await evaluate((t) => window.h.wsSubscribe(t), crossTopic);
    assert.deepEqual(ws, { ready: { topic: crossTopic, offset: 0 }, transport: 'websocket' }, 'pushwire.mjs subscribed over /ws');
    await pagePublish([['topic', crossIri], ['data', 'secret'], ['private', 'on'], ['id', 'e2e-9p']]);
    await pagePublish([['topic', crossIri], ['data', 'to /ws'], ['id', 'e2e-9']]);
    s = await until((x) => x.ws.got.length && x.streams.pattern.events.some((e) => e.id === 'e2e-9') && x, 'the update over /ws');
    assert.deepEqual(s.ws.got, [{ offset: 1, data: { event: 'message', data: 'to /ws', id: 'e2e-9' } }],
      '/ws gets the public update as its envelope, never the private one');
    const fromWs = await evaluate((t) => window.h.wsPublish(t, { from: 'ws', n: 1 }), crossTopic);
    assert.deepEqual(fromWs, { topic: crossTopic, offset: 2 });
    s = await until((x) => x.streams.pattern.events.some((e) => e.data === '{"from":"ws","n":1}') && x, 'the /ws publish on the EventSource');
    const wsEvent = s.streams.pattern.events.at(-1);
    assert.equal(wsEvent.type, 'message');
    assert.equal(wsEvent.data, '{"from":"ws","n":1}', 'data: the JSON text published over /ws');
    assert.match(wsEvent.id, /^urn:pushwire:[^:]+:\d+$/, 'a hub-made id for a /ws publish');
    step(`/ws: pushwire.mjs got the Mercure update as an envelope; the /ws publish came to EventSource as ${wsEvent.id}`);

    // reconnect: cut the relay, publish around it, restore; Last-Event-ID brings the missed ones.
    const before = s.streams.pattern.events.length;
    relay.cut();
    await publishUpdate(direct, [['topic', `${BOOKS}/10`], ['data', 'missed 1'], ['id', 'e2e-r1']], tokens.publishDirect);
    await publishUpdate(direct, [['topic', `${BOOKS}/11`], ['data', 'missed 2'], ['id', 'e2e-r2']], tokens.publishDirect);
    s = await until((x) => x.streams.pattern.errors >= 1 && x, 'the EventSource to see the cut');
    relay.restore();
    s = await until((x) => x.streams.pattern.opens >= 2 && x.streams.pattern.events.some((e) => e.id === 'e2e-r2') && x, 'the EventSource back, with what it missed');
    await pagePublish([['topic', `${BOOKS}/12`], ['data', 'live'], ['id', 'e2e-r3']]);
    s = await until((x) => x.streams.pattern.events.some((e) => e.id === 'e2e-r3') && x, 'a live update after the reconnect');
    assert.deepEqual(brief(s.streams.pattern.events.slice(before)), [ev('e2e-r1', 'missed 1'), ev('e2e-r2', 'missed 2'), ev('e2e-r3', 'live')],
      'after the reconnect: the two missed updates once, then live');
    assert.equal(s.streams.pattern.opens, 2, 'one reconnect');
    step(`reconnect: the EventSource came back (Last-Event-ID ${wsEvent.id}, retry 300 ms) with exactly the 2 missed updates`);

    // resume: last_event_id and earliest, Mercure-Last-Event-ID read by fetch.
    const resume = `${hub}?${q([['match_urlpattern', `${BOOKS}/:id`]])}`;
    await evaluate((u, t) => window.h.startFetch('after1', u, { token: t, credentials: 'omit', untilId: 'e2e-2' }), `${resume}&last_event_id=e2e-1`, tokens.subscribeAll);
    await evaluate((u, t) => window.h.startFetch('earliest', u, { token: t, credentials: 'omit', untilId: 'e2e-1' }), `${resume}&last_event_id=earliest`, tokens.subscribeAll);
    s = await until((x) => x.fetches.after1?.done && x.fetches.earliest?.done && x, 'the two resumed streams');
    assert.equal(s.fetches.after1.headers['mercure-last-event-id'], 'e2e-1', 'Mercure-Last-Event-ID: the id before the first sent');
    assert.deepEqual(brief(s.fetches.after1.events), [two], 'last_event_id=e2e-1: replay starts after it');
    assert.equal(s.fetches.earliest.headers['mercure-last-event-id'], 'earliest', 'Mercure-Last-Event-ID: earliest');
    assert.deepEqual(brief(s.fetches.earliest.events), [one], 'last_event_id=earliest: from the first update kept');
    step('resume: last_event_id=e2e-1 and earliest, Mercure-Last-Event-ID read by fetch');

    // active subscriptions: a watcher's EventSource gets `event: mercure` when a subscriber comes
    // and goes; the subscriptions API answers JSON.
    const subsPath = `${HUB_PATH}/subscriptions`;
    await evaluate((l, u, t) => window.h.open(l, u, t), 'watch', `${hub}?${q([['match_urlpattern', `${subsPath}/:type/:match/:subscriber`]])}`, ['mercure']);
    await until((x) => x.streams.watch.opens === 1, 'the watcher open');
    const newcomer = await mintToken({ audience: hub, subscribe: ['urn:e2e:newcomer'], payload: { name: 'Newcomer' }, subject: 'newcomer' });
    await evaluate((u, t) => window.h.startFetch('newcomer', u, { token: t, credentials: 'omit' }), `${hub}?${q([['match', 'urn:e2e:newcomer']])}`, newcomer);
    const docId = `${subsPath}/exact/urn%3Ae2e%3Anewcomer/newcomer`;
    const doc = { id: docId, type: 'Subscription', match_type: 'exact', match: 'urn:e2e:newcomer', subscriber: 'newcomer', active: true, payload: { name: 'Newcomer' } };
    const announced = (x, active) => x.streams.watch.events.filter((e) => e.type === 'mercure' && JSON.parse(e.data).subscriber === 'newcomer' && JSON.parse(e.data).active === active);
    s = await until((x) => announced(x, true).length && x, 'the newcomer announced');
    assert.deepEqual(announced(s, true).map((e) => JSON.parse(e.data)), [doc], 'event: mercure, the subscription document');
    r = await request(`${origin}${docId}`, { token: tokens.subscribeAll });
    assert.equal(r.status, 200, `GET ${docId}: ${JSON.stringify(r)}`);
    assert.match(r.headers['content-type'] ?? '', /^application\/json/);
    assert.deepEqual(JSON.parse(r.body), doc, 'the subscriptions API: the one document');
    r = await request(`${origin}${subsPath}`, { token: tokens.subscribeAll });
    assert.equal(r.status, 200, `GET ${subsPath}: ${JSON.stringify(r)}`);
    const list = JSON.parse(r.body);
    assert.equal(list.type, 'Subscriptions');
    assert.equal(typeof list.lastEventID, 'string');
    assert.deepEqual(list.subscriptions.filter((x) => x.subscriber === 'newcomer'), [doc], 'the list holds the newcomer');
    r = await request(`${origin}${subsPath}`, {});
    assert.equal(r.status, 401, `the subscriptions API without a token: ${JSON.stringify(r)}`);
    await evaluate(() => window.h.stopFetch('newcomer'));
    s = await until((x) => announced(x, false).length && x, 'the newcomer gone');
    assert.deepEqual(announced(s, false).map((e) => JSON.parse(e.data)), [{ ...doc, active: false }], 'its end: active false');
    const ids = [announced(s, true)[0].id, announced(s, false)[0].id];
    assert.ok(ids.every((id) => id && id !== docId) && ids[0] !== ids[1], `each announcement is an update with its own id: ${ids}`);
    step('active subscriptions: event: mercure when a subscriber came and went; the API lists it as JSON');

    await saveScreenshot({ screenshot: (file) => page.screenshot({ path: file }) }, name);
    failed = false;
  } catch (err) {
    err.message += `\nlast page state: ${JSON.stringify(last)}`;
    if (server) err.message += `\nserver output:\n${server.output()}`;
    if (page) await saveFailureScreenshot({ screenshot: (file) => page.screenshot({ path: file }) }, name);
    throw err;
  } finally {
    report.ok = !failed;
    report.last = last;
    if (browser) await withTimeout(browser.close(), 20000, 'browser close').catch((e) => console.log(`[${name}] close: ${e.message}`));
    await Promise.allSettled([relay?.close(), server?.stop()]);
    await removeDir(dir);
    report.total = `${Math.round(now() - t0)} ms`;
    await writeReport(name, report);
    console.log(`[${name}] done in ${report.total}`);
  }
}
