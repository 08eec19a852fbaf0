// The admin's "Other servers" page (federation settings) in headless
// Debian chromium at phone size, against a real, claimed xmppd with
// federation on and netconf beside it: whether other servers reach the
// box, a chat address typed into the block list refused with words,
// a block list saved, federation turned off. Before each save but the
// first it prints a line and waits for one on stdin (the test checks the
// running server meanwhile); at the end it prints one JSON line. axe-core
// on every page; screenshots. Run by federation_e2e_test.go.
//
//   BASE=http://127.0.0.1:PORT ADMIN=anna ADMIN_PASSWORD=… OUT=dir node federation.mjs
import { chromium } from 'playwright-core';
import { AxeBuilder } from '@axe-core/playwright';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const { BASE, ADMIN, ADMIN_PASSWORD, OUT } = process.env;
const result = { pages: [], thirdParty: [], violations: [], checks: {} };
const stdin = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => stdin.once('line', resolve));
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const phone = {
  viewport: { width: 360, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
  userAgent: 'Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36',
};

async function check(page, name) {
  await page.waitForLoadState('load');
  const w = await page.evaluate(() => {
    const es = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
    return { bytes: es.reduce((n, e) => n + (e.decodedBodySize || 0), 0), requests: es.length };
  });
  result.pages.push({ name, bytes: w.bytes, requests: w.requests });
  const axe = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']).analyze();
  for (const v of axe.violations) result.violations.push({ page: name, id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 3) });
  await page.screenshot({ path: join(OUT, name + '.png'), fullPage: true });
  const scroll = await page.evaluate(() => document.documentElement.scrollWidth);
  if (scroll > 360) result.violations.push({ page: name, id: 'wider-than-phone', impact: 'serious', nodes: [String(scroll)] });
}

const text = (page) => page.locator('main').innerText();
try {
  const ctx = await browser.newContext(phone);
  const a = await ctx.newPage();
  a.on('request', (req) => {
    if (!req.url().startsWith(BASE) && !req.url().startsWith('data:')) result.thirdParty.push(req.url());
  });
  await a.goto(BASE + '/login?next=/admin/federation');
  await a.fill('#user', ADMIN);
  await a.fill('#password', ADMIN_PASSWORD);
  await a.click('button[type=submit]');
  await check(a, 'f-01-federation');
  result.checks.status = await a.locator('h2:has-text("Can other servers reach") + *').innerText().catch(() => '');
  result.checks.navigation = await a.locator('nav.admin a[aria-current=page]').innerText();
  result.checks.onChecked = await a.isChecked('input[name=federation][value=on]');

  // A chat address where a server's name belongs: refused, kept, said.
  await a.fill('#block', 'dave@spam.example');
  await a.click('button:has-text("Save")');
  await check(a, 'f-02-refused');
  result.checks.refusal = await a.locator('[role=alert]').innerText().catch(() => '');
  result.checks.kept = await a.inputValue('#block');

  await a.fill('#block', 'spam.example\nMünchen.example');
  await a.click('button:has-text("Save")');
  await check(a, 'f-03-saved');
  result.checks.saved = await a.locator('[role=status]').innerText().catch(() => '');
  result.checks.blockAfter = await a.inputValue('#block');
  console.log('blocked');
  await nextLine();

  await a.check('input[name=federation][value=off]');
  await a.click('button:has-text("Save")');
  await check(a, 'f-04-off');
  result.checks.offSaved = await a.locator('[role=status]').innerText().catch(() => '');
  result.checks.offChecked = await a.isChecked('input[name=federation][value=off]');
  result.checks.offStatus = await a.locator('h2:has-text("Can other servers reach") + *').innerText().catch(() => '');
  await ctx.close();
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(0);
