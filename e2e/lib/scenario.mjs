// The counter scenario, run identically against every browser engine:
//   1. start pushwire on a free port, launch the browser, open the counter page;
//   2. #data shows "1", "2", "3", each about one interval (1 s) after the last;
//   3. SIGKILL the server: #log gets a "Close: …" entry, then the page retries
//      (at least one refused attempt and a second "Reconnecting in …");
//   4. start pushwire again on the same port: without a reload the page
//      reconnects and counts from "1" to "2" again;
//   5. screenshot to <repo>/target/e2e/<engine>.png (and a JSON report next to it).
// Every wait is bounded; the server and the browser are always stopped.
//
// An engine is plugged in through an "adapter" (lib/engines.mjs has one launcher
// per engine; `launch` defaults to the one for `engine`):
//   { name, version?, open(url), evaluate(jsFunctionSource) -> value,
//     text(cssSelector) -> string, screenshot(file), close() }
// `evaluate` receives the source of a zero-argument JS function, runs it in the
// page and returns its (JSON-serialisable) result.

import assert from 'node:assert/strict';
import path from 'node:path';
import { launcherFor } from './engines.mjs';
import { clearArtifacts, saveFailureScreenshot, saveScreenshot, writeReport } from './artifacts.mjs';
import { freePort, now, startServer, waitFor, withTimeout } from './server.mjs';

// Installed once after the page has loaded: a marker that survives only as long
// as the document does (to prove there was no reload), and a MutationObserver
// that timestamps every change of #data in the page's own clock, so the interval
// checks do not depend on how promptly the test's polls get through.
const SETUP = `() => {
  const el = document.getElementById('data');
  const probe = { sentinel: 'same-document', changes: [] };
  window.__pushwireE2e = probe;
  if (el) {
    new MutationObserver(() => probe.changes.push([el.textContent.trim(), performance.now()]))
      .observe(el, { childList: true, characterData: true, subtree: true });
  }
  return true;
}`;
// Reads what the test asserts on: #data text and the #log entries. `fresh` holds
// the #log entries added since the last MARK_SEEN (the page trims old entries,
// so positions in the list are not stable; marks on the <li> are).
const READ_STATE = `() => {
  const items = Array.from(document.querySelectorAll('#log li'));
  const probe = window.__pushwireE2e;
  return {
    data: document.getElementById('data')?.textContent.trim() ?? null,
    log: items.map((li) => li.textContent.trim()),
    fresh: items.filter((li) => !li.hasAttribute('data-e2e-seen')).map((li) => li.textContent.trim()),
    sentinel: probe ? probe.sentinel : null,
    changes: probe ? probe.changes : [],
  };
}`;
const MARK_SEEN = `() => {
  document.querySelectorAll('#log li').forEach((li) => li.setAttribute('data-e2e-seen', ''));
  return true;
}`;

const INTERVAL_MS = 1000;
const POLL_MS = 50;
const MIN_GAP_MS = 800; // a tick may not come noticeably earlier than the interval
const FIRST_VALUE_TIMEOUT_MS = 10000; // page load + WebSocket connect + first tick
const THIRD_BY_MS = 3000; // "3" must be shown at most this long after "1"
const CLOSE_TIMEOUT_MS = 5000; // SIGKILL -> "Close:" in #log
const DOWN_RETRY_TIMEOUT_MS = 5000; // "Close:" -> a failed retry -> the next "Reconnecting in"
const RECONNECT_TIMEOUT_MS = 15000; // server back -> "1" shown again

// What #data may show while waiting for the next expected number.
const isNumber = (v) => /^\s*\d+\s*$/.test(v ?? '');
const notANumber = Object.assign((v) => !isNumber(v), { description: 'no number yet' });
const stillShows = (prev) => Object.assign((v) => v === prev, { description: `still "${prev}"` });
const orNotANumber = (prev) =>
  Object.assign((v) => v === prev || !isNumber(v), { description: `still "${prev}" or no number` });

export async function runCounterScenario({ engine, launch = launcherFor(engine), log = (msg) => console.log(`[${engine}] ${msg}`) }) {
  const t0 = now();
  const ms = (t) => `${Math.round(t)} ms`;
  const report = { engine, timings: {}, log: [], closeEntry: null };
  const port = await freePort();
  let server = null;
  let browser = null;
  let last = { data: null, log: [], fresh: [], changes: [] };
  let failed = true;

  const state = async () => {
    last = await browser.evaluate(READ_STATE);
    return last;
  };
  const describe = () => JSON.stringify({ data: last.data, log: last.log.slice(-8) });

  /**
   * Wait until #data shows `want`, allowing only values accepted by `allowed` on
   * the way there (so a skipped or repeated number fails at once). Returns when
   * `want` was first seen by a poll (`at`, test clock) and when the page's
   * observer saw #data change to it (`pageAt`, page clock; null if unknown).
   */
  const waitForData = async (want, allowed, opts) => {
    await waitFor(async () => {
      const s = await state();
      if (s.data === want) return true;
      if (!allowed(s.data)) {
        throw new Error(`#data shows ${JSON.stringify(s.data)} while waiting for "${want}" ` +
          `(expected ${allowed.description}); state: ${describe()}`);
      }
      return false;
    }, { interval: POLL_MS, what: `#data to show "${want}"`, describe, ...opts });
    const at = now();
    const change = last.changes.findLast(([value]) => value === want);
    return { at, pageAt: change ? change[1] : null };
  };
  /** Time between two waitForData results: page clock if both have it, else poll times. */
  const gap = (a, b) => (a.pageAt !== null && b.pageAt !== null ? b.pageAt - a.pageAt : b.at - a.at);

  // Artifacts of an earlier run must not pass for this run's.
  await clearArtifacts(engine);

  try {
    // --- start everything ---------------------------------------------------------
    server = await startServer({ port, interval: '1s' });
    report.timings.serverReady = ms(now() - t0);
    log(`server up: ${server.command}`);

    const tl = now();
    browser = await launch();
    report.browser = browser.version || browser.name;
    report.timings.browserLaunch = ms(now() - tl);
    log(`browser up (${report.browser}) in ${report.timings.browserLaunch}`);

    // --- 1, 2, 3 on time ----------------------------------------------------------
    await browser.open(server.url);
    assert.equal(await browser.evaluate(SETUP), true);
    const t1 = await waitForData('1', notANumber, { timeout: FIRST_VALUE_TIMEOUT_MS });
    const t2 = await waitForData('2', stillShows('1'), { deadline: t1.at + THIRD_BY_MS });
    const t3 = await waitForData('3', stillShows('2'), { deadline: t1.at + THIRD_BY_MS });
    report.timings.gap1to2 = ms(gap(t1, t2));
    report.timings.gap2to3 = ms(gap(t2, t3));
    report.timings.polledGaps = [ms(t2.at - t1.at), ms(t3.at - t2.at)];
    log(`counted 1 -> 2 -> 3; gaps ${report.timings.gap1to2}, ${report.timings.gap2to3} ` +
      `(${t1.pageAt !== null ? 'page clock' : 'polled'}; polled: ${report.timings.polledGaps.join(', ')})`);
    assert.ok(gap(t1, t2) >= MIN_GAP_MS, `"2" came only ${ms(gap(t1, t2))} after "1" (interval ${INTERVAL_MS} ms)`);
    assert.ok(gap(t2, t3) >= MIN_GAP_MS, `"3" came only ${ms(gap(t2, t3))} after "2" (interval ${INTERVAL_MS} ms)`);
    assert.ok(last.log.some((e) => e.startsWith('Open')), `no "Open" entry in #log: ${describe()}`);

    // --- server dies: page notices ------------------------------------------------
    assert.equal(await browser.evaluate(MARK_SEEN), true);
    const tk = now();
    await server.kill('SIGKILL');
    log(`server SIGKILLed (exit signal ${server.child.signalCode})`);
    const closeEntry = await waitFor(async () => {
      await state();
      return last.fresh.find((e) => e.startsWith('Close:'));
    }, { timeout: CLOSE_TIMEOUT_MS, interval: POLL_MS, what: '"Close:" entry in #log after SIGKILL', describe });
    report.closeEntry = closeEntry;
    report.timings.killToClose = ms(now() - tk);
    report.errorEntries = last.fresh.filter((e) => e.startsWith('Error:'));
    log(`page logged ${JSON.stringify(closeEntry)} ${report.timings.killToClose} after SIGKILL` +
      (report.errorEntries.length ? `; errors: ${JSON.stringify(report.errorEntries)}` : '; no "Error:" entry'));

    // --- while it is down, the page keeps retrying (a refused attempt, then backoff) --
    const retried = await waitFor(async () => {
      await state();
      const at = last.fresh.flatMap((e, i) => (e.startsWith('Reconnecting in') ? [i] : []));
      return at.length >= 2 && last.fresh.slice(at[0] + 1, at[1]); // what the failed retry logged
    }, { timeout: DOWN_RETRY_TIMEOUT_MS, interval: POLL_MS, what: 'a second "Reconnecting in" entry while the server is down', describe });
    report.refusedAttempt = retried;
    log(`while down, a retry was refused: ${JSON.stringify(retried)}`);

    // --- server comes back on the same port: page reconnects without reload -------
    const tr = now();
    server = await startServer({ port, interval: '1s' });
    log(`server restarted on the same port in ${ms(now() - tr)}`);
    await state();
    const stale = last.data;
    assert.notEqual(stale, '1', 'precondition: #data should not already show "1" before the reconnect');
    const r1 = await waitForData('1', orNotANumber(stale), { deadline: tr + RECONNECT_TIMEOUT_MS });
    const r2 = await waitForData('2', stillShows('1'), { deadline: r1.at + THIRD_BY_MS });
    report.timings.restartToFirst = ms(r1.at - tr);
    report.timings.reconnectGap1to2 = ms(gap(r1, r2));
    assert.ok(gap(r1, r2) >= MIN_GAP_MS, `after reconnect "2" came only ${ms(gap(r1, r2))} after "1"`);
    assert.equal(last.sentinel, 'same-document', 'the page was reloaded (sentinel lost); it must reconnect in place');
    const reconnects = last.fresh.filter((e) => e.startsWith('Reconnecting in'));
    assert.ok(reconnects.length >= 1, `no "Reconnecting in …" entry after the close: ${describe()}`);
    assert.ok(last.fresh.some((e) => e.startsWith('Open')),
      `no new "Open" entry after the restart: ${describe()}`);
    log(`reconnected without reload: "1" ${report.timings.restartToFirst} after restart, then "2" ` +
      `${report.timings.reconnectGap1to2} later; ${reconnects.length} reconnect attempt(s) logged ` +
      `(${reconnects.map((e) => JSON.stringify(e)).join(', ')})`);

    // Cross-check through the engine's own element API (not our page script).
    const shown = await browser.text('#data');
    assert.match(shown, /^\d+$/, `#data element text is ${JSON.stringify(shown)}`);
    assert.ok(Number(shown) >= 2 && Number(shown) <= 4, `#data element text ${shown} should be 2..4 right after the reconnect`);

    // --- screenshot ---------------------------------------------------------------
    const shot = await saveScreenshot(browser, engine);
    log(`screenshot: ${path.relative(process.cwd(), shot)}`);
    failed = false;
  } catch (err) {
    // Add what the page and the server said to the failure.
    const extra = browser ? [`page state: ${describe()}`] : [];
    if (server) extra.push(`server output:\n${server.output()}`);
    err.message += `\n${extra.join('\n')}`;
    throw err;
  } finally {
    report.log = last.log;
    report.timings.total = ms(now() - t0);
    report.ok = !failed;
    if (failed && browser) await saveFailureScreenshot(browser, engine);
    const tc = now();
    await Promise.allSettled([
      browser ? withTimeout(browser.close(), 20000, `${engine} close`).catch((e) => log(`close: ${e.message}`)) : null,
      server ? server.stop() : null,
    ]);
    report.timings.teardown = ms(now() - tc);
    await writeReport(engine, report);
    log(`done in ${report.timings.total} (teardown ${report.timings.teardown})`);
  }
  return report;
}
