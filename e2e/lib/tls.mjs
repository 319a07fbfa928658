// The counter page over TLS: pushwire serves https and wss with a certificate made
// for this run, and a real browser that trusts that certificate opens
// https://127.0.0.1:PORT/ and counts over wss.
//
//   1. `openssl req -x509` makes a P-256 certificate for 127.0.0.1 (and localhost) in a
//      fresh temp dir; openssl is a Debian package (scripts/test installs it) and is
//      required: without it the test fails, it is never skipped;
//   2. start `pushwire --tls-cert cert.pem --tls-key key.pem --interval 250ms`, ready
//      once GET / over https answers 200 (Node verifies it against that certificate);
//   3. launch the browser trusting the certificate (Chromium: exactly its public key,
//      --ignore-certificate-errors-spki-list; Firefox: acceptInsecureCerts), open the
//      page, and see #data count up by at least two; the page is https:, its #log says
//      the socket opened on wss://127.0.0.1:PORT/socket, and the page itself came
//      over HTTP/2 (the navigation's nextHopProtocol is "h2": ALPN chose h2);
//   4. screenshot to <repo>/target/e2e/<engine>-tls.png, report next to it.
// Every wait is bounded; the server, the browser and the temp dir are always removed.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { launcherFor } from './engines.mjs';
import { clearArtifacts, saveFailureScreenshot, saveScreenshot, writeReport } from './artifacts.mjs';
import { makeTempDir, now, removeDir, requireExecutable, startServer, waitFor, withTimeout } from './server.mjs';

const FIRST_VALUE_TIMEOUT_MS = 10000; // page load + wss connect + first tick
const COUNT_TIMEOUT_MS = 5000; // two more ticks of 250 ms

/**
 * A self-signed certificate for 127.0.0.1 and localhost, made with the openssl CLI in
 * `dir`: `{ certFile, keyFile, certPem, spkiSha256 }` (spkiSha256: base64 SHA-256 of
 * the SubjectPublicKeyInfo, what Chromium's --ignore-certificate-errors-spki-list takes).
 */
export async function makeCertificate(dir) {
  const openssl = requireExecutable('openssl', 'OPENSSL_BIN');
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  const args = [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', keyFile, '-out', certFile,
  ];
  await withTimeout(new Promise((resolve, reject) => {
    execFile(openssl, args, { timeout: 10000 }, (err, _stdout, stderr) =>
      err ? reject(new Error(`openssl ${args.join(' ')} failed: ${err.message}\n${stderr}`)) : resolve());
  }), 15000, 'openssl req -x509');
  const certPem = await fsp.readFile(certFile, 'utf8');
  const spki = new crypto.X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  const spkiSha256 = crypto.createHash('sha256').update(spki).digest('base64');
  return { certFile, keyFile, certPem, spkiSha256 };
}

const READ_STATE = `() => ({
  data: document.getElementById('data')?.textContent.trim() ?? null,
  log: Array.from(document.querySelectorAll('#log li')).map((li) => li.textContent.trim()),
  protocol: location.protocol,
  nextHopProtocol: performance.getEntriesByType('navigation')[0]?.nextHopProtocol ?? null,
})`;

const isNumber = (v) => /^\s*\d+\s*$/.test(v ?? '');

export async function runTlsScenario({ engine, log = (msg) => console.log(`[${engine}-tls] ${msg}`) }) {
  const name = `${engine}-tls`;
  const t0 = now();
  const report = { engine, timings: {} };
  let server = null;
  let browser = null;
  let dir = null;
  let failed = true;
  let last = null;
  const state = async () => {
    last = await browser.evaluate(READ_STATE);
    return last;
  };
  const describe = () => JSON.stringify(last);
  await clearArtifacts(name);
  try {
    dir = await makeTempDir('tls');
    const cert = await makeCertificate(dir);
    report.spkiSha256 = cert.spkiSha256;
    server = await startServer({ interval: '250ms', tls: cert });
    log(`server up: ${server.command}`);
    browser = await launcherFor(engine)({ trust: cert });
    report.browser = browser.version || browser.name;
    log(`browser up (${report.browser})`);

    await browser.open(server.url);
    const first = await waitFor(async () => {
      const s = await state();
      return isNumber(s.data) && s;
    }, { timeout: FIRST_VALUE_TIMEOUT_MS, interval: 50, what: '#data to show a number', describe });
    report.timings.firstValue = `${Math.round(now() - t0)} ms`;
    const later = await waitFor(async () => {
      const s = await state();
      return isNumber(s.data) && Number(s.data) >= Number(first.data) + 2 && s;
    }, { timeout: COUNT_TIMEOUT_MS, interval: 50, what: `#data to count past ${Number(first.data) + 1}`, describe });
    log(`counted ${first.data} -> ${later.data} over wss`);
    report.state = later;

    assert.equal(later.protocol, 'https:');
    const socketUrl = `wss://127.0.0.1:${server.port}/socket`;
    assert.ok(later.log.some((line) => line === `Open: ${socketUrl}`),
      `#log has no "Open: ${socketUrl}": ${JSON.stringify(later.log)}`);
    assert.equal(later.nextHopProtocol, 'h2', 'the page did not come over HTTP/2');

    await saveScreenshot(browser, name);
    failed = false;
  } catch (err) {
    if (browser) await saveFailureScreenshot(browser, name);
    if (server) err.message += `\n${server.output()}`;
    throw err;
  } finally {
    report.ok = !failed;
    await Promise.allSettled([
      browser ? browser.close() : null,
      server ? server.stop() : null,
    ]);
    await removeDir(dir);
    report.total = `${Math.round(now() - t0)} ms`;
    await writeReport(name, report);
    log(`done in ${report.total}`);
  }
}
