// Back to WebSocket in Firefox ESR (Debian `firefox-esr`, puppeteer-core over WebDriver BiDi):
// pushwire.js falls back when a proxy refuses WebSocket, probes it, and switches back with every
// message once (scenarios in lib/back-to-websocket.mjs; each starts its own server, proxy and browser).
import { test } from 'node:test';
import { runBackToWebSocketScenario } from '../lib/back-to-websocket.mjs';

const engine = 'firefox';

for (const fallback of ['sse', 'poll']) {
  test(`${engine}: WebSocket refused by a proxy, then allowed: ${fallback} -> websocket with every message once, in order`, { timeout: 150000 }, async () => {
    await runBackToWebSocketScenario({ engine, fallback });
  });
}
