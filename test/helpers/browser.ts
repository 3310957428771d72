/**
 * Real headless Chromium for the browser tests: Debian's chromium package
 * (/usr/bin/chromium) driven by playwright-core, which downloads no browser of
 * its own. Every browser launched here gets a fresh profile directory and is
 * closed (and its directory removed) at the end of the tap test that launched
 * it, whatever happened.
 */
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import type { Test } from 'tap';
import { sleep } from './wait.js';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_MISSING = "chromium not found: install Debian's chromium package (apt-get install chromium)";

/**
 * Flags for a headless Chromium on a machine with no outside network: without
 * the background-networking ones it keeps trying (and failing) to reach
 * Google's services.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Whether Chromium is installed. When it is not, the test fails under CI
 * (CI=true, where .ci/run installs it) and is skipped elsewhere; the caller
 * then returns.
 */
export function chromiumAvailable(t: Test): boolean {
  try {
    accessSync(CHROMIUM, constants.X_OK);
    return true;
  } catch {
    if (process.env.CI === 'true') t.fail(CHROMIUM_MISSING);
    else t.skip(CHROMIUM_MISSING, () => {});
    return false;
  }
}

/**
 * Launches headless Chromium with a new empty profile (--user-data-dir, which
 * playwright takes as launchPersistentContext's first argument); its pages
 * are tabs of one browser. Closed at t's teardown.
 */
export async function launchBrowser(t: Test, { timeoutMs = 15000 } = {}): Promise<BrowserContext> {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'comet-chromium-'));
  let browser: BrowserContext | undefined;
  t.teardown(async () => {
    // close() waits for the browser process; bounded, as every wait here.
    if (browser) await Promise.race([browser.close().catch(() => {}), sleep(5000, undefined, { ref: false })]);
    rmSync(profile, { recursive: true, force: true });
  });
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: timeoutMs,
    viewport: { width: 720, height: 560 },
  });
  return browser;
}
