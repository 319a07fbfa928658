// CORS in WebKitGTK (`MiniBrowser` under WebKitWebDriver): pages on other origins call pushwire's
// publish API, /sse and /poll; allowed by --allowed-origin they work, refused they are blocked
// (scenario in lib/cors.mjs).
import { test } from 'node:test';
import { runCorsScenario } from '../lib/cors.mjs';

test('webkit: a page on an allowed origin publishes, streams and long-polls across origins; a refused one is blocked and publishes nothing', { timeout: 120000 }, async () => {
  await runCorsScenario({ engine: 'webkit' });
});
