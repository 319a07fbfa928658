// The counter page over https and wss in Chromium (Debian `chromium`) via puppeteer-core,
// with a certificate made for the run (scenario in lib/tls.mjs).
import { test } from 'node:test';
import { runTlsScenario } from '../lib/tls.mjs';

test('chromium: the counter page over https (HTTP/2) counts over wss', { timeout: 90000 }, async () => {
  await runTlsScenario({ engine: 'chromium' });
});
