package setupui

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// dataFakes records the account-data dependencies' calls.
type dataFakes struct {
	mu       sync.Mutex
	exported [][]string
	imported []string // files' contents
	joined   []string // user:password:file
	fail     error
}

func (d *dataFakes) install(f *fixture) {
	f.ui.d.Admin.Export = func(users []string, w io.Writer) error {
		d.mu.Lock()
		d.exported = append(d.exported, users)
		d.mu.Unlock()
		_, err := io.WriteString(w, "<server-data xmlns='urn:xmpp:pie:0'/>")
		return err
	}
	f.ui.d.Admin.Import = func(r io.Reader) (ImportResult, error) {
		b, _ := io.ReadAll(r)
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.fail != nil {
			return ImportResult{}, d.fail
		}
		d.imported = append(d.imported, string(b))
		return ImportResult{Users: []string{"dora", "emil"}, Contacts: 3, Archived: 12}, nil
	}
	f.ui.d.Admin.JoinWithData = func(token, user, pw string, data io.Reader) (string, ImportResult, error) {
		b, _ := io.ReadAll(data)
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.fail != nil {
			return "", ImportResult{}, d.fail
		}
		d.joined = append(d.joined, user+":"+pw+":"+string(b))
		return user, ImportResult{Contacts: 2}, nil
	}
}

func (d *dataFakes) calls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.exported) + len(d.imported) + len(d.joined)
}

// postFile sends a multipart form as a browser does: the fields, then the
// file part (filename "" means no file chosen).
func (b *browser) postFile(path string, form url.Values, field, filename, content string, hdr ...string) (*http.Response, string) {
	b.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, vs := range form {
		for _, v := range vs {
			mw.WriteField(k, v)
		}
	}
	fw, _ := mw.CreateFormFile(field, filename)
	io.WriteString(fw, content)
	mw.Close()
	req, _ := http.NewRequest("POST", b.f.srv.URL+path, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Origin", b.f.srv.URL)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(out)
}

// TestMemberDataDownload: a member downloads their own account (never
// another's) as an attachment, by a POST with this session's token.
func TestMemberDataDownload(t *testing.T) {
	f, _, _, bob := adminFixture(t)
	d := &dataFakes{}
	d.install(f)

	// Not logged in: the login page.
	anon := f.browser(t)
	if resp, _ := anon.get("/data"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("anonymous /data: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := anon.post("/data/export", url.Values{}); resp.StatusCode == 200 || d.calls() != 0 {
		t.Fatalf("anonymous export: %d, %d calls", resp.StatusCode, d.calls())
	}

	_, home := bob.get("/")
	if !strings.Contains(home, `href="/data"`) {
		t.Error("the home page does not link to /data")
	}
	resp, body := bob.get("/data")
	wantStatus(t, resp, 200, "data page")
	if !strings.Contains(body, "bob@hearth.local") || !strings.Contains(body, `action="/data/export"`) {
		t.Fatalf("data page: %s", body)
	}
	tok := csrfRE.FindStringSubmatch(body)[1]

	// Without the token, or from another site: nothing is exported.
	resp, _ = bob.post("/data/export", url.Values{})
	wantStatus(t, resp, http.StatusForbidden, "no token")
	resp, _ = bob.post("/data/export", url.Values{"csrf": {tok}}, "Origin", "http://evil.example")
	wantStatus(t, resp, http.StatusForbidden, "foreign origin")
	if d.calls() != 0 {
		t.Fatal("a refused form exported")
	}

	// A user field is ignored: the member's own account only.
	resp, body = bob.post("/data/export", url.Values{"csrf": {tok}, "user": {"anna"}})
	wantStatus(t, resp, 200, "export")
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
	want := "bob@hearth.local-" + time.Now().UTC().Format("2006-01-02") + ".xml"
	if err != nil || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") || params["filename"] != want {
		t.Errorf("Content-Disposition %q, want an attachment named %s", resp.Header.Get("Content-Disposition"), want)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/xml") || !strings.Contains(body, "urn:xmpp:pie:0") {
		t.Errorf("download: %s %q", resp.Header.Get("Content-Type"), body)
	}
	if len(d.exported) != 1 || len(d.exported[0]) != 1 || d.exported[0][0] != "bob" {
		t.Fatalf("exported %v, want [[bob]]", d.exported)
	}

	// A box without the dependency says so instead of failing.
	f.ui.d.Admin.Export = nil
	resp, _ = bob.get("/data")
	wantStatus(t, resp, http.StatusServiceUnavailable, "no export")
}

// TestAdminDataPage: the admin exports every member and imports new
// members from a file; a member may do neither; a file the box refuses is
// explained in words and nothing is imported.
func TestAdminDataPage(t *testing.T) {
	f, _, admin, bob := adminFixture(t)
	d := &dataFakes{}
	d.install(f)

	btok := bob.token("/data")
	resp, _ := bob.post("/admin/data/export", url.Values{"csrf": {btok}})
	wantStatus(t, resp, http.StatusForbidden, "member exports all")
	resp, _ = bob.postFile(AdminImportPath, url.Values{"csrf": {btok}}, "file", "x.xml", "<server-data/>")
	wantStatus(t, resp, http.StatusForbidden, "member imports")
	if d.calls() != 0 {
		t.Fatal("a member's request reached export/import")
	}

	resp, body := admin.get("/admin/data")
	wantStatus(t, resp, 200, "admin data page")
	for _, want := range []string{`enctype="multipart/form-data"`, `action="/admin/data/import"`, `action="/admin/data/export"`, `aria-current="page"`} {
		if !strings.Contains(body, want) {
			t.Errorf("admin data page lacks %s", want)
		}
	}
	tok := csrfRE.FindStringSubmatch(body)[1]

	resp, _ = admin.post("/admin/data/export", url.Values{"csrf": {tok}})
	wantStatus(t, resp, 200, "export all")
	if !strings.Contains(resp.Header.Get("Content-Disposition"), "all-members@hearth.local-") || len(d.exported) != 1 || d.exported[0] != nil {
		t.Fatalf("export all: %q %v", resp.Header.Get("Content-Disposition"), d.exported)
	}

	// The import form is multipart: its token is read from the parsed
	// form (a file form was refused as out of date before uploadFirst).
	resp, _ = admin.postFile(AdminImportPath, url.Values{}, "file", "m.xml", "<doc/>")
	wantStatus(t, resp, http.StatusForbidden, "import without token")
	resp, _ = admin.postFile(AdminImportPath, url.Values{"csrf": {tok}}, "file", "m.xml", "<doc/>", "Origin", "http://evil.example")
	wantStatus(t, resp, http.StatusForbidden, "import from another site")
	resp, body = admin.postFile(AdminImportPath, url.Values{"csrf": {tok}}, "file", "", "")
	wantStatus(t, resp, http.StatusBadRequest, "no file chosen")
	if !strings.Contains(body, "Please choose the file") || len(d.imported) != 0 {
		t.Fatalf("no file: %v", d.imported)
	}
	resp, body = admin.postFile(AdminImportPath, url.Values{"csrf": {tok}}, "file", "m.xml", "<doc/>")
	wantStatus(t, resp, 200, "import")
	if len(d.imported) != 1 || d.imported[0] != "<doc/>" || !strings.Contains(body, "Imported 2 accounts: dora, emil") {
		t.Fatalf("import: %v\n%s", d.imported, body)
	}

	d.fail = &ImportError{Reason: "bob@hearth.local: account exists on this server: remove that member first."}
	resp, body = admin.postFile(AdminImportPath, url.Values{"csrf": {tok}}, "file", "m.xml", "<doc/>")
	wantStatus(t, resp, http.StatusUnprocessableEntity, "collision")
	if !strings.Contains(body, "Nothing was imported: bob@hearth.local: account exists") {
		t.Errorf("collision not explained: %s", body)
	}
	d.fail = errors.New("disk on fire")
	resp, body = admin.postFile(AdminImportPath, url.Values{"csrf": {tok}}, "file", "m.xml", "<doc/>")
	wantStatus(t, resp, http.StatusInternalServerError, "box error")
	if strings.Contains(body, "disk on fire") || !strings.Contains(body, "try again") {
		t.Errorf("box error page: %s", body)
	}
}

// TestJoinWithData: the invite's join form takes an optional account
// file; with one, the account is made from it (JoinWithData) with the
// chosen name and password, and a file the box refuses leaves no account
// and says why; without one, the registration is as before.
func TestJoinWithData(t *testing.T) {
	old := uploads["POST /i/{token}/join"]
	uploads["POST /i/{token}/join"] = 4096 // the size refusal below without sending megabytes
	defer func() { uploads["POST /i/{token}/join"] = old }()
	f := claimedFixture(t)
	d := &dataFakes{}
	d.install(f)
	groupInvite(f, "club")
	b := f.browser(t)
	resp, body := b.get("/i/club/join")
	wantStatus(t, resp, 200, "join form")
	for _, want := range []string{`enctype="multipart/form-data"`, `type="file"`, `name="data"`, "Bring your account data"} {
		if !strings.Contains(body, want) {
			t.Errorf("join form lacks %s", want)
		}
	}
	csrf := csrfRE.FindStringSubmatch(body)[1]
	form := func(user string) url.Values {
		return url.Values{"csrf": {csrf}, "user": {user}, "password": {"new-password"}}
	}

	resp, _ = b.postFile("/i/club/join", url.Values{"user": {"ann"}, "password": {"new-password"}}, "data", "old.xml", "<doc/>")
	wantStatus(t, resp, http.StatusForbidden, "no token")
	resp, _ = b.postFile("/i/club/join", form("ann"), "data", "old.xml", strings.Repeat("x", 5000))
	wantStatus(t, resp, http.StatusRequestEntityTooLarge, "over the limit")
	d.fail = &ImportError{Reason: "The file holds more than one account: bring one account's file."}
	resp, body = b.postFile("/i/club/join", form("ann"), "data", "old.xml", "<doc/>")
	wantStatus(t, resp, http.StatusUnprocessableEntity, "refused file")
	if !strings.Contains(body, "Your account was not made") || !strings.Contains(body, "more than one account") || !strings.Contains(body, `value="ann"`) {
		t.Errorf("refused file not explained: %s", body)
	}
	if d.calls() != 0 || f.inv.accounts() != 0 {
		t.Fatalf("a refused form made an account: %v %d", d.joined, f.inv.accounts())
	}
	if resp, _ := b.get("/data"); resp.StatusCode == 200 {
		t.Fatal("logged in after a refused file")
	}

	d.fail = nil
	resp, _ = b.postFile("/i/club/join", form("ann"), "data", "old.xml", "<doc/>")
	wantStatus(t, resp, http.StatusCreated, "join with a file")
	if len(d.joined) != 1 || d.joined[0] != "ann:new-password:<doc/>" || f.inv.accounts() != 0 {
		t.Fatalf("joined %v, redeemed without the file %d", d.joined, f.inv.accounts())
	}
	if resp, _ := b.get("/data"); resp.StatusCode != 200 {
		t.Fatalf("not logged in after joining with a file: %d", resp.StatusCode)
	}

	// No file chosen (a browser still sends the empty part): as before.
	b2 := f.browser(t)
	csrf = b2.token("/i/club/join")
	resp, _ = b2.postFile("/i/club/join", form("bea"), "data", "", "")
	wantStatus(t, resp, http.StatusCreated, "join without a file")
	if f.inv.x.redeemed["bea"] != "new-password" || len(d.joined) != 1 {
		t.Fatalf("without a file: redeemed %v, joined %v", f.inv.x.redeemed, d.joined)
	}
}
