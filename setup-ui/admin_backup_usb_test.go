package setupui

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestNightlyBackupToStick: "The USB stick plugged into the box" saves
// the destination "usb" (appliance/backup.USB) without a folder; the page
// then shows which stick the box sees and where the last backup went; "A
// folder" needs its path; "Off" turns it off; the health page says the
// stick's words beside the last backup.
func TestNightlyBackupToStick(t *testing.T) {
	f, fb, b, form := nightlyBox(t)
	resp, body := b.post("/admin/backup/nightly", form("dest", "folder", "dir", "", "passphrase", "long enough words", "passphrase2", "long enough words"))
	wantStatus(t, resp, http.StatusBadRequest, "folder without a path")
	if !strings.Contains(body, "Type the folder&#39;s full path, or choose the USB stick.") {
		t.Errorf("folder without a path: %s", body)
	}
	resp, _ = b.post("/admin/backup/nightly", form("dest", "usb", "dir", "/ignored", "passphrase", "long enough words", "passphrase2", "long enough words"))
	wantRedirect(t, resp, "/admin/backup?done=nightly")
	if c := f.cfg.c.Backup; c.Dir != "usb" || c.Keep != 5 {
		t.Fatalf("saved %+v", c)
	}
	ok := time.Date(2026, 12, 6, 3, 0, 0, 0, time.Local)
	fb.night = Nightly{HasPassphrase: true, Attempt: ok.Add(time.Hour), OK: ok, File: "Hearth backups/hearth-x.hearth-backup", Bytes: 3e6, Copies: 2,
		Error: "the USB stick \"SMALL\" (4.2 MB) is full (16 kB free); the earlier backups on it are kept",
		Stick: "USB stick plugged in: \"HEARTH\" (16.0 GB).", OnStick: "on \"HEARTH\" (16.0 GB), 15.2 GB free after it"}
	_, body = b.get("/admin/backup")
	for _, want := range []string{
		`<input type="radio" name="dest" value="usb" checked>`,
		`<input type="text" id="dir" name="dir" value=""`,
		`<dt>USB stick</dt><dd>USB stick plugged in: &#34;HEARTH&#34; (16.0 GB).</dd>`,
		`, 2 on the stick (on &#34;HEARTH&#34; (16.0 GB), 15.2 GB free after it)</dd>`,
		`is full (16 kB free); the earlier backups on it are kept</dd>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("backup page lacks %q", want)
		}
	}
	resp, _ = b.post("/admin/backup/nightly", form("dest", "off", "dir", "/mnt/x"))
	wantRedirect(t, resp, "/admin/backup?done=off")
	if f.cfg.c.Backup.Dir != "" {
		t.Fatalf("off saved %+v", f.cfg.c.Backup)
	}

	_, a, admin, _ := adminFixture(t)
	a.backup = fb.night
	_, body = admin.get("/admin/health")
	if want := `is full (16 kB free); the earlier backups on it are kept USB stick plugged in: &#34;HEARTH&#34; (16.0 GB). <a href="/admin/backup">`; !strings.Contains(body, want) {
		t.Errorf("health page lacks %q", want)
	}
}
