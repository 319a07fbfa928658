// Firefox ESR (Debian `firefox-esr`) via puppeteer-core over WebDriver BiDi.
import { test } from 'node:test';
import { runCounterScenario } from '../lib/scenario.mjs';

test('firefox: counts 1-2-3, sees the server die, reconnects to the restarted server', { timeout: 90000 }, async () => {
  await runCounterScenario({ engine: 'firefox' });
});
