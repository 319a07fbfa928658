// Permissions for as long as a subscription lives, in WebKitGTK MiniBrowser (WebKitWebDriver under
// xvfb-run): pushwire.js renews both kinds of token across three lifetimes (lib/permissions.mjs;
// the page asks the test for tokens through lib/webkit-pages.mjs's exposeFunction).
import { test } from 'node:test';
import { runTokenLifetimesScenario } from '../lib/permissions.mjs';

for (const transport of ['websocket', 'sse', 'poll']) {
  test(`webkit: over ${transport}, a page outlives three lifetimes of its connection and subscription tokens with every message once, in order`, { timeout: 120000 }, async () => {
    await runTokenLifetimesScenario({ engine: 'webkit', transport });
  });
}
