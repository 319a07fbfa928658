// WebKit (WebKitGTK MiniBrowser) via WebKitWebDriver under xvfb-run, plain W3C WebDriver over HTTP.
import { test } from 'node:test';
import { runCounterScenario } from '../lib/scenario.mjs';

test('webkit: counts 1-2-3, sees the server die, reconnects to the restarted server', { timeout: 90000 }, async () => {
  await runCounterScenario({ engine: 'webkit' });
});
