// The three browser engines, by name. Each launcher starts its browser (and
// driver) and resolves to an engine adapter (see lib/scenario.mjs):
//   { name, version?, open(url), evaluate(jsFunctionSource) -> value,
//     text(cssSelector) -> string, screenshot(file), close() }
// A browser that cannot start rejects: the test fails, it is never skipped.

import { launchChromium, launchFirefox } from './puppeteer.mjs';
import { launchWebKit } from './webdriver.mjs';

export const ENGINES = Object.freeze({
  chromium: launchChromium, // Debian `chromium`, puppeteer-core over CDP
  firefox: launchFirefox, // Debian `firefox-esr`, puppeteer-core over WebDriver BiDi
  webkit: launchWebKit, // WebKitGTK MiniBrowser, WebKitWebDriver under xvfb-run
});

/** The launcher for `engine` ("chromium", "firefox" or "webkit"). */
export function launcherFor(engine) {
  const launch = ENGINES[engine];
  if (!launch) throw new Error(`unknown engine ${JSON.stringify(engine)} (known: ${Object.keys(ENGINES).join(', ')})`);
  return launch;
}
