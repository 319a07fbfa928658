// Chromium (Debian `chromium`) via puppeteer-core over CDP.
import { test } from 'node:test';
import { runCompressionScenario } from '../lib/compression.mjs';

test('chromium: WebSocket messages with permessage-deflate (counter socket, echo 1 B..1 MiB text and binary, echo without deflate)', { timeout: 180000 }, async () => {
  await runCompressionScenario({ engine: 'chromium' });
});
