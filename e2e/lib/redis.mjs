// A redis-server child process (Debian `redis-server`) on a free 127.0.0.1 port, without
// persistence, for scenarios with several pushwire nodes. Stopped (its process group) by stop().

import net from 'node:net';
import { freePort, requireExecutable, spawnGroup, stopGroup, waitFor } from './server.mjs';

/** Resolves true when something accepts TCP connections on 127.0.0.1:`port`. */
function accepts(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(500);
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => { socket.destroy(); resolve(false); });
  });
}

/** Start redis-server and wait (at most 10 s) until it accepts connections: { port, url, stop() }. */
export async function startRedis() {
  const bin = requireExecutable('redis-server', 'REDIS_SERVER_BIN');
  const port = await freePort();
  const child = await spawnGroup(bin, [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
  ]);
  const redis = {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    stop: () => stopGroup(child, { signal: 'SIGTERM', graceMs: 2000 }),
  };
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`redis-server exited early\n${child.outputTail()}`);
      return accepts(port);
    }, { timeout: 10000, interval: 50, what: `redis-server to accept connections on ${port}` });
  } catch (err) {
    await redis.stop();
    throw err;
  }
  return redis;
}
