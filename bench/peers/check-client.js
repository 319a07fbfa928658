'use strict';
// The client half of bench/peers/check: checks one running peer.
//
// Usage: node check-client.js <label> <ws://127.0.0.1:PORT> <interval_ms> <deflate: yes|no>
//
// Prints one line per check ("ok …" or "FAIL …") and exits 1 at the first failure.
// Every client offers permessage-deflate (ws's default as a client); "yes" means the
// peer must accept it, "no" that it must not.

const path = require('node:path');
const { performance } = require('node:perf_hooks');
const WebSocket = require(path.join(__dirname, 'node-ws', 'node_modules', 'ws'));

const [label, base, intervalArg, deflateArg] = process.argv.slice(2);
const intervalMs = Number(intervalArg);
const expectDeflate = deflateArg === 'yes';
if (!base || !(intervalMs > 0) || !['yes', 'no'].includes(deflateArg)) {
  console.error('usage: node check-client.js <label> <ws://host:port> <interval_ms> <yes|no>');
  process.exit(2);
}

const STEP_TIMEOUT_MS = 10000;
const opened = [];

function fail(message) {
  console.log(`FAIL ${label}: ${message}`);
  for (const ws of opened) ws.terminate();
  process.exit(1);
}

function ok(message) {
  console.log(`ok   ${label}: ${message}`);
}

function withTimeout(promise, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${STEP_TIMEOUT_MS} ms: ${what}`)), STEP_TIMEOUT_MS);
    }),
  ]);
}

// Opens a WebSocket and resolves with it and the response's Sec-WebSocket-Extensions.
function connect(route) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(base + route); // offers permessage-deflate by default
    opened.push(ws);
    let extensions = null;
    ws.on('upgrade', (res) => {
      extensions = res.headers['sec-websocket-extensions'] ?? null;
    });
    ws.on('open', () => resolve({ ws, extensions }));
    ws.on('error', (err) => reject(new Error(`${route}: ${err.message}`)));
    ws.on('unexpected-response', (req, res) => reject(new Error(`${route}: HTTP ${res.statusCode} instead of 101`)));
  });
}

// Resolves with the next `count` messages of `ws` as [text, isBinary].
function collect(ws, count) {
  return new Promise((resolve, reject) => {
    const got = [];
    const onMessage = (data, isBinary) => {
      got.push([data.toString('utf8'), isBinary]);
      if (got.length === count) {
        ws.off('message', onMessage);
        resolve(got);
      }
    };
    ws.on('message', onMessage);
    ws.on('close', (code) => reject(new Error(`closed (${code}) after ${got.length} of ${count} messages`)));
  });
}

function checkExtensions(route, extensions) {
  const named = extensions !== null && /permessage-deflate/.test(extensions);
  if (expectDeflate && !named) {
    fail(`${route}: the handshake response does not name permessage-deflate (Sec-WebSocket-Extensions: ${extensions})`);
  }
  if (!expectDeflate && named) {
    fail(`${route}: permessage-deflate was negotiated without --deflate (${extensions})`);
  }
  return named ? `negotiated "${extensions}"` : 'no permessage-deflate';
}

async function checkCounter() {
  const started = performance.now();
  const { ws, extensions } = await withTimeout(connect('/socket'), 'connect to /socket');
  const ext = checkExtensions('/socket', extensions);
  const times = [];
  ws.on('message', () => times.push(performance.now() - started));
  const got = await withTimeout(collect(ws, 3), 'three messages from /socket');
  ws.close();
  const texts = got.map(([text]) => text);
  if (got.some(([, isBinary]) => isBinary)) fail('/socket sent a binary frame, expected text');
  if (texts.join(',') !== '1,2,3') fail(`/socket sent ${JSON.stringify(texts)}, expected ["1","2","3"]`);
  // The server starts its grid after the client started connecting, so the n-th
  // message cannot arrive before n intervals (2 ms of slack for timer rounding).
  times.length = 3;
  times.forEach((t, i) => {
    if (t < (i + 1) * intervalMs - 2) {
      fail(`/socket message ${i + 1} came at ${t.toFixed(1)} ms, before ${(i + 1) * intervalMs} ms: not on the grid`);
    }
  });
  // And not much later: the interval is COUNTER_INTERVAL_MS, not the default second.
  if (times[2] > 3 * intervalMs + 700) {
    fail(`/socket message 3 came at ${times[2].toFixed(0)} ms, not near ${3 * intervalMs} ms: is COUNTER_INTERVAL_MS honoured?`);
  }
  ok(`/socket gave "1","2","3" in order at ${times.map((t) => t.toFixed(0)).join(', ')} ms (interval ${intervalMs} ms); ${ext}`);
}

async function checkBroadcast() {
  const [a, b] = await withTimeout(Promise.all([connect('/broadcast'), connect('/broadcast')]), 'connect two clients to /broadcast');
  const ext = checkExtensions('/broadcast', a.extensions);
  checkExtensions('/broadcast', b.extensions);
  const nonce = Math.random().toString(36).slice(2);
  const messages = [
    [a.ws, `hello from A, ünïcödé ✓ ${nonce}`],
    [b.ws, `from B ${nonce} `.repeat(300)], // about 5 KiB: above ws's deflate threshold
  ];
  for (const [sender, text] of messages) {
    const receipts = Promise.all([collect(a.ws, 1), collect(b.ws, 1)]);
    sender.send(text);
    const [[gotA], [gotB]] = await withTimeout(receipts, `/broadcast of a ${Buffer.byteLength(text)}-byte message`);
    for (const [who, [got, isBinary]] of [['A', gotA], ['B', gotB]]) {
      if (isBinary) fail(`/broadcast: client ${who} got a binary frame, expected text`);
      if (got !== text) fail(`/broadcast: client ${who} got ${JSON.stringify(got.slice(0, 60))}…, not the message sent`);
    }
  }
  a.ws.close();
  b.ws.close();
  ok(`/broadcast: both clients received, unchanged, a ${Buffer.byteLength(messages[0][1])}-byte message from A and a ${Buffer.byteLength(messages[1][1])}-byte one from B; ${ext}`);
}

(async () => {
  try {
    await checkCounter();
    await checkBroadcast();
  } catch (err) {
    fail(err.message);
  }
  process.exit(0);
})();
