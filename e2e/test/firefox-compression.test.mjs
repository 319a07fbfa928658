// Firefox ESR (Debian `firefox-esr`) via puppeteer-core over WebDriver BiDi.
import { test } from 'node:test';
import { runCompressionScenario } from '../lib/compression.mjs';

test('firefox: WebSocket messages with permessage-deflate (counter socket, echo 1 B..1 MiB text and binary, echo without deflate)', { timeout: 180000 }, async () => {
  await runCompressionScenario({ engine: 'firefox' });
});
