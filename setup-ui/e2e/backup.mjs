// The whole-box backup in headless Debian chromium at phone size, in two
// runs (backup_e2e_test.go restarts boxes between them):
//
//   MODE=download BASE=… ADMIN=… ADMIN_PASSWORD=… PASSPHRASE=… FILE=… OUT=dir node backup.mjs
//     the admin logs in, opens Backup, types two different passphrases
//     (refused), then the same one twice and saves the download to FILE.
//   MODE=restore BASE=… CODE=… PASSPHRASE=… FILE=… OUT=dir node backup.mjs
//     on a fresh box: the setup code, "I have a backup", a wrong
//     passphrase (refused, nothing changes), then the right one.
//
// axe-core on every page; screenshots. Prints one JSON line.
import { chromium } from 'playwright-core';
import { AxeBuilder } from '@axe-core/playwright';
import { join } from 'node:path';

const { MODE, BASE, ADMIN, ADMIN_PASSWORD, PASSPHRASE, FILE, CODE, OUT } = process.env;
const result = { pages: [], thirdParty: [], violations: [], checks: {} };
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const phone = {
  viewport: { width: 360, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, acceptDownloads: true,
};

async function check(page, name) {
  await page.waitForLoadState('load');
  const axe = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']).analyze();
  for (const v of axe.violations) result.violations.push({ page: name, id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 3) });
  await page.screenshot({ path: join(OUT, name + '.png'), fullPage: true });
  const scroll = await page.evaluate(() => document.documentElement.scrollWidth);
  if (scroll > 360) result.violations.push({ page: name, id: 'wider-than-phone', impact: 'serious', nodes: [String(scroll)] });
  result.pages.push({ name });
}

const text = (page) => page.locator('main').innerText();
try {
  const ctx = await browser.newContext(phone);
  const p = await ctx.newPage();
  p.on('request', (req) => {
    if (!req.url().startsWith(BASE) && !req.url().startsWith('data:')) result.thirdParty.push(req.url());
  });
  if (MODE === 'download') {
    await p.goto(BASE + '/login?next=/admin/backup');
    await p.fill('#user', ADMIN);
    await p.fill('#password', ADMIN_PASSWORD);
    await p.click('button[type=submit]');
    await p.click('nav.admin a:has-text("Backup")');
    await check(p, 'b-01-backup');
    await p.fill('#passphrase', PASSPHRASE);
    await p.fill('#passphrase2', PASSPHRASE + 'x');
    await p.click('button[type=submit]');
    await check(p, 'b-02-mismatch');
    result.checks.mismatch = (await text(p)).includes('not the same');
    await p.fill('#passphrase', PASSPHRASE);
    await p.fill('#passphrase2', PASSPHRASE);
    const [dl] = await Promise.all([p.waitForEvent('download', { timeout: 60000 }), p.click('button[type=submit]')]);
    await dl.saveAs(FILE);
    result.checks.name = dl.suggestedFilename();
    result.checks.downloaded = (await dl.failure()) === null;
  } else {
    await p.goto(BASE + '/setup?code=' + encodeURIComponent(CODE));
    await p.fill('#name', 'Riverside Rowing Club');
    await p.click('button[type=submit]');
    await p.click('a:has-text("I have a backup")');
    await check(p, 'r-01-restore');
    await p.fill('#passphrase', 'not the passphrase at all');
    await p.setInputFiles('#file', FILE);
    await p.click('button[type=submit]');
    await check(p, 'r-02-wrong-passphrase');
    result.checks.wrongPassphrase = (await text(p)).includes('not the passphrase');
    await p.fill('#passphrase', PASSPHRASE);
    await p.setInputFiles('#file', FILE);
    await p.click('button[type=submit]');
    await check(p, 'r-03-restored');
    result.checks.restored = (await text(p)).includes('being put in place') && (await text(p)).includes('restarting');
  }
} catch (e) {
  result.error = String(e && e.stack || e);
}
await browser.close();
console.log(JSON.stringify(result));
