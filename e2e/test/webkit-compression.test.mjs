// WebKit (WebKitGTK MiniBrowser) via WebKitWebDriver under xvfb-run, plain W3C WebDriver over HTTP.
import { test } from 'node:test';
import { runCompressionScenario } from '../lib/compression.mjs';

test('webkit: WebSocket messages with permessage-deflate (counter socket, echo 1 B..1 MiB text and binary, echo without deflate)', { timeout: 180000 }, async () => {
  await runCompressionScenario({ engine: 'webkit' });
});
