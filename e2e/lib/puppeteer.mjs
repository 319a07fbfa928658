// Chromium (CDP) and Firefox ESR (WebDriver BiDi) through puppeteer-core,
// launching the Debian binaries by path. Nothing is ever downloaded.

import fsp from 'node:fs/promises';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import { makeTempDir, removeDir, requireExecutable, stopGroup, trackGroup, untrackGroup, withTimeout } from './server.mjs';

const LAUNCH_TIMEOUT_MS = 30000;
const PROTOCOL_TIMEOUT_MS = 15000;
const VIEWPORT = { width: 1024, height: 640 };

// Per TESTING-NOTES: without these Chromium keeps trying to reach the internet.
export const CHROMIUM_ARGS = [
  '--no-sandbox', // we run as root
  '--headless',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// `trust` (optional, see lib/tls.mjs): a test certificate the browser accepts for
// https and wss. Chromium trusts exactly that certificate's public key
// (--ignore-certificate-errors-spki-list, honoured with a --user-data-dir);
// Firefox over WebDriver BiDi has only acceptInsecureCerts.

export function launchChromium({ trust } = {}) {
  return launchWithPuppeteer('chromium', (userDataDir) => ({
    browser: 'chrome',
    executablePath: requireExecutable('chromium', 'CHROMIUM_BIN'),
    headless: 'shell', // i.e. plain `--headless` (we pass the full binary's path ourselves)
    userDataDir, // becomes --user-data-dir=<fresh temp dir>
    args: trust ? [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${trust.spkiSha256}`] : CHROMIUM_ARGS,
  }));
}

export function launchFirefox({ trust } = {}) {
  return launchWithPuppeteer('firefox', (userDataDir) => ({
    browser: 'firefox', // WebDriver BiDi
    executablePath: requireExecutable('firefox-esr', 'FIREFOX_BIN'),
    headless: true,
    userDataDir,
    extraPrefsFirefox: { 'network.http.http3.enable': false },
    ...(trust ? { acceptInsecureCerts: true } : {}),
  }));
}

async function launchWithPuppeteer(name, options) {
  // One temp dir per launch holds the fresh profile and the browser's TMPDIR, so
  // removing it leaves nothing behind (also if the browser had to be SIGKILLed).
  const root = await makeTempDir(name);
  const userDataDir = path.join(root, 'profile');
  const tmpDir = path.join(root, 'tmp');
  await Promise.all([fsp.mkdir(userDataDir), fsp.mkdir(tmpDir)]);
  let browser;
  try {
    browser = await puppeteer.launch({
      ...options(userDataDir),
      timeout: LAUNCH_TIMEOUT_MS,
      protocolTimeout: PROTOCOL_TIMEOUT_MS,
      defaultViewport: VIEWPORT,
      env: { ...process.env, TMPDIR: tmpDir },
    });
  } catch (err) {
    await removeDir(root);
    throw new Error(`${name} failed to start: ${err.message}`, { cause: err });
  }
  const proc = browser.process();
  trackGroup(proc?.pid); // puppeteer starts the browser as its own process group
  try {
    const version = await withTimeout(browser.version(), PROTOCOL_TIMEOUT_MS, `${name} version`);
    const page = (await browser.pages())[0] ?? (await browser.newPage());
    await page.setViewport(VIEWPORT); // the launch-time default is not applied to Firefox's first tab
    return {
      name,
      version,
      open: (url) => page.goto(url, { waitUntil: 'load', timeout: 15000 }),
      evaluate: (fnSource) => page.evaluate(`(${fnSource})()`),
      text: (selector) => page.$eval(selector, (el) => el.textContent.trim()),
      screenshot: (file) => page.screenshot({ path: file, type: 'png' }),
      close: () => closePuppeteer(browser, proc, root),
    };
  } catch (err) {
    await closePuppeteer(browser, proc, root);
    throw err;
  }
}

async function closePuppeteer(browser, proc, root) {
  try {
    await withTimeout(browser.close(), 10000, 'browser.close()');
  } catch {
    // fall through to killing the process group
  }
  if (proc) await stopGroup(proc, { signal: 'SIGKILL', graceMs: 3000 });
  untrackGroup(proc?.pid);
  await removeDir(root);
}
