// WebKit (WebKitGTK MiniBrowser through WebKitWebDriver, lib/webdriver.mjs) with several pages,
// for the topic scenarios (lib/topics.mjs), which are written against puppeteer's Page. Each page
// here is a MiniBrowser window with the part of that API the scenarios use:
//
//   goto(url), evaluate(fn, ...args), $$eval(selector, fn), type(selector, text),
//   keyboard.press('Enter'), bringToFront(), addScriptTag({ url }), screenshot({ path }), close(),
//   exposeFunction(name, fn) (before the first goto)
//
// WebDriver talks to one window at a time: every call switches to its page's window first, and
// calls are serialized. `newPage(init)`: WebDriver cannot run a script before a page's own, so a
// page with `init` is loaded through lib/upgrade-proxy.mjs (WebSockets relayed), which puts a
// script running `(init)()` first in every HTML document it forwards; the page's URL then
// has the proxy's port instead of the server's (same host, so the page is still same-origin with
// everything it loads). `exposeFunction(name, fn)` goes through the same proxy: `window[name]`
// POSTs its arguments to it, and it calls `fn` in this process.

import fsp from 'node:fs/promises';
import { startUpgradeProxy } from './upgrade-proxy.mjs';
import { launchWebKit } from './webdriver.mjs';

/** Launch WebKit: { name, version, newPage(init?), close() }. Rejects if it cannot start. */
export async function launchWebKitPages() {
  const engine = await launchWebKit();
  const { client } = engine;
  const proxies = [];
  let queue = Promise.resolve();
  /** Run `fn` after every call made before it (WebDriver has one current window). */
  const serial = (fn) => {
    const result = queue.then(fn, fn);
    queue = result.catch(() => {});
    return result;
  };
  let current = null;
  try {
    current = await client.request('GET', client.s('/window'));
  } catch (err) {
    await engine.close();
    throw err;
  }
  let firstFree = true;
  const first = current;

  /** Run `fn` with `handle`'s window as the current one. */
  const on = (handle, fn) => serial(async () => {
    if (current !== handle) {
      await client.request('POST', client.s('/window'), { handle });
      current = handle;
    }
    return fn();
  });

  function page(handle, init) {
    let proxy = null;
    const exposed = {};
    const evaluate = (fn, ...args) => on(handle, () => client.executeScript(`return (${fn}).apply(null, arguments);`, args));
    const self = {
      async goto(url) {
        let target = new URL(url);
        if (init || Object.keys(exposed).length) {
          if (!proxy) {
            const calls = Object.keys(exposed).map((name) => `window[${JSON.stringify(name)}] = (...args) => fetch(` +
              `'/__e2e-call/${encodeURIComponent(name)}', { method: 'POST', body: JSON.stringify(args) })` +
              `.then((res) => (res.ok ? res.json() : res.text().then((text) => { throw new Error(text); })));\n`);
            const initScript = calls.join('') + (init ? `(${init})();\n` : '');
            proxy = await startUpgradeProxy(Number(target.port), { upgrades: true, initScript, calls: exposed });
            proxies.push(proxy);
          }
          target = new URL(url);
          target.port = String(proxy.port);
        }
        await on(handle, () => client.navigate(target.href));
      },
      evaluate,
      /** `window[name](...args)` calls `fn(...args)` here and resolves with its result (JSON). */
      async exposeFunction(name, fn) {
        if (proxy) throw new Error('webkit pages: exposeFunction must come before the first goto');
        exposed[name] = fn;
      },
      $$eval: (selector, fn) => on(handle, () => client.executeScript(
        `return (${fn})(Array.from(document.querySelectorAll(arguments[0])));`, [selector])),
      /** Real key events into the element `selector`: WebDriver's Element Send Keys. */
      type: (selector, text) => on(handle, async () => {
        const element = await client.findElement(selector);
        await client.request('POST', client.s(`/element/${element}/value`), { text });
      }),
      keyboard: {
        /** Only 'Enter' (the one key the scenarios press), into the focused element. */
        press: (key) => on(handle, async () => {
          if (key !== 'Enter') throw new Error(`webkit pages press only Enter, not ${key}`);
          const active = Object.values(await client.request('GET', client.s('/element/active')))[0];
          await client.request('POST', client.s(`/element/${active}/value`), { text: '\uE007' });
        }),
      },
      bringToFront: () => on(handle, () => {}),
      addScriptTag: ({ url }) => evaluate((src) => new Promise((resolve, reject) => {
        const script = document.createElement('script');
        script.src = src;
        script.onload = () => resolve(true);
        script.onerror = () => reject(new Error(`could not load ${src}`));
        document.head.appendChild(script);
      }), url),
      screenshot: ({ path }) => on(handle, async () => fsp.writeFile(path, await client.screenshot())),
      close: () => on(handle, async () => {
        await client.request('DELETE', client.s('/window'));
        current = null; // WebDriver has no current window now: the next call switches
        if (proxy) await proxy.close();
      }),
    };
    return self;
  }

  return {
    name: 'webkit',
    version: engine.version,
    /** A page (the first call reuses the session's window); `init` runs before any script of every document. */
    async newPage(init) {
      let handle = first;
      if (firstFree) firstFree = false;
      else handle = (await serial(() => client.request('POST', client.s('/window/new'), { type: 'window' }))).handle;
      return page(handle, init);
    },
    async close() {
      await Promise.allSettled(proxies.map((p) => p.close()));
      await engine.close();
    },
  };
}
