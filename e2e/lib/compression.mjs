// The permessage-deflate scenario, run identically against every browser engine:
//   1. start pushwire (--interval 200ms) and the echo example, both with
//      RUST_LOG=pushwire=debug; open the counter page; in the page, open a second
//      WebSocket to the page's own `socket`: its `extensions` name
//      permessage-deflate and it receives "1", then "2";
//   2. in the page, open ws://127.0.0.1:ECHO/echo (binaryType 'arraybuffer'): its
//      `extensions` name permessage-deflate and server_no_context_takeover (Firefox
//      reports the bare extension name, see EXTENSIONS_WITH_PARAMS; step 5 checks
//      the server's real answer for every engine);
//   3. for 1 B, 125 B, 126 B, 64 KiB and 1 MiB send a text and a binary message
//      (plus 1 MiB of zeros) and check in the page that the echo is identical;
//   4. start a second echo with --no-deflate: `extensions` is "" there, and 64 KiB
//      (text and binary) still round-trip;
//   5. on the wire (through a byte-counting TCP relay in this process): the
//      browser's offer and the server's answer (Sec-WebSocket-Extensions); 1 MiB
//      of zeros costs far less than 1 MiB each way with deflate, and 64 KiB of
//      zeros costs at least 64 KiB each way without;
//   6. close the sockets (clean close, code 1000), screenshot to
//      <repo>/target/e2e/<engine>-compression.png, JSON report next to it.
// Every wait is bounded (STEP_TIMEOUT_MS per step); servers, relays, browser and
// driver are always stopped.
//
// The page does the WebSocket work: every step is a "job" started with one
// evaluate() and polled until it is done, so no single protocol call has to stay
// open for a slow step and all three engines are driven the same way.

import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { clearArtifacts, saveFailureScreenshot, saveScreenshot, writeReport } from './artifacts.mjs';
import { launcherFor } from './engines.mjs';
import {
  freePort, headerValue, makeTempDir, now, removeDir, startByteCounter, startEcho, startServer, waitFor,
  withTimeout,
} from './server.mjs';

const STEP_TIMEOUT_MS = 20000;
const POLL_MS = 25;
const SERVER_ENV = { RUST_LOG: 'pushwire=debug' };
const KiB = 1024;
const MiB = 1024 * KiB;
const SIZES = [1, 125, 126, 64 * KiB, MiB]; // 125/126: the 7-bit / 16-bit length boundary
const ROUND_TRIPS = [
  ...SIZES.flatMap((size) => [
    { kind: 'text', size, seed: size * 2 + 1 },
    { kind: 'binary', size, seed: size * 2 + 2 },
  ]),
  { kind: 'zeros', size: MiB, seed: 0 },
];
const WIRE_DEFLATE_SIZE = MiB; // of zeros, through the relay to the deflate echo
const WIRE_DEFLATE_MAX = 64 * KiB; // bytes allowed each way for it (it deflates to ~1 KiB)
const WIRE_PLAIN_SIZE = 64 * KiB; // of zeros, through the relay to the --no-deflate echo
// Whether the engine's `WebSocket.extensions` carries the extension's parameters
// (e.g. "permessage-deflate; server_no_context_takeover; …"). Firefox's does not:
// Gecko's WebSocketChannel::HandleExtensions sets it to the bare
// "permessage-deflate" whatever the server answered, so for Firefox we expect
// exactly that, and the parameters are checked in the server's real answer (step 5).
const EXTENSIONS_WITH_PARAMS = { chromium: true, firefox: false, webkit: true };

/**
 * Installed in the page once: `window.__wsE2e` with jobs (start/poll), named
 * sockets, payload generators and comparisons. Runs in the browser, so it must
 * not refer to anything outside itself.
 */
function installWsProbe() {
  if (window.__wsE2e) return true;
  const E = { jobs: new Map(), sockets: new Map(), nextId: 1 };
  window.__wsE2e = E;
  const round = (ms) => Math.round(ms * 10) / 10;

  // --- jobs: start returns an id at once; poll(id) says how far it got ---------
  E.start = (work) => {
    const id = E.nextId++;
    const job = { done: false, result: null, error: null, progress: 'started' };
    E.jobs.set(id, job);
    Promise.resolve().then(() => work(job)).then(
      (result) => { job.result = result; job.done = true; },
      (err) => { job.error = String((err && err.message) || err); job.done = true; });
    return id;
  };
  E.poll = (id) => {
    const job = E.jobs.get(id);
    if (!job) return { done: true, result: null, error: `no job ${id} in the page`, progress: null };
    if (job.done) E.jobs.delete(id);
    return { done: job.done, result: job.result, error: job.error, progress: job.progress };
  };

  // --- sockets with an inbox: next() is the next message, in order --------------
  const socket = (name, url, binaryType) => {
    const ws = new WebSocket(url);
    if (binaryType) ws.binaryType = binaryType;
    const s = { ws, inbox: [], waiters: [], closed: null, errors: 0 };
    ws.onmessage = (ev) => {
      const waiter = s.waiters.shift();
      if (waiter) waiter.resolve(ev.data); else s.inbox.push(ev.data);
    };
    ws.onerror = () => { s.errors += 1; };
    s.whenClosed = new Promise((resolve) => {
      ws.onclose = (ev) => {
        s.closed = { code: ev.code, reason: ev.reason, wasClean: ev.wasClean, errors: s.errors };
        for (const w of s.waiters.splice(0)) {
          w.reject(new Error(`socket closed (code ${ev.code}${ev.reason ? `, "${ev.reason}"` : ''}, ` +
            `${s.errors} error event(s)) while waiting for a message`));
        }
        resolve(s.closed);
      };
    });
    s.whenOpen = new Promise((resolve, reject) => {
      ws.addEventListener('open', () => resolve());
      s.whenClosed.then((c) => reject(new Error(`closed before it opened: code ${c.code}, ${c.errors} error event(s)`)));
    });
    s.next = () => {
      if (s.inbox.length) return Promise.resolve(s.inbox.shift());
      if (s.closed) return Promise.reject(new Error(`socket already closed (code ${s.closed.code})`));
      return new Promise((resolve, reject) => s.waiters.push({ resolve, reject }));
    };
    E.sockets.set(name, s);
    return s;
  };
  const info = (s) => ({ url: s.ws.url, extensions: s.ws.extensions, protocol: s.ws.protocol, binaryType: s.ws.binaryType });
  const named = (name) => {
    const s = E.sockets.get(name);
    if (!s) throw new Error(`no socket "${name}" in the page`);
    return s;
  };

  // --- payloads: deterministic, not trivially compressible --------------------
  const prng = (seed) => { // xorshift32
    let x = (seed >>> 0) || 0x9e3779b9;
    return () => {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      return x >>> 0;
    };
  };
  const ASCII = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i)); // printable
  const WIDE = ['é', 'ß', 'Ж', '€', '中', '😀', '🎉']; // 2, 2, 2, 3, 3, 4, 4 bytes in UTF-8
  const utf8Length = (ch) => {
    const c = ch.codePointAt(0);
    return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  };
  // Exactly `size` UTF-8 bytes: random printable ASCII with about one character in
  // five multi-byte; a multi-byte pick that would overshoot becomes ASCII.
  const makeText = (size, seed) => {
    const next = prng(seed);
    const parts = [];
    let bytes = 0;
    while (bytes < size) {
      const r = next();
      let ch = r % 5 === 0 ? WIDE[(r >>> 8) % WIDE.length] : ASCII[(r >>> 8) % ASCII.length];
      if (bytes + utf8Length(ch) > size) ch = ASCII[(r >>> 8) % ASCII.length];
      parts.push(ch);
      bytes += utf8Length(ch);
    }
    return parts.join('');
  };
  const makeBytes = (size, seed) => {
    const next = prng(seed);
    const out = new Uint8Array(size);
    for (let i = 0; i < size; i++) out[i] = next() & 0xff;
    return out;
  };
  const kindOf = (v) => Object.prototype.toString.call(v).slice(8, -1);
  const diffText = (sent, got) => {
    if (typeof got !== 'string') return `got a ${kindOf(got)}, not a string`;
    if (got === sent) return null;
    let i = 0;
    while (i < sent.length && i < got.length && sent[i] === got[i]) i++;
    return `text differs at UTF-16 index ${i} (sent ${sent.length} units, got ${got.length}): ` +
      `sent ${JSON.stringify(sent.slice(i, i + 8))}, got ${JSON.stringify(got.slice(i, i + 8))}`;
  };
  const diffBytes = (sent, got) => {
    if (kindOf(got) !== 'ArrayBuffer') return `got a ${kindOf(got)}, not an ArrayBuffer`;
    const bytes = new Uint8Array(got);
    const n = Math.min(sent.length, bytes.length);
    let i = 0;
    while (i < n && sent[i] === bytes[i]) i++;
    if (i === n && sent.length === bytes.length) return null;
    return `bytes differ at offset ${i} (sent ${sent.length} bytes, got ${bytes.length})` +
      (i < n ? `: sent 0x${sent[i].toString(16)}, got 0x${bytes[i].toString(16)}` : '');
  };

  // --- the steps ----------------------------------------------------------------
  E.open = (name, url, binaryType) => E.start(async (job) => {
    const s = socket(name, url, binaryType);
    job.progress = `connecting to ${url}`;
    const t0 = performance.now();
    await s.whenOpen;
    return { ...info(s), openMs: round(performance.now() - t0) };
  });

  // A second socket to the counter page's own `socket`: two messages, then close.
  E.counter = (count) => E.start(async (job) => {
    const url = new URL('/socket', window.location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const s = socket('counter', url.href);
    job.progress = `connecting to ${url.href}`;
    await s.whenOpen;
    const result = { ...info(s), messages: [], at: [] };
    const t0 = performance.now();
    while (result.messages.length < count) {
      job.progress = `received ${JSON.stringify(result.messages)}`;
      result.messages.push(await s.next());
      result.at.push(round(performance.now() - t0));
    }
    s.ws.close(1000, 'e2e done');
    job.progress = 'closing';
    result.closed = await s.whenClosed;
    return result;
  });

  // Send one message of `size` bytes and wait for the echo; compare it here.
  E.roundTrip = (name, kind, size, seed) => E.start(async (job) => {
    const s = named(name);
    if (s.inbox.length) throw new Error(`${s.inbox.length} unexpected message(s) arrived before this one was sent`);
    job.progress = 'generating the payload';
    const payload = kind === 'text' ? makeText(size, seed) : kind === 'zeros' ? new Uint8Array(size) : makeBytes(size, seed);
    const bytes = kind === 'text' ? new TextEncoder().encode(payload).length : payload.byteLength;
    if (bytes !== size) throw new Error(`generated ${bytes} bytes of ${kind}, wanted ${size}`);
    job.progress = `sent ${size} bytes of ${kind}, waiting for the echo`;
    const t0 = performance.now();
    s.ws.send(payload);
    const echoed = await s.next();
    const ms = performance.now() - t0;
    job.progress = 'comparing';
    const diff = kind === 'text' ? diffText(payload, echoed) : diffBytes(payload, echoed);
    return { size, kind, ok: diff === null, ms: round(ms), utf16: kind === 'text' ? payload.length : null, diff };
  });

  E.close = (name) => E.start(async (job) => {
    const s = named(name);
    if (s.ws.readyState < 2) s.ws.close(1000, 'e2e done');
    job.progress = 'waiting for the close event';
    const closed = await s.whenClosed;
    E.sockets.delete(name);
    return closed;
  });

  // Something to look at in the screenshot.
  E.render = (text) => {
    let pre = document.getElementById('e2e-summary');
    if (!pre) {
      pre = document.createElement('pre');
      pre.id = 'e2e-summary';
      pre.style.cssText = 'font: 12px/1.35 monospace; white-space: pre-wrap; margin: 1em;';
      document.body.appendChild(pre);
    }
    pre.textContent = text;
    return true;
  };
  return true;
}

/** `name(arg, …)` with the arguments as JS literals. */
const call = (name, ...args) => `${name}(${args.map((a) => JSON.stringify(a)).join(', ')})`;

/** Human-readable size. */
const human = (n) => (n >= MiB && n % MiB === 0 ? `${n / MiB} MiB` : n >= KiB && n % KiB === 0 ? `${n / KiB} KiB` : `${n} B`);

export async function runCompressionScenario({ engine, launch = launcherFor(engine), log = (msg) => console.log(`[${engine} compression] ${msg}`) }) {
  const name = `${engine}-compression`;
  const t0 = now();
  const ms = (t) => `${Math.round(t)} ms`;
  const report = { engine, timings: {}, extensions: {}, roundTrips: [], wire: {} };
  const servers = {}; // counter, echo, plain (the --no-deflate echo)
  const relays = [];
  let browser = null;
  let pageDir = null; // the static folder with the blank page
  let failed = true;

  /** Start a job in the page (`window.__wsE2e.<callSource>`) and poll it until done (≤ timeout). */
  const job = async (callSource, what, timeout = STEP_TIMEOUT_MS) => {
    const id = await withTimeout(browser.evaluate(`() => window.__wsE2e.${callSource}`), timeout, `${what} (start)`);
    let last = null;
    const { value } = await waitFor(async () => {
      last = await browser.evaluate(`() => window.__wsE2e.poll(${id})`);
      if (!last.done) return false;
      if (last.error != null) throw new Error(`${what}: failed in the page: ${last.error}`);
      return { value: last.result };
    }, { timeout, interval: POLL_MS, what, describe: () => `page job ${id}: ${last ? last.progress : 'no answer yet'}` });
    return value;
  };
  const step = async (label, fn) => {
    const ts = now();
    const value = await fn();
    report.timings[label] = ms(now() - ts);
    return value;
  };

  await clearArtifacts(name);
  try {
    // --- start everything ---------------------------------------------------------
    await step('serversReady', async () => {
      // The page: a blank one from a static folder. The bundled pages' CSP lets them
      // connect to their own server only, and this page talks to the echo server and
      // to relays on other ports too.
      pageDir = await makeTempDir('page');
      await writeFile(path.join(pageDir, 'blank.html'), '<!doctype html><title>e2e</title><h1>e2e</h1>\n');
      const [counterServer, echoServer] = await Promise.allSettled([
        startServer({ port: await freePort(), interval: '200ms', env: SERVER_ENV, staticDir: pageDir }),
        startEcho({ port: await freePort(), env: SERVER_ENV }),
      ]);
      servers.counter = counterServer.value; // whatever started is stopped at the end
      servers.echo = echoServer.value;
      for (const r of [counterServer, echoServer]) if (r.status === 'rejected') throw r.reason;
    });
    log(`servers up: ${servers.counter.command}; ${servers.echo.command}`);
    await step('browserLaunch', async () => { browser = await launch(); });
    report.browser = browser.version || browser.name;
    log(`browser up (${report.browser}) in ${report.timings.browserLaunch}`);
    await step('pageLoad', async () => {
      await browser.open(`${servers.counter.url}static/blank.html`);
      assert.equal(await browser.evaluate(installWsProbe.toString()), true, 'installing the page probe');
    });

    // --- 1. the counter socket negotiates deflate and counts ----------------------
    const counter = await step('counterSocket', () => job(call('counter', 2), 'counter socket: open, "1", "2", close'));
    report.extensions.counter = counter.extensions;
    log(`counter socket ${counter.url}: extensions ${JSON.stringify(counter.extensions)}, ` +
      `messages ${JSON.stringify(counter.messages)} at ${counter.at.join(', ')} ms, closed ${JSON.stringify(counter.closed)}`);
    assert.match(counter.extensions, /\bpermessage-deflate\b/, 'counter socket: ws.extensions lacks permessage-deflate');
    assert.deepEqual(counter.messages, ['1', '2'], 'counter socket: the first two messages');

    // --- 2. the echo socket ---------------------------------------------------------
    const echoUrl = `${servers.echo.wsUrl}echo`;
    const echo = await step('echoOpen', () => job(call('open', 'echo', echoUrl, 'arraybuffer'), `open ${echoUrl}`));
    report.extensions.echo = echo.extensions;
    log(`echo socket ${echo.url}: extensions ${JSON.stringify(echo.extensions)} (open in ${echo.openMs} ms)`);
    assert.equal(echo.binaryType, 'arraybuffer');
    assert.ok(echo.extensions.includes('permessage-deflate'), `echo socket: ws.extensions ${JSON.stringify(echo.extensions)} lacks permessage-deflate`);
    if (EXTENSIONS_WITH_PARAMS[engine] ?? true) {
      assert.ok(echo.extensions.includes('server_no_context_takeover'),
        `echo socket: ws.extensions ${JSON.stringify(echo.extensions)} lacks server_no_context_takeover`);
    } else {
      assert.equal(echo.extensions, 'permessage-deflate',
        `echo socket: ${engine} was expected to report the bare extension name (if it now reports the ` +
        'parameters, set EXTENSIONS_WITH_PARAMS for it)');
    }

    // --- 3. round trips of every size, text and binary --------------------------------
    await step('roundTrips', async () => {
      for (const { kind, size, seed } of ROUND_TRIPS) {
        const what = `echo of ${human(size)} ${kind}`;
        let r;
        try {
          r = await job(call('roundTrip', 'echo', kind, size, seed), what);
        } catch (err) {
          report.roundTrips.push({ size, kind, ok: false, ms: null, diff: err.message });
          throw err; // a lost socket or a timeout: the rest would fail the same way
        }
        report.roundTrips.push(r);
        log(`${what}: ${r.ok ? 'ok' : 'MISMATCH'} in ${r.ms} ms` +
          (r.utf16 !== null ? ` (${r.utf16} UTF-16 units)` : '') + (r.diff ? `: ${r.diff}` : ''));
      }
    });
    const bad = report.roundTrips.filter((r) => !r.ok);
    assert.deepEqual(bad, [], `echoes that differ from what was sent: ${JSON.stringify(bad)}`);

    // --- 4. an echo without deflate ---------------------------------------------------
    servers.plain = await step('plainEchoReady', () => startEcho({ deflate: false, env: SERVER_ENV }));
    log(`second echo up: ${servers.plain.command}`);
    const plainUrl = `${servers.plain.wsUrl}echo`;
    const plain = await step('plainOpen', () => job(call('open', 'plain', plainUrl, 'arraybuffer'), `open ${plainUrl}`));
    report.extensions.plain = plain.extensions;
    log(`no-deflate echo socket ${plain.url}: extensions ${JSON.stringify(plain.extensions)}`);
    assert.equal(plain.extensions, '', 'no-deflate echo: ws.extensions should be empty');
    report.plainRoundTrips = [];
    for (const kind of ['binary', 'text']) {
      const r = await step(`plainRoundTrip${kind}`, () =>
        job(call('roundTrip', 'plain', kind, 64 * KiB, 77), `no-deflate echo of 64 KiB ${kind}`));
      report.plainRoundTrips.push(r);
      log(`no-deflate echo of 64 KiB ${kind}: ${r.ok ? 'ok' : 'MISMATCH'} in ${r.ms} ms${r.diff ? `: ${r.diff}` : ''}`);
      assert.ok(r.ok, `no-deflate echo of 64 KiB ${kind}: ${r.diff}`);
    }

    // --- 5. what it costs on the wire ---------------------------------------------------
    // Same page, same kind of socket, but through a relay here that counts bytes
    // (including the HTTP upgrade and the closing handshake).
    const wire = async (label, server, size) => {
      const relay = await startByteCounter(server.port);
      relays.push(relay);
      const url = `ws://127.0.0.1:${relay.port}/wire`;
      const opened = await job(call('open', label, url, 'arraybuffer'), `open ${url} (relay to ${server.wsUrl})`);
      const r = await job(call('roundTrip', label, 'zeros', size, 0), `${label}: echo of ${human(size)} zeros through the relay`);
      assert.ok(r.ok, `${label}: echo of ${human(size)} zeros: ${r.diff}`);
      const closed = await job(call('close', label), `${label}: close`);
      const counts = relay.counts();
      const heads = relay.heads();
      await relay.close();
      const result = {
        payload: size, up: counts.up, down: counts.down, connections: counts.connections, extensions: opened.extensions,
        offered: headerValue(heads.up, 'Sec-WebSocket-Extensions'),
        answered: headerValue(heads.down, 'Sec-WebSocket-Extensions'),
        status: heads.down.split('\r\n')[0], ms: r.ms, closed,
      };
      report.wire[label] = result;
      log(`${label}: browser offered ${JSON.stringify(result.offered)}, server answered ${JSON.stringify(result.answered)} ` +
        `(${result.status}), ws.extensions ${JSON.stringify(opened.extensions)}; ${human(size)} of zeros cost ` +
        `${counts.up} bytes browser→server and ${counts.down} bytes server→browser on the wire`);
      assert.equal(counts.connections, 1, `${label}: connections through the relay`);
      assert.match(result.status, /^HTTP\/1\.1 101 /, `${label}: upgrade status`);
      assert.match(result.offered ?? '', /\bpermessage-deflate\b/, `${label}: the browser did not offer permessage-deflate`);
      return result;
    };
    const wired = await step('wireDeflate', () => wire('wire-deflate', servers.echo, WIRE_DEFLATE_SIZE));
    assert.match(wired.answered ?? '', /^permessage-deflate\b.*\bserver_no_context_takeover\b/,
      'the deflate echo\'s Sec-WebSocket-Extensions answer');
    assert.ok(wired.up < WIRE_DEFLATE_MAX, `browser → server: ${wired.up} bytes on the wire for ${human(WIRE_DEFLATE_SIZE)} of zeros ` +
      '(the browser did not compress it)');
    assert.ok(wired.down < WIRE_DEFLATE_MAX, `server → browser: ${wired.down} bytes on the wire for ${human(WIRE_DEFLATE_SIZE)} of zeros ` +
      '(the server did not compress it)');
    const unwired = await step('wirePlain', () => wire('wire-plain', servers.plain, WIRE_PLAIN_SIZE));
    assert.equal(unwired.answered, null, 'the --no-deflate echo should answer without Sec-WebSocket-Extensions');
    assert.ok(unwired.up >= WIRE_PLAIN_SIZE && unwired.down >= WIRE_PLAIN_SIZE,
      `without deflate ${human(WIRE_PLAIN_SIZE)} should cost at least that each way: ${JSON.stringify(unwired)}`);

    // --- 6. clean closes, screenshot ------------------------------------------------------
    report.closes = {};
    for (const label of ['echo', 'plain']) {
      const closed = await job(call('close', label), `${label}: close`);
      report.closes[label] = closed;
      log(`${label} socket closed: ${JSON.stringify(closed)}`);
    }
    for (const [label, closed] of [['counter', counter.closed], ...Object.entries(report.closes),
      ...Object.entries(report.wire).map(([k, v]) => [k, v.closed])]) {
      assert.ok(closed.code === 1000 && closed.wasClean, `${label} socket: unclean close ${JSON.stringify(closed)}`);
    }

    const table = report.roundTrips.map((r) => `${human(r.size).padStart(8)} ${r.kind.padEnd(6)} ${r.ok ? 'ok' : 'FAIL'} ${String(r.ms).padStart(7)} ms`);
    await browser.evaluate(`() => window.__wsE2e.render(${JSON.stringify([
      `${engine}: ${report.browser}`,
      `counter  ws.extensions = ${JSON.stringify(report.extensions.counter)}`,
      `echo     ws.extensions = ${JSON.stringify(report.extensions.echo)}`,
      `no-defl. ws.extensions = ${JSON.stringify(report.extensions.plain)}`,
      ...table,
      `offered  ${JSON.stringify(wired.offered)}`,
      `answered ${JSON.stringify(wired.answered)}`,
      `wire, 1 MiB zeros with deflate: ${wired.up} B up, ${wired.down} B down`,
      `wire, 64 KiB zeros without:     ${unwired.up} B up, ${unwired.down} B down`,
    ].join('\n'))})`);
    const shot = await saveScreenshot(browser, name);
    log(`screenshot: ${path.relative(process.cwd(), shot)}`);
    failed = false;
  } catch (err) {
    // Add what the servers said to the failure (they run with RUST_LOG=pushwire=debug).
    const extra = Object.entries(servers).filter(([, s]) => s).map(([k, s]) => `${k} server (${s.command}) output:\n${s.output()}`);
    err.message += `\n${extra.join('\n')}`;
    throw err;
  } finally {
    report.timings.total = ms(now() - t0);
    report.ok = !failed;
    if (failed && browser) await saveFailureScreenshot(browser, name);
    const tc = now();
    await Promise.allSettled([
      browser ? withTimeout(browser.close(), 20000, `${engine} close`).catch((e) => log(`close: ${e.message}`)) : null,
      ...relays.map((r) => r.close()),
      ...Object.values(servers).map((s) => s?.stop()),
    ]);
    await removeDir(pageDir);
    report.timings.teardown = ms(now() - tc);
    report.serverOutput = Object.fromEntries(Object.entries(servers).filter(([, s]) => s).map(([k, s]) => [k, s.output()]));
    await writeReport(name, report);
    log(`done in ${report.timings.total} (teardown ${report.timings.teardown}); timings ${JSON.stringify(report.timings)}`);
  }
  return report;
}
