// pusher-js 8.6.0 and laravel-echo 2.5.0 in Firefox ESR (Debian `firefox-esr`) via puppeteer-core over WebDriver BiDi:
// the scenario of lib/pusher.mjs (two pushwire nodes on one Redis, the Node and Python Pusher SDKs, webhooks).
import { test } from 'node:test';
import { runPusherScenario } from '../lib/pusher.mjs';

test('firefox: pusher-js subscribes public, private and presence channels, gets the SDKs\' events, client events, presence across two nodes, signin, Echo, webhooks', { timeout: 90000 }, async () => {
  await runPusherScenario({ engine: 'firefox' });
});
