// Back to WebSocket: pushwire.js falls back to SSE or long-polling when WebSocket is refused, keeps
// probing WebSocket, and switches back when it works, with no gap and no duplicate.
//
//   real     the page is loaded through lib/upgrade-proxy.mjs in front of the real pushwire,
//            which refuses WebSocket upgrades at first: the page opens over the fallback; messages
//            are published steadily straight to the server; after probes were refused, the proxy
//            allows upgrades, holding the server's side of the next WebSocket until the page has
//            received 3 more messages over the fallback after the probe's `sub` (so they come
//            twice); the page must end on WebSocket (the 'transport' event says
//            sse -> websocket, or poll -> websocket), with every message exactly once, in order,
//            the fallback's requests closed, and no 'lost' event. Runs with any engine adapter
//            (lib/engines.mjs): Chromium, Firefox and WebKit.
//   scripted the same switch against a scripted server (fake WebSocket and EventSource in the
//            page) that sends messages on both transports during the switch, in a fixed order:
//            each is delivered once, the probe resubscribes with `since` = the last delivered
//            position, the probe backoff stays within its bounds, and the old transport is closed.
//
// Each run starts its own pushwire (--static-dir with the test page), proxy and browser, and
// stops them whatever happens; every wait is bounded.

import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { launcherFor } from './engines.mjs';
import { clearArtifacts, saveFailureScreenshot, saveScreenshot, writeReport } from './artifacts.mjs';
import { makeTempDir, now, removeDir, sleep, waitFor, withTimeout } from './server.mjs';
import { publish, startPushwire } from './topics.mjs';
import { startUpgradeProxy } from './upgrade-proxy.mjs';

const TOPIC = 'feed:steady';
const OPEN_TIMEOUT_MS = 20000; // page load -> open over the fallback and subscribed
const SWITCH_TIMEOUT_MS = 30000; // upgrades allowed -> on WebSocket (probes back off to 1.6 s here)
const DELIVERY_TIMEOUT_MS = 20000;
const PUBLISH_EVERY_MS = 25;
const MAX_MESSAGES = 3000; // bounds the publisher whatever happens
const AFTER_SWITCH = 20; // messages published after the page is on WebSocket
const OVERLAP = 3; // messages delivered over the fallback after the probe subscribed

// The test page (served with --static-dir). With ?topic=… it connects through pushwire.js with
// `transports: ['websocket', <fallback>]` and short probe delays, and keeps what happens in
// window.e2e; without it, it only loads pushwire.js (for the scripted run).
const PAGE = `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>back to websocket</title>
<p id="status">loading…</p>
<ol id="messages"></ol>
<script src="/pushwire.js"></script>
<script>
  const q = new URLSearchParams(location.search);
  if (q.get('topic')) {
    const t = window.e2e = { got: [], transports: [], probes: [], states: [], lost: [], recovered: [], errors: [], replayed: 0 };
    const status = document.getElementById('status');
    // For the report only: count messages that reached the page over WebSocket after the
    // fallback had delivered them (the client drops those). This listener runs before the client's.
    const NativeWebSocket = window.WebSocket;
    window.WebSocket = function (url, protocols) {
      const ws = new NativeWebSocket(url, protocols);
      ws.addEventListener('message', (event) => {
        let m = null;
        try { m = JSON.parse(event.data); } catch { return; }
        if (m && typeof m.offset === 'number' && t.got.some((g) => g[1] === m.offset)) t.replayed += 1;
      });
      return ws;
    };
    const client = t.client = pushwire.connect(location.origin, {
      transports: ['websocket', q.get('fallback')],
      minDelay: 100,
      maxDelay: 1000,
      openTimeout: 30000, // also bounds a switch: longer than the test holds the WebSocket back
      probeMinDelay: Number(q.get('probeMin')),
      probeMaxDelay: Number(q.get('probeMax')),
    });
    client.on('state', (s) => { t.states.push(s.state + '/' + s.transport); status.textContent = s.state + ' over ' + s.transport; });
    client.on('transport', (e) => t.transports.push(e.previous + '->' + e.transport));
    client.on('probe', (p) => t.probes.push(p));
    client.on('lost', (e) => t.lost.push(e));
    client.on('recovered', (e) => t.recovered.push(e));
    client.on('error', (e) => t.errors.push(e.code + ' ' + e.message));
    t.sub = client.subscribe(q.get('topic'), (m) => {
      t.got.push([m.epoch, m.offset, m.data && m.data.n]);
      const li = document.createElement('li');
      li.textContent = m.offset + ' ' + JSON.stringify(m.data) + ' (' + client.transport + ')';
      document.getElementById('messages').append(li);
    });
  } else {
    document.getElementById('status').textContent = 'pushwire.js loaded';
  }
</script>
</html>
`;

/** Read in the page: what the client did. */
const READ = `() => {
  const t = window.e2e;
  if (!t) return null;
  return {
    state: t.client.state, transport: t.client.transport, position: t.sub.position,
    got: t.got, transports: t.transports, probes: t.probes, states: t.states.slice(-20),
    lost: t.lost, recovered: t.recovered, errors: t.errors, replayed: t.replayed,
  };
}`;

const brief = (s) => (s ? JSON.stringify({ ...s, got: `${s.got.length} messages, last ${JSON.stringify(s.got.at(-1))}`, probes: s.probes.slice(-5) }) : 'nothing read yet');

async function withSetup(name, engine, body) {
  const log = (msg) => console.log(`[${name}] ${msg}`);
  const t0 = now();
  const report = { scenario: name, engine, steps: [] };
  const step = (msg) => { report.steps.push(`${Math.round(now() - t0)} ms: ${msg}`); log(msg); };
  const site = await makeTempDir('back-to-websocket');
  await fsp.writeFile(path.join(site, 'back.html'), PAGE);
  await clearArtifacts(name);
  let server = null;
  let proxy = null;
  let browser = null;
  let failed = true;
  try {
    server = await startPushwire({ args: ['--static-dir', site] });
    step(`server up: ${server.command}`);
    proxy = await startUpgradeProxy(server.port);
    step(`proxy on 127.0.0.1:${proxy.port}, refusing WebSocket upgrades`);
    browser = await launcherFor(engine)();
    report.browser = browser.version;
    step(`browser up: ${browser.version}`);
    await body({ server, proxy, browser, step, report });
    await saveScreenshot(browser, name);
    failed = false;
  } catch (err) {
    if (server) err.message += `\nserver output:\n${server.output()}`;
    if (proxy) err.message += `\nproxy: ${JSON.stringify(proxy.stats())}`;
    if (browser) await saveFailureScreenshot(browser, name);
    throw err;
  } finally {
    report.ok = !failed;
    if (proxy) report.proxy = proxy.stats();
    await Promise.allSettled([
      browser ? withTimeout(browser.close(), 30000, 'browser close').catch((e) => log(`close: ${e.message}`)) : null,
      proxy ? proxy.close() : null,
      server ? server.stop() : null,
    ]);
    await removeDir(site);
    report.total = `${Math.round(now() - t0)} ms`;
    await writeReport(name, report);
    log(`done in ${report.total}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Real: through the proxy, against the real server

export function runBackToWebSocketScenario({ engine, fallback }) {
  assert.ok(fallback === 'sse' || fallback === 'poll');
  const name = `${engine}-back-to-websocket-${fallback}`;
  return withSetup(name, engine, async ({ server, proxy, browser, step, report }) => {
    let last = null;
    const read = async () => { last = await withTimeout(browser.evaluate(READ), 15000, 'read the page'); return last; };
    const until = (check, what, timeout = DELIVERY_TIMEOUT_MS) =>
      waitFor(async () => { const s = await read(); return s && check(s); }, { timeout, interval: 100, what, describe: () => brief(last) });

    const url = `http://127.0.0.1:${proxy.port}/static/back.html?topic=${TOPIC}&fallback=${fallback}&probeMin=200&probeMax=1600`;
    await withTimeout(browser.open(url), 30000, `open ${url}`);
    await until((s) => s.state === 'open' && s.transport === fallback && s.position !== null,
      `open over ${fallback} and subscribed`, OPEN_TIMEOUT_MS);
    assert.ok(proxy.stats().upgradesRefused >= 1, 'the first WebSocket was refused by the proxy');
    assert.deepEqual(last.transports, [`null->${fallback}`], `the page opened over ${fallback}`);
    step(`page open over ${fallback}; proxy ${JSON.stringify(proxy.stats())}`);

    // A steady publisher, straight to the server, until told to stop (bounded in count).
    const published = [];
    let stop = false;
    const publisher = (async () => {
      while (!stop && published.length < MAX_MESSAGES) {
        published.push(await publish(server.port, { n: published.length + 1 }, TOPIC));
        await sleep(PUBLISH_EVERY_MS);
      }
    })();
    try {
      // While on the fallback: messages arrive, and probes are refused (the first WebSocket, then two probes).
      await until((s) => s.got.length >= 5 && proxy.stats().upgradesRefused >= 3 && s.probes.length >= 3,
        `messages over ${fallback} and two refused probes`);
      assert.equal(last.transport, fallback, `still on ${fallback} while upgrades are refused`);
      step(`on ${fallback}: ${last.got.length} messages, ${proxy.stats().upgradesRefused} upgrades refused, probes ${JSON.stringify(last.probes.map((p) => p.retryIn))}`);

      // The next WebSocket opens, but what the server sends on it is held back until the page has
      // received 3 more messages over the fallback after the probe sent its `sub`: those come
      // again over the WebSocket (recovered from the `since` sent), so the switch overlaps.
      proxy.allowUpgrades({ hold: true });
      const allowedAt = published.length;
      step(`upgrades allowed after ${allowedAt} messages were published; the server's side of the next one is held`);
      await waitFor(() => proxy.held()?.clientBytes > 0, {
        timeout: SWITCH_TIMEOUT_MS, interval: 20, what: 'a probe through the proxy to send its sub', describe: () => JSON.stringify(proxy.stats()),
      });
      const sentAt = (await read()).got.length;
      await until((s) => s.got.length >= sentAt + OVERLAP, `${OVERLAP} more messages over ${fallback} while the WebSocket's answers are held`);
      assert.equal(last.transport, fallback, `on ${fallback} until the WebSocket has answered`);
      proxy.release();
      step(`released the WebSocket after ${last.got.length - sentAt} more messages over ${fallback}; ${JSON.stringify(proxy.held())}`);
      await until((s) => s.transport === 'websocket', 'the page to switch to WebSocket', SWITCH_TIMEOUT_MS);
      const switchedAt = published.length;
      step(`on websocket; ${switchedAt - allowedAt} messages were published between the allow and the switch`);
      await waitFor(() => published.length >= switchedAt + AFTER_SWITCH, {
        timeout: DELIVERY_TIMEOUT_MS, interval: 50, what: `${AFTER_SWITCH} more messages published`,
      });
    } finally {
      stop = true;
      await withTimeout(publisher, 10000, 'the publisher to stop');
    }
    const total = published.length;
    assert.deepEqual(published.map((p) => p.offset), Array.from({ length: total }, (_, i) => i + 1), 'the server numbered them 1..N');
    await until((s) => s.got.length >= total, `all ${total} messages shown`);
    // The fallback is closed: no event stream or poll stays open, and no new one starts.
    await waitFor(() => !proxy.stats().inFlight[`/${fallback}`], {
      timeout: DELIVERY_TIMEOUT_MS, interval: 50, what: `the ${fallback} request to close`, describe: () => JSON.stringify(proxy.stats()),
    });
    const fallbackRequests = proxy.stats().requests[`/${fallback}`];
    await sleep(1000); // a late duplicate, or a fallback request, would show now
    const s = await read();
    const epoch = published[0].epoch;
    assert.deepEqual(s.got, published.map((p, i) => [epoch, i + 1, i + 1]), 'every message exactly once, in order, each with its own data');
    assert.equal(s.transport, 'websocket', 'ends on WebSocket');
    assert.equal(s.state, 'open');
    assert.deepEqual(s.transports, [`null->${fallback}`, `${fallback}->websocket`], 'the transport event: fallback, then back to WebSocket');
    assert.deepEqual(s.lost, [], 'nothing reported lost');
    assert.deepEqual(s.errors, [], 'no error');
    const stats = proxy.stats();
    assert.ok(stats.upgradesRelayed >= 1 && stats.tunnels >= 1, `a WebSocket goes through the proxy: ${JSON.stringify(stats)}`);
    assert.equal(stats.requests[`/${fallback}`], fallbackRequests, `no ${fallback} request after the switch`);
    assert.ok(!stats.inFlight[`/${fallback}`], `no ${fallback} request open: ${JSON.stringify(stats)}`);
    assert.ok(s.replayed >= OVERLAP, `the ${OVERLAP}+ messages delivered over ${fallback} after the probe's sub came again over the WebSocket (and were dropped): ${s.replayed}`);
    report.published = total;
    report.replayed = s.replayed;
    step(`${total} messages, each once and in order; ends on websocket; ${s.replayed} of them came over the WebSocket after the ${fallback} had delivered them; proxy ${JSON.stringify(stats)}`);
  });
}

// ---------------------------------------------------------------------------------------------
// Scripted: a fake WebSocket and EventSource in the page, messages on both during the switch

/**
 * Runs in the page (with /pushwire.js loaded): two topics, `t` (epoch E) and `u` (epoch F). The
 * first WebSocket and the first probe are refused, the client runs on the fake SSE; the second
 * probe opens, and while its answers come the SSE and the WebSocket both send messages, some the
 * same. Resolves to what was delivered and emitted, and what each fake saw.
 */
async function scriptedSwitch() {
  const sockets = [];
  const sources = [];
  const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const until = async (check, what) => {
    const end = Date.now() + 5000;
    while (!check()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await pause(5);
    }
  };
  class FakeSocket {
    constructor(url) { this.url = url; this.readyState = 0; this.sent = []; this.closedByClient = false; sockets.push(this); }
    accept() { this.readyState = 1; this.onopen?.({}); this.push({ hello: { client: `ws${sockets.indexOf(this)}`, version: 1 } }); }
    refuse() { this.readyState = 3; this.onerror?.({}); this.onclose?.({ code: 1006, reason: '' }); }
    push(obj) { if (this.readyState === 1) this.onmessage?.({ data: JSON.stringify(obj) }); }
    send(text) { this.sent.push(JSON.parse(text)); }
    close() { this.readyState = 3; this.closedByClient = true; }
  }
  class FakeEventSource {
    constructor(url) { this.url = url; this.listeners = {}; this.closedByClient = false; sources.push(this); }
    addEventListener(name, fn) { this.listeners[name] = fn; }
    close() { this.closedByClient = true; }
    open() { this.onopen?.({}); }
    // Also after close(): the client must ignore a stream it closed.
    emit(name, data) { (name === 'message' ? this.onmessage : this.listeners[name])?.({ data: JSON.stringify(data) }); }
  }
  window.WebSocket = FakeSocket;
  window.EventSource = FakeEventSource;
  const msg = (topic, epoch, offset) => ({ topic, epoch, offset, data: `${topic}${offset}` });
  const t = (o) => msg('t', 'E', o);
  const u = (o) => msg('u', 'F', o);

  const delivered = [];
  const events = [];
  const client = window.pushwire.connect(location.origin, { minDelay: 20, maxDelay: 50, probeMinDelay: 40, probeMaxDelay: 100 });
  for (const name of ['transport', 'probe', 'recovered', 'lost', 'error']) {
    client.on(name, (e) => events.push([name, name === 'error' ? String(e) : e]));
  }
  const take = (m) => delivered.push(m.data);
  const subs = [client.subscribe('t', take), client.subscribe('u', take)];

  await until(() => sockets.length === 1, 'the first WebSocket');
  sockets[0].refuse();
  await until(() => sources.length === 1, 'the fallback to SSE');
  const sse = sources[0];
  sse.open();
  sse.emit('subscribed', { subs: [{ topic: 't', epoch: 'E', offset: 0 }, { topic: 'u', epoch: 'F', offset: 0 }] });
  for (const m of [t(1), t(2), u(1), t(3)]) sse.emit('message', m);
  const onSse = { transport: client.transport, delivered: delivered.length };

  await until(() => sockets.length === 2, 'the first probe');
  sockets[1].refuse();
  await until(() => sockets.length === 3, 'the second probe');
  const ws = sockets[2];
  ws.accept();
  await until(() => ws.sent.filter((q) => q.op === 'sub').length === 2, 'the probe to resubscribe both topics');
  const [subT, subU] = ws.sent.filter((q) => q.op === 'sub');
  for (const m of [t(4), t(5)]) sse.emit('message', m); // before any answer on the WebSocket
  ws.push({ id: subT.id, ok: { topic: 't', epoch: 'E', offset: 5, recovered: true } });
  for (const m of [t(4), t(5), t(6)]) ws.push(m); // recovery replays 4, 5 (already delivered), then 6
  for (const m of [t(6), t(7), u(2)]) sse.emit('message', m); // 6 again, then new ones on the fallback
  ws.push(t(7)); // 7 again
  const duringSwitch = { transport: client.transport, sseClosed: sse.closedByClient };
  ws.push({ id: subU.id, ok: { topic: 'u', epoch: 'F', offset: 2, recovered: true } });
  const afterSwitch = { transport: client.transport, sseClosed: sse.closedByClient, id: client.id, state: client.state };
  sse.emit('message', t(8)); // on the closed stream: ignored
  for (const m of [u(2), t(8), u(3), t(9)]) ws.push(m);
  await pause(200); // a late probe or delivery would show now
  const positions = { t: subs[0].position, u: subs[1].position };
  const socketsAfterSwitch = sockets.length;

  // The WebSocket drops; WebSocket is tried first again, refused, and the client falls back to
  // SSE from its positions. The probes start over; a subscribe() during a switch puts it off.
  ws.refuse();
  await until(() => sockets.length === 4, 'a reconnect over WebSocket first');
  sockets[3].refuse();
  await until(() => sources.length === 2, 'the fallback to SSE again');
  const sse2 = sources[1];
  sse2.open();
  sse2.emit('subscribed', { subs: [{ topic: 't', epoch: 'E', offset: 9, recovered: true }, { topic: 'u', epoch: 'F', offset: 3, recovered: true }] });
  sse2.emit('message', t(10));
  await until(() => sockets.length === 5, 'a probe after falling back again');
  const ws4 = sockets[4];
  ws4.accept();
  await until(() => ws4.sent.filter((q) => q.op === 'sub').length === 2, 'that probe to resubscribe');
  subs.push(client.subscribe('v', take)); // during the switch
  await until(() => sources.length === 3, 'the stream to reopen with the new topic');
  const sse3 = sources[2];
  const interrupted = { probeClosed: ws4.closedByClient, sse2Closed: sse2.closedByClient, transport: client.transport };
  sse3.open();
  sse3.emit('subscribed', { subs: [
    { topic: 't', epoch: 'E', offset: 10, recovered: true }, { topic: 'u', epoch: 'F', offset: 3, recovered: true }, { topic: 'v', epoch: 'G', offset: 0 },
  ] });
  await until(() => sockets.length === 6, 'the next probe');
  const ws5 = sockets[5];
  ws5.accept();
  await until(() => ws5.sent.filter((q) => q.op === 'sub').length === 3, 'the last probe to resubscribe three topics');
  const again = ws5.sent.filter((q) => q.op === 'sub');
  for (const q of again) {
    const at = { t: 10, u: 3, v: 0 }[q.topic];
    ws5.push({ id: q.id, ok: { topic: q.topic, epoch: q.since.epoch, offset: at, recovered: true } });
  }
  ws5.push(msg('v', 'G', 1));
  await pause(100);
  const end = { transport: client.transport, sse3Closed: sse3.closedByClient, sockets: sockets.length };
  client.close();

  // `probe: false` keeps a client on its fallback.
  const before = sockets.length;
  const quiet = window.pushwire.connect(location.origin, { probe: false, probeMinDelay: 10, probeMaxDelay: 20 });
  const quietProbes = [];
  quiet.on('probe', (e) => quietProbes.push(e));
  quiet.subscribe('t', () => {});
  await until(() => sockets.length === before + 1, 'the quiet client to try WebSocket');
  sockets[before].refuse();
  await until(() => sources.length === 4, 'the quiet client to fall back');
  sources[3].open();
  sources[3].emit('subscribed', { subs: [{ topic: 't', epoch: 'E', offset: 0 }] });
  await pause(300); // probes 10 to 20 ms apart would have come by now
  const quietEnd = { transport: quiet.transport, sockets: sockets.length - before, probes: quietProbes.length };
  quiet.close();
  return {
    quietEnd,
    socketsAfterSwitch,
    secondSse: sources[1].url,
    interrupted,
    secondSince: again.map((q) => ({ topic: q.topic, since: q.since })),
    end,
    delivered,
    events,
    onSse,
    duringSwitch,
    afterSwitch,
    sseUrl: sse.url,
    since: [subT.since, subU.since],
    sockets: sockets.length,
    positions,
  };
}

export function runScriptedSwitchScenario({ engine }) {
  const name = `${engine}-back-to-websocket-scripted`;
  return withSetup(name, engine, async ({ server, browser, step }) => {
    await withTimeout(browser.open(`${server.url}static/back.html`), 30000, 'open the test page');
    const r = await withTimeout(browser.evaluate(scriptedSwitch.toString()), 20000, 'the scripted switch');
    step(`delivered ${JSON.stringify(r.delivered)}; events ${JSON.stringify(r.events)}`);
    assert.deepEqual(r.onSse, { transport: 'sse', delivered: 4 }, 'fell back to SSE and delivered from it');
    assert.match(r.sseUrl, /\/sse\?topic=t&topic=u$/, 'the first stream has no since');
    assert.deepEqual(r.since, [{ epoch: 'E', offset: 3 }, { epoch: 'F', offset: 1 }], 'the probe resubscribes from the last delivered positions');
    assert.deepEqual(r.duringSwitch, { transport: 'sse', sseClosed: false }, 'the fallback stays until every topic is answered');
    assert.deepEqual(r.afterSwitch, { transport: 'websocket', sseClosed: true, id: 'ws2', state: 'open' }, 'then the WebSocket takes over and the stream is closed');
    assert.deepEqual(r.delivered.slice(0, 12), ['t1', 't2', 'u1', 't3', 't4', 't5', 't6', 't7', 'u2', 't8', 'u3', 't9'],
      'each message once, in order, whichever transport brought it first');
    assert.deepEqual(r.positions, { t: { epoch: 'E', offset: 9 }, u: { epoch: 'F', offset: 3 } });
    assert.equal(r.socketsAfterSwitch, 3, 'no probe after the switch');
    const probes = r.events.filter(([n]) => n === 'probe').map(([, e]) => e).slice(0, 2);
    // Backoff with equal jitter: the n-th waits in [c/2, c], c = min(probeMaxDelay, probeMinDelay * 2^(n-1)).
    probes.forEach((p, i) => {
      const c = Math.min(100, 40 * 2 ** i);
      assert.equal(p.attempt, i + 1);
      assert.ok(p.retryIn >= c / 2 && p.retryIn <= c, `probe ${i + 1} waits ${p.retryIn} ms, within [${c / 2}, ${c}]`);
    });
    assert.equal(probes[0].reason, undefined, 'the first probe has no previous failure');
    assert.match(probes[1].reason, /WebSocket closed \(1006\)/, 'the second says why the first failed');
    assert.deepEqual(r.events.filter(([n]) => n !== 'probe'), [
      ['transport', { transport: 'sse', previous: null }],
      ['transport', { transport: 'websocket', previous: 'sse' }],
      ['transport', { transport: 'sse', previous: 'websocket' }],
      ['recovered', { topic: 't', epoch: 'E', offset: 9, since: { epoch: 'E', offset: 9 } }],
      ['recovered', { topic: 'u', epoch: 'F', offset: 3, since: { epoch: 'F', offset: 3 } }],
      ['transport', { transport: 'websocket', previous: 'sse' }],
    ], 'the transport events, a recovery after the drop, and no lost or error');
    step('scripted switch: each message once, in order; fallback closed after every topic was answered');

    // Falling back again, and a subscription made during a switch.
    assert.match(r.secondSse, /\/sse\?topic=t&topic=u&since=t%40E%3A9%2Cu%40F%3A3$/, 'the second stream resumes from the positions delivered');
    assert.deepEqual(r.interrupted, { probeClosed: true, sse2Closed: true, transport: 'sse' }, 'subscribe() during a switch closes the probe; the stream reopens with the topic');
    const later = r.events.filter(([n]) => n === 'probe').map(([, e]) => e).slice(2);
    assert.deepEqual(later.map((p) => [p.attempt, p.reason]), [[1, undefined], [1, 'the subscriptions changed']],
      'after a fallback the probes start over; a put-off probe is not a failure');
    assert.deepEqual(r.secondSince, [
      { topic: 't', since: { epoch: 'E', offset: 10 } }, { topic: 'u', since: { epoch: 'F', offset: 3 } }, { topic: 'v', since: { epoch: 'G', offset: 0 } },
    ], 'the next probe resubscribes all three, the new one from its first position');
    assert.deepEqual(r.end, { transport: 'websocket', sse3Closed: true, sockets: 6 }, 'and takes over');
    assert.deepEqual(r.delivered.slice(12), ['t10', 'v1'], 'nothing twice after the drop either');
    assert.deepEqual(r.quietEnd, { transport: 'sse', sockets: 1, probes: 0 }, 'probe: false stays on the fallback');
  });
}
