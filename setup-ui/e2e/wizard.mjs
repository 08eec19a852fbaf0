// The first-boot flow in headless Debian chromium at phone size, against a
// real xmppd: a wrong code, then the whole wizard with the printed code;
// axe-core on every page; screenshots; page weights and any request that
// leaves the box. Run by wizard_e2e_test.go; prints one JSON line.
//
//   BASE=http://127.0.0.1:PORT CODE=… OUT=dir node wizard.mjs
//
// Against the qemu box (image/product_e2e_test.go) the browser opens
// BASE=http://hearth.local as a person does, HOST_RULES maps that name to
// the forwarded port, and REQ_BASE (the port itself) serves the direct
// requests of the last checks, which do not go through the browser.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, launchOptions, newResult, phone, checker, mainText, trackThirdParty } from './lib.mjs';

const BASE = process.env.BASE, CODE = process.env.CODE, OUT = process.env.OUT;
const PASSWORD = process.env.PASSWORD || 'green kettle river';
const REQ_BASE = process.env.REQ_BASE || BASE;
const HOST_ARGS = process.env.HOST_RULES ? ['--host-resolver-rules=' + process.env.HOST_RULES, '--disable-features=HttpsUpgrades'] : [];
const result = newResult();
const profile = mkdtempSync(join(tmpdir(), 'hearth-chromium-'));
const ctx = await chromium.launchPersistentContext(profile, { ...launchOptions(HOST_ARGS), ...phone });
const page = trackThirdParty(result, ctx.pages()[0] || await ctx.newPage(), BASE);
const check = checker(result, OUT);

async function visit(name, action) {
  await action();
  await check(page, name);
}

const text = () => mainText(page);

try {
  // A wrong code: refused, with the page saying where the right one is.
  await visit('01-setup-code', () => page.goto(BASE + '/setup'));
  await visit('02-wrong-code', async () => {
    await page.fill('#code', 'AAAA-BBBB-CCCC-DDDD');
    await page.fill('#name', 'Riverside Rowing Club');
    await page.click('button[type=submit]');
  });
  result.checks.wrongCode = (await text()).includes('not right');

  // The printed link, as the card's QR code opens it.
  await visit('03-setup-code-link', () => page.goto(BASE + '/setup?code=' + encodeURIComponent(CODE)));
  await visit('04-account', async () => {
    await page.fill('#name', 'Riverside Rowing Club');
    await page.click('button[type=submit]');
  });
  result.checks.accountPage = page.url().endsWith('/setup/account');
  await page.fill('#display', 'Anna Miller');
  await page.check('#pwshow');
  result.checks.passwordShown = await page.isVisible('#password_shown');
  await page.fill('#password_shown', PASSWORD);
  await visit('05-reach', () => page.click('button[type=submit]'));
  result.checks.reachPage = page.url().endsWith('/setup/reach');
  result.checks.liveChecks = (await text()).includes('This box is on your home network');
  await page.check('input[name=reach][value=home]');
  await visit('06-invite', () => page.click('button:has-text("Save and continue")'));
  await page.check('input[name=who][value=group]');
  await visit('07-invite-ready', () => page.click('button:has-text("Make the invitation")'));
  result.checks.inviteLink = (await text()).includes('preauth=');
  result.checks.inviteQR = await page.locator('svg.qr').count() === 1;
  await visit('08-done', () => page.click('a:has-text("Finish")'));
  result.checks.done = (await text()).includes('Your chat is ready');
  result.checks.admin = (await text()).match(/You are (\S+)@/)?.[1] || '';

  // The other pages a visitor can meet.
  await visit('09-home', () => page.goto(BASE + '/'));
  await visit('10-setup-closed', () => page.goto(BASE + '/setup?code=' + encodeURIComponent(CODE)));
  result.checks.closed = (await text()).includes('already set up');
  await visit('11-not-found', () => page.goto(BASE + '/no/such/page'));
  await page.goto(BASE + '/');
  await page.click('button:has-text("Log out")');
  await visit('12-login', () => page.goto(BASE + '/login'));
  await visit('13-login-wrong', async () => {
    await page.fill('#user', 'anna');
    await page.fill('#password', 'not the password');
    await page.click('button[type=submit]');
  });
  result.checks.loginWrong = (await text()).includes('do not match');

  // Refused: another site's name for the box, and a form from another site.
  const req = ctx.request;
  result.checks.foreignHost = (await req.get(REQ_BASE + '/setup', { headers: { Host: 'evil.example' }, maxRedirects: 0 })).status();
  result.checks.foreignOrigin = (await req.post(REQ_BASE + '/setup/invite', {
    headers: { Origin: 'http://evil.example' }, form: { who: 'one', valid: '1w' }, maxRedirects: 0,
  })).status();
} catch (e) {
  result.error = String(e && e.stack || e);
  try { await page.screenshot({ path: join(OUT, 'error.png'), fullPage: true }); } catch { /* nothing to add */ }
} finally {
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
