// Topics in Chromium (Debian `chromium`) via puppeteer-core over CDP: the chat page and pushwire.js
// against the real server (scenarios in lib/topics.mjs; each starts its own server and browser).
import { test } from 'node:test';
import { runChatScenario, runClientGuaranteesScenario, runFallbackScenario, runReconnectScenario, runTokenScenario, runModuleScenario } from '../lib/topics.mjs';

const engine = 'chromium';

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

test(`${engine}: pushwire.js against a scripted server: drops repeats, reports a gap and an epoch change, resumes with since`, { timeout: 60000 }, async () => {
  await runClientGuaranteesScenario({ engine });
});

for (const transport of ['websocket', 'sse', 'poll']) {
  test(`${engine}: pushwire.js with a token function over ${transport}: authenticated, kept past the first token's expiry, a forged token refused`, { timeout: 90000 }, async () => {
    await runTokenScenario({ engine, transport });
  });
}

test(`${engine}: pushwire.mjs as an ES module: import, subscribe, publish, receive once`, { timeout: 60000 }, async () => {
  await runModuleScenario({ engine });
});
