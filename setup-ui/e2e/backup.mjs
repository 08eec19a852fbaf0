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
import { launch, newResult, phone, checker, mainText, trackThirdParty, logIn } from './lib.mjs';

const { MODE, BASE, ADMIN, ADMIN_PASSWORD, PASSPHRASE, FILE, CODE, OUT } = process.env;
const result = newResult();
const browser = await launch();
const check = checker(result, OUT);
const text = mainText;
try {
  const ctx = await browser.newContext({ ...phone, acceptDownloads: true });
  const p = trackThirdParty(result, await ctx.newPage(), BASE);
  if (MODE === 'download') {
    await logIn(p, BASE, '/admin/backup', ADMIN, ADMIN_PASSWORD);
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
