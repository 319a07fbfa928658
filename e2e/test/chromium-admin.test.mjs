// The admin page in Chromium (Debian `chromium`) via puppeteer-core over CDP: two nodes on one
// Redis, a login, a workload, and everything the page must show (lib/admin.mjs).
import { test } from 'node:test';
import { runAdminScenario } from '../lib/admin.mjs';

test('chromium: the admin page shows connections, topics, rates, latency, both nodes and the last errors', { timeout: 120000 }, async () => {
  await runAdminScenario({ engine: 'chromium' });
});
