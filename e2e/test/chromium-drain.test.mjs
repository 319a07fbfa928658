// A node restarts (drains) under the chat page in chromium: every message once, in order, on the same
// transport (scenario in lib/drain.mjs; docs/operations.md, "Drain and rolling restarts").
import { test } from 'node:test';
import { runRestartScenario } from '../lib/drain.mjs';

const engine = 'chromium';

for (const transport of ['websocket', 'sse', 'poll']) {
  test(`${engine}: the node under a ${transport} page restarts: told to reconnect, it resumes with every message once`, { timeout: 120000 }, async () => {
    await runRestartScenario({ engine, transport });
  });
}
