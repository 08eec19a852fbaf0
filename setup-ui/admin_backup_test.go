package setupui

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/backup"
)

type fakeBackups struct {
	written   string // passphrase of the last backup
	staged    []byte
	applied   bool
	failDB    bool
	stageErr  error
	night     Nightly
	nightPass string
	runs      int
}

func (f *fakeBackups) Name() string { return "hearth-x-1" + backup.Suffix }

func (f *fakeBackups) Write(w io.Writer, pw string) error {
	if f.failDB {
		return fmt.Errorf("database copy: disk full")
	}
	f.written = pw
	_, err := w.Write([]byte("age-encryption.org/v1 ..."))
	return err
}

func (f *fakeBackups) Stage(r io.Reader, pw string) (string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	if f.stageErr != nil {
		return "", f.stageErr
	}
	if pw != "the right passphrase" {
		return "", fmt.Errorf("restore: %w", backup.ErrPassphrase)
	}
	f.staged = b
	return "club.example, 3 files", nil
}

func (f *fakeBackups) Apply() bool { f.applied = true; return true }

func (f *fakeBackups) Nightly() Nightly { return f.night }

func (f *fakeBackups) SetPassphrase(pw string) error {
	f.night.HasPassphrase, f.nightPass = true, pw
	return nil
}

func (f *fakeBackups) RunNightly() Nightly {
	f.runs++
	return f.night
}

// nightlyBox is a claimed box with a recording backup service, the
// admin's browser, and the nightly form: keep 5, hour 2, the page's
// token, and kv (name, value pairs) set on top.
func nightlyBox(t *testing.T) (*fixture, *fakeBackups, *browser, func(kv ...string) url.Values) {
	f := newFixture(t)
	fb := &fakeBackups{}
	f.ui.d.Backup = fb
	b := f.claim(t)
	tok := b.token("/admin/backup")
	form := func(kv ...string) url.Values {
		v := url.Values{"csrf": {tok}, "keep": {"5"}, "hour": {"2"}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	return f, fb, b, form
}

// TestNightlyBackupSettings: the folder must be a full path and a
// passphrase chosen before the first nightly backup; saved settings land
// in the config; "back up now" runs it and shows a failure in words.
func TestNightlyBackupSettings(t *testing.T) {
	f, fb, b, form := nightlyBox(t)
	for _, c := range []struct {
		form url.Values
		want string
	}{
		{form("dir", "usb/hearth", "passphrase", "long enough words", "passphrase2", "long enough words"), "full path"},
		{form("dir", "/mnt/usb"), "Choose a passphrase"},
		{form("dir", "/mnt/usb", "passphrase", "long enough words", "passphrase2", "other words here"), "not the same"},
		{form("dir", "/mnt/usb", "keep", "0", "passphrase", "long enough words", "passphrase2", "long enough words"), "between 1 and 100"},
		{form("dir", "/mnt/usb", "hour", "24", "passphrase", "long enough words", "passphrase2", "long enough words"), "0 to 23"},
	} {
		resp, body := b.post("/admin/backup/nightly", c.form)
		wantStatus(t, resp, http.StatusBadRequest, c.want)
		if !strings.Contains(body, c.want) {
			t.Errorf("%v: page lacks %q", c.form, c.want)
		}
	}
	if f.cfg.c.Backup.Dir != "" || fb.night.HasPassphrase {
		t.Fatal("a refused form changed the settings")
	}
	resp, _ := b.post("/admin/backup/nightly", form("dir", "/mnt/usb/hearth", "passphrase", "long enough words", "passphrase2", "long enough words"))
	wantRedirect(t, resp, "/admin/backup?done=nightly")
	if c := f.cfg.c.Backup; c.Dir != "/mnt/usb/hearth" || c.Keep != 5 || c.HourOfDay() != 2 || fb.nightPass != "long enough words" {
		t.Fatalf("saved %+v, passphrase %q", c, fb.nightPass)
	}
	// Later changes keep the passphrase when the field is left empty.
	resp, _ = b.post("/admin/backup/nightly", form("dir", "/mnt/usb/hearth", "keep", "3"))
	wantRedirect(t, resp, "/admin/backup?done=nightly")
	fb.night.Error = "the backup folder /mnt/usb/hearth is not there (is the USB stick plugged in?)"
	fb.night.Attempt = time.Now()
	resp, body := b.post("/admin/backup/nightly", url.Values{"csrf": form()["csrf"], "action": {"now"}})
	wantStatus(t, resp, http.StatusOK, "back up now")
	if fb.runs != 1 || !strings.Contains(body, "USB stick plugged in") {
		t.Fatalf("back up now: %d runs: %s", fb.runs, body)
	}
}

// TestBackupDownload: the passphrase must be long enough and typed twice
// alike; then the answer is the file as an attachment; a failure before
// the first byte is an error page, not a broken file.
func TestBackupDownload(t *testing.T) {
	f := newFixture(t)
	fb := &fakeBackups{}
	f.ui.d.Backup = fb
	b := f.claim(t)
	tok := b.token("/admin/backup")
	resp, body := b.post("/admin/backup", url.Values{"csrf": {tok}, "passphrase": {"short"}, "passphrase2": {"short"}})
	wantStatus(t, resp, http.StatusBadRequest, "short passphrase")
	if !strings.Contains(body, "at least 10") {
		t.Fatalf("short passphrase page: %s", body)
	}
	resp, body = b.post("/admin/backup", url.Values{"csrf": {tok}, "passphrase": {"long enough words"}, "passphrase2": {"long enough wordz"}})
	wantStatus(t, resp, http.StatusBadRequest, "different passphrases")
	if fb.written != "" {
		t.Fatal("a backup was made with mismatched passphrases")
	}
	resp, _ = b.post("/admin/backup", url.Values{"passphrase": {"long enough words"}, "passphrase2": {"long enough words"}})
	wantStatus(t, resp, http.StatusForbidden, "no csrf token")
	resp, body = b.post("/admin/backup", url.Values{"csrf": {tok}, "passphrase": {"long enough words"}, "passphrase2": {"long enough words"}})
	wantStatus(t, resp, http.StatusOK, "download")
	if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, "attachment") || !strings.Contains(cd, backup.Suffix) || !strings.HasPrefix(body, "age-encryption.org/") {
		t.Fatalf("download: %q %.40q", cd, body)
	}
	if fb.written != "long enough words" {
		t.Fatalf("backup made with %q", fb.written)
	}
	fb.failDB = true
	resp, body = b.post("/admin/backup", url.Values{"csrf": {tok}, "passphrase": {"long enough words"}, "passphrase2": {"long enough words"}})
	wantStatus(t, resp, http.StatusInternalServerError, "failed backup")
	if resp.Header.Get("Content-Disposition") != "" || !strings.Contains(body, "could not make the backup") {
		t.Fatalf("failed backup answered as a download: %s", body)
	}
	// Members who are not admins get no backup.
	m := f.browser(t)
	f.acc.Create("bob", "bob password", false)
	tok = m.token("/login")
	m.post("/login", url.Values{"csrf": {tok}, "user": {"bob"}, "password": {"bob password"}})
	resp, _ = m.get("/admin/backup")
	wantStatus(t, resp, http.StatusForbidden, "member")
}

// upload posts the wizard's restore form as a browser does (fields in
// document order: csrf, passphrase, file).
func upload(t *testing.T, b *browser, csrf, pass string, file []byte, origin string) (*http.Response, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if csrf != "" {
		mw.WriteField("csrf", csrf)
	}
	mw.WriteField("passphrase", pass)
	fw, _ := mw.CreateFormFile("file", "hearth-club.example-20261201-030000"+backup.Suffix)
	fw.Write(file)
	mw.Close()
	req, _ := http.NewRequest("POST", b.f.srv.URL+RestorePath, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Origin", origin)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(out)
}

// TestWizardRestore: "I have a backup" after the setup code: without the
// code, from another site, without the form's token nothing is read; a
// wrong passphrase says so; the right one stages the file and restarts.
// Once the box is claimed the upload is refused.
func TestWizardRestore(t *testing.T) {
	f := newFixture(t)
	fb := &fakeBackups{}
	f.ui.d.Backup = fb
	mux := http.NewServeMux()
	mux.Handle(RestorePath, f.ui.RestoreUpload())
	mux.Handle("/", f.ui)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	f.srv = srv
	file := bytes.Repeat([]byte("backup bytes "), 200000) // 2.6 MB: over the pages' 1 MiB body limit

	stranger := f.browser(t)
	resp, _ := stranger.get("/setup/restore")
	wantRedirect(t, resp, "/setup")
	resp, _ = upload(t, stranger, "x", "the right passphrase", file, srv.URL)
	wantStatus(t, resp, http.StatusForbidden, "upload without the setup code")

	b := f.browser(t)
	tok := b.token("/setup")
	resp, _ = b.post("/setup", url.Values{"csrf": {tok}, "code": {"abcd efgh jkmn pqrs"}, "name": {"x"}})
	wantRedirect(t, resp, "/setup/account")
	if _, body := b.get("/setup/account"); !strings.Contains(body, `href="/setup/restore"`) {
		t.Fatal("the account step has no way to restore a backup")
	}
	tok = b.token("/setup/restore")
	resp, _ = upload(t, b, "", "the right passphrase", file, srv.URL)
	wantStatus(t, resp, http.StatusForbidden, "upload without csrf")
	resp, _ = upload(t, b, tok, "the right passphrase", file, "http://evil.example")
	wantStatus(t, resp, http.StatusForbidden, "upload from another site")
	resp, body := upload(t, b, tok, "a wrong passphrase", file, srv.URL)
	wantStatus(t, resp, http.StatusUnprocessableEntity, "wrong passphrase")
	if !strings.Contains(body, "not the passphrase") || fb.applied {
		t.Fatalf("wrong passphrase page (applied %v): %s", fb.applied, body)
	}
	fb.stageErr = fmt.Errorf("restore: %w", backup.ErrTruncated)
	resp, body = upload(t, b, tok, "the right passphrase", file, srv.URL)
	wantStatus(t, resp, http.StatusUnprocessableEntity, "truncated")
	if !strings.Contains(body, "incomplete") {
		t.Fatalf("truncated page: %s", body)
	}
	fb.stageErr = fmt.Errorf("restore: write x: %w", &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC})
	resp, body = upload(t, b, tok, "the right passphrase", file, srv.URL)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "too small") {
		t.Fatalf("full card: %d %s", resp.StatusCode, body)
	}
	fb.stageErr = nil
	resp, body = upload(t, b, tok, "the right passphrase", file, srv.URL)
	wantStatus(t, resp, http.StatusOK, "restore")
	if !bytes.Equal(fb.staged, file) || !fb.applied || !strings.Contains(body, "club.example") {
		t.Fatalf("restore: staged %d bytes, applied %v: %s", len(fb.staged), fb.applied, body)
	}

	// A claimed box takes no backup over its members.
	f.cfg.c.Claimed = true
	fb.applied = false
	b2 := f.browser(t)
	f.cfg.c.Claimed = false
	tok = b2.token("/setup")
	b2.post("/setup", url.Values{"csrf": {tok}, "code": {"abcd efgh jkmn pqrs"}, "name": {"x"}})
	tok = b2.token("/setup/restore")
	f.cfg.c.Claimed = true
	resp, _ = upload(t, b2, tok, "the right passphrase", file, srv.URL)
	wantStatus(t, resp, http.StatusForbidden, "upload onto a claimed box")
	if fb.applied {
		t.Fatal("a backup was applied over a claimed box")
	}
}
