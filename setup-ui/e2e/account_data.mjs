// Account data in headless Debian chromium at phone size, against a real,
// claimed xmppd (issue 15): the admin makes an invite; a new member's
// phone joins with the web form and brings their account file from their
// old server (a file that is not one is refused first); then, on /data,
// downloads their own file. axe-core on every page; screenshots. Run by
// account_data_e2e_test.go; prints one JSON line.
//
//   BASE=… ADMIN=… ADMIN_PASSWORD=… OUT=dir NEW_USER=… NEW_PASSWORD=… FILE=… BAD_FILE=… node account_data.mjs
import { readFile } from 'node:fs/promises';
import { launch, newResult, phone, checker, mainText, trackThirdParty, logIn } from './lib.mjs';

const { BASE, ADMIN, ADMIN_PASSWORD, OUT, NEW_USER, NEW_PASSWORD, FILE, BAD_FILE, IMPORT_USER } = process.env;
const result = newResult();
const browser = await launch();

const check = checker(result, OUT);

const watch = async (ctx) => trackThirdParty(result, await ctx.newPage(), BASE);
const text = mainText;
let m, a;
try {
  const admin = await browser.newContext({ ...phone, acceptDownloads: true });
  a = await watch(admin);
  await logIn(a, BASE, '/invite', ADMIN, ADMIN_PASSWORD);
  await a.waitForURL((u) => u.pathname === '/invite');
  await a.check('input[name=who][value=group]');
  await a.click('button:has-text("Make the invitation")');
  await a.waitForLoadState('load');
  const token = (await text(a)).match(/\/i\/([A-Za-z0-9_-]+)/)?.[1];
  if (!token) throw new Error('no invite on the page: ' + await text(a));

  const member = await browser.newContext({ ...phone, acceptDownloads: true });
  m = await watch(member);
  await m.goto(BASE + '/i/' + token + '/join');
  await check(m, 'd-01-join-with-file');
  // A file that is not an account: refused in words, nothing made.
  await m.fill('#user', NEW_USER);
  await m.fill('#password', NEW_PASSWORD);
  await m.setInputFiles('#data', BAD_FILE);
  await m.click('button[type=submit]');
  await m.waitForLoadState('load');
  const refused = await text(m);
  result.checks.refusedInWords = refused.includes('Your account was not made') && refused.includes('not an account file');
  await check(m, 'd-02-join-refused-file');
  // The old server's file: the account is made from it.
  await m.fill('#password', NEW_PASSWORD);
  await m.setInputFiles('#data', FILE);
  await m.click('button[type=submit]');
  // Into the browser chat as after any web registration (issue 10).
  await m.waitForURL((u) => u.pathname === '/chat/', { timeout: 30000 });
  result.checks.joined = true;

  // The member's own data, downloaded from /data.
  await m.goto(BASE + '/');
  await m.click('a:has-text("Download your data")');
  await check(m, 'd-03-data');
  const [dl] = await Promise.all([m.waitForEvent('download'), m.click('button:has-text("Download my data")')]);
  const name = dl.suggestedFilename();
  result.checks.downloadNamed = name.startsWith(NEW_USER + '@hearth.localhost-') && name.endsWith('.xml');
  const doc = await readFile(await dl.path(), 'utf8');
  result.checks.downloadHasContacts = doc.includes('romeo@montague.example') && doc.includes('Verona') && doc.includes('nurse@capulet.example');
  result.checks.downloadNewAddress = doc.includes(`name='${NEW_USER}'`) && doc.includes(`jid='hearth.localhost'`) && !doc.includes('juliet');
  result.checks.downloadBytes = doc.length;

  // The admin: every member's data as one file, then members from a
  // file — the member's own download under a new name (a Hearth → Hearth
  // round trip on the running box); a file of another domain first,
  // refused in words.
  await a.goto(BASE + '/admin/data');
  await check(a, 'd-04-admin-data');
  const [all] = await Promise.all([a.waitForEvent('download'), a.click('button:has-text("Download every member")')]);
  const allDoc = await readFile(await all.path(), 'utf8');
  result.checks.allMembers = all.suggestedFilename().startsWith('all-members@hearth.localhost-') &&
    allDoc.includes(`name='${ADMIN}'`) && allDoc.includes(`name='${NEW_USER}'`);
  await a.setInputFiles('#file', FILE);
  await a.click('button:has-text("Import the members")');
  await a.waitForLoadState('load');
  const other = await text(a);
  result.checks.otherDomainRefused = other.includes('Nothing was imported') && other.includes("only accounts of this box's own domain");
  await check(a, 'd-05-admin-import-refused');
  const renamed = doc.replace(`name='${NEW_USER}'`, `name='${IMPORT_USER}'`);
  await a.setInputFiles('#file', { name: 'members.xml', mimeType: 'application/xml', buffer: Buffer.from(renamed) });
  await a.click('button:has-text("Import the members")');
  await a.waitForLoadState('load');
  const done = await text(a);
  result.checks.imported = done.includes('Imported 1 account: ' + IMPORT_USER);
  await check(a, 'd-06-admin-imported');
} catch (e) {
  result.error = String(e && e.stack || e);
  if (m) result.error += '\npage ' + m.url() + ': ' + (await m.locator('body').innerText().catch(() => '?')).slice(0, 600);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
