// Mercure in Chromium (Debian `chromium`) via puppeteer-core: the browser's own EventSource and
// fetch against the hub, tokens minted by npm jose; the scenario of lib/mercure.mjs.
import { test } from 'node:test';
import { runMercureBrowserScenario } from '../lib/mercure.mjs';

test('chromium: Mercure EventSource and fetch: RFC 6750 errors, __Secure- cookie, match / match_exact / match_urlpattern, private updates, /ws both ways, Last-Event-ID reconnect, last_event_id, active subscriptions', { timeout: 60000 }, async () => {
  await runMercureBrowserScenario({ engine: 'chromium' });
});
