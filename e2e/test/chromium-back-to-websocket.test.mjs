// Back to WebSocket in Chromium (Debian `chromium`, puppeteer-core over CDP):
// pushwire.js falls back when a proxy refuses WebSocket, probes it, and switches back with every
// message once (scenarios in lib/back-to-websocket.mjs; each starts its own server, proxy and browser).
import { test } from 'node:test';
import { runBackToWebSocketScenario, runScriptedSwitchScenario } from '../lib/back-to-websocket.mjs';

const engine = 'chromium';

for (const fallback of ['sse', 'poll']) {
  test(`${engine}: WebSocket refused by a proxy, then allowed: ${fallback} -> websocket with every message once, in order`, { timeout: 150000 }, async () => {
    await runBackToWebSocketScenario({ engine, fallback });
  });
}

test(`${engine}: pushwire.js against scripted transports: messages on both during the switch are delivered once; probes back off`, { timeout: 60000 }, async () => {
  await runScriptedSwitchScenario({ engine });
});
