// Chromium (Debian `chromium`) via puppeteer-core over CDP.
import { test } from 'node:test';
import { runCounterScenario } from '../lib/scenario.mjs';

test('chromium: counts 1-2-3, sees the server die, reconnects to the restarted server', { timeout: 90000 }, async () => {
  await runCounterScenario({ engine: 'chromium' });
});
