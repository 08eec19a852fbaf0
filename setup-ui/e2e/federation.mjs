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
import { launch, newResult, phone, checker, mainText, trackThirdParty, stdinLines, logIn } from './lib.mjs';

const { BASE, ADMIN, ADMIN_PASSWORD, OUT } = process.env;
const result = newResult();
const { nextLine } = stdinLines();
const browser = await launch();

const check = checker(result, OUT);
const text = mainText;
try {
  const ctx = await browser.newContext(phone);
  const a = trackThirdParty(result, await ctx.newPage(), BASE);
  await logIn(a, BASE, '/admin/federation', ADMIN, ADMIN_PASSWORD);
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
