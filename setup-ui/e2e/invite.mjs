// The invite flow in headless Debian chromium at phone size, against a
// real, claimed xmppd: the admin logs in and makes a group invite; a
// second browser context (a new member's phone, nothing shared) follows
// /i/<token> and makes an account with the web form, which takes it into
// /chat/ logged in. axe-core on every page but the chat (its own e2e in
// xmppd/webchat/e2e); screenshots. Run by invite_e2e_test.go; prints one JSON line.
//
//   BASE=http://127.0.0.1:PORT ADMIN=anna ADMIN_PASSWORD=… OUT=dir NEW_USER=… NEW_PASSWORD=… node invite.mjs
import { join } from 'node:path';
import { launch, newResult, phone, checker, mainText, trackThirdParty, logIn } from './lib.mjs';

const { BASE, ADMIN, ADMIN_PASSWORD, OUT, NEW_USER, NEW_PASSWORD } = process.env;
const result = newResult();
const browser = await launch();

const check = checker(result, OUT);

const watch = async (ctx) => trackThirdParty(result, await ctx.newPage(), BASE);
const text = mainText;
let admin, member;
try {
  // The admin makes a group invite.
  admin = await browser.newContext(phone);
  const a = await watch(admin);
  await logIn(a, BASE, '/invite', ADMIN, ADMIN_PASSWORD);
  await check(a, 'i-00-invite-form');
  await a.check('input[name=who][value=group]');
  await a.fill('#note', 'for the juniors');
  await a.click('button:has-text("Make the invitation")');
  await check(a, 'i-00-invite-ready');
  const made = await text(a);
  const token = made.match(/\/i\/([A-Za-z0-9_-]+)/)?.[1];
  result.checks.token = token || '';
  if (!token) throw new Error('no invite on the page: ' + made);

  // A new member's phone: nothing shared with the admin's browser.
  member = await browser.newContext(phone);
  const m = await watch(member);
  const resp = await m.goto(BASE + '/i/' + token);
  result.checks.landingStatus = resp.status();
  result.checks.linkHeader = (await resp.allHeaders())['link'] || '';
  await check(m, 'i-01-landing-android');
  const body = await text(m);
  result.checks.androidFirst = body.indexOf('On an Android phone') >= 0 && body.indexOf('On an Android phone') < body.indexOf('On an iPhone');
  result.checks.allWays = ['On an iPhone', 'On a computer', 'No smartphone?'].every((s) => body.includes(s));
  result.checks.plainWords = !/XMPP|JID/.test(body);
  result.checks.notePrivate = !body.includes('for the juniors');
  const app = await m.locator('a.button:has-text("Open the invitation in the app")').first().getAttribute('href');
  result.checks.appLink = app === 'xmpp:hearth.localhost?register;preauth=' + token;
  await m.goto(BASE + '/i/' + token + '/poster');
  await check(m, 'i-02-poster');
  // On paper: A4, no site header or buttons, the QR code kept.
  await m.emulateMedia({ media: 'print' });
  result.checks.posterPrint = await m.isHidden('header') && await m.isHidden('.no-print') && await m.isVisible('svg.qr');
  await m.screenshot({ path: join(OUT, 'i-02-poster-print.png'), fullPage: true });
  await m.emulateMedia({ media: 'screen' });
  await m.goto(BASE + '/i/' + token);
  await m.click('a:has-text("Make my account here")');
  await check(m, 'i-03-join');
  await m.fill('#user', NEW_USER);
  await m.check('#pwshow');
  result.checks.passwordShown = await m.isVisible('#password_shown');
  await m.fill('#password_shown', NEW_PASSWORD);
  await m.click('button[type=submit]');
  // Issue 10: the form hands the new member into the browser chat, logged
  // in (one-time cookie, xmppd/webchat/handoff.go): connected, the chat
  // UI shown, no login form, no password in the address.
  await m.waitForURL((u) => u.pathname === '/chat/', { timeout: 30000 });
  await m.waitForFunction(() => window.hearthChat?.status === 5, null, { timeout: 30000 });
  await m.waitForSelector('.controlbox-section', { timeout: 30000 });
  result.checks.inChat = !(await m.isVisible('#converse-login-jid')) && !m.url().includes(NEW_PASSWORD) &&
    !m.url().includes(encodeURIComponent(NEW_PASSWORD));
  await m.screenshot({ path: join(OUT, 'i-04-chat.png') });

  // A desktop visitor sees the QR code of the page first.
  const desk = await browser.newContext({ viewport: { width: 360, height: 740 } });
  const d = await watch(desk);
  await d.goto(BASE + '/i/' + token);
  const dt = await text(d);
  result.checks.desktopFirst = dt.indexOf('On a computer') < dt.indexOf('On an Android phone');
  await check(d, 'i-05-landing-desktop');
  const gone = await d.goto(BASE + '/i/no-such-invitation');
  result.checks.goneStatus = gone.status();
  await check(d, 'i-06-gone');
  await desk.close();
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
