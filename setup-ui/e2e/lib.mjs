// What every browser script of the e2e suites shares: Debian's chromium
// launched the same way, the phone the pages are judged on, and the
// per-page check (load, page weight, axe-core, screenshot, wider than the
// phone) into the one JSON result the Go side reads (internal/browsertest).
// The Go side copies this file beside each script; a script imports it as
// './lib.mjs'.
import { chromium } from 'playwright-core';
import { AxeBuilder } from '@axe-core/playwright';
import { createInterface } from 'node:readline';
import { join } from 'node:path';

// No network of its own: nothing but the pages under test may leave the
// browser (background updates, QUIC probes and sync would show up as
// requests to third parties).
export const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// The launch options for Debian's chromium, with extra arguments after
// the common ones (for launch or launchPersistentContext).
export function launchOptions(extraArgs = []) {
  return { executablePath: '/usr/bin/chromium', headless: true, args: [...chromiumArgs, ...extraArgs] };
}

export function launch(extraArgs = []) {
  return chromium.launch(launchOptions(extraArgs));
}

export { chromium };

// The phone every page must work on: 360 CSS pixels wide.
export const phoneWidth = 360;
export const phone = {
  viewport: { width: phoneWidth, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
  userAgent: 'Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36',
};

// The result every script prints as its one JSON line; extra holds a
// script's own lists.
export function newResult(extra = {}) {
  return { pages: [], thirdParty: [], violations: [], checks: {}, ...extra };
}

// weigh: the document and everything it loaded, as the browser decoded
// them (whether or not the style sheet came from its cache).
export async function weigh(page) {
  return page.evaluate(() => {
    const es = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
    return { bytes: es.reduce((n, e) => n + (e.decodedBodySize || 0), 0), requests: es.length };
  });
}

// axe runs axe-core (WCAG 2.2 AA) on page and records each violation with
// up to nodes of its elements.
export async function axe(result, page, name, nodes = 3) {
  const a = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']).analyze();
  for (const v of a.violations) result.violations.push({ page: name, id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, nodes) });
}

// checker returns check(page, name): wait for the load, record the page's
// weight under name, run axe, take a full-page screenshot into out, and
// count a page wider than the phone as a violation.
export function checker(result, out) {
  return async function check(page, name) {
    await page.waitForLoadState('load');
    const w = await weigh(page);
    result.pages.push({ name, bytes: w.bytes, requests: w.requests });
    await axe(result, page, name);
    await page.screenshot({ path: join(out, name + '.png'), fullPage: true });
    const scroll = await page.evaluate(() => document.documentElement.scrollWidth);
    if (scroll > phoneWidth) result.violations.push({ page: name, id: 'wider-than-phone', impact: 'serious', nodes: [String(scroll)] });
  };
}

// trackThirdParty records every request of page that goes neither to base
// nor to a data: URL.
export function trackThirdParty(result, page, base) {
  page.on('request', (req) => {
    if (!req.url().startsWith(base) && !req.url().startsWith('data:')) result.thirdParty.push(req.url());
  });
  return page;
}

// mainText: what the page's <main> says.
export const mainText = (page) => page.locator('main').innerText();

// stdinLines returns nextLine(), which resolves with the next line the
// test writes on stdin, and close(), without which node would wait on
// stdin for ever.
export function stdinLines() {
  const rl = createInterface({ input: process.stdin });
  return { nextLine: () => new Promise((resolve) => rl.once('line', resolve)), close: () => rl.close() };
}

// logIn logs user in through the login form, which then opens next.
export async function logIn(page, base, next, user, password) {
  await page.goto(base + '/login?next=' + next);
  await page.fill('#user', user);
  await page.fill('#password', password);
  await page.click('button[type=submit]');
}
