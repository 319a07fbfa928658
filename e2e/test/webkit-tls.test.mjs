// The counter page over https and wss in WebKit (WebKitGTK MiniBrowser, Safari's engine) via
// WebKitWebDriver, with a certificate made for the run (scenario in lib/tls.mjs).
import { test } from 'node:test';
import { runTlsScenario } from '../lib/tls.mjs';

test('webkit: the counter page over https (HTTP/2) counts over wss', { timeout: 90000 }, async () => {
  await runTlsScenario({ engine: 'webkit' });
});
