// Shared helpers for the browser end-to-end tests: locating binaries, free ports,
// starting/stopping the pushwire server, process-group bookkeeping, and
// bounded polling. Everything here is engine-agnostic.

import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

/** Repository root (e2e/lib/../..), independent of the current directory. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where screenshots and per-engine reports go: <repo>/target/e2e. */
export const ARTIFACT_DIR = path.join(REPO_ROOT, 'target', 'e2e');

/** Milliseconds since an arbitrary origin, monotonic. */
export const now = () => performance.now();

// ---------------------------------------------------------------------------
// Locating executables

/** Like `command -v NAME`: the first executable NAME on $PATH, or null. */
export function which(name) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch { /* keep looking */ }
  }
  return null;
}

/**
 * Resolve an executable: env override first, then $PATH. Throws (the test fails,
 * it is never skipped) when nothing usable is found.
 */
export function requireExecutable(name, envVar) {
  const override = envVar && process.env[envVar];
  if (override) {
    const p = path.resolve(override);
    try { fs.accessSync(p, fs.constants.X_OK); } catch {
      throw new Error(`${envVar}=${override} is not an executable file`);
    }
    return p;
  }
  const found = which(name);
  if (!found) {
    throw new Error(`required executable "${name}" not found on PATH` +
      (envVar ? ` (or set ${envVar})` : '') + ' — install the Debian package and retry');
  }
  return found;
}

/**
 * Path of a binary built by cargo: $ENV_VAR (relative to the repo root) or `relPath`.
 * Throws (the test fails) if it is not an executable file.
 */
function builtBinary(relPath, envVar, buildHint) {
  const p = path.resolve(REPO_ROOT, process.env[envVar] || relPath);
  try {
    fs.accessSync(p, fs.constants.X_OK);
  } catch {
    throw new Error(`${path.basename(relPath)} binary not found or not executable at ${p} ` +
      `(run \`${buildHint}\` in the repo root, or set ${envVar})`);
  }
  return p;
}

/** Path of the pushwire binary: $PUSHWIRE_BIN (relative to the repo root) or target/release/pushwire. */
export function pushwireBinary() {
  return builtBinary(path.join('target', 'release', 'pushwire'), 'PUSHWIRE_BIN', 'cargo build --release');
}

/** Path of the echo example: $PUSHWIRE_ECHO_BIN (relative to the repo root) or target/release/examples/echo. */
export function echoBinary() {
  return builtBinary(path.join('target', 'release', 'examples', 'echo'), 'PUSHWIRE_ECHO_BIN',
    'cargo build --release --examples');
}

// ---------------------------------------------------------------------------
// Ports, temp dirs, timeouts

/** A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close). */
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

// Temp dirs still to remove; whatever a test could not remove itself goes at exit.
const liveDirs = new Set();

/** A fresh, empty directory under the OS temp dir (removed at exit at the latest). */
export async function makeTempDir(prefix) {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `pushwire-e2e-${prefix}-`));
  liveDirs.add(dir);
  return dir;
}

/** Remove a directory tree, never throwing (a browser may still be writing into it). */
export async function removeDir(dir) {
  if (!dir) return;
  await fsp.rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 }).catch(() => {});
  liveDirs.delete(dir);
}

/** Reject with a descriptive error if `promise` does not settle within `ms`. */
export async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Poll `check` every `interval` ms until it returns a truthy value (which is
 * returned), for at most `timeout` ms (or until the absolute `deadline`, a
 * now() value). `check` may throw to abort early. Each call of `check` is itself
 * bounded by the remaining time (+1 s), so a hung call cannot stall the test.
 * `describe()` (optional) adds the last observed state to the timeout error.
 */
export async function waitFor(check, { timeout, deadline, interval = 50, what = 'condition', describe } = {}) {
  const start = now();
  const end = deadline ?? start + timeout;
  for (;;) {
    const remaining = Math.max(0, end - now());
    const value = await withTimeout(Promise.resolve().then(check), remaining + 1000, `${what} (one poll)`);
    if (value) return value;
    if (now() >= end) {
      throw new Error(`timed out after ${Math.round(now() - start)} ms waiting for ${what}` +
        (describe ? `; last seen: ${describe()}` : ''));
    }
    await sleep(Math.min(interval, Math.max(1, end - now())));
  }
}

// ---------------------------------------------------------------------------
// Process groups. Every long-lived helper process is spawned `detached` (its own
// process group) and remembered here; if this test process exits (or is
// interrupted) before a test's own cleanup ran, the groups are terminated
// (SIGTERM, then SIGKILL) and the temp dirs removed.

const liveGroups = new Set();

export function trackGroup(pid) { if (pid) liveGroups.add(pid); }
export function untrackGroup(pid) { liveGroups.delete(pid); }

function killGroupSync(pid, signal) {
  try { process.kill(-pid, signal); return true; } catch { return false; }
}

function emergencyCleanup() {
  // This runs synchronously ('exit' handlers cannot await), so sleep with Atomics.wait.
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const waitGroups = (ms) => {
    const until = now() + ms;
    while ([...liveGroups].some(groupAlive) && now() < until) Atomics.wait(pause, 0, 0, 20);
  };
  // SIGTERM first (≤ 1 s), so Xvfb and the browsers remove their own /tmp files,
  // then SIGKILL, and let the processes actually go (≤ 2 s) before removing the
  // dirs they write to.
  for (const pid of liveGroups) killGroupSync(pid, 'SIGTERM');
  waitGroups(1000);
  for (const pid of liveGroups) killGroupSync(pid, 'SIGKILL');
  waitGroups(2000);
  liveGroups.clear();
  for (const dir of liveDirs) {
    try { fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 }); } catch { /* best effort */ }
  }
  liveDirs.clear();
}
process.on('exit', emergencyCleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    emergencyCleanup();
    process.exit(128 + os.constants.signals[sig]);
  });
}

/** Processes from /proc: [{ pid, comm, state, ppid, pgrp }] (empty if /proc is unreadable). */
export function listProcesses() {
  let entries;
  try { entries = fs.readdirSync('/proc'); } catch { return []; }
  const procs = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat;
    try { stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8'); } catch { continue; }
    // "pid (comm) state ppid pgrp ..." — comm may contain spaces and parens.
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const [state, ppid, pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    procs.push({ pid: Number(entry), comm, state, ppid: Number(ppid), pgrp: Number(pgrp) });
  }
  return procs;
}

/**
 * Is any live (non-zombie) process of group `pid` still around? Zombies are
 * ignored: orphans are reaped by PID 1, which can take seconds in a container.
 */
function groupAlive(pid) {
  try { process.kill(-pid, 0); } catch { return false; }
  const procs = listProcesses();
  if (!procs.length) return true;
  return procs.some((p) => p.pgrp === pid && p.state !== 'Z');
}

/**
 * Stop a detached child and everything in its process group: `signal` to the
 * group (or only to `politePid`), up to `graceMs` for the leader to exit, then
 * SIGKILL to whatever is left of the group.
 * Bounded in time; never throws.
 */
export async function stopGroup(child, { signal = 'SIGTERM', graceMs = 3000, politePid } = {}) {
  if (!child || !child.pid) return;
  const pid = child.pid;
  const exited = child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : once(child, 'exit').then(() => {}, () => {});
  if (politePid) {
    // Signal just this one process first (e.g. the command under xvfb-run, so
    // that xvfb-run's own clean-up runs); the group is forced only after graceMs.
    try { process.kill(politePid, signal); } catch { /* already gone */ }
  } else {
    killGroupSync(pid, signal);
  }
  const leaderGone = await settledWithin(exited.then(() => true), graceMs, false);
  if (!leaderGone || groupAlive(pid)) {
    // Give the rest of the group (e.g. Xvfb behind xvfb-run) a moment to follow, then force it.
    const end = now() + (leaderGone ? 1000 : 0);
    while (groupAlive(pid) && now() < end) await sleep(50);
    killGroupSync(pid, 'SIGKILL');
    await settledWithin(exited, 2000);
    const end2 = now() + 2000;
    while (groupAlive(pid) && now() < end2) await sleep(50);
  }
  untrackGroup(pid);
}

/**
 * `promise`'s value, or `fallback` once `ms` have passed. The timer is cleared either way: a
 * pending one would keep the test file's process alive for the rest of `ms` after its last test.
 */
async function settledWithin(promise, ms, fallback) {
  let timer;
  const late = new Promise((resolve) => { timer = setTimeout(resolve, ms, fallback); });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Keep the last `max` characters written to a stream, for error messages. */
export function captureOutput(stream, max = 8000) {
  const buf = { text: '' };
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk) => {
    buf.text += chunk;
    if (buf.text.length > max) buf.text = buf.text.slice(-max);
  });
  return buf;
}

/**
 * Spawn `cmd args` as the leader of a new process group, tracked for cleanup.
 * Resolves once the process has actually started; rejects (loudly) if it
 * cannot be executed at all.
 */
export async function spawnGroup(cmd, args, opts = {}) {
  const child = spawn(cmd, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    ...opts,
  });
  const spawned = once(child, 'spawn');
  const failed = once(child, 'error').then(([err]) => { throw new Error(`cannot start ${cmd}: ${err.message}`); });
  await Promise.race([spawned, failed]);
  failed.catch(() => {});
  trackGroup(child.pid);
  child.output = { stdout: captureOutput(child.stdout), stderr: captureOutput(child.stderr) };
  child.outputTail = () =>
    `--- stdout ---\n${child.output.stdout.text.trim()}\n--- stderr ---\n${child.output.stderr.text.trim()}`;
  return child;
}

// ---------------------------------------------------------------------------
// HTTP

/**
 * GET `url` with a fresh connection (no keep-alive pool); resolves to the status code.
 * An https URL is verified against `ca` (PEM), the one certificate the test trusts.
 */
export function httpStatus(url, timeoutMs = 1000, { ca } = {}) {
  return new Promise((resolve, reject) => {
    const secure = url.startsWith('https:');
    const client = secure ? https : http;
    const options = { agent: false, timeout: timeoutMs, ...(secure ? { ca } : {}) };
    const req = client.get(url, options, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------------------
// The servers under test: pushwire itself and the echo example

/**
 * Spawn one of our server binaries (own process group) and wrap it in a handle:
 * `child`, `command`, `running`, `output()`, `kill(signal)` (resolves when the
 * process has exited) and `stop()`. `env` adds to (or overrides) the environment.
 */
async function spawnServer(name, bin, args, env = {}) {
  const child = await spawnGroup(bin, args, {
    env: { ...process.env, RUST_BACKTRACE: '1', NO_COLOR: '1', ...env },
  });
  return {
    child,
    command: `${Object.entries(env).map(([k, v]) => `${k}=${v} `).join('')}${bin} ${args.join(' ')}`,
    get running() { return child.exitCode === null && child.signalCode === null; },
    describeExit: () => `${name} exited early (code ${child.exitCode}, signal ${child.signalCode})\n${child.outputTail()}`,
    output: () => child.outputTail(),
    /** Send `signal` to the server and wait (≤ 5 s, then SIGKILL) for it to exit. */
    async kill(signal = 'SIGKILL') {
      await stopGroup(child, { signal, graceMs: 5000 });
    },
    /** Graceful stop (SIGTERM, then SIGKILL after 3 s). Safe to call twice. */
    async stop() {
      await stopGroup(child, { signal: 'SIGTERM', graceMs: 3000 });
    },
  };
}

/**
 * Start `pushwire --bind 127.0.0.1 --port PORT --interval INTERVAL` and wait
 * until `GET /` answers 200 (at most `readyTimeout` ms). Returns a handle with
 * `url`, `kill(signal)` (resolves when the process has exited) and `stop()`.
 * `env` is added to the server's environment (e.g. `{ RUST_LOG: 'pushwire=debug' }`).
 * `tls` (`{ certFile, keyFile, certPem }`, see lib/tls.mjs) serves https and wss
 * with that certificate (`--tls-cert`, `--tls-key`); the URL is then https.
 * `staticDir` serves that folder below /static/ (`--static-dir`).
 */
export async function startServer({ port, interval = '1s', readyTimeout = 15000, env, tls, staticDir } = {}) {
  port ??= await freePort();
  const args = ['--bind', '127.0.0.1', '--port', String(port), '--interval', interval];
  if (tls) args.push('--tls-cert', tls.certFile, '--tls-key', tls.keyFile);
  if (staticDir) args.push('--static-dir', staticDir);
  // No drain delay: a stop (SIGTERM) is a stop here, not a rolling restart.
  const server = await spawnServer('pushwire', pushwireBinary(), args, { PUSHWIRE_DRAIN_DELAY: '0s', ...env });
  server.port = port;
  server.url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}/`;
  try {
    await waitFor(async () => {
      if (!server.running) throw new Error(server.describeExit());
      try {
        return (await httpStatus(server.url, 1000, { ca: tls?.certPem })) === 200;
      } catch {
        return false; // not listening yet
      }
    }, { timeout: readyTimeout, interval: 100, what: `pushwire to answer GET ${server.url} with 200`, describe: () => server.output() });
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

/**
 * Start the echo example (`examples/echo --port PORT [--no-deflate]`) and wait
 * (at most `readyTimeout` ms) for its `echo server at ws://127.0.0.1:PORT/` line.
 * Returns the same kind of handle as startServer, with `wsUrl` instead of `url`.
 */
export async function startEcho({ port, deflate = true, readyTimeout = 15000, env } = {}) {
  port ??= await freePort();
  const args = ['--port', String(port), ...(deflate ? [] : ['--no-deflate'])];
  const server = await spawnServer('echo', echoBinary(), args, env);
  server.port = port;
  server.wsUrl = `ws://127.0.0.1:${port}/`;
  const ready = `echo server at ${server.wsUrl}`;
  try {
    await waitFor(() => {
      if (server.child.output.stdout.text.includes(ready)) return true;
      if (!server.running) throw new Error(server.describeExit());
      return false;
    }, { timeout: readyTimeout, interval: 50, what: `echo to print "${ready}"`, describe: () => server.output() });
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

/**
 * A TCP relay on a free 127.0.0.1 port to 127.0.0.1:`targetPort` that counts the
 * bytes going each way: `counts()` is `{ up, down, connections }` (up: client →
 * target), and `heads()` is `{ up, down }`, the first HTTP head (up to the blank
 * line, at most 8 KiB) seen each way, e.g. a WebSocket upgrade request and its
 * answer. Used to see what a WebSocket connection really negotiated and what its
 * messages cost on the wire. `close()` drops every connection and stops listening.
 */
export async function startByteCounter(targetPort) {
  const counts = { up: 0, down: 0, connections: 0 };
  const heads = { up: Buffer.alloc(0), down: Buffer.alloc(0) };
  const keepHead = (dir, chunk) => {
    const head = heads[dir];
    if (head.length >= 8192 || head.includes('\r\n\r\n')) return;
    heads[dir] = Buffer.concat([head, chunk]).subarray(0, 8192);
  };
  const sockets = new Set();
  const server = net.createServer((client) => {
    counts.connections += 1;
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => { client.destroy(); upstream.destroy(); });
    }
    client.on('data', (chunk) => { counts.up += chunk.length; keepHead('up', chunk); });
    upstream.on('data', (chunk) => { counts.down += chunk.length; keepHead('down', chunk); });
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await withTimeout(once(server, 'listening'), 5000, 'byte-counting relay to listen');
  const headText = (buf) => {
    const end = buf.indexOf('\r\n\r\n');
    return buf.subarray(0, end < 0 ? buf.length : end).toString('latin1');
  };
  return {
    port: server.address().port,
    counts: () => ({ ...counts }),
    heads: () => ({ up: headText(heads.up), down: headText(heads.down) }),
    async close() {
      for (const s of sockets) s.destroy();
      await withTimeout(new Promise((resolve) => server.close(() => resolve())), 5000, 'relay close').catch(() => {});
    },
  };
}

/** The values of header `name` in an HTTP head (text), joined with ", "; null if absent. */
export function headerValue(head, name) {
  const want = name.toLowerCase();
  const values = head.split('\r\n').slice(1)
    .map((line) => line.split(/:(.*)/s))
    .filter(([key]) => key.trim().toLowerCase() === want)
    .map(([, value]) => value.trim());
  return values.length ? values.join(', ') : null;
}

// ---------------------------------------------------------------------------
// Misc

/** Find a file installed by a Debian package (`dpkg -L PKG | grep SUFFIX`). */
export function dpkgFile(pkg, suffix) {
  let listing;
  try {
    listing = execFileSync('dpkg', ['-L', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10000 });
  } catch {
    return null;
  }
  return listing.split('\n').find((line) => line.endsWith(suffix)) || null;
}

export async function ensureArtifactDir() {
  await fsp.mkdir(ARTIFACT_DIR, { recursive: true });
  return ARTIFACT_DIR;
}
