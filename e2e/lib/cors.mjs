// CORS in a real browser: pages served by two small Node servers on other ports of 127.0.0.1
// (so other origins than pushwire's) call pushwire across origins.
//
//   1. two page servers start on free ports (their origins differ from pushwire's by the port);
//      pushwire starts with `--api-key KEY --allowed-origin <the first one's origin>`;
//   2. the allowed page, in the browser, calls pushwire:
//        - `fetch` POST /api/publish/{topic} with `Authorization: Bearer KEY` and a JSON body
//          (both make the browser send a preflight first): it reads the answer's offset;
//        - an `EventSource` on /sse: it gets `subscribed`, then a message the page publishes;
//        - two long-polls with `fetch` (the second with `credentials: 'include'`, which only
//          works because the server sends Access-Control-Allow-Credentials): the position, then
//          the message published in between;
//   3. the refused page does the same: the browser must block all three (the publish's preflight
//      fails, so `fetch` rejects; the EventSource fails and closes without a message; the poll's
//      answer is hidden, so `fetch` rejects), and the server must not have published: the next
//      publish on that topic, from this process, gets offset 1;
//   4. report (what each page observed, the server's output) to <repo>/target/e2e/<engine>-cors.json.
// Every wait is bounded; the servers and the browser are always stopped.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import { launcherFor } from './engines.mjs';
import { clearArtifacts, saveFailureScreenshot, writeReport } from './artifacts.mjs';
import { startPushwire } from './topics.mjs';
import { withTimeout } from './server.mjs';

const KEY = 'e2e-cors-key';
const STEP_MS = 10000; // each thing a page waits for

/** A server of one blank page on a free 127.0.0.1 port: { origin, close() }. */
async function startPageServer(title) {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`<!doctype html><title>${title}</title><h1>${title}</h1>`);
  });
  server.listen(0, '127.0.0.1');
  await withTimeout(once(server, 'listening'), 5000, `${title} page server to listen`);
  const { port } = server.address();
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => withTimeout(new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    }), 5000, `${title} page server to close`).catch(() => {}),
  };
}

/** POST /api/publish/{topic} from this process (no Origin: not a page); answers the offset. */
async function publishDirect(pushwireUrl, topic, data) {
  const res = await fetch(`${pushwireUrl}api/publish/${topic}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(data),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  assert.equal(res.status, 200, `direct publish answered ${res.status}: ${text}`);
  return JSON.parse(text).offset;
}

/**
 * The page's part, as source for `evaluate`: publish, SSE and long-poll across origins.
 * Answers what the page observed; never throws (a failure is recorded as a string).
 */
function pageScript({ server, topic, key, stepMs }) {
  return `async () => {
    const SERVER = ${JSON.stringify(server)};
    const TOPIC = ${JSON.stringify(topic)};
    const KEY = ${JSON.stringify(key)};
    const STEP = ${stepMs};
    const within = (promise, what) => Promise.race([
      promise,
      new Promise((_, reject) => setTimeout(() => reject(new Error('timed out: ' + what)), STEP)),
    ]);
    const outcome = async (work) => {
      try { return { ok: true, value: await work() }; }
      catch (e) { return { ok: false, error: (e && e.name ? e.name + ': ' : '') + (e && e.message) }; }
    };
    const publish = (data) => within(fetch(SERVER + 'api/publish/' + TOPIC, {
      method: 'POST',
      headers: { 'Authorization': 'Bearer ' + KEY, 'Content-Type': 'application/json' },
      body: JSON.stringify(data),
    }).then(async (r) => ({ status: r.status, body: await r.json() })), 'publish');
    const seen = { origin: location.origin };

    seen.publish = await outcome(() => publish({ n: 1 }));

    seen.sse = await outcome(() => within(new Promise((resolve, reject) => {
      const events = new EventSource(SERVER + 'sse?topic=' + encodeURIComponent(TOPIC));
      const got = { subscribed: null, messages: [] };
      events.addEventListener('subscribed', (e) => {
        got.subscribed = JSON.parse(e.data);
        publish({ n: 2 }).catch((err) => { events.close(); reject(err); });
      });
      events.onmessage = (e) => {
        got.messages.push(JSON.parse(e.data));
        events.close();
        resolve(got);
      };
      events.onerror = () => {
        const state = events.readyState;
        events.close();
        reject(new Error('EventSource error, readyState ' + state + ', ' + got.messages.length + ' messages'));
      };
    }), 'EventSource'));

    seen.poll = await outcome(async () => {
      const url = SERVER + 'poll?topic=' + encodeURIComponent(TOPIC);
      const first = await within(fetch(url).then((r) => r.json()), 'first poll');
      await publish({ n: 3 });
      const second = await within(fetch(url + '&timeout=5000&since=' + encodeURIComponent(first.since), {
        credentials: 'include',
      }).then((r) => r.json()), 'second poll');
      return { since: first.since, messages: second.messages };
    });
    return seen;
  }`;
}

export async function runCorsScenario({ engine }) {
  const name = `${engine}-cors`;
  await clearArtifacts(name);
  const report = { engine, started: new Date().toISOString() };
  const allowedPages = await startPageServer('allowed');
  const refusedPages = await startPageServer('refused');
  let server;
  let browser;
  try {
    server = await startPushwire({ args: ['--api-key', KEY, '--allowed-origin', allowedPages.origin] });
    report.server = server.command;
    report.allowedOrigin = allowedPages.origin;
    report.refusedOrigin = refusedPages.origin;
    browser = await launcherFor(engine)();
    report.browser = browser.version;

    // From the allowed origin: everything works.
    await browser.open(`${allowedPages.origin}/`);
    const allowed = await withTimeout(
      browser.evaluate(pageScript({ server: server.url, topic: 'cors:allowed', key: KEY, stepMs: STEP_MS })),
      6 * STEP_MS, 'the allowed page');
    report.allowed = allowed;
    assert.equal(allowed.origin, allowedPages.origin, 'the page runs on its own origin');
    assert.ok(allowed.publish.ok, `fetch POST from the allowed origin: ${JSON.stringify(allowed.publish)}`);
    assert.equal(allowed.publish.value.status, 200);
    assert.equal(allowed.publish.value.body.offset, 1, 'the page reads the answer: offset 1');
    assert.ok(allowed.sse.ok, `EventSource from the allowed origin: ${JSON.stringify(allowed.sse)}`);
    assert.equal(allowed.sse.value.subscribed.subs[0].offset, 1, 'subscribed at offset 1');
    assert.deepEqual(allowed.sse.value.messages.map((m) => [m.offset, m.data]), [[2, { n: 2 }]],
      'the message published from the page arrives over SSE');
    assert.ok(allowed.poll.ok, `long-poll from the allowed origin: ${JSON.stringify(allowed.poll)}`);
    assert.deepEqual(allowed.poll.value.messages.map((m) => [m.offset, m.data]), [[3, { n: 3 }]],
      'the long-poll (with credentials) gets the message published in between');

    // From the refused origin: the browser blocks all three, and nothing is published.
    await browser.open(`${refusedPages.origin}/`);
    const refused = await withTimeout(
      browser.evaluate(pageScript({ server: server.url, topic: 'cors:refused', key: KEY, stepMs: STEP_MS })),
      6 * STEP_MS, 'the refused page');
    report.refused = refused;
    assert.equal(refused.origin, refusedPages.origin);
    assert.equal(refused.publish.ok, false, `the publish must be blocked: ${JSON.stringify(refused.publish)}`);
    assert.match(refused.publish.error, /^TypeError/, 'a network error, as CORS failures are');
    assert.equal(refused.sse.ok, false, `the EventSource must fail: ${JSON.stringify(refused.sse)}`);
    assert.match(refused.sse.error, /EventSource error, readyState 2, 0 messages/);
    assert.equal(refused.poll.ok, false, `the poll's answer must be hidden: ${JSON.stringify(refused.poll)}`);
    assert.match(refused.poll.error, /^TypeError/);
    const next = await publishDirect(server.url, 'cors:refused', { n: 'direct' });
    report.refusedTopicNextOffset = next;
    assert.equal(next, 1, 'the refused page published nothing (its preflight stopped the POST)');
    report.result = 'pass';
  } catch (err) {
    report.result = 'fail';
    report.error = String(err?.stack ?? err);
    if (browser) await saveFailureScreenshot(browser, name);
    throw err;
  } finally {
    report.serverOutput = server?.output();
    await writeReport(name, report);
    await browser?.close().catch(() => {});
    await server?.stop().catch(() => {});
    await allowedPages.close();
    await refusedPages.close();
  }
}
