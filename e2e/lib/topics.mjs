// Topic scenarios: the chat page (/chat) and pushwire.js in real browsers, against the real
// pushwire binary. Each scenario starts its own pushwire on a free port and its own browser, and
// stops both (process groups) whatever happens; every wait is bounded.
//
//   chat        two pages chat through /chat: each sees the other's messages (same offsets, same
//               order on both) and the other in presence; closing one shows its leave on the other
//   fallback    WebSocket removed from the page (and EventSource too, for long-poll): the page
//               says it uses SSE (or long-poll) and a second page (WebSocket) sees it in presence;
//               messages published with POST /api/publish arrive, and so does one sent from the
//               page (which then POSTs); when it closes, the second page sees it leave
//   reconnect   the page talks to the server through a TCP relay in this process; the relay is cut
//               (every socket destroyed, new ones reset) for ~3 s while 20 messages are published
//               straight to the server, partly before, during and right after the cut; the page
//               must end with exactly offsets 1..20, in order, each once, and report a recovery
//
// Chromium and Firefox are driven with puppeteer-core directly (two pages and
// evaluateOnNewDocument are needed, which the one-page adapters of lib/engines.mjs do not offer);
// WebKit through WebKitWebDriver, with pages that offer the part of puppeteer's Page used here
// (lib/webkit-pages.mjs).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import { CHROMIUM_ARGS } from './puppeteer.mjs';
import { launchWebKitPages } from './webkit-pages.mjs';
import { saveFailureScreenshot, saveScreenshot, writeReport } from './artifacts.mjs';
import {
  freePort, httpStatus, makeTempDir, now, pushwireBinary, removeDir, requireExecutable, sleep, spawnGroup,
  stopGroup, trackGroup, untrackGroup, waitFor, withTimeout,
} from './server.mjs';

export const TOPIC = 'chat:lobby';
const LAUNCH_TIMEOUT_MS = 30000;
const PROTOCOL_TIMEOUT_MS = 15000;
const OPEN_TIMEOUT_MS = 15000; // page load -> connected and subscribed
const DELIVERY_TIMEOUT_MS = 10000; // a publish -> shown in the page(s)
const RECOVERY_TIMEOUT_MS = 30000; // relay back -> every message shown (backoff is at most 10 s)
const CUT_MS = 3000; // how long the relay refuses everything

// ---------------------------------------------------------------------------------------------
// pushwire

/**
 * Start `pushwire --bind 127.0.0.1 --port <port, else a free one> ...args` and wait until it
 * serves /pushwire.js (at most 15 s). Returns { port, url, command, child, output(), stop() }.
 */
export async function startPushwire({ args = [], readyTimeout = 15000, port: wanted } = {}) {
  const port = wanted ?? await freePort();
  const bin = pushwireBinary();
  const argv = ['--bind', '127.0.0.1', '--port', String(port), ...args];
  // No drain delay unless `args` asks for one (flags win over PUSHWIRE_*): a stop is a stop here.
  const child = await spawnGroup(bin, argv, { env: { ...process.env, RUST_BACKTRACE: '1', NO_COLOR: '1', PUSHWIRE_DRAIN_DELAY: '0s' } });
  const server = {
    port,
    url: `http://127.0.0.1:${port}/`,
    command: `${bin} ${argv.join(' ')}`,
    child,
    output: () => child.outputTail(),
    stop: () => stopGroup(child, { signal: 'SIGTERM', graceMs: 3000 }),
  };
  const probe = `${server.url}pushwire.js`;
  try {
    let status = null;
    await waitFor(async () => {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`pushwire exited early (code ${child.exitCode}, signal ${child.signalCode})\n${child.outputTail()}`);
      }
      try { status = await httpStatus(probe, 1000); } catch { return false; }
      if (status === 404) throw new Error(`GET ${probe} answers 404: is ${bin} a build with the topic server?`);
      return status === 200;
    }, { timeout: readyTimeout, interval: 100, what: `pushwire to serve ${probe}`, describe: () => `status ${status}\n${child.outputTail()}` });
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

/** POST /api/publish/{topic} with a JSON body, straight to the server; returns {topic, epoch, offset}. */
export async function publish(port, data, topic = TOPIC) {
  const res = await fetch(`http://127.0.0.1:${port}/api/publish/${topic}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(data),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  assert.equal(res.status, 200, `POST /api/publish/${topic} answered ${res.status}: ${text}`);
  const body = JSON.parse(text);
  assert.equal(body.topic, topic, `publish answer names the topic: ${text}`);
  assert.ok(Number.isInteger(body.offset) && typeof body.epoch === 'string', `publish answer has a position: ${text}`);
  return body;
}

// ---------------------------------------------------------------------------------------------
// A TCP relay that can be cut

/**
 * A relay on a free 127.0.0.1 port to 127.0.0.1:`targetPort`. `cut()` destroys every relayed
 * connection and resets new ones until `restore()`. `stats()` counts connections relayed and refused.
 */
export async function startRelay(targetPort) {
  const sockets = new Set();
  const stats = { relayed: 0, refused: 0, cuts: 0 };
  let open = true;
  const server = net.createServer((client) => {
    if (!open) {
      stats.refused += 1;
      client.on('error', () => {});
      client.resetAndDestroy();
      return;
    }
    stats.relayed += 1;
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => { client.destroy(); upstream.destroy(); });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await withTimeout(once(server, 'listening'), 5000, 'relay to listen');
  return {
    port: server.address().port,
    stats: () => ({ ...stats, open: sockets.size }),
    cut() {
      open = false;
      stats.cuts += 1;
      for (const s of sockets) s.resetAndDestroy?.() ?? s.destroy();
    },
    restore() { open = true; },
    async close() {
      open = false;
      for (const s of sockets) s.destroy();
      await withTimeout(new Promise((resolve) => server.close(() => resolve())), 5000, 'relay close').catch(() => {});
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Browsers (puppeteer-core, the Debian binaries; nothing is downloaded)

const LAUNCH_OPTIONS = {
  chromium: () => ({
    browser: 'chrome',
    executablePath: requireExecutable('chromium', 'CHROMIUM_BIN'),
    headless: 'shell',
    args: CHROMIUM_ARGS,
  }),
  firefox: () => ({
    browser: 'firefox',
    executablePath: requireExecutable('firefox-esr', 'FIREFOX_BIN'),
    headless: true,
    extraPrefsFirefox: { 'network.http.http3.enable': false },
  }),
};

/** Launch `engine` ("chromium", "firefox" or "webkit"): { name, version, newPage(), close() }. Rejects if it cannot start. */
export async function launchBrowser(engine) {
  if (engine === 'webkit') return launchWebKitPages();
  const options = LAUNCH_OPTIONS[engine];
  if (!options) throw new Error(`topic scenarios run in ${Object.keys(LAUNCH_OPTIONS).join(', ')} and webkit, not ${engine}`);
  const root = await makeTempDir(`topics-${engine}`);
  const userDataDir = path.join(root, 'profile');
  const tmpDir = path.join(root, 'tmp');
  await Promise.all([fsp.mkdir(userDataDir), fsp.mkdir(tmpDir)]);
  let browser;
  try {
    browser = await puppeteer.launch({
      ...options(),
      userDataDir,
      timeout: LAUNCH_TIMEOUT_MS,
      protocolTimeout: PROTOCOL_TIMEOUT_MS,
      defaultViewport: { width: 1024, height: 768 },
      env: { ...process.env, TMPDIR: tmpDir },
    });
  } catch (err) {
    await removeDir(root);
    throw new Error(`${engine} failed to start: ${err.message}`, { cause: err });
  }
  const proc = browser.process();
  trackGroup(proc?.pid);
  const close = async () => {
    await withTimeout(browser.close(), 10000, 'browser.close()').catch(() => {});
    if (proc) await stopGroup(proc, { signal: 'SIGKILL', graceMs: 3000 });
    untrackGroup(proc?.pid);
    await removeDir(root);
  };
  try {
    const version = await withTimeout(browser.version(), PROTOCOL_TIMEOUT_MS, `${engine} version`);
    let first = (await browser.pages())[0] ?? null;
    return {
      name: engine,
      version,
      /** A page (the first call reuses the initial tab); `init` runs before any script of every document. */
      async newPage(init) {
        const page = first ?? await browser.newPage();
        first = null;
        await page.setViewport({ width: 1024, height: 768 });
        if (init) await page.evaluateOnNewDocument(init);
        return page;
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// The chat page, seen from the test

/** Everything the tests look at on /chat, read in the page. */
function readChat() {
  const status = document.getElementById('status');
  const texts = (sel) => Array.from(document.querySelectorAll(sel), (el) => el.textContent.trim());
  return {
    state: status ? status.dataset.state : null,
    transport: status ? status.dataset.transport : null,
    status: status ? status.textContent.trim() : null,
    messages: Array.from(document.querySelectorAll('#messages li'), (li) => ({
      offset: Number(li.dataset.offset),
      epoch: li.dataset.epoch,
      who: li.querySelector('.who')?.textContent ?? null,
      text: li.querySelector('.text')?.textContent ?? null,
    })),
    members: texts('#members li').map((t) => t.replace(/ \(you\)$/, '')),
    log: texts('#log li'),
    position: window.chat?.subscription?.position ?? null,
    clientTransport: window.chat?.client?.transport ?? null,
    hasWebSocket: typeof window.WebSocket === 'function',
    hasEventSource: typeof window.EventSource === 'function',
  };
}

const short = (s) => JSON.stringify({ ...s, log: s.log.slice(-12), messages: s.messages.map((m) => `${m.offset}:${m.who}:${m.text}`) });

/** Wrap a puppeteer page on /chat with bounded reads and waits. */
export function chatPage(page, label) {
  let last = null;
  const read = async () => { last = await withTimeout(page.evaluate(readChat), PROTOCOL_TIMEOUT_MS, `${label}: read the chat page`); return last; };
  return {
    page,
    label,
    read,
    last: () => last,
    async open(url) {
      await withTimeout(page.goto(url, { waitUntil: 'load', timeout: 15000 }), 20000, `${label}: open ${url}`);
    },
    /** Wait until `check(state)` is truthy; the timeout error shows the page's last state. */
    until(check, what, timeout = DELIVERY_TIMEOUT_MS) {
      return waitFor(async () => check(await read()), {
        timeout, interval: 50, what: `${label}: ${what}`, describe: () => (last ? short(last) : 'nothing read yet'),
      });
    },
    /** Connected over `transport` and subscribed (the subscription has a position). */
    connected(transport) {
      return this.until((s) => s.state === 'open' && s.transport === transport && s.position !== null,
        `connected over ${transport} and subscribed`, OPEN_TIMEOUT_MS);
    },
    /** Type `text` into the message field and press Enter (real key events). */
    async say(text) {
      await page.bringToFront();
      await withTimeout(page.type('#text', text), PROTOCOL_TIMEOUT_MS, `${label}: type`);
      await withTimeout(page.keyboard.press('Enter'), PROTOCOL_TIMEOUT_MS, `${label}: press Enter`);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Running a scenario: server, browser, artifacts and clean-up

export async function run(name, engine, body, { serverArgs = [] } = {}) {
  const log = (msg) => console.log(`[${name}] ${msg}`);
  const t0 = now();
  const report = { scenario: name, engine, steps: [] };
  const step = (msg) => { report.steps.push(`${Math.round(now() - t0)} ms: ${msg}`); log(msg); };
  let server = null;
  let browser = null;
  const cleanups = [];
  const pages = [];
  let failed = true;
  try {
    server = await startPushwire({ args: serverArgs });
    step(`server up: ${server.command}`);
    browser = await launchBrowser(engine);
    report.browser = browser.version;
    step(`browser up: ${browser.version}`);
    await body({ server, browser, step, report, pages, cleanups });
    if (pages[0]) await saveScreenshot({ screenshot: (file) => pages[0].page.screenshot({ path: file }) }, name);
    failed = false;
  } catch (err) {
    const extra = [];
    for (const p of pages) if (p.last()) extra.push(`${p.label}: ${short(p.last())}`);
    if (server) extra.push(`server output:\n${server.output()}`);
    err.message += `\n${extra.join('\n')}`;
    if (pages[0]) await saveFailureScreenshot({ screenshot: (file) => pages[0].page.screenshot({ path: file }) }, name);
    throw err;
  } finally {
    report.ok = !failed;
    report.pages = pages.map((p) => ({ label: p.label, last: p.last() }));
    await Promise.allSettled([
      ...cleanups.map((fn) => fn()),
      browser ? withTimeout(browser.close(), 20000, 'browser close').catch((e) => log(`close: ${e.message}`)) : null,
      server ? server.stop() : null,
    ]);
    report.total = `${Math.round(now() - t0)} ms`;
    await writeReport(name, report);
    log(`done in ${report.total}`);
  }
}

const offsets = (s) => s.messages.map((m) => m.offset);

// ---------------------------------------------------------------------------------------------
// a. Two pages chat

export function runChatScenario({ engine }) {
  return run(`${engine}-topics-chat`, engine, async ({ server, browser, step, pages }) => {
    const alice = chatPage(await browser.newPage(), 'alice');
    const bob = chatPage(await browser.newPage(), 'bob');
    pages.push(alice, bob);
    await alice.open(`${server.url}chat?name=alice`);
    await bob.open(`${server.url}chat?name=bob`);
    await alice.connected('websocket');
    await bob.connected('websocket');
    step('both pages connected over websocket and subscribed');

    await alice.until((s) => s.members.includes('bob') && s.members.includes('alice'), 'alice sees bob and herself in presence');
    await bob.until((s) => s.members.includes('alice') && s.members.includes('bob'), 'bob sees alice and himself in presence');
    step(`presence: alice sees ${JSON.stringify(alice.last().members)}, bob sees ${JSON.stringify(bob.last().members)}`);

    await alice.say('hello from alice');
    for (const p of [alice, bob]) {
      await p.until((s) => s.messages.some((m) => m.text === 'hello from alice'), "alice's message shown");
    }
    await bob.say('hi alice, bob here');
    for (const p of [alice, bob]) {
      await p.until((s) => s.messages.length >= 2, "bob's message shown");
    }
    const a = await alice.read();
    const b = await bob.read();
    const expected = [
      { offset: 1, who: 'alice', text: 'hello from alice' },
      { offset: 2, who: 'bob', text: 'hi alice, bob here' },
    ];
    for (const s of [a, b]) {
      assert.deepEqual(s.messages.map(({ offset, who, text }) => ({ offset, who, text })), expected, 'both pages show both messages, once, in order');
      assert.equal(new Set(s.messages.map((m) => m.epoch)).size, 1, 'one epoch');
    }
    assert.equal(a.messages[0].epoch, b.messages[0].epoch, 'the pages agree on the epoch');
    step('each page shows both messages at offsets 1 and 2');

    await bob.page.close();
    await alice.until((s) => !s.members.includes('bob') && s.members.includes('alice'), 'bob leaves the presence list when his page closes');
    step('bob left presence after his page closed');
  });
}

// ---------------------------------------------------------------------------------------------
// b. Fallback to SSE / long-poll

const NO_WEBSOCKET = () => { delete window.WebSocket; };
const NO_WEBSOCKET_NO_EVENTSOURCE = () => { delete window.WebSocket; delete window.EventSource; };

export function runFallbackScenario({ engine, transport }) {
  assert.ok(transport === 'sse' || transport === 'poll');
  return run(`${engine}-topics-fallback-${transport}`, engine, async ({ server, browser, step, pages }) => {
    const page = chatPage(await browser.newPage(transport === 'sse' ? NO_WEBSOCKET : NO_WEBSOCKET_NO_EVENTSOURCE), 'carol');
    pages.push(page);
    await page.open(`${server.url}chat?name=carol`); // no ?transport: the page picks by itself
    await page.connected(transport);
    const s0 = await page.read();
    assert.equal(s0.hasWebSocket, false, 'WebSocket is gone from the page');
    assert.equal(s0.hasEventSource, transport === 'sse', `EventSource is ${transport === 'sse' ? 'there' : 'gone'}`);
    assert.equal(s0.clientTransport, transport, 'pushwire.js says it uses the same transport');
    assert.match(s0.status, new RegExp(`connected over ${transport}`), 'the status line names the transport');
    assert.ok(!s0.log.some((l) => l === 'Open: websocket'), 'never opened a WebSocket');
    step(`page connected over ${transport}: "${s0.status}"`);

    // Presence: carol, on SSE or long-poll, is a member (with her name as info) as a WebSocket page is.
    const walt = chatPage(await browser.newPage(), 'walt');
    pages.push(walt);
    await walt.open(`${server.url}chat?name=walt`);
    await walt.connected('websocket');
    await walt.until((s) => s.members.includes('carol') && s.members.includes('walt'), `walt sees carol (on ${transport}) in presence`);
    step(`walt (websocket) sees ${JSON.stringify(walt.last().members)}`);

    const published = [];
    for (let i = 1; i <= 3; i++) published.push(await publish(server.port, { name: 'api', text: `via ${transport} ${i}` }));
    assert.deepEqual(published.map((p) => p.offset), [1, 2, 3]);
    await page.until((s) => s.messages.length >= 3, `3 messages published with the API arrive over ${transport}`);
    await page.say(`typed over ${transport}`); // publish() over SSE/poll is a POST from the page
    await page.until((s) => s.messages.length >= 4, 'the message typed in the page arrives');
    const s = await page.read();
    assert.deepEqual(s.messages.map(({ offset, who, text }) => ({ offset, who, text })), [
      { offset: 1, who: 'api', text: `via ${transport} 1` },
      { offset: 2, who: 'api', text: `via ${transport} 2` },
      { offset: 3, who: 'api', text: `via ${transport} 3` },
      { offset: 4, who: 'carol', text: `typed over ${transport}` },
    ]);
    assert.equal(s.messages[0].epoch, published[0].epoch, 'the epoch the publish API answered');
    assert.equal(s.transport, transport, `still on ${transport}`);
    step(`4 messages arrived over ${transport}, in order, once each`);

    // Her page closes: she leaves (a long-poll client once its --poll-lapse of 2 s has passed).
    await page.page.close();
    pages.splice(pages.indexOf(page), 1); // the screenshot at the end is walt's
    await walt.until((s) => !s.members.includes('carol') && s.members.includes('walt'), `carol (on ${transport}) leaves presence when her page closes`, 60000);
    step('carol left presence after her page closed');
  }, { serverArgs: ['--poll-lapse', '2s'] });
}

// ---------------------------------------------------------------------------------------------
// c. Connection lost while messages are published; recovery from the last offset

export function runReconnectScenario({ engine, transport, total = 20 }) {
  return run(`${engine}-topics-reconnect-${transport}`, engine, async ({ server, browser, step, pages, report, cleanups }) => {
    const relay = await startRelay(server.port);
    cleanups.push(() => relay.close());
    const page = chatPage(await browser.newPage(), 'dave');
    pages.push(page);
    await page.open(`http://127.0.0.1:${relay.port}/chat?name=dave&transport=${transport}`);
    await page.connected(transport);
    step(`page connected over ${transport} through the relay (port ${relay.port})`);

    const before = Math.floor(total / 4); // published while connected
    const during = Math.floor(total / 2); // while the relay is cut
    const send = async (n) => publish(server.port, { name: 'api', text: `message ${n}` });
    let n = 0;
    while (n < before) await send(++n);
    await page.until((s) => s.messages.length >= before, `the first ${before} messages arrive`);

    const tc = now();
    relay.cut();
    step(`relay cut after ${before} messages`);
    await page.until((s) => s.state !== 'open', 'the page notices the lost connection', 10000);
    step(`page noticed after ${Math.round(now() - tc)} ms: "${page.last().status}"`);
    while (n < before + during) await send(++n);
    await sleep(Math.max(0, CUT_MS - (now() - tc)));
    relay.restore();
    step(`relay restored after ${Math.round(now() - tc)} ms; ${during} messages were published meanwhile; ${JSON.stringify(relay.stats())}`);
    while (n < total) await send(++n); // racing with the reconnect
    const tr = now();
    await page.until((s) => s.messages.length >= total && s.state === 'open', `all ${total} messages after the reconnect`, RECOVERY_TIMEOUT_MS);
    step(`all ${total} shown ${Math.round(now() - tr)} ms after the relay came back`);
    await sleep(1000); // a late duplicate would show up now
    const s = await page.read();
    const want = Array.from({ length: total }, (_, i) => i + 1);
    assert.deepEqual(offsets(s), want, 'exactly offsets 1..N, in order, each once');
    assert.deepEqual(s.messages.map((m) => m.text), want.map((i) => `message ${i}`), 'each offset shows its own message');
    assert.equal(new Set(s.messages.map((m) => m.epoch)).size, 1, 'one epoch');
    assert.equal(s.transport, transport, `reconnected over ${transport}`);
    assert.ok(s.log.some((l) => l.startsWith('Recovered chat:lobby')), `the page reports a recovery: ${JSON.stringify(s.log)}`);
    assert.ok(!s.log.some((l) => l.startsWith('Lost')), `nothing reported lost: ${JSON.stringify(s.log)}`);
    assert.ok(s.log.filter((l) => l === `Open: ${transport}`).length >= 2, 'opened again after the cut');
    report.relay = relay.stats();
    step(`offsets 1..${total} exactly once, in order; relay ${JSON.stringify(report.relay)}`);
  });
}

// ---------------------------------------------------------------------------------------------
// The README example (README.md, "Publish from curl, receive in a browser")

/** The contents of the fenced code block between `<!-- readme-example:NAME -->` and `<!-- /readme-example:NAME -->`. */
export function readmeBlock(readme, name) {
  const start = `<!-- readme-example:${name} -->`;
  const end = `<!-- /readme-example:${name} -->`;
  const i = readme.indexOf(start);
  const j = readme.indexOf(end, i);
  assert.ok(i >= 0 && j > i, `README.md has ${start} … ${end}`);
  const fence = readme.slice(i + start.length, j).match(/```[a-z]*\n([\s\S]*?)```/);
  assert.ok(fence, `a fenced code block between the ${name} markers`);
  return fence[1];
}

/** Run `command` with sh -c (at most 10 s); resolves to { code, stdout, stderr }. */
export function sh(command, timeout = 10000) {
  return new Promise((resolve) => {
    execFile('sh', ['-c', command], { timeout, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? err.signal) : 0, stdout, stderr });
    });
  });
}

export function runReadmeScenario({ engine, readmePath }) {
  const name = `${engine}-readme-example`;
  return (async () => {
    const readme = await fsp.readFile(readmePath, 'utf8');
    const html = readmeBlock(readme, 'page');
    const curl = readmeBlock(readme, 'curl').trim();
    const site = await makeTempDir('readme-site');
    await fsp.writeFile(path.join(site, 'news.html'), html);
    try {
      await run(name, engine, async ({ server, browser, step, pages }) => {
        const page = await browser.newPage();
        pages.push({ page, label: 'readme page', last: () => null });
        const url = `${server.url}static/news.html`;
        await withTimeout(page.goto(url, { waitUntil: 'load', timeout: 15000 }), 20000, `open ${url}`);
        const text = (sel) => page.$$eval(sel, (els) => els.map((el) => el.textContent.trim()));
        await waitFor(async () => (await text('#status'))[0]?.startsWith('subscribed'), {
          timeout: OPEN_TIMEOUT_MS, interval: 50, what: 'the README page to say it is subscribed',
          describe: () => 'see the screenshot',
        });
        step(`page says: ${(await text('#status'))[0]}`);
        const command = curl.replaceAll('127.0.0.1:8888', `127.0.0.1:${server.port}`);
        assert.notEqual(command, curl, 'the curl command names http://127.0.0.1:8888');
        const result = await sh(command);
        assert.equal(result.code, 0, `${command} failed: ${result.stderr}`);
        const answer = JSON.parse(result.stdout);
        assert.equal(answer.offset, 1, `curl printed the position: ${result.stdout}`);
        step(`ran: ${command} -> ${result.stdout.trim()}`);
        const items = await waitFor(async () => { const li = await text('#messages li'); return li.length ? li : null; }, {
          timeout: DELIVERY_TIMEOUT_MS, interval: 50, what: 'the message published with curl to show in the page',
        });
        const published = curl.match(/-d '([^']*)'/);
        assert.ok(published, 'the curl command has a -d \'…\' body');
        assert.deepEqual(items, [`1: ${published[1]}`], 'the page shows the published message, once');
        step(`page shows ${JSON.stringify(items)}`);
      }, { serverArgs: ['--static-dir', site] });
    } finally {
      await removeDir(site);
    }
  })();
}

// ---------------------------------------------------------------------------------------------
// d. The client's own guarantees, against a scripted server (a fake WebSocket in the page)

/**
 * Runs in the page after /pushwire.js is loaded. `window.WebSocket` is replaced by a fake whose
 * "server" misbehaves on purpose: it repeats messages, skips one, replays history that was
 * already delivered after a reconnect, and finally changes the epoch. Resolves to what the
 * client delivered and emitted, and what it asked for.
 */
async function scriptedServer() {
  const sent = []; // every request the client sent, per connection
  const sockets = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.conn = sockets.length;
      sent.push([]);
      sockets.push(this);
      setTimeout(() => { this.readyState = 1; this.onopen?.({}); this.push({ hello: { client: `fake-${this.conn}`, version: 1 } }); }, 5);
    }
    push(obj) { if (this.readyState === 1) this.onmessage?.({ data: JSON.stringify(obj) }); }
    send(text) {
      const req = JSON.parse(text);
      sent[this.conn].push(req);
      setTimeout(() => script[this.conn]?.(this, req), 5);
    }
    drop() { this.readyState = 3; this.onclose?.({ code: 1006, reason: '' }); }
    close() { this.readyState = 3; }
  }
  const msg = (epoch, offset) => ({ topic: 't', epoch, offset, data: `${epoch}${offset}` });
  const later = (ms, fn) => setTimeout(fn, ms);
  // What the "server" does on each connection when it gets the sub.
  const script = [
    (ws, req) => {
      ws.push({ id: req.id, ok: { topic: 't', epoch: 'E', offset: 0 } });
      for (const o of [1, 2, 2, 1, 3, 5]) ws.push(msg('E', o)); // duplicates, then a gap (4)
      later(50, () => ws.drop());
    },
    (ws, req) => {
      ws.push({ id: req.id, ok: { topic: 't', epoch: 'E', offset: 7, recovered: true } });
      for (const o of [4, 5, 6, 7]) ws.push(msg('E', o)); // replays 4 and 5, then 6, 7
      later(50, () => ws.drop());
    },
    (ws, req) => {
      ws.push({ id: req.id, ok: { topic: 't', epoch: 'F', offset: 10, recovered: false } });
      for (const o of [10, 11]) ws.push(msg('F', o)); // 10 is before the new position
      ws.push({ topic: 't', join: { client: 'fake-x', info: { name: 'x' } } });
    },
  ];
  window.WebSocket = FakeSocket;

  const delivered = [];
  const events = [];
  const client = window.pushwire.connect(location.origin, { minDelay: 20, maxDelay: 50 });
  for (const name of ['state', 'recovered', 'lost', 'join', 'error']) {
    client.on(name, (e) => events.push([name, name === 'error' ? String(e) : e]));
  }
  const sub = client.subscribe('t', (m) => delivered.push(`${m.epoch}${m.offset}:${m.data}`));
  const deadline = Date.now() + 5000;
  while (!delivered.includes('F11:F11') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 100)); // anything late would show now
  const position = sub.position;
  client.close();
  return {
    delivered,
    events: events.filter(([n]) => n !== 'state'),
    states: events.filter(([n]) => n === 'state').map(([, e]) => `${e.state}/${e.transport}`),
    sent,
    position,
    active: sub.active,
    connections: sockets.length,
  };
}

export function runClientGuaranteesScenario({ engine }) {
  return run(`${engine}-topics-client`, engine, async ({ server, browser, step, pages }) => {
    const page = await browser.newPage();
    pages.push({ page, label: 'scripted', last: () => null });
    await withTimeout(page.goto(server.url, { waitUntil: 'load', timeout: 15000 }), 20000, 'open /');
    await withTimeout(page.addScriptTag({ url: '/pushwire.js' }), 10000, 'load /pushwire.js');
    const r = await withTimeout(page.evaluate(scriptedServer), 15000, 'scripted server run');
    step(`delivered ${JSON.stringify(r.delivered)}; events ${JSON.stringify(r.events)}`);
    assert.deepEqual(r.delivered, ['E1:E1', 'E2:E2', 'E3:E3', 'E5:E5', 'E6:E6', 'E7:E7', 'F11:F11'],
      'each message once, in order; nothing at or before the last delivered offset');
    assert.equal(r.connections, 3, 'reconnected twice');
    const subs = r.sent.map((reqs) => reqs.filter((q) => q.op === 'sub').map(({ topic, since }) => ({ topic, since })));
    assert.deepEqual(subs, [
      [{ topic: 't', since: undefined }],
      [{ topic: 't', since: { epoch: 'E', offset: 5 } }],
      [{ topic: 't', since: { epoch: 'E', offset: 7 } }],
    ], 'each reconnect resubscribes from the last delivered position');
    assert.deepEqual(r.events, [
      ['lost', { topic: 't', epoch: 'E', offset: 4, since: { epoch: 'E', offset: 3 } }],
      ['recovered', { topic: 't', epoch: 'E', offset: 7, since: { epoch: 'E', offset: 5 } }],
      ['lost', { topic: 't', epoch: 'F', offset: 10, since: { epoch: 'E', offset: 7 } }],
      ['join', { topic: 't', client: 'fake-x', info: { name: 'x' } }],
    ], 'a gap and an epoch change are reported as lost; a recovery as recovered');
    assert.deepEqual(r.position, { epoch: 'F', offset: 11 });
    assert.ok(r.states.filter((s) => s === 'open/websocket').length === 3, `opened three times: ${JSON.stringify(r.states)}`);
    assert.equal(r.states.at(-1), 'closed/null', 'close() ends in state closed');
    assert.equal(r.active, false, 'close() ends the subscription');
  });
}

// ---------------------------------------------------------------------------------------------
// e. Tokens: pushwire.js with `connect(url, { token })` against `pushwire serve --token-secret`

const TOKEN_SECRET = 'e2e-token-secret-0123456789abcdef';

/** `pushwire token …args` with the test secret: the printed token. */
function mintToken(args) {
  return new Promise((resolve, reject) => {
    execFile(pushwireBinary(), ['token', '--secret', TOKEN_SECRET, ...args], { timeout: 10000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`pushwire token failed: ${err.message}\n${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

/**
 * Runs in the page: connects over `transport` with a token function that hands out `tokens` in
 * turn (the last one again once they are used up), subscribes to `topic` and records what happens.
 */
function tokenClient({ transport, tokens, topic }) {
  const t = window.tokenTest = { calls: 0, got: [], errors: [], auths: [], states: [], ids: [] };
  const client = window.pushwire.connect(location.origin, {
    transports: [transport],
    minDelay: 100,
    maxDelay: 500,
    token: async () => tokens[Math.min(t.calls++, tokens.length - 1)],
  });
  t.client = client;
  client.on('error', (e) => t.errors.push(`${e.code} ${e.message}`));
  client.on('auth', (a) => t.auths.push(a));
  client.on('state', (s) => { t.states.push(`${s.state}/${s.transport}`); if (client.id) t.ids.push(client.id); });
  client.subscribe(topic, (m) => t.got.push(m.offset));
}

function readTokenClient() {
  const t = window.tokenTest;
  return { calls: t.calls, got: t.got, errors: t.errors, auths: t.auths, states: t.states, user: t.client.user, state: t.client.state };
}

/** The life of the first token of the token scenario, in seconds. */
const SHORT_TTL_S = 4;

export function runTokenScenario({ engine, transport }) {
  return run(`${engine}-topics-token-${transport}`, engine, async ({ server, browser, step, pages }) => {
    const grants = ['--sub', 'alice', '--topic', 'chat:*=sub,pub,presence'];
    const long = await mintToken([...grants, '--ttl', '1h']);
    const page = await browser.newPage();
    let last = null;
    pages.push({ page, label: 'alice', last: () => last });
    await withTimeout(page.goto(server.url, { waitUntil: 'load', timeout: 15000 }), 20000, 'open /');
    await withTimeout(page.addScriptTag({ url: '/pushwire.js' }), 10000, 'load /pushwire.js');
    // The short token is minted just before the client starts, so that a slow page load on a
    // loaded machine does not eat its life; the test then waits for its real expiry.
    const short = await mintToken([...grants, '--ttl', `${SHORT_TTL_S}s`]);
    const shortExpires = Date.now() + SHORT_TTL_S * 1000;
    await withTimeout(page.evaluate(tokenClient, { transport, tokens: [short, long], topic: TOPIC }), 10000, 'start the client');
    const read = async () => { last = await withTimeout(page.evaluate(readTokenClient), PROTOCOL_TIMEOUT_MS, 'read'); return last; };
    const until = (check, what, timeout = DELIVERY_TIMEOUT_MS) =>
      waitFor(async () => check(await read()), { timeout, interval: 50, what, describe: () => JSON.stringify(last) });

    await until((s) => s.state === 'open', `connected over ${transport} with a token`, OPEN_TIMEOUT_MS);
    await publish(server.port, { n: 1 });
    await until((s) => s.got.includes(1), 'a message published with the API arrives');
    step(`connected over ${transport} with the ${SHORT_TTL_S} s token; message 1 arrived`);

    // Past the first token's expiry: the WebSocket client refreshed it in place (auth again);
    // an SSE stream ended at expiry and came back with the next token; every poll carries one.
    await sleep(Math.max(0, shortExpires + 1000 - Date.now()));
    await publish(server.port, { n: 2 });
    const published = await withTimeout(page.evaluate(() => window.tokenTest.client.publish('chat:lobby', { n: 3 })), 10000, 'publish from the page');
    assert.equal(published.offset, 3, 'the token grants pub: the page publishes');
    await until((s) => s.got.includes(2) && s.got.includes(3), 'messages after the first token expired arrive');
    const s = await read();
    assert.deepEqual(s.got, [1, 2, 3], 'every message once, in order');
    assert.ok(s.calls >= 2, `the token function was asked again (${s.calls} calls)`);
    assert.deepEqual(s.errors, [], 'no error');
    if (transport === 'websocket') {
      assert.ok(s.auths.length >= 2, `auth, then a refresh before expiry: ${JSON.stringify(s.auths)}`);
      assert.equal(s.user, 'alice');
      assert.equal(s.states.filter((x) => x === 'open/websocket').length, 1, `one connection throughout: ${JSON.stringify(s.states)}`);
    }
    step(`after the first token expired: ${JSON.stringify(s)}`);

    // A page with a token signed with another secret is refused (401) and says so.
    const forged = await new Promise((resolve, reject) => {
      execFile(pushwireBinary(), ['token', '--secret', 'not-the-server-secret-0123456789', ...grants], { timeout: 10000 },
        (err, stdout) => (err ? reject(err) : resolve(stdout.trim())));
    });
    await withTimeout(page.evaluate(() => window.tokenTest.client.close()), 5000, 'close the client');
    await withTimeout(page.evaluate(tokenClient, { transport, tokens: [forged], topic: TOPIC }), 10000, 'start a forged client');
    if (transport === 'sse') {
      // EventSource does not show the status of a refused stream: the client just never opens.
      await sleep(2000);
      const x = await read();
      assert.ok(!x.states.includes('open/sse'), `a forged token never opens a stream: ${JSON.stringify(x.states)}`);
      step('forged token: the stream never opened');
    } else {
      await until((x) => x.errors.some((e) => e.startsWith('401')), 'the forged token is refused with 401');
      step(`forged token refused: ${JSON.stringify(last.errors.slice(0, 2))}`);
    }
    await withTimeout(page.evaluate(() => window.tokenTest.client.close()), 5000, 'close the client');
  }, { serverArgs: ['--token-secret', TOKEN_SECRET, '--token-leeway', '0s'] });
}

// ---------------------------------------------------------------------------------------------
// f. The client as an ES module: `import('/pushwire.mjs')` in a page that has no pushwire.js

/** Runs in the page: imports the module, subscribes and publishes over it, and reports. */
async function moduleClient(topic) {
  const hadGlobal = 'pushwire' in window;
  const m = await import('/pushwire.mjs');
  const client = m.connect(location.origin);
  const got = [];
  const sub = client.subscribe(topic, (message) => got.push({ offset: message.offset, data: message.data }));
  const ready = await sub.ready;
  const published = await client.publish(topic, { via: 'module' });
  const deadline = Date.now() + 5000;
  while (!got.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  const result = {
    hadGlobal,
    exports: Object.keys(m).sort(),
    version: m.version,
    defaultIsGlobal: m.default === window.pushwire,
    sameConnect: m.default.connect === m.connect,
    pushwireError: (() => { const e = new m.PushwireError('refused', 403, topic); return [e instanceof Error, e.name, e.code, e.topic]; })(),
    ready: { topic: ready.topic, offset: ready.offset },
    published: { topic: published.topic, offset: published.offset },
    got,
    transport: client.transport,
  };
  client.close();
  return result;
}

export function runModuleScenario({ engine }) {
  return run(`${engine}-topics-module`, engine, async ({ server, browser, step, pages }) => {
    const page = await browser.newPage();
    pages.push({ page, label: 'module', last: () => null });
    await withTimeout(page.goto(server.url, { waitUntil: 'load', timeout: 15000 }), 20000, 'open /'); // the counter page: no pushwire.js
    const r = await withTimeout(page.evaluate(moduleClient, 'module:e2e'), 15000, 'the module client');
    step(`module client: ${JSON.stringify(r)}`);
    assert.equal(r.hadGlobal, false, 'the counter page has no pushwire.js');
    assert.deepEqual(r.exports, ['PushwireError', 'connect', 'default', 'version'], 'what the module exports');
    assert.equal(r.version, 1);
    assert.equal(r.defaultIsGlobal, true, 'importing the module defines window.pushwire, its default export');
    assert.equal(r.sameConnect, true);
    assert.deepEqual(r.pushwireError, [true, 'PushwireError', 403, 'module:e2e']);
    assert.deepEqual(r.ready, { topic: 'module:e2e', offset: 0 }, 'subscribed before anything was published');
    assert.deepEqual(r.published, { topic: 'module:e2e', offset: 1 });
    assert.deepEqual(r.got, [{ offset: 1, data: { via: 'module' } }], 'the message published over the module client, once');
    assert.equal(r.transport, 'websocket');
  });
}
