package setupui

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/hearthchat/hearth/appliance/backup"
)

type fakeBackups struct {
	written  string // passphrase of the last backup
	staged   []byte
	applied  bool
	failDB   bool
	stageErr error
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
