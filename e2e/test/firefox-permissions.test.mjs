// Permissions for as long as a subscription lives, in Firefox ESR (Debian `firefox-esr`) via
// puppeteer-core over WebDriver BiDi: pushwire.js renews both kinds of token across three
// lifetimes (lib/permissions.mjs).
import { test } from 'node:test';
import { runTokenLifetimesScenario } from '../lib/permissions.mjs';

for (const transport of ['websocket', 'sse', 'poll']) {
  test(`firefox: over ${transport}, a page outlives three lifetimes of its connection and subscription tokens with every message once, in order`, { timeout: 120000 }, async () => {
    await runTokenLifetimesScenario({ engine: 'firefox', transport });
  });
}
