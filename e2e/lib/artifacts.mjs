// What a scenario leaves in <repo>/target/e2e for one run named NAME (e.g.
// "webkit" or "webkit-compression"): NAME.png (screenshot at the end),
// NAME-failure.png (best effort, only when the run failed) and NAME.json (report).

import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { ARTIFACT_DIR, ensureArtifactDir, withTimeout } from './server.mjs';

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Remove an earlier run's artifacts, so they cannot pass for this run's. */
export async function clearArtifacts(name) {
  await Promise.all(['.png', '-failure.png', '.json'].map((suffix) =>
    fsp.rm(path.join(ARTIFACT_DIR, name + suffix), { force: true })));
}

/** Screenshot of `browser` (an engine adapter) to NAME.png, checked to be a PNG. Returns its path. */
export async function saveScreenshot(browser, name, timeoutMs = 15000) {
  await ensureArtifactDir();
  const file = path.join(ARTIFACT_DIR, `${name}.png`);
  await withTimeout(browser.screenshot(file), timeoutMs, `${name} screenshot`);
  const head = (await fsp.readFile(file)).subarray(0, PNG_MAGIC.length);
  assert.deepEqual([...head], PNG_MAGIC, `${file} is not a PNG`);
  return file;
}

/** Best effort: a picture of a failure, NAME-failure.png. Never throws. */
export async function saveFailureScreenshot(browser, name) {
  await ensureArtifactDir()
    .then(() => withTimeout(browser.screenshot(path.join(ARTIFACT_DIR, `${name}-failure.png`)), 10000, 'failure screenshot'))
    .catch(() => {});
}

/** NAME.json with the run's report. Never throws. */
export async function writeReport(name, report) {
  await ensureArtifactDir()
    .then(() => fsp.writeFile(path.join(ARTIFACT_DIR, `${name}.json`), JSON.stringify(report, null, 2) + '\n'))
    .catch(() => {});
}
