// Topics in Firefox ESR (Debian `firefox-esr`) via puppeteer-core over WebDriver BiDi: the chat page and pushwire.js
// against the real server (scenarios in lib/topics.mjs; each starts its own server and browser).
import { test } from 'node:test';
import { runChatScenario, runFallbackScenario, runReconnectScenario, runModuleScenario } from '../lib/topics.mjs';

const engine = 'firefox';

test(`${engine}: two pages chat through /chat and see each other in presence`, { timeout: 90000 }, async () => {
  await runChatScenario({ engine });
});

test(`${engine}: without WebSocket the page falls back to SSE; API publishes arrive`, { timeout: 90000 }, async () => {
  await runFallbackScenario({ engine, transport: 'sse' });
});

test(`${engine}: without WebSocket and EventSource the page falls back to long-polling; API publishes arrive`, { timeout: 90000 }, async () => {
  await runFallbackScenario({ engine, transport: 'poll' });
});

for (const transport of ['websocket', 'sse', 'poll']) {
  test(`${engine}: ${transport} connection cut while 20 messages are published: offsets 1..20 exactly once, in order`, { timeout: 120000 }, async () => {
    await runReconnectScenario({ engine, transport });
  });
}

test(`${engine}: pushwire.mjs as an ES module: import, subscribe, publish, receive once`, { timeout: 60000 }, async () => {
  await runModuleScenario({ engine });
});
