// The README's "Publish from curl, receive in a browser": the page and the curl command are
// taken from README.md (between the readme-example markers), the page is served by pushwire
// (--static-dir), opened in Chromium, and the curl command (port substituted) must show up in it.
import path from 'node:path';
import { test } from 'node:test';
import { runReadmeScenario } from '../lib/topics.mjs';
import { REPO_ROOT } from '../lib/server.mjs';

test('chromium: the README example page shows a message published with its curl command', { timeout: 90000 }, async () => {
  await runReadmeScenario({ engine: 'chromium', readmePath: path.join(REPO_ROOT, 'README.md') });
});
