// The Python of the browser suite's venv (./scripts/test makes it: target/e2e-venv, holding the
// PyPI packages the tests run: `pusher`, `httpx`, `httpx-sse`, `pyjwt`), and running a script in it.

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './server.mjs';

/** Where ./scripts/test puts the venv, relative to the repo root. */
export const VENV = path.join('target', 'e2e-venv');

const INSTALL_HINT = `run ./scripts/test (its install step makes the venv) or \`python3 -m venv ${VENV} && ` +
  `${VENV}/bin/pip install pusher==3.3.4 httpx==0.29.0 httpx-sse==0.4.3 pyjwt==2.15.1\``;

/**
 * The venv's python: `$<envVar>` if set (relative to the repo root), else `$E2E_PYTHON`, else
 * <repo>/target/e2e-venv/bin/python. Throws (the test fails, it is never skipped) when it is not
 * an executable file.
 */
export function venvPython(envVar = 'E2E_PYTHON') {
  const chosen = process.env[envVar] || process.env.E2E_PYTHON || path.join(VENV, 'bin', 'python');
  const python = path.resolve(REPO_ROOT, chosen);
  try {
    fs.accessSync(python, fs.constants.X_OK);
  } catch {
    throw new Error(`no python of the e2e venv at ${python}: ${INSTALL_HINT}, or set ${envVar}`);
  }
  return python;
}

/**
 * Run the Python script `file` (a path) with `args` in the venv; resolves to its stdout (trimmed).
 * Rejects with its output when it exits non-zero or runs longer than `timeout` ms.
 */
export function runPython(file, args = [], { timeout = 20000, envVar } = {}) {
  const python = venvPython(envVar);
  return new Promise((resolve, reject) => {
    execFile(python, [file, ...args.map(String)], { timeout, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(file)} failed: ${err.message}\n${stdout}${stderr}`));
      else resolve(stdout.trim());
    });
  });
}
