// WebKit (WebKitGTK's MiniBrowser) through WebKitWebDriver, spoken to over plain
// W3C WebDriver HTTP with fetch(). The driver runs under `xvfb-run` (MiniBrowser
// needs a display); driver, MiniBrowser and Xvfb share one process group that is
// always torn down at the end.

import fsp from 'node:fs/promises';
import path from 'node:path';
import {
  dpkgFile, freePort, listProcesses, makeTempDir, now, removeDir, requireExecutable, spawnGroup, stopGroup,
  waitFor, withTimeout,
} from './server.mjs';

const REQUEST_TIMEOUT_MS = 15000;
const NEW_SESSION_TIMEOUT_MS = 30000; // without a display this request hangs forever
const DRIVER_READY_TIMEOUT_MS = 15000;

/** A minimal W3C WebDriver client: every request has a timeout. */
export class WebDriverClient {
  constructor(baseUrl) {
    this.baseUrl = baseUrl.replace(/\/$/, '');
    this.sessionId = null;
  }

  async request(method, path, body, timeoutMs = REQUEST_TIMEOUT_MS) {
    const url = this.baseUrl + path;
    let res;
    try {
      res = await fetch(url, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      const why = err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : err.message;
      throw new Error(`WebDriver ${method} ${path}: ${why}`, { cause: err });
    }
    const text = await res.text();
    let json;
    try { json = JSON.parse(text); } catch {
      throw new Error(`WebDriver ${method} ${path}: HTTP ${res.status}, not JSON: ${text.slice(0, 500)}`);
    }
    if (!res.ok || json?.value?.error) {
      const v = json?.value ?? {};
      throw new Error(`WebDriver ${method} ${path}: HTTP ${res.status} ${v.error ?? ''}: ${v.message ?? text.slice(0, 500)}`);
    }
    return json.value;
  }

  status() { return this.request('GET', '/status', undefined, 2000); }

  async newSession(capabilities) {
    const value = await this.request('POST', '/session', { capabilities: { alwaysMatch: capabilities } }, NEW_SESSION_TIMEOUT_MS);
    this.sessionId = value.sessionId;
    this.capabilities = value.capabilities;
    return value;
  }

  s(path) {
    if (!this.sessionId) throw new Error('no WebDriver session');
    return `/session/${this.sessionId}${path}`;
  }

  navigate(url) { return this.request('POST', this.s('/url'), { url }, 30000); }

  /** Run `script` (a function body; `return` yields the result) synchronously in the page. */
  executeScript(script, args = []) { return this.request('POST', this.s('/execute/sync'), { script, args }); }

  async findElement(cssSelector) {
    const value = await this.request('POST', this.s('/element'), { using: 'css selector', value: cssSelector });
    return Object.values(value)[0]; // the element reference
  }

  elementText(elementId) { return this.request('GET', this.s(`/element/${elementId}/text`)); }

  /** PNG bytes of the current viewport. */
  async screenshot() { return Buffer.from(await this.request('GET', this.s('/screenshot'), undefined, 20000), 'base64'); }

  async deleteSession() {
    if (!this.sessionId) return;
    const path = this.s('');
    this.sessionId = null;
    await this.request('DELETE', path, undefined, 10000);
  }
}

/** MiniBrowser from libwebkit2gtk-4.1-0 (`dpkg -L libwebkit2gtk-4.1-0 | grep MiniBrowser`). */
export function miniBrowserPath() {
  if (process.env.WEBKIT_MINIBROWSER) return process.env.WEBKIT_MINIBROWSER;
  const p = dpkgFile('libwebkit2gtk-4.1-0', '/MiniBrowser');
  if (!p) {
    throw new Error('MiniBrowser not found (dpkg -L libwebkit2gtk-4.1-0 has none); ' +
      'install webkit2gtk-driver or set WEBKIT_MINIBROWSER');
  }
  return p;
}

/**
 * Start WebKitWebDriver under xvfb-run, open a MiniBrowser session; return an engine adapter.
 * `trust` (a certificate from lib/tls.mjs) makes the session accept certificates nobody it
 * trusts signed (`acceptInsecureCerts`): WebKit has no way to trust one key alone.
 */
export async function launchWebKit({ trust } = {}) {
  const xvfbRun = requireExecutable('xvfb-run', 'XVFB_RUN');
  const driverBin = requireExecutable('WebKitWebDriver', 'WEBKIT_WEBDRIVER');
  const miniBrowser = miniBrowserPath();
  await fsp.access(miniBrowser).catch(() => { throw new Error(`MiniBrowser ${miniBrowser} does not exist`); });

  const port = await freePort();
  // Our own dir for the X auth file and Xvfb's log, so nothing is left in /tmp
  // even if xvfb-run has to be SIGKILLed (its own temp dir would leak then).
  const xdir = await makeTempDir('xvfb');
  const authFile = path.join(xdir, 'Xauthority');
  const xvfbLog = path.join(xdir, 'xvfb.log');
  await fsp.writeFile(authFile, '');
  const env = { ...process.env };
  delete env.DISPLAY; // only the display xvfb-run makes
  delete env.WAYLAND_DISPLAY;
  env.TMPDIR = xdir; // WebKit's own temp files go where we clean up (Xvfb's lock stays in /tmp)
  const driver = await spawnGroup(xvfbRun, [
    '-a', '-s', '-screen 0 1280x1024x24', '-f', authFile, '-e', xvfbLog,
    driverBin, `--port=${port}`,
  ], { env });
  const client = new WebDriverClient(`http://127.0.0.1:${port}`);
  const output = async () => `${driver.outputTail()}\n--- Xvfb (${xvfbLog}) ---\n` +
    (await fsp.readFile(xvfbLog, 'utf8').catch(() => '')).trim().slice(-4000);

  const stop = async () => {
    await withTimeout(client.deleteSession(), 12000, 'WebDriver delete session').catch(() => {});
    // SIGTERM to WebKitWebDriver alone: xvfb-run (a dash script, which runs no
    // EXIT trap when it is signalled itself) then stops Xvfb and exits. Whatever
    // is left of the group (MiniBrowser, WebKit*Process, Xvfb) is SIGKILLed after 3 s.
    const drv = listProcesses().find((p) => p.ppid === driver.pid && p.comm.startsWith('WebKitWebDrive'));
    await stopGroup(driver, { signal: 'SIGTERM', graceMs: 3000, politePid: drv?.pid });
    await removeDir(xdir);
  };

  try {
    const t0 = now();
    await waitFor(async () => {
      if (driver.exitCode !== null || driver.signalCode !== null) {
        throw new Error(`WebKitWebDriver (under xvfb-run) exited early: code ${driver.exitCode}, signal ${driver.signalCode}\n${await output()}`);
      }
      try { return (await client.status())?.ready === true; } catch { return false; }
    }, { timeout: DRIVER_READY_TIMEOUT_MS, interval: 100, what: `WebKitWebDriver on port ${port} to report ready`, describe: () => driver.outputTail() });

    let session;
    try {
      session = await client.newSession({
        browserName: 'MiniBrowser',
        'webkitgtk:browserOptions': { binary: miniBrowser, args: ['--automation'] },
        timeouts: { script: 10000, pageLoad: 20000 },
        ...(trust ? { acceptInsecureCerts: true } : {}),
      });
    } catch (err) {
      throw new Error(`WebKit new session failed: ${err.message}\n${await output()}`, { cause: err });
    }
    const caps = session.capabilities || {};
    const version = `${caps.browserName ?? 'MiniBrowser'} ${caps.browserVersion ?? '?'} (WebKitWebDriver, session in ${Math.round(now() - t0)} ms)`;

    return {
      name: 'webkit',
      version,
      client,
      open: async (url) => {
        await client.navigate(url);
      },
      evaluate: (fnSource) => client.executeScript(`return (${fnSource})();`),
      text: async (selector) => client.elementText(await client.findElement(selector)),
      screenshot: async (file) => fsp.writeFile(file, await client.screenshot()),
      close: stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
