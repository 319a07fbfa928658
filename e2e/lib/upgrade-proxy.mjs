// An HTTP proxy that refuses WebSocket upgrades until told to allow them, as some corporate
// proxies and middleboxes do. It listens on 127.0.0.1 (a port picked by binding 0) in front of a
// pushwire server on 127.0.0.1:`targetPort`:
//
//   - plain HTTP requests (pages, /pushwire.js, /sse streams, /poll, the publish API) are
//     forwarded one upstream connection each, streamed both ways; the Host header is kept, so
//     the server sees the page's own origin;
//   - an `Upgrade: websocket` request is answered `403 Forbidden` (and the connection closed)
//     while upgrades are refused; once `allowUpgrades()` is called, it is relayed byte for byte
//     to the server (the request head as received, then both directions piped).
//   - `allowUpgrades({ hold: true })`: the next relayed WebSocket gets the server's `101` head at
//     once, but what the server sends after it is held back until `release()` (what the client
//     sends goes through, and is counted): a slow path, to make a switch overlap on purpose.
//
// `stats()` counts requests per path, what is in flight per path, and upgrades refused/relayed.
//
// `initScript` (optional, JavaScript source): runs before any script of every page loaded through
// the proxy. The proxy serves it at `/__e2e-init.js` and puts `<script src="/__e2e-init.js">`
// first in the `<head>` of every `text/html` answer (read whole; the request goes without
// Accept-Encoding, so the body is plain). A script of the page's own origin, so the server's
// Content-Security-Policy (`script-src 'self'`) lets it run. The WebKit topic scenarios use it
// (lib/webkit-pages.mjs): WebDriver cannot run a script before a page's own.
//
// `calls` (optional, { name: function }): `POST /__e2e-call/<name>` with a JSON array body calls
// that function in this process with those arguments and answers its result as JSON: how a page
// loaded through the proxy asks the test for something (as puppeteer's exposeFunction).

import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { withTimeout } from './server.mjs';

// Headers about one hop, not the message: Node sets its own on each side.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

const endToEnd = (headers) => Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name)));

/**
 * Start the proxy to 127.0.0.1:`targetPort`. Resolves to
 * { port, allowUpgrades(), refuseUpgrades(), stats(), close() }.
 */
export async function startUpgradeProxy(targetPort, { upgrades = false, initScript = null, calls = {} } = {}) {
  const INIT_PATH = '/__e2e-init.js';
  const initTag = `<script src="${INIT_PATH}"></script>`;
  let allow = upgrades;
  let holdNext = false;
  let held = null; // { clientBytes, chunks, headDone, released, socket } of the held tunnel
  const stats = { requests: {}, inFlight: {}, upgradesRefused: 0, upgradesRelayed: 0, errors: 0 };
  const tunnels = new Set(); // sockets of relayed upgrades
  const count = (table, key, delta) => { table[key] = (table[key] || 0) + delta; };

  const server = http.createServer((req, res) => {
    const pathname = new URL(req.url, 'http://proxy.invalid').pathname;
    if (initScript !== null && pathname === INIT_PATH) {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' });
      res.end(initScript);
      return;
    }
    const call = pathname.startsWith('/__e2e-call/') ? calls[pathname.slice('/__e2e-call/'.length)] : undefined;
    if (call && req.method === 'POST') {
      const chunks = [];
      req.on('data', (chunk) => chunks.push(chunk));
      req.on('end', async () => {
        try {
          const result = await call(...JSON.parse(Buffer.concat(chunks).toString('utf8')));
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(result ?? null));
        } catch (err) {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(String(err?.message ?? err));
        }
      });
      return;
    }
    count(stats.requests, pathname, 1);
    count(stats.inFlight, pathname, 1);
    let done = false;
    const finish = () => { if (!done) { done = true; count(stats.inFlight, pathname, -1); } };
    const headers = endToEnd(req.headers);
    if (initScript !== null) delete headers['accept-encoding'];
    const upstream = http.request({
      host: '127.0.0.1',
      port: targetPort,
      method: req.method,
      path: req.url,
      headers,
      agent: false, // one upstream connection per request, closed with it
    }, (answer) => {
      if (initScript !== null && /^text\/html\b/.test(answer.headers['content-type'] ?? '')) {
        const chunks = [];
        answer.on('data', (chunk) => chunks.push(chunk));
        answer.on('end', () => {
          const html = Buffer.concat(chunks).toString('utf8');
          const withInit = /<head[^>]*>/i.test(html) ? html.replace(/<head[^>]*>/i, (tag) => tag + initTag) : initTag + html;
          const body = Buffer.from(withInit, 'utf8');
          const head = endToEnd(answer.headers);
          head['content-length'] = String(body.length);
          res.writeHead(answer.statusCode, answer.statusMessage, head);
          res.end(body);
        });
        answer.on('error', () => res.destroy());
        return;
      }
      res.writeHead(answer.statusCode, answer.statusMessage, endToEnd(answer.headers));
      res.flushHeaders(); // an event stream's head goes out before its first event
      answer.pipe(res);
      answer.on('error', () => res.destroy());
    });
    upstream.on('error', () => {
      if (done) return; // destroyed below, after the browser went away
      stats.errors += 1;
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.destroy();
    });
    req.pipe(upstream);
    // The browser went away (e.g. EventSource.close(), an aborted poll): so does the upstream request.
    res.on('close', () => { finish(); upstream.destroy(); });
  });
  server.requestTimeout = 0; // event streams and long-polls last as long as they last
  server.headersTimeout = 10000;

  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => {});
    if (!allow) {
      stats.upgradesRefused += 1;
      const body = 'WebSocket refused by the test proxy\n';
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      return;
    }
    stats.upgradesRelayed += 1;
    const hold = holdNext ? (held = { clientBytes: 0, chunks: [], head: Buffer.alloc(0), headDone: false, released: false, socket }) : null;
    holdNext = false;
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [socket, upstream]) {
      tunnels.add(s);
      s.on('close', () => tunnels.delete(s));
      s.on('error', () => { socket.destroy(); upstream.destroy(); });
    }
    upstream.on('connect', () => {
      let lines = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      upstream.write(`${lines}\r\n`);
      if (head.length) upstream.write(head);
      socket.pipe(upstream);
      if (!hold) return upstream.pipe(socket);
      socket.on('data', (chunk) => { hold.clientBytes += chunk.length; });
      upstream.on('data', (chunk) => {
        if (hold.released) return socket.write(chunk);
        if (hold.headDone) return hold.chunks.push(chunk);
        hold.head = Buffer.concat([hold.head, chunk]);
        const end = hold.head.indexOf('\r\n\r\n');
        if (end < 0) return;
        hold.headDone = true;
        socket.write(hold.head.subarray(0, end + 4)); // the 101: the browser's WebSocket opens
        if (hold.head.length > end + 4) hold.chunks.push(hold.head.subarray(end + 4));
      });
      upstream.on('end', () => { if (hold.released) socket.end(); else hold.ended = true; });
    });
  });

  server.listen(0, '127.0.0.1');
  await withTimeout(once(server, 'listening'), 5000, 'upgrade proxy to listen');
  return {
    port: server.address().port,
    /** Relay upgrades from now on; with `hold`, hold back what the server sends on the next one. */
    allowUpgrades({ hold = false } = {}) { allow = true; holdNext = hold; },
    refuseUpgrades() { allow = false; },
    /** The held tunnel: bytes the client sent after the upgrade, bytes held; null if none. */
    held: () => (held ? { clientBytes: held.clientBytes, heldBytes: held.chunks.reduce((n, c) => n + c.length, 0), released: held.released } : null),
    /** Send what was held, and everything after it as it comes. */
    release() {
      if (!held || held.released) return;
      held.released = true;
      for (const chunk of held.chunks.splice(0)) held.socket.write(chunk);
      if (held.ended) held.socket.end();
    },
    stats: () => ({ ...stats, requests: { ...stats.requests }, inFlight: { ...stats.inFlight }, tunnels: tunnels.size, upgrades: allow }),
    async close() {
      allow = false;
      for (const s of tunnels) s.destroy();
      server.closeAllConnections();
      await withTimeout(new Promise((resolve) => server.close(() => resolve())), 5000, 'upgrade proxy close').catch(() => {});
    },
  };
}
