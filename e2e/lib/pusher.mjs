// The Pusher Channels protocol with the real third-party code (issue 18, item 6): pusher-js
// 8.6.0 in a browser page (and laravel-echo 2.5.0 over it, from its browser build
// `laravel-echo/iife`), the `pusher` Node server SDK 5.3.4 (channel and user authentication in
// the test's auth endpoint, publishing, channel queries, the webhook check), and the PyPI `pusher`
// 3.3.4 server SDK, run from the venv that ./scripts/test makes (target/e2e-venv).
//
// One setup per run: a redis-server, two pushwire nodes on it (`--broker redis://…`) with one
// Pusher app in a config file (`--config FILE`, client events on, a webhook to this test) and
// `--allowed-origin` naming the test's page server, the page server itself (the page, the auth
// endpoints, the webhook receiver) and one browser. The scenario's steps run in order, each
// bounded in time:
//
//   connect     alice's page (node A) connects and subscribes `news`, `private-room` and
//               `presence-lobby` (auth through the test's endpoint, Node SDK authorizeChannel)
//   presence    bob's page (node A) joins `private-room` and `presence-lobby`: both member lists
//               hold alice and bob, alice gets `pusher:member_added` for bob with his info
//   node sdk    trigger (one channel, two channels) and triggerBatch: the events arrive with the
//               exact data (the frame's `data` is the SDK's JSON text, byte for byte)
//   python sdk  an event published by the Python SDK arrives
//   one hub     a pushwire publish (POST /api/publish/1001:news) arrives as the event `message`,
//               its data the JSON text of the published value
//   exclusion   a trigger with alice's socket_id reaches bob but not alice (a later trigger on the
//               same channel reaches both, so alice's absence is not a matter of waiting)
//   client ev.  alice's `client-typing` on `private-room` reaches bob and not alice; her
//               `client-wave` on `presence-lobby` reaches bob with `user_id` alice
//   query       the Node SDK's GET /channels lists exactly the occupied channels, and the
//               presence channel's user_count
//   signin      pusher.signin() (Node SDK authenticateUser): signin_success with alice's user
//               data, and an event sent to her with sendToUser arrives
//   echo        laravel-echo over alice's pusher-js client: a public, a private and a presence
//               channel; the events published by the Node SDK reach Echo's listeners
//   two nodes   carol's page on node B joins `presence-lobby`: she sees alice and bob, alice sees
//               carol added; a trigger on node A reaches carol on node B
//   leave       bob's page closes: alice (A) and carol (B) see bob removed; then carol closes and
//               alice disconnects
//   webhooks    every webhook carries X-Pusher-Key and a signature that the Node SDK's webhook()
//               accepts; channel_occupied, member_added, client_event, member_removed and
//               channel_vacated all arrived, with the right channels, users and data

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Pusher from 'pusher';
import { launchBrowser, publish, startPushwire } from './topics.mjs';
import { startRedis } from './redis.mjs';
import { saveFailureScreenshot, saveScreenshot, writeReport } from './artifacts.mjs';
import { venvPython } from './python.mjs';
import { makeTempDir, now, removeDir, waitFor, withTimeout } from './server.mjs';

const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The one Pusher app of the tests. Its id is digits: the Python SDK refuses any other app id
 * (`ValueError: Invalid app id`), as Pusher's own app ids are numbers.
 */
export const APP = { id: '1001', key: 'app-key', secret: 'app-secret' };

const STEP_TIMEOUT_MS = 10000; // one step: an event, a member list, a subscription
const HOOK_TIMEOUT_MS = 20000; // webhooks are batched and may be retried
const PROTOCOL_TIMEOUT_MS = 15000;

// ---------------------------------------------------------------------------------------------
// pushwire with a Pusher app

/** The config file of the nodes: one Pusher app, client events on, webhooks to `hooksUrl`. */
export function pusherConfig({ hooksUrl } = {}) {
  return [
    '[[pusher.apps]]',
    `id = "${APP.id}"`,
    `key = "${APP.key}"`,
    `secret = "${APP.secret}"`,
    'client_events = true',
    ...(hooksUrl ? [`webhooks = [{ url = "${hooksUrl}" }]`] : []),
    '',
  ].join('\n');
}

/**
 * Write `pusherConfig(…)` to a temp dir and start `count` pushwire nodes with it (`--config FILE`,
 * plus `args`). Returns { nodes, config, stop() }; stop() stops every node and removes the dir.
 */
export async function startPusherNodes({ count = 1, hooksUrl, args = [] } = {}) {
  const dir = await makeTempDir('pusher');
  const config = path.join(dir, 'pushwire.toml');
  await fsp.writeFile(config, pusherConfig({ hooksUrl }));
  const nodes = [];
  const stop = async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
    await removeDir(dir);
  };
  try {
    for (let i = 0; i < count; i += 1) nodes.push(await startPushwire({ args: ['--config', config, ...args] }));
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes, config, stop };
}

/** The Node server SDK, talking to the Pusher HTTP API of the node on `port`. */
export function nodeSdk(port) {
  return new Pusher({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1', port: String(port), useTLS: false });
}

/** `await res.json()` of a Node SDK call, with the status checked. */
export async function sdkJson(promise, what) {
  const res = await withTimeout(promise, STEP_TIMEOUT_MS, what);
  const text = await res.text();
  assert.equal(res.status, 200, `${what}: status ${res.status}: ${text}`);
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${what}: the answer is not JSON: ${text}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The Python SDK (PyPI `pusher`, in the venv ./scripts/test makes)

/** The venv's python for the Pusher SDK: $PUSHER_PYTHON, else the e2e venv's (lib/python.mjs). */
export function pusherPython() {
  return venvPython('PUSHER_PYTHON');
}

const PYTHON_TRIGGER = `
import json, sys
import pusher
port, channel, event, data = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
client = pusher.Pusher(app_id=sys.argv[5], key=sys.argv[6], secret=sys.argv[7], host='127.0.0.1', port=int(port), ssl=False)
from pusher.version import VERSION
print(json.dumps({"sdk": "pusher " + VERSION, "answer": client.trigger(channel, event, data)}))
`;

/** Publish `data` (a JSON value) as `event` on `channel` with the Python SDK; resolves to its output. */
export function pythonTrigger(port, channel, event, data) {
  const python = pusherPython();
  return new Promise((resolve, reject) => {
    execFile(python, ['-c', PYTHON_TRIGGER, String(port), channel, event, JSON.stringify(data), APP.id, APP.key, APP.secret],
      { timeout: STEP_TIMEOUT_MS }, (err, stdout, stderr) => {
        if (err) reject(new Error(`the Python SDK's trigger failed: ${err.message}\n${stdout}${stderr}`));
        else resolve(stdout.trim());
      });
  });
}

// ---------------------------------------------------------------------------------------------
// The test's own HTTP server: the page, pusher-js and Echo, the auth endpoints, the webhooks

const STATIC = {
  '/pusher.min.js': path.join(E2E_DIR, 'node_modules', 'pusher-js', 'dist', 'web', 'pusher.min.js'),
  '/echo.iife.js': path.join(E2E_DIR, 'node_modules', 'laravel-echo', 'dist', 'echo.iife.js'),
};

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>pusher-js on pushwire</title>
<script src="/harness.js"></script>
<script src="/pusher.min.js"></script>
<script src="/echo.iife.js"></script>
<style>body{font:13px monospace;margin:8px} li{white-space:pre-wrap}</style>
</head><body><h3 id="title">pusher-js</h3><ul id="log"></ul></body></html>
`;

async function readBody(req, max = 1 << 20) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > max) throw new Error('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Start the page server on 127.0.0.1 (port from bind 0): GET / (the page), /harness.js,
 * /pusher.min.js, /echo.iife.js; POST /pusher/auth and /pusher/user-auth (the form pusher-js's
 * ajax transport posts, with a `user` param naming the user); POST /hooks (webhooks, checked with
 * the Node SDK). Returns { port, origin, hooks, badHooks, auths, close() }: `hooks` holds every
 * valid webhook's events as { name, channel, …, at } (arrival order), `badHooks` the ones the SDK
 * refused.
 */
export async function startPageServer() {
  const sdk = new Pusher({ appId: APP.id, key: APP.key, secret: APP.secret });
  const files = {};
  for (const [route, file] of Object.entries(STATIC)) {
    try {
      files[route] = await fsp.readFile(file);
    } catch (err) {
      throw new Error(`${file} is missing (npm ci in e2e/): ${err.message}`);
    }
  }
  files['/harness.js'] = Buffer.from(`(${harness.toString()})();\n`);
  const state = { hooks: [], badHooks: [], auths: [], errors: [] };
  let hookCount = 0;
  const server = http.createServer(async (req, res) => {
    const send = (status, type, body) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    try {
      const url = new URL(req.url, 'http://127.0.0.1');
      if (req.method === 'GET' && url.pathname === '/') return send(200, 'text/html; charset=utf-8', PAGE);
      if (req.method === 'GET' && files[url.pathname]) return send(200, 'text/javascript; charset=utf-8', files[url.pathname]);
      if (req.method === 'POST' && (url.pathname === '/pusher/auth' || url.pathname === '/pusher/user-auth')) {
        const form = new URLSearchParams(await readBody(req));
        const socketId = form.get('socket_id');
        const user = form.get('user');
        const channel = form.get('channel_name');
        state.auths.push({ path: url.pathname, socketId, user, channel });
        if (!socketId || !user) return send(400, 'text/plain', 'socket_id and user are required');
        let answer;
        if (url.pathname === '/pusher/user-auth') {
          answer = sdk.authenticateUser(socketId, { id: user, user_info: { name: user } });
        } else if (channel && channel.startsWith('presence-')) {
          answer = sdk.authorizeChannel(socketId, channel, { user_id: user, user_info: { name: user } });
        } else {
          answer = sdk.authorizeChannel(socketId, channel);
        }
        return send(200, 'application/json', JSON.stringify(answer));
      }
      if (req.method === 'POST' && url.pathname === '/hooks') {
        const rawBody = await readBody(req);
        const seq = ++hookCount;
        const webhook = sdk.webhook({ headers: req.headers, rawBody });
        const key = req.headers['x-pusher-key'];
        if (key !== APP.key || !req.headers['x-pusher-signature'] || !webhook.isValid()) {
          state.badHooks.push({ seq, headers: req.headers, rawBody });
          return send(401, 'text/plain', 'bad webhook');
        }
        for (const event of webhook.getEvents()) state.hooks.push({ ...event, seq });
        return send(200, 'application/json', '{}');
      }
      return send(404, 'text/plain', 'not found');
    } catch (err) {
      state.errors.push(`${req.method} ${req.url}: ${err.message}`);
      if (!res.headersSent) send(500, 'text/plain', err.message);
    }
  });
  server.listen(0, '127.0.0.1');
  await withTimeout(new Promise((resolve, reject) => { server.once('listening', resolve); server.once('error', reject); }), 5000, 'page server to listen');
  const { port } = server.address();
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    ...state,
    async close() {
      server.closeAllConnections?.();
      await withTimeout(new Promise((resolve) => server.close(() => resolve())), 5000, 'page server close').catch(() => {});
    },
  };
}

// ---------------------------------------------------------------------------------------------
// In the page: window.h, around pusher-js. Loaded before pusher-js, so it also records every text
// frame the page's WebSockets receive, untouched (pusher-js parses `data` when it is JSON).

function harness() {
  const frames = [];
  const urls = [];
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      urls.push(String(args[0]));
      this.addEventListener('message', (e) => { if (typeof e.data === 'string') frames.push(e.data); });
    }
  };
  const show = (text) => {
    const li = document.createElement('li');
    li.textContent = text;
    document.getElementById('log')?.appendChild(li);
  };
  const h = {
    pusher: null, user: null, frames, urls, states: [], errors: [], subs: {}, got: [], wire: [], memberEvents: [],
    userEvents: [], echo: [], echoSubs: {}, echoHere: null,
    connect({ wsPort, user }) {
      h.user = user;
      document.getElementById('title').textContent = `pusher-js ${Pusher.VERSION} as ${user}`;
      const p = new Pusher('app-key', {
        wsHost: '127.0.0.1', wsPort, forceTLS: false, enabledTransports: ['ws'], cluster: 'mt1',
        channelAuthorization: { endpoint: '/pusher/auth', transport: 'ajax', params: { user } },
        userAuthentication: { endpoint: '/pusher/user-auth', transport: 'ajax', params: { user } },
      });
      h.pusher = p;
      p.connection.bind('state_change', (s) => { h.states.push(s.current); show(`state ${s.current}`); });
      p.connection.bind('error', (e) => {
        const text = JSON.stringify(e, (k, v) => (v instanceof Error ? String(v) : v));
        h.errors.push(text);
        show(`error ${text}`);
      });
      p.connection.bind('message', (m) => {
        h.wire.push({ event: m.event, channel: m.channel ?? null, data: m.data, user_id: m.user_id ?? null });
      });
      p.user.bind_global((event, data) => { if (!event.startsWith('pusher')) h.userEvents.push({ event, data }); });
    },
    subscribe(name) {
      const ch = h.pusher.subscribe(name);
      h.subs[name] = { state: 'pending' };
      ch.bind('pusher:subscription_succeeded', () => { h.subs[name].state = 'subscribed'; show(`subscribed ${name}`); });
      ch.bind('pusher:subscription_error', (e) => {
        h.subs[name] = { state: 'error', error: JSON.stringify(e) };
        show(`subscription error ${name} ${JSON.stringify(e)}`);
      });
      ch.bind_global((event, data) => {
        if (event.startsWith('pusher:') || event.startsWith('pusher_internal:')) return;
        h.got.push({ channel: name, event, data });
        show(`${name} ${event} ${JSON.stringify(data)}`);
      });
      if (name.startsWith('presence-')) {
        ch.bind('pusher:member_added', (m) => { h.memberEvents.push({ channel: name, kind: 'added', id: m.id, info: m.info }); show(`+ ${m.id} in ${name}`); });
        ch.bind('pusher:member_removed', (m) => { h.memberEvents.push({ channel: name, kind: 'removed', id: m.id, info: m.info }); show(`- ${m.id} in ${name}`); });
      }
    },
    trigger(channel, event, data) { return h.pusher.channel(channel).trigger(event, data); },
    members(name) {
      const ch = h.pusher.channel(name);
      if (!ch || !ch.members) return null;
      const list = {};
      ch.members.each((m) => { list[m.id] = m.info; });
      return { me: ch.members.me ? ch.members.me.id : null, count: ch.members.count, list };
    },
    signin() { h.pusher.signin(); },
    startEcho() {
      const echo = new Echo.default({ broadcaster: 'pusher', client: h.pusher });
      h.echoInstance = echo;
      const note = (via) => (e) => { h.echo.push({ via, e }); show(`echo ${via} ${JSON.stringify(e)}`); };
      const sub = (name, channel) => {
        h.echoSubs[name] = 'pending';
        channel.subscribed(() => { h.echoSubs[name] = 'subscribed'; }).error((e) => { h.echoSubs[name] = `error ${JSON.stringify(e)}`; });
        return channel;
      };
      sub('orders', echo.channel('orders')).listen('OrderShipped', note('public'));
      sub('private-orders.1', echo.private('orders.1')).listen('.status.changed', note('private'));
      sub('presence-room.1', echo.join('room.1')).here((users) => { h.echoHere = users; }).listen('.hello', note('presence'));
    },
    snapshot() {
      const p = h.pusher;
      const members = {};
      for (const name of Object.keys(h.subs)) if (name.startsWith('presence-')) members[name] = h.members(name);
      return {
        user: h.user,
        state: p ? p.connection.state : null,
        socketId: p ? p.connection.socket_id : null,
        urls: h.urls,
        states: h.states,
        errors: h.errors,
        subs: h.subs,
        got: h.got,
        wire: h.wire,
        frames: h.frames,
        memberEvents: h.memberEvents,
        members,
        userData: p ? p.user.user_data : null,
        userChannel: p && p.user.serverToUserChannel ? { name: p.user.serverToUserChannel.name, subscribed: p.user.serverToUserChannel.subscribed } : null,
        userEvents: h.userEvents,
        echo: h.echo,
        echoSubs: h.echoSubs,
        echoHere: h.echoHere,
      };
    },
  };
  window.h = h;
}

/** A page of the harness, seen from the test: bounded evaluate, snapshot and waits. */
function harnessPage(page, label) {
  let last = null;
  const evaluate = (fn, ...args) => withTimeout(page.evaluate(fn, ...args), PROTOCOL_TIMEOUT_MS, `${label}: evaluate`);
  // As JSON text: WebDriver BiDi's serialization of a deep object loses its deeper levels.
  const read = async () => { last = JSON.parse(await evaluate(() => JSON.stringify(window.h.snapshot()))); return last; };
  const brief = () => {
    if (!last) return 'nothing read yet';
    const { frames, wire, ...rest } = last;
    return JSON.stringify({ ...rest, wire: wire.slice(-15), frames: frames.length });
  };
  return {
    page,
    label,
    read,
    last: () => last,
    brief,
    evaluate,
    async until(check, what, timeout = STEP_TIMEOUT_MS) {
      let value;
      await waitFor(async () => { value = check(await read()); return value; }, {
        timeout, interval: 50, what: `${label}: ${what}`, describe: brief,
      });
      return value;
    },
  };
}

async function openPage(browser, pageServer, label) {
  const page = harnessPage(await browser.newPage(), label);
  await withTimeout(page.page.goto(`${pageServer.origin}/`, { waitUntil: 'load', timeout: 15000 }), 20000, `${label}: open the page`);
  const loaded = await page.evaluate(() => ({ pusher: typeof Pusher === 'function', echo: typeof Echo === 'object' && typeof Echo.default === 'function' }));
  assert.deepEqual(loaded, { pusher: true, echo: true }, `${label}: pusher-js and laravel-echo loaded in the page`);
  return page;
}

/** Connect the page's pusher-js as `user` to the node on `wsPort` and subscribe `channels`. */
async function connectAndSubscribe(page, { wsPort, user, channels }) {
  await page.evaluate((o) => window.h.connect(o), { wsPort, user });
  const s = await page.until((x) => x.state === 'connected' && x.socketId && x, `connected to port ${wsPort}`);
  assert.match(s.socketId, /^\d+\.\d+$/, `${page.label}: the socket id looks like Pusher's`);
  assert.deepEqual(s.urls, [`ws://127.0.0.1:${wsPort}/app/app-key?protocol=7&client=js&version=8.6.0&flash=false`], `${page.label}: pusher-js 8.6.0's one WebSocket`);
  for (const name of channels) await page.evaluate((n) => window.h.subscribe(n), name);
  await page.until((x) => channels.every((n) => x.subs[n]?.state === 'subscribed') || channels.some((n) => x.subs[n]?.state === 'error'),
    `subscribed to ${channels.join(', ')}`);
  const after = await page.read();
  for (const name of channels) assert.equal(after.subs[name].state, 'subscribed', `${page.label}: ${name}: ${JSON.stringify(after.subs[name])}`);
  return after.socketId;
}

const gotEvent = (s, channel, event) => s.got.filter((g) => g.channel === channel && g.event === event);

/** The raw `data` of the frames carrying `event` on `channel` (what the server sent, untouched). */
function rawData(s, channel, event) {
  return s.frames.map((f) => { try { return JSON.parse(f); } catch { return null; } })
    .filter((f) => f && f.event === event && f.channel === channel)
    .map((f) => f.data);
}

// ---------------------------------------------------------------------------------------------
// The scenario

export async function runPusherScenario({ engine }) {
  const name = `${engine}-pusher`;
  const t0 = now();
  const report = { scenario: name, engine, steps: [] };
  const step = (msg) => { report.steps.push(`${Math.round(now() - t0)} ms: ${msg}`); console.log(`[${name}] ${msg}`); };
  const stops = [];
  const pages = [];
  let browser = null;
  let pageServer = null;
  let cluster = null;
  let failed = true;
  try {
    const redis = await startRedis();
    stops.push(redis.stop);
    pageServer = await startPageServer();
    stops.push(pageServer.close);
    cluster = await startPusherNodes({
      count: 2,
      hooksUrl: `${pageServer.origin}/hooks`,
      args: ['--broker', redis.url, '--allowed-origin', pageServer.origin],
    });
    stops.push(cluster.stop);
    const [a, b] = cluster.nodes;
    step(`redis on ${redis.port}, page server on ${pageServer.port}, nodes A ${a.port} and B ${b.port}: ${a.command}`);
    const api = nodeSdk(a.port);
    browser = await launchBrowser(engine);
    report.browser = browser.version;
    step(`browser up: ${browser.version}`);

    // connect: alice on A, three kinds of channel.
    const alice = await openPage(browser, pageServer, 'alice');
    pages.push(alice);
    const aliceId = await connectAndSubscribe(alice, { wsPort: a.port, user: 'alice', channels: ['news', 'private-room', 'presence-lobby'] });
    let s = await alice.read();
    assert.deepEqual(s.members['presence-lobby'], { me: 'alice', count: 1, list: { alice: { name: 'alice' } } }, 'alice alone in presence-lobby');
    assert.ok(pageServer.auths.some((x) => x.channel === 'private-room' && x.socketId === aliceId), 'pusher-js asked the auth endpoint for private-room');
    step(`alice connected to A as ${aliceId}, subscribed news, private-room, presence-lobby`);

    // presence: bob on A.
    const bob = await openPage(browser, pageServer, 'bob');
    pages.push(bob);
    const bobId = await connectAndSubscribe(bob, { wsPort: a.port, user: 'bob', channels: ['private-room', 'presence-lobby'] });
    s = await bob.read();
    assert.deepEqual(s.members['presence-lobby'], { me: 'bob', count: 2, list: { alice: { name: 'alice' }, bob: { name: 'bob' } } }, 'bob sees alice and himself');
    await alice.until((x) => x.memberEvents.some((m) => m.kind === 'added' && m.id === 'bob'), 'member_added bob');
    s = await alice.read();
    assert.deepEqual(s.memberEvents, [{ channel: 'presence-lobby', kind: 'added', id: 'bob', info: { name: 'bob' } }], 'alice: exactly one member_added, bob with his info');
    assert.equal(s.members['presence-lobby'].count, 2, 'alice counts two members');
    step(`bob connected to A as ${bobId}; both see each other in presence-lobby`);

    // node sdk: trigger and triggerBatch, exact data.
    const headline = { text: 'héllo wörld 中文 😀', n: 42, nested: { list: [1, 2.5, null, true], empty: {} } };
    await withTimeout(api.trigger('news', 'headline', headline), STEP_TIMEOUT_MS, 'Node SDK trigger news');
    await withTimeout(api.trigger(['news', 'private-room'], 'both', { to: 'two channels' }), STEP_TIMEOUT_MS, 'Node SDK trigger to two channels');
    await withTimeout(api.triggerBatch([
      { channel: 'news', name: 'batch-1', data: { i: 1 } },
      { channel: 'private-room', name: 'batch-2', data: 'plain text, not JSON' },
      { channel: 'presence-lobby', name: 'batch-3', data: '"a JSON string"' },
    ]), STEP_TIMEOUT_MS, 'Node SDK triggerBatch');
    s = await alice.until((x) => gotEvent(x, 'presence-lobby', 'batch-3').length && gotEvent(x, 'private-room', 'batch-2').length &&
      gotEvent(x, 'news', 'batch-1').length && gotEvent(x, 'private-room', 'both').length && x, 'the Node SDK events');
    assert.deepEqual(gotEvent(s, 'news', 'headline').map((g) => g.data), [headline], 'headline: the data, once');
    assert.deepEqual(rawData(s, 'news', 'headline'), [JSON.stringify(headline)], 'headline: the frame carries the SDK\'s JSON text byte for byte');
    assert.deepEqual(gotEvent(s, 'news', 'both').map((g) => g.data), [{ to: 'two channels' }], 'both: on news once');
    assert.deepEqual(gotEvent(s, 'private-room', 'both').map((g) => g.data), [{ to: 'two channels' }], 'both: on private-room once');
    assert.deepEqual(gotEvent(s, 'news', 'batch-1').map((g) => g.data), [{ i: 1 }], 'batch-1');
    assert.deepEqual(rawData(s, 'private-room', 'batch-2'), ['plain text, not JSON'], 'batch-2: a string that is not JSON, as it was');
    assert.deepEqual(rawData(s, 'presence-lobby', 'batch-3'), ['"a JSON string"'], 'batch-3: the JSON text of a string, as it was');
    const newsOrder = s.got.filter((g) => g.channel === 'news').map((g) => g.event);
    assert.deepEqual(newsOrder, ['headline', 'both', 'batch-1'], 'news: the events in publishing order');
    step('Node SDK trigger, trigger to two channels and triggerBatch arrived with the exact data');

    // python sdk.
    const fromPython = { lang: 'python', text: 'grüße aus Python', list: [1, 2, 3] };
    const pyOut = await pythonTrigger(a.port, 'news', 'from-python', fromPython);
    s = await alice.until((x) => gotEvent(x, 'news', 'from-python').length && x, 'the Python SDK event');
    assert.deepEqual(gotEvent(s, 'news', 'from-python').map((g) => g.data), [fromPython], 'the Python SDK event\'s data');
    step(`Python SDK trigger arrived (${pyOut})`);

    // one hub: a pushwire publish to the channel's topic reaches pusher-js as event `message`.
    const own = { hello: 'from POST /api/publish', n: [1, 2] };
    const published = await publish(a.port, own, `${APP.id}:news`);
    s = await alice.until((x) => gotEvent(x, 'news', 'message').length && x, 'the pushwire publish, as event message');
    assert.deepEqual(gotEvent(s, 'news', 'message').map((g) => g.data), [own], 'event message: the published value');
    assert.deepEqual(rawData(s, 'news', 'message'), [JSON.stringify(own)], 'event message: data is the JSON text of the published value');
    step(`a pushwire publish to topic ${APP.id}:news (offset ${published.offset}) reached pusher-js as event message`);

    // exclusion by socket_id.
    await withTimeout(api.trigger('private-room', 'not-for-alice', { n: 1 }, { socket_id: aliceId }), STEP_TIMEOUT_MS, 'trigger excluding alice');
    await withTimeout(api.trigger('private-room', 'for-everyone', { n: 2 }), STEP_TIMEOUT_MS, 'trigger after it');
    await bob.until((x) => gotEvent(x, 'private-room', 'for-everyone').length, 'bob: for-everyone');
    s = await bob.read();
    assert.deepEqual(s.got.filter((g) => g.channel === 'private-room').map((g) => g.event).slice(-2), ['not-for-alice', 'for-everyone'], 'bob gets both, in order');
    s = await alice.until((x) => gotEvent(x, 'private-room', 'for-everyone').length && x, 'alice: for-everyone');
    assert.equal(gotEvent(s, 'private-room', 'not-for-alice').length, 0, 'the excluded socket did not get the event');
    step('a trigger with alice\'s socket_id reached bob, not alice');

    // client events, private and presence.
    const typing = { typing: true, who: 'alice ✍' };
    assert.equal(await alice.evaluate((d) => window.h.trigger('private-room', 'client-typing', d), typing), true, 'pusher-js sent client-typing');
    s = await bob.until((x) => gotEvent(x, 'private-room', 'client-typing').length && x, 'bob: client-typing');
    assert.deepEqual(gotEvent(s, 'private-room', 'client-typing').map((g) => g.data), [typing], 'bob: client-typing data');
    assert.equal(await alice.evaluate(() => window.h.trigger('presence-lobby', 'client-wave', { wave: 1 })), true, 'pusher-js sent client-wave');
    s = await bob.until((x) => gotEvent(x, 'presence-lobby', 'client-wave').length && x, 'bob: client-wave');
    const wave = s.wire.filter((w) => w.event === 'client-wave');
    assert.deepEqual(wave, [{ event: 'client-wave', channel: 'presence-lobby', data: { wave: 1 }, user_id: 'alice' }], 'bob: client-wave with user_id alice');
    // A server event after both: once alice has it, an echo of her client events would be there too.
    await withTimeout(api.trigger(['private-room', 'presence-lobby'], 'after-client-events', {}), STEP_TIMEOUT_MS, 'trigger after the client events');
    s = await alice.until((x) => gotEvent(x, 'presence-lobby', 'after-client-events').length && gotEvent(x, 'private-room', 'after-client-events').length && x,
      'alice: after-client-events');
    assert.deepEqual(s.got.filter((g) => g.event.startsWith('client-')), [], 'alice\'s client events were not echoed to her');
    step('client events: bob got client-typing and client-wave (user_id alice), alice got neither back');

    // query: the occupied channels, through the Node SDK.
    const channels = await sdkJson(api.get({ path: '/channels' }), 'GET /channels');
    assert.deepEqual(Object.keys(channels.channels ?? {}).sort(), ['news', 'presence-lobby', 'private-room'], `GET /channels: ${JSON.stringify(channels)}`);
    const presence = await sdkJson(api.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } }), 'GET /channels presence-');
    assert.deepEqual(presence, { channels: { 'presence-lobby': { user_count: 2 } } }, 'GET /channels?filter_by_prefix=presence-&info=user_count');
    step(`channel query: ${JSON.stringify(channels)} ${JSON.stringify(presence)}`);

    // signin, and an event to the user.
    await alice.evaluate(() => window.h.signin());
    s = await alice.until((x) => x.userData && x.userChannel?.subscribed && x, 'signin_success and #server-to-user-alice subscribed');
    assert.deepEqual(s.userData, { id: 'alice', user_info: { name: 'alice' } }, 'the user data pusher-js got back');
    assert.equal(s.userChannel.name, '#server-to-user-alice');
    assert.ok(s.wire.some((w) => w.event === 'pusher:signin_success'), 'pusher:signin_success on the wire');
    await withTimeout(api.sendToUser('alice', 'note', { for: 'alice only' }), STEP_TIMEOUT_MS, 'sendToUser alice');
    s = await alice.until((x) => x.userEvents.length && x, 'the event sent to alice');
    assert.deepEqual(s.userEvents, [{ event: 'note', data: { for: 'alice only' } }], 'sendToUser reached the signed-in user');
    step('pusher.signin() succeeded; sendToUser reached alice');

    // laravel-echo over alice's client.
    await alice.evaluate(() => window.h.startEcho());
    s = await alice.until((x) => Object.values(x.echoSubs).every((v) => v !== 'pending') && x.echoHere && x, 'Echo: subscribed');
    assert.deepEqual(s.echoSubs, { orders: 'subscribed', 'private-orders.1': 'subscribed', 'presence-room.1': 'subscribed' }, 'Echo\'s channels');
    assert.deepEqual(s.echoHere, [{ name: 'alice' }], 'Echo here(): alice');
    await withTimeout(api.trigger('orders', 'App\\Events\\OrderShipped', { order: { id: 1, total: '9.99' } }), STEP_TIMEOUT_MS, 'trigger OrderShipped');
    await withTimeout(api.trigger('private-orders.1', 'status.changed', { status: 'shipped' }), STEP_TIMEOUT_MS, 'trigger status.changed');
    await withTimeout(api.trigger('presence-room.1', 'hello', { hi: 'room' }), STEP_TIMEOUT_MS, 'trigger hello');
    s = await alice.until((x) => x.echo.length >= 3 && x, 'Echo: three events');
    assert.deepEqual(s.echo.sort((x, y) => x.via.localeCompare(y.via)), [
      { via: 'presence', e: { hi: 'room' } },
      { via: 'private', e: { status: 'shipped' } },
      { via: 'public', e: { order: { id: 1, total: '9.99' } } },
    ], 'Echo listeners got the events');
    step('laravel-echo (browser build) over pusher-js: public, private and presence channels receive');

    // two nodes: carol on B.
    const carol = await openPage(browser, pageServer, 'carol');
    pages.push(carol);
    const carolId = await connectAndSubscribe(carol, { wsPort: b.port, user: 'carol', channels: ['presence-lobby'] });
    s = await carol.read();
    assert.deepEqual(s.members['presence-lobby'], {
      me: 'carol', count: 3, list: { alice: { name: 'alice' }, bob: { name: 'bob' }, carol: { name: 'carol' } },
    }, 'carol on B sees alice and bob, who are on A');
    await alice.until((x) => x.memberEvents.some((m) => m.kind === 'added' && m.id === 'carol'), 'alice: member_added carol (from B)');
    await bob.until((x) => x.memberEvents.some((m) => m.kind === 'added' && m.id === 'carol'), 'bob: member_added carol (from B)');
    await withTimeout(api.trigger('presence-lobby', 'across', { from: 'A' }), STEP_TIMEOUT_MS, 'trigger on A for carol');
    s = await carol.until((x) => gotEvent(x, 'presence-lobby', 'across').length && x, 'carol: the event published on A');
    assert.deepEqual(gotEvent(s, 'presence-lobby', 'across').map((g) => g.data), [{ from: 'A' }]);
    step(`carol on B as ${carolId}: sees alice and bob; they see her; an event published on A reached her`);

    // leave.
    await withTimeout(bob.page.close(), PROTOCOL_TIMEOUT_MS, 'close bob\'s page');
    pages.splice(pages.indexOf(bob), 1);
    await alice.until((x) => x.memberEvents.some((m) => m.kind === 'removed' && m.id === 'bob'), 'alice: member_removed bob');
    s = await carol.until((x) => x.memberEvents.some((m) => m.kind === 'removed' && m.id === 'bob') && x, 'carol (B): member_removed bob');
    assert.deepEqual(s.members['presence-lobby'], { me: 'carol', count: 2, list: { alice: { name: 'alice' }, carol: { name: 'carol' } } }, 'carol: alice and herself left');
    step('bob closed: alice (A) and carol (B) saw him removed');
    await saveScreenshot({ screenshot: (file) => alice.page.screenshot({ path: file }) }, name);
    await withTimeout(carol.page.close(), PROTOCOL_TIMEOUT_MS, 'close carol\'s page');
    pages.splice(pages.indexOf(carol), 1);
    await alice.until((x) => x.memberEvents.some((m) => m.kind === 'removed' && m.id === 'carol'), 'alice: member_removed carol');
    await alice.evaluate(() => window.h.pusher.disconnect());
    step('carol closed, alice disconnected');

    // webhooks.
    const has = (want) => pageServer.hooks.some((h) => Object.entries(want).every(([k, v]) => h[k] === v));
    const wanted = [
      ...['news', 'private-room', 'presence-lobby'].map((channel) => ({ name: 'channel_occupied', channel })),
      ...['bob', 'carol'].map((user_id) => ({ name: 'member_added', channel: 'presence-lobby', user_id })),
      { name: 'client_event', channel: 'private-room', event: 'client-typing', data: JSON.stringify(typing), socket_id: aliceId },
      { name: 'client_event', channel: 'presence-lobby', event: 'client-wave', data: JSON.stringify({ wave: 1 }), socket_id: aliceId, user_id: 'alice' },
      ...['bob', 'carol'].map((user_id) => ({ name: 'member_removed', channel: 'presence-lobby', user_id })),
      ...['news', 'private-room', 'presence-lobby'].map((channel) => ({ name: 'channel_vacated', channel })),
    ];
    await waitFor(() => pageServer.badHooks.length || wanted.every(has), {
      timeout: HOOK_TIMEOUT_MS, interval: 100, what: 'the webhooks',
      describe: () => `missing ${JSON.stringify(wanted.filter((w) => !has(w)))}; got ${JSON.stringify(pageServer.hooks)}`,
    });
    assert.deepEqual(pageServer.badHooks, [], 'every webhook has X-Pusher-Key app-key and a signature the Node SDK accepts');
    for (const channel of ['news', 'private-room', 'presence-lobby']) {
      const kinds = pageServer.hooks.filter((h) => h.channel === channel && /^channel_/.test(h.name)).map((h) => h.name);
      assert.deepEqual(kinds, ['channel_occupied', 'channel_vacated'], `${channel}: occupied once, then vacated once`);
    }
    step(`webhooks: ${pageServer.hooks.length} events, all signed; occupied, member_added, client_event, member_removed, vacated`);
    report.hooks = pageServer.hooks;
    assert.deepEqual(pageServer.errors, [], 'the page server had no errors');
    failed = false;
  } catch (err) {
    const extra = pages.map((p) => `${p.label}: ${p.brief()}`);
    if (pageServer) extra.push(`webhooks: ${JSON.stringify(pageServer.hooks)}; refused: ${JSON.stringify(pageServer.badHooks)}; page server errors: ${JSON.stringify(pageServer.errors)}`);
    for (const n of cluster?.nodes ?? []) extra.push(`node ${n.port} output:\n${n.output()}`);
    err.message += `\n${extra.join('\n')}`;
    if (pages[0]) await saveFailureScreenshot({ screenshot: (file) => pages[0].page.screenshot({ path: file }) }, name);
    throw err;
  } finally {
    report.ok = !failed;
    report.pages = pages.map((p) => ({ label: p.label, last: p.last() && { ...p.last(), frames: undefined } }));
    if (browser) await withTimeout(browser.close(), 20000, 'browser close').catch((e) => console.log(`[${name}] close: ${e.message}`));
    for (const stop of stops.reverse()) await stop().catch(() => {});
    report.total = `${Math.round(now() - t0)} ms`;
    await writeReport(name, report);
    console.log(`[${name}] done in ${report.total}`);
  }
}
