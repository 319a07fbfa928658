// A node restarts under a page (docs/operations.md, "Drain and rolling restarts"): two pushwire
// nodes share a real redis-server; the chat page (pushwire.js) is connected straight to node A over
// one transport. A gets SIGTERM (it tells its clients to reconnect: close 1012 on WebSocket, the
// SSE stream's end after `retry:`, a waiting poll answered with Retry-After) and exits; messages
// are published on B meanwhile; A starts again on its port. The page must end with exactly every
// message, in order, once, on the transport it had (a restart is no reason to fall back).

import assert from 'node:assert/strict';
import net from 'node:net';
import { chatPage, launchBrowser, publish, startPushwire } from './topics.mjs';
import { saveFailureScreenshot, saveScreenshot, writeReport } from './artifacts.mjs';
import { freePort, now, sleep, spawnGroup, stopGroup, waitFor, withTimeout } from './server.mjs';

const RECOVERY_TIMEOUT_MS = 30000;

/** Whether a Redis on `port` answers PING (within 500 ms). */
function redisAnswers(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const done = (ok) => { socket.destroy(); resolve(ok); };
    socket.setTimeout(500, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

/** redis-server on a free port, without persistence; { url, stop() }. */
async function startRedis() {
  const port = await freePort();
  const child = await spawnGroup('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  const redis = { url: `redis://127.0.0.1:${port}/0`, stop: () => stopGroup(child, { signal: 'SIGTERM', graceMs: 3000 }) };
  try {
    await waitFor(() => redisAnswers(port), { timeout: 10000, interval: 50, what: 'redis-server to answer PING', describe: () => child.outputTail() });
  } catch (err) {
    await redis.stop();
    throw err;
  }
  return redis;
}

/** Resolves when `child` has exited (at most `ms`). */
function exited(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return withTimeout(new Promise((resolve) => child.once('exit', () => resolve())), ms, 'the node to exit after SIGTERM');
}

export async function runRestartScenario({ engine, transport, total = 15 }) {
  const name = `${engine}-drain-restart-${transport}`;
  const log = (msg) => console.log(`[${name}] ${msg}`);
  const t0 = now();
  const report = { scenario: name, engine, steps: [] };
  const step = (msg) => { report.steps.push(`${Math.round(now() - t0)} ms: ${msg}`); log(msg); };
  const stops = [];
  let browser = null;
  let page = null;
  let failed = true;
  try {
    const redis = await startRedis();
    stops.push(redis.stop);
    const args = ['--broker', redis.url, '--drain-delay', '1s'];
    let a = await startPushwire({ args });
    stops.push(() => a.stop());
    const b = await startPushwire({ args });
    stops.push(b.stop);
    step(`nodes up on one Redis: A ${a.command}; B on port ${b.port}`);
    browser = await launchBrowser(engine);
    report.browser = browser.version;
    page = chatPage(await browser.newPage(), 'erin');
    // Over WebSocket the page may fall back (the default order), and must not.
    const order = transport === 'websocket' ? 'websocket,sse,poll' : transport;
    await page.open(`${a.url}chat?name=erin&transport=${order}`);
    await page.connected(transport);
    step(`page connected to A over ${transport}`);

    const third = Math.floor(total / 3);
    let n = 0;
    const send = (port) => publish(port, { name: 'api', text: `message ${++n}` });
    while (n < third) await send(a.port);
    await page.until((s) => s.messages.length >= third, `the first ${third} messages arrive`);

    const ts = now();
    a.child.kill('SIGTERM');
    await exited(a.child, 15000);
    step(`A drained and exited ${Math.round(now() - ts)} ms after SIGTERM`);
    while (n < 2 * third) await send(b.port); // while A is away
    a = await startPushwire({ args, port: a.port });
    step(`A started again on port ${a.port}; ${third} messages were published on B meanwhile`);
    while (n < total) await send(a.port);
    const tr = now();
    await page.until((s) => s.messages.length >= total && s.state === 'open', `all ${total} messages after the restart`, RECOVERY_TIMEOUT_MS);
    step(`all ${total} shown ${Math.round(now() - tr)} ms after the last publish`);
    await sleep(1000); // a late duplicate would show up now
    const s = await page.read();
    const want = Array.from({ length: total }, (_, i) => i + 1);
    assert.deepEqual(s.messages.map((m) => m.offset), want, 'exactly offsets 1..N, in order, each once');
    assert.deepEqual(s.messages.map((m) => m.text), want.map((i) => `message ${i}`), 'each offset shows its own message');
    assert.equal(new Set(s.messages.map((m) => m.epoch)).size, 1, 'one epoch');
    assert.equal(s.transport, transport, `back on ${transport}, not fallen back`);
    if (transport !== 'poll') {
      // A long-poll carries its positions in every poll: when its next poll reaches A again it
      // just goes on, with no connection lost to recover from.
      assert.ok(s.log.some((l) => l.startsWith('Recovered chat:lobby')), `the page reports a recovery: ${JSON.stringify(s.log)}`);
    }
    assert.ok(!s.log.some((l) => l.startsWith('Lost')), `nothing reported lost: ${JSON.stringify(s.log)}`);
    if (transport === 'websocket') {
      // WebKitGTK's WebSocket (libsoup) takes a close code between 1012 and 2999 for a protocol
      // error and reports 1006: the page still reconnects and resumes, as after any drop.
      const told = engine === 'webkit' ? /WebSocket closed \((1012 service restart|1006)\)/ : /WebSocket closed \(1012 service restart\)/;
      assert.ok(s.log.some((l) => told.test(l)), `the page was told to reconnect (${told}): ${JSON.stringify(s.log)}`);
      assert.ok(!s.log.some((l) => /^Open: (sse|poll)/.test(l)), `no fallback after the restart: ${JSON.stringify(s.log)}`);
    }
    report.log = s.log;
    step(`offsets 1..${total} exactly once, in order, over ${transport}; log ${JSON.stringify(s.log.slice(-6))}`);
    await saveScreenshot({ screenshot: (file) => page.page.screenshot({ path: file }) }, name);
    failed = false;
  } catch (err) {
    if (page && page.last()) err.message += `\npage: ${JSON.stringify(page.last())}`;
    if (page) await saveFailureScreenshot({ screenshot: (file) => page.page.screenshot({ path: file }) }, name).catch(() => {});
    throw err;
  } finally {
    report.ok = !failed;
    await Promise.allSettled([
      browser ? withTimeout(browser.close(), 20000, 'browser close').catch((e) => log(`close: ${e.message}`)) : null,
      ...stops.map((stop) => stop()),
    ]);
    report.total = `${Math.round(now() - t0)} ms`;
    await writeReport(name, report);
    log(`done in ${report.total}`);
  }
}
