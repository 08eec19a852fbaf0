// The browser chat (/chat/) in headless Debian chromium against a real
// xmppd: two members log in (bob on a 360×740 phone), talk to each other
// and to carol on slixmpp over TCP, send 10 kB, reload and stay logged in;
// over plain HTTP on hearth.local (not a secure context: the WebCrypto
// shim) and over HTTPS with the box's own certificate. axe-core,
// screenshots, page weight. Run by chat_e2e_test.go; prints one JSON line.
//
//   BASE=http://hearth.local:PORT TLSBASE=https://hearth.local:PORT DOMAIN=…
//   PORT_MAP=hearth.local OUT=dir PEER="python3 peer.py host port jid pw ca"
//   ALICE_PW=… BOB_PW=… node chat.mjs
import { chromium } from 'playwright-core';
import { AxeBuilder } from '@axe-core/playwright';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';

const { BASE, TLSBASE, DOMAIN, OUT, ALICE_PW, BOB_PW } = process.env;
const PEER = JSON.parse(process.env.PEER);
const result = { pages: [], thirdParty: [], violations: [], checks: {}, auth: [], resume: [], csp: [], errors: [] };
const T = 25000;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    // hearth.local as on the home network: a name, not loopback, so the
    // page is not a secure context (127.0.0.1 would be one).
    '--host-resolver-rules=MAP hearth.local 127.0.0.1'],
});
const phone = {
  viewport: { width: 360, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
  userAgent: 'Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36',
};
const desktop = { viewport: { width: 1280, height: 800 } };

// The slixmpp peer: lines "got FROM LEN TEXT".
const peer = spawn(PEER[0], PEER.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
const peerLines = [];
const peerWaiters = [];
createInterface({ input: peer.stdout }).on('line', (l) => {
  peerLines.push(l);
  for (const w of peerWaiters.splice(0)) w();
});
async function peerSaw(pred, what) {
  const deadline = Date.now() + T;
  for (;;) {
    const l = peerLines.find(pred);
    if (l) return l;
    if (Date.now() > deadline) throw new Error(`peer never saw ${what}; it saw: ${peerLines.join(' | ')}`);
    await new Promise((r) => { peerWaiters.push(r); setTimeout(r, 500); });
  }
}

function watch(page, name) {
  page.on('request', (req) => {
    const u = req.url();
    if (!u.startsWith(BASE) && !(TLSBASE && u.startsWith(TLSBASE)) && !u.startsWith('data:') && !u.startsWith('blob:')) result.thirdParty.push(u);
  });
  page.on('console', (m) => {
    const t = m.text();
    if (/Content.Security.Policy|Refused to/i.test(t)) result.csp.push(`${name}: ${t.slice(0, 300)}`);
    else if (m.type() === 'error') result.errors.push(`${name}: ${t.slice(0, 300)}`);
    else if (m.type() === 'warning') (result.warns ||= []).push(`${name}: ${t.slice(0, 300)}`);
  });
  page.on('pageerror', (e) => result.errors.push(`${name}: ${String(e).slice(0, 300)}`));
  page.on('websocket', (ws) => ws.on('framesent', (f) => {
    const p = String(f.payload);
    const m = p.match(/<(auth|authenticate)\b[^>]*mechanism=['"]([^'"]+)/);
    if (m) result.auth.push(`${name}: ${m[2]}`);
    if (/<resume\b/.test(p)) result.resume.push(`${name}: resume sent`);
  }));
  page.on('websocket', (ws) => ws.on('framereceived', (f) => {
    if (/<resumed\b/.test(String(f.payload))) result.resume.push(`${name}: resumed`);
  }));
  return page;
}

async function axe(page, name) {
  const a = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']).analyze();
  for (const v of a.violations) result.violations.push({ page: name, id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 4) });
}

async function shot(page, name) {
  await page.screenshot({ path: join(OUT, name + '.png') });
}

const status = (page) => page.evaluate(() => window.hearthChat?.status);
async function connected(page) {
  await page.waitForFunction(() => window.hearthChat?.status === 5, null, { timeout: T });
}

// open loads /chat/ and measures what came over the wire until the login
// form (or, logged in, the chat) shows.
async function open(page, base, name) {
  const t0 = Date.now();
  await page.goto(base + '/chat/');
  await page.waitForSelector('#converse-login-jid, .controlbox-section', { timeout: T });
  const ms = Date.now() - t0;
  const w = await page.evaluate(() => {
    const es = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
    return { transferred: es.reduce((n, e) => n + (e.transferSize || 0), 0), decoded: es.reduce((n, e) => n + (e.decodedBodySize || 0), 0), requests: es.length };
  });
  result.pages.push({ name, ms, ...w });
}

async function login(page, user, pw) {
  await page.fill('#converse-login-jid', user);
  await page.fill('#converse-login-password', pw);
  await page.click('#converse-login [type=submit]');
  await connected(page);
}

async function openChat(page, base, jid) {
  // Full-screen Converse shows one chat at a time and its #converse/chat
  // route does not replace a chat already shown: close the others first
  // (their close button, as a member would).
  for (const other of await page.locator(`converse-chat:not([jid="${jid}"]) .close-chatbox-button`).all()) {
    await other.dispatchEvent('click');
  }
  await page.waitForFunction((j) => ![...document.querySelectorAll('converse-chat')].some((c) => c.getAttribute('jid') !== j), jid, { timeout: T });
  await page.evaluate((j) => { location.hash = ''; location.hash = '#converse/chat?jid=' + j; }, jid);
  try {
    await page.waitForSelector(`converse-chat[jid="${jid}"] textarea.chat-textarea`, { timeout: T, state: 'attached' });
  } catch (e) {
    const d = await page.evaluate(() => ({ hash: location.hash, chats: [...document.querySelectorAll('converse-chat')].map((c) => c.outerHTML.slice(0, 300)), boxes: document.querySelector('converse-chats')?.outerHTML.slice(0, 1500) }));
    throw new Error(`no chat with ${jid}: ${JSON.stringify(d)}`);
  }
}

async function send(page, jid, text) {
  const ta = page.locator(`converse-chat[jid="${jid}"] textarea.chat-textarea`);
  await ta.fill(text);
  await ta.press('Enter');
}

async function sees(page, text) {
  try {
    await page.waitForFunction((t) => [...document.querySelectorAll('.chat-msg__text')].some((e) => e.textContent.includes(t)), text, { timeout: T });
  } catch (e) {
    await page.screenshot({ path: join(OUT, 'chat-failed-to-see.png') });
    throw new Error(`never saw "${text}": ${e}`);
  }
}

const alice = `alice@${DOMAIN}`, bob = `bob@${DOMAIN}`, carol = `carol@${DOMAIN}`;
try {
  await peerSaw((l) => l === 'ready', 'its login');

  // Bob on a phone, plain HTTP: the shim does SCRAM.
  const bctx = await browser.newContext(phone);
  const b = watch(await bctx.newPage(), 'bob');
  await open(b, BASE, 'chat-login-phone-http');
  result.checks.bobSecure = await b.evaluate(() => window.isSecureContext);
  result.checks.bobShim = await b.evaluate(() => window.hearthChat?.secure === false);
  result.checks.noteShown = await b.isVisible('#hearth-note');
  await shot(b, 'chat-01-login-phone');
  await axe(b, 'chat-login');
  result.checks.noRegister = (await b.locator('.register-account, a:has-text("Create an account")').count()) === 0;

  // The shim's arithmetic against published vectors (RFC 6070 PBKDF2,
  // RFC 4231 HMAC, FIPS 180 SHA-1), through the crypto.subtle it installed.
  result.checks.shimVectors = await b.evaluate(async () => {
    const enc = (s) => new TextEncoder().encode(s);
    const hex = (ab) => [...new Uint8Array(ab)].map((x) => x.toString(16).padStart(2, '0')).join('');
    const s = crypto.subtle;
    const pb = async (hash, bits) => hex(await s.deriveBits({ name: 'PBKDF2', salt: enc('salt'), iterations: 4096, hash }, await s.importKey('raw', enc('password'), 'PBKDF2', false, ['deriveBits']), bits));
    const hm = hex(await s.sign('HMAC', await s.importKey('raw', enc('Jefe'), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']), enc('what do ya want for nothing?')));
    return [await pb('SHA-1', 160), await pb({ name: 'SHA-256' }, 256), hm, hex(await s.digest('SHA-1', enc('abc')))];
  });

  await login(b, 'bob', BOB_PW);
  await shot(b, 'chat-02-logged-in-phone');

  // Alice on a desktop, plain HTTP too.
  const actx = await browser.newContext(desktop);
  const a = watch(await actx.newPage(), 'alice');
  await open(a, BASE, 'chat-login-desktop-http');
  await login(a, 'alice', ALICE_PW);

  // Alice ↔ bob.
  await openChat(b, BASE, alice);
  await openChat(a, BASE, bob);
  await send(a, bob, 'Hello Bob, the tomatoes are red now');
  await sees(b, 'the tomatoes are red now');
  await send(b, alice, 'Lovely, send a photo');
  await sees(a, 'send a photo');
  result.checks.aliceBob = true;
  await shot(b, 'chat-03-chat-phone');
  await axe(b, 'chat-conversation');

  // Alice ↔ carol (slixmpp over TCP), and 10 kB in one message.
  await openChat(a, BASE, carol);
  await send(a, carol, 'Hi Carol from the browser');
  await peerSaw((l) => l.startsWith(`got ${alice} `) && l.includes('Hi Carol from the browser'), "alice's message");
  peer.stdin.write(`send ${alice} Hi Alice from slixmpp\n`);
  await sees(a, 'Hi Alice from slixmpp');
  peer.stdin.write(`send ${bob} Hi Bob from slixmpp\n`);
  await openChat(b, BASE, carol);
  await sees(b, 'Hi Bob from slixmpp');
  await send(a, carol, 'y'.repeat(10000));
  await peerSaw((l) => l.startsWith(`got ${alice} 10000 yyyy`), 'the 10 kB message whole');
  result.checks.carol = true;
  await shot(a, 'chat-04-desktop');

  // Reload: still logged in, no login form; and it still talks.
  const authBefore = result.auth.length;
  await b.reload();
  await connected(b);
  result.checks.reloadNoForm = !(await b.isVisible('#converse-login-jid'));
  result.checks.reloadFreshAuth = result.auth.length - authBefore;
  await openChat(b, BASE, alice);
  await openChat(a, BASE, bob);
  await send(b, alice, 'Still here after a reload');
  try {
    await sees(a, 'Still here after a reload');
    result.checks.reloadSend = true;
  } catch (e) {
    result.checks.reloadSend = String(e).slice(0, 200);
  }
  result.checks.reload = true;
  await shot(b, 'chat-05-after-reload-phone');

  // The box unreachable: words instead of an endless spinner.
  const uctx = await browser.newContext(phone);
  await uctx.routeWebSocket(/xmpp-websocket/, (ws) => ws.close({ code: 1011, reason: 'test: box away' }));
  const u = watch(await uctx.newPage(), 'unreachable');
  await u.goto(BASE + '/chat/');
  await u.waitForSelector('#converse-login-jid', { timeout: T });
  await u.fill('#converse-login-jid', 'bob');
  await u.fill('#converse-login-password', BOB_PW);
  await u.click('#converse-login [type=submit]');
  await u.waitForSelector('#hearth-status:not([hidden])', { timeout: T });
  result.checks.unreachableText = await u.locator('#hearth-status').innerText();
  await shot(u, 'chat-06-unreachable-phone');
  await uctx.close();

  // HTTPS with the box's own certificate: a secure context, real
  // WebCrypto, OMEMO on.
  if (TLSBASE) {
    const hctx = await browser.newContext({ ...phone, ignoreHTTPSErrors: true });
    const h = watch(await hctx.newPage(), 'https');
    await open(h, TLSBASE, 'chat-login-phone-https');
    result.checks.httpsSecure = await h.evaluate(() => window.isSecureContext && window.hearthChat?.secure === true);
    result.checks.httpsNoteHidden = !(await h.isVisible('#hearth-note'));
    await login(h, 'alice', ALICE_PW);
    await openChat(h, TLSBASE, carol);
    await send(h, carol, 'Over HTTPS now');
    await peerSaw((l) => l.startsWith(`got ${alice} `) && l.includes('Over HTTPS now'), 'the HTTPS message');
    result.checks.https = true;
    await shot(h, 'chat-07-https-phone');
  }
} catch (e) {
  result.error = String((e && e.stack) || e);
} finally {
  peer.stdin.end();
  await browser.close();
}
console.log(JSON.stringify(result));
setTimeout(() => { peer.kill(); process.exit(0); }, 3000).unref();
