// The admin page (/admin, web/admin.html + web/static/admin.js) in a real browser, against two
// `pushwire --broker redis://… --admin-password …` nodes on one real Redis (lib/redis.mjs): the
// README's "Admin page" commands (`<!-- readme-example:admin -->`), with ports of our own and
// the password they give.
//
//   1. The page of node A asks for the password: a wrong one is refused (401, shown in
//      #login-error, and logged by the node as a warning: the error the page must list later);
//      the right one shows the dashboard, live (#status data-state="live").
//   2. A workload: a second page opens 3 WebSockets to node A subscribed to `e2e:load` and one
//      EventSource (/sse?topic=e2e:load); this process publishes to `e2e:load` every 100 ms,
//      on node A and node B in turn (B's messages reach A's subscribers through Redis).
//   3. The admin page must show: connections by transport (ws ≥ 4: the 3 subscribers and its own
//      socket; sse ≥ 1), the topic `e2e:load` with 4 subscribers, a delivered rate above 0, a
//      latency histogram with deliveries in it, both nodes (A's and B's addresses), and the
//      refused login among the last errors.
//   4. Screenshot to <repo>/target/e2e/<engine>-admin.png, report to <engine>-admin.json.
//
// Every wait is bounded; the nodes, Redis and the browser are stopped at the end, pass or fail.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { clearArtifacts, saveFailureScreenshot, saveScreenshot, writeReport } from './artifacts.mjs';
import { startRedis } from './redis.mjs';
import { REPO_ROOT, now, sleep, waitFor, withTimeout } from './server.mjs';
import { launchBrowser, publish, readmeBlock, startPushwire } from './topics.mjs';
const TOPIC = 'e2e:load';
const PROTOCOL_TIMEOUT_MS = 15000;
const SHOW_TIMEOUT_MS = 20000; // a change in the workload -> shown on the page (snapshots come every second)

/** `line` split into words as sh does for plain words and '…' quotes (all the README uses). */
function shellWords(line) {
  const words = [];
  for (const m of line.matchAll(/'([^']*)'|(\S+)/g)) words.push(m[1] ?? m[2]);
  return words;
}

/**
 * The README's admin example: `cargo build --release`, Redis as lib/redis.mjs starts it, then two
 * nodes. Answers each node's flags without `serve`, `--port` and the `&` (the test picks the
 * ports), with `--broker` pointing at `redisUrl`, and the admin password they set.
 */
export function readmeNodes(redisUrl) {
  const block = readmeBlock(fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8'), 'admin');
  const lines = block.split('\n').map((l) => l.trim()).filter((l) => l);
  assert.equal(lines.length, 4, `the README's admin example: ${JSON.stringify(lines)}`);
  assert.equal(lines[0], 'cargo build --release');
  assert.equal(lines[1], "redis-server --port 6379 --save '' --appendonly no --bind 127.0.0.1 &");
  let password = null;
  const nodes = lines.slice(2).map((line) => {
    const words = shellWords(line);
    assert.deepEqual([words[0], words[1], words.at(-1)], ['target/release/pushwire', 'serve', '&'], line);
    const args = words.slice(2, -1);
    const port = args.indexOf('--port');
    assert.ok(port >= 0, `--port in ${line}`);
    args.splice(port, 2);
    const broker = args.indexOf('--broker') + 1;
    assert.equal(args[broker], 'redis://127.0.0.1:6379/0', line);
    args[broker] = redisUrl;
    const given = args[args.indexOf('--admin-password') + 1];
    assert.ok(given && (password === null || password === given), `one --admin-password in ${line}`);
    password = given;
    return args;
  });
  return { nodes, password };
}

/** Everything the test looks at on /admin, read in the page. */
function readAdmin() {
  const $ = (id) => document.getElementById(id);
  const num = (el) => (el ? Number(el.dataset.value) : null);
  const rows = (sel, key) => Object.fromEntries(Array.from(document.querySelectorAll(sel), (el) => [el.dataset[key], el]));
  const connections = Object.fromEntries(Object.entries(rows('#connections tr', 'transport')).map(([k, el]) => [k, num(el)]));
  const topics = Object.fromEntries(Object.entries(rows('#topics tbody tr', 'topic')).map(([k, el]) => [k, Number(el.dataset.subscribers)]));
  return {
    state: $('status').dataset.state,
    status: $('status').textContent,
    loginVisible: !$('login').hidden,
    loginError: $('login-error').textContent,
    dashVisible: !$('dash').hidden,
    node: $('node').dataset.node || null,
    connections,
    topics,
    published: num($('rate-published')),
    delivered: num($('rate-delivered')),
    latencyCount: Number($('latency').dataset.count || 0),
    latencyBars: document.querySelectorAll('#latency rect').length,
    nodes: Array.from(document.querySelectorAll('#nodes li'), (li) => li.dataset.addr),
    errors: Array.from(document.querySelectorAll('#errors li[data-level]'), (li) => `${li.dataset.level} ${li.textContent}`),
  };
}

/** Runs in the workload page: 3 WebSockets and one EventSource subscribed to `topic`. */
function openSubscribers(topic) {
  const w = window.workload = { ws: [], sse: null, received: 0, subscribed: 0, errors: [] };
  for (let i = 0; i < 3; i++) {
    const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/ws');
    ws.onopen = () => ws.send(JSON.stringify({ op: 'sub', id: 1, topic }));
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.id === 1 && m.ok) w.subscribed += 1;
      else if (m.id === 1 && m.error) w.errors.push(m.error.message);
      else if (m.topic === topic) w.received += 1;
    };
    w.ws.push(ws);
  }
  w.sse = new EventSource(`/sse?topic=${encodeURIComponent(topic)}`);
  w.sse.onopen = () => { w.subscribed += 1; };
  w.sse.onmessage = () => { w.received += 1; };
}

export async function runAdminScenario({ engine }) {
  const name = `${engine}-admin`;
  const log = (msg) => console.log(`[${name}] ${msg}`);
  const t0 = now();
  const report = { scenario: name, engine, steps: [] };
  const step = (msg) => { report.steps.push(`${Math.round(now() - t0)} ms: ${msg}`); log(msg); };
  await clearArtifacts(name);
  let redis = null;
  const nodes = [];
  let browser = null;
  let admin = null;
  let last = null;
  let publishing = false;
  let publisher = null;
  let failed = true;
  const shot = (page) => ({ screenshot: (file) => page.screenshot({ path: file, fullPage: true }) });
  try {
    redis = await startRedis();
    step(`redis up on ${redis.port}`);
    const readme = readmeNodes(redis.url);
    for (const args of readme.nodes) nodes.push(await startPushwire({ args }));
    const [a, b] = nodes;
    step(`nodes up: A ${a.port}, B ${b.port}`);
    browser = await launchBrowser(engine);
    report.browser = browser.version;
    step(`browser up: ${browser.version}`);

    admin = await browser.newPage();
    await admin.setViewport({ width: 1280, height: 1100 });
    const read = async () => { last = await withTimeout(admin.evaluate(readAdmin), PROTOCOL_TIMEOUT_MS, 'read the admin page'); return last; };
    const until = (check, what, timeout = SHOW_TIMEOUT_MS) => waitFor(async () => check(await read()), {
      timeout, interval: 200, what: `admin page: ${what}`, describe: () => JSON.stringify(last),
    });
    await withTimeout(admin.goto(`${a.url}admin`, { waitUntil: 'load', timeout: 15000 }), 20000, 'open /admin');
    let s = await read();
    assert.ok(s.loginVisible && !s.dashVisible, `the page asks for the password first: ${JSON.stringify(s)}`);

    // 1. A wrong password, then the right one.
    await withTimeout(admin.type('#password', 'not the password'), PROTOCOL_TIMEOUT_MS, 'type');
    await withTimeout(admin.keyboard.press('Enter'), PROTOCOL_TIMEOUT_MS, 'press Enter');
    await until((v) => /wrong admin password/.test(v.loginError), 'the wrong password refused');
    step('wrong password refused');
    await withTimeout(admin.evaluate(() => { document.getElementById('password').value = ''; }), PROTOCOL_TIMEOUT_MS, 'clear');
    await withTimeout(admin.type('#password', readme.password), PROTOCOL_TIMEOUT_MS, 'type');
    await withTimeout(admin.keyboard.press('Enter'), PROTOCOL_TIMEOUT_MS, 'press Enter');
    await until((v) => v.dashVisible && v.state === 'live' && v.node, 'logged in and live');
    step('logged in, live');

    // 2. The workload.
    const load = await browser.newPage();
    await withTimeout(load.goto(`${a.url}`, { waitUntil: 'load', timeout: 15000 }), 20000, 'open the workload page');
    await withTimeout(load.evaluate(openSubscribers, TOPIC), PROTOCOL_TIMEOUT_MS, 'open the subscribers');
    await waitFor(async () => (await load.evaluate(() => window.workload.subscribed)) === 4,
      { timeout: 15000, interval: 100, what: '4 subscribers subscribed' });
    step('4 subscribers on node A');
    publishing = true;
    let sent = 0;
    publisher = (async () => {
      while (publishing) {
        await publish(sent % 2 ? b.port : a.port, { n: sent }, TOPIC);
        sent += 1;
        await sleep(100);
      }
    })();

    // 3. What the page must show.
    await until((v) => v.connections.ws >= 4 && v.connections.sse >= 1, 'connections by transport');
    step(`connections: ${JSON.stringify(last.connections)}`);
    await until((v) => v.topics[TOPIC] === 4, `topic ${TOPIC} with 4 subscribers`);
    step(`topics: ${JSON.stringify(last.topics)}`);
    await until((v) => v.delivered > 0 && v.latencyCount > 0 && v.latencyBars > 0, 'a delivered rate and latencies');
    step(`rate: delivered ${last.delivered}/s, ${last.latencyCount} latencies`);
    await until((v) => v.nodes.length === 2 && v.nodes.includes(`127.0.0.1:${a.port}`) && v.nodes.includes(`127.0.0.1:${b.port}`), 'both nodes');
    step(`nodes: ${last.nodes.join(', ')}`);
    await until((v) => v.errors.some((e) => e.startsWith('WARN') && e.includes('wrong admin password')), 'the refused login among the errors');
    step('the refused login is listed');
    // A few more seconds of chart for the picture.
    await sleep(5000);
    const received = await load.evaluate(() => window.workload.received);
    assert.ok(received > 0, 'the subscribers received messages');
    report.final = await read();
    await admin.bringToFront();
    await saveScreenshot(shot(admin), name);
    step(`screenshot saved; ${sent} published, ${received} received`);
    failed = false;
  } catch (err) {
    if (last) err.message += `\nlast read of the page: ${JSON.stringify(last)}`;
    for (const node of nodes) err.message += `\nnode ${node.port}:\n${node.output()}`;
    if (admin) await saveFailureScreenshot(shot(admin), name);
    throw err;
  } finally {
    publishing = false;
    if (publisher) await publisher.catch(() => {});
    report.ok = !failed;
    await Promise.allSettled([
      browser ? withTimeout(browser.close(), 20000, 'browser close').catch((e) => log(`close: ${e.message}`)) : null,
      ...nodes.map((node) => node.stop()),
    ]);
    if (redis) await redis.stop();
    report.total = `${Math.round(now() - t0)} ms`;
    await writeReport(name, report);
    log(`done in ${report.total}`);
  }
}
