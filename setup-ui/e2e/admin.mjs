// The admin pages in headless Debian chromium at phone size, against a
// real, claimed xmppd with netconf beside it: members (remove a member,
// wait while the test checks the member cannot log in, undo), an
// announcement, circles, invitations, health. axe-core on every page;
// screenshots. Run by admin_e2e_test.go. Prints "removed" and waits for a
// line on stdin, then prints one JSON line.
//
//   BASE=http://127.0.0.1:PORT ADMIN=anna ADMIN_PASSWORD=… OUT=dir REMOVE=carol CIRCLE_MEMBER=bert TEXT=… node admin.mjs
import { launch, newResult, phone, checker, mainText, trackThirdParty, stdinLines, logIn } from './lib.mjs';

const { BASE, ADMIN, ADMIN_PASSWORD, OUT, REMOVE, CIRCLE_MEMBER, TEXT } = process.env;
const result = newResult();
const { nextLine } = stdinLines();
const browser = await launch();

const check = checker(result, OUT);
const text = mainText;
try {
  const ctx = await browser.newContext(phone);
  const a = trackThirdParty(result, await ctx.newPage(), BASE);
  await logIn(a, BASE, '/admin/members', ADMIN, ADMIN_PASSWORD);
  await check(a, 'a-01-members');
  result.checks.members = (await text(a)).includes(REMOVE) && (await text(a)).includes(ADMIN + ' (you)');

  // Remove a member; the test checks their login is refused meanwhile.
  await a.click(`button:has-text("Remove ${REMOVE}")`);
  await check(a, 'a-02-removed');
  result.checks.removed = /Removed\.[\s\S]*Deleted for good in 7 days/.test(await text(a));
  console.log('removed');
  await nextLine();
  await a.click(`button:has-text("Undo removal of ${REMOVE}")`);
  await check(a, 'a-03-undone');
  result.checks.undone = (await text(a)).includes('removal is undone') && !(await text(a)).includes('Removed.');

  // A password link for a member.
  await a.click(`button:has-text("Password link for ${CIRCLE_MEMBER}")`);
  await check(a, 'a-04-reset-link');
  result.checks.resetLink = (await text(a)).includes('Password link for ' + CIRCLE_MEMBER);

  // A member's devices, and "sign out all devices".
  await a.goto(BASE + '/admin/members');
  await a.click(`a:has-text("Devices of ${REMOVE}")`);
  await check(a, 'a-04b-devices');
  result.checks.devices = /Conversations on Pixel 7[\s\S]*Last used: 2 hours ago/.test(await text(a));
  await a.click(`button:has-text("Sign out all of ${REMOVE}'s devices")`);
  await check(a, 'a-04c-signed-out');
  result.checks.signedOut = (await text(a)).includes('All their apps are signed out.');
  // The admin's own devices page (every member has one).
  await a.goto(BASE + '/devices');
  await check(a, 'a-04d-own-devices');
  result.checks.ownDevices = (await text(a)).includes('No devices known yet');

  // An announcement to everyone.
  await a.goto(BASE + '/admin/announce');
  await check(a, 'a-05-announce');
  await a.fill('#text', TEXT);
  await a.click('button:has-text("Send to everyone")');
  await check(a, 'a-06-announced');
  result.checks.announced = (await text(a)).includes('Sent.');

  // Circles.
  await a.goto(BASE + '/admin/circles');
  await a.fill('#new-circle', 'Rowers');
  await a.click('button:has-text("Make the circle")');
  await a.selectOption('select[name=user]', CIRCLE_MEMBER);
  await a.click('button:has-text("Add to Rowers")');
  await check(a, 'a-07-circles');
  result.checks.circle = (await text(a)).includes('take ' + CIRCLE_MEMBER + ' out');

  // Invitations.
  await a.goto(BASE + '/admin/invites');
  await a.selectOption('#role', 'limited');
  await a.fill('#note', 'for the juniors');
  await a.click('button:has-text("Make the invitation")');
  await check(a, 'a-08-invites');
  result.checks.invite = (await text(a)).includes('Your invitation is ready') && (await text(a)).includes('Note: for the juniors');

  // Health: storage, netconf's report in its own words, updates.
  await a.goto(BASE + '/admin/health');
  await check(a, 'a-09-health');
  const h = await text(a);
  result.checks.storage = /used of .* free\)/.test(h);
  result.checks.reachItems = await a.locator('ul.checks li').count();
  result.checks.reachText = await a.locator('ul.checks').innerText().catch(() => '');
  result.checks.noFeed = h.includes('no update address');
  result.checks.forecast = h.includes('needs a day of history');
  await a.check('input[name=auto][value=off]');
  await a.selectOption('#window', '02:00-05:00');
  await a.click('button:text-is("Save")');
  await check(a, 'a-10-health-saved');
  result.checks.saved = (await text(a)).includes('Saved.');
  // How long messages and shared files are kept.
  await a.fill('#keep-messages', '90');
  await a.fill('#keep-files', '14');
  await a.click('button:has-text("Save these times")');
  await check(a, 'a-11-kept');
  result.checks.kept = (await text(a)).includes('Older messages and files go within the hour') &&
    (await a.inputValue('#keep-messages')) === '90' && (await a.inputValue('#keep-files')) === '14';

  // A member's move from an old address: the box's own address is
  // refused in words before anything is tried (a real move needs an old
  // server: xmppd/s2s's moving e2e tests do that).
  await a.goto(BASE + '/move');
  await check(a, 'a-12-move');
  await a.fill('#old', 'someone@hearth.localhost');
  await a.fill('#password', 'whatever');
  await a.click('button:has-text("Bring my contacts")');
  await check(a, 'a-13-move-refused');
  result.checks.move = (await text(a)).includes('not an address on another server');
  await ctx.close();
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(0);
