package setupui

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/netconf/status"
)

const testCode = "ABCD-EFGH-JKMN-PQRS"

type fakeAccounts struct {
	mu    sync.Mutex
	users map[string]fakeUser
}

type fakeUser struct {
	pw    string
	admin bool
}

func (a *fakeAccounts) Create(user, pw string, admin bool) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	user = strings.ToLower(user)
	if !regexp.MustCompile(`^[a-z0-9._-]{1,64}$`).MatchString(user) {
		return "", ErrBadName
	}
	if _, ok := a.users[user]; ok {
		return "", ErrExists
	}
	a.users[user] = fakeUser{pw, admin}
	return user, nil
}

func (a *fakeAccounts) Check(user, pw string) (bool, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	u, ok := a.users[user]
	return ok && u.pw == pw, u.admin
}

func (a *fakeAccounts) People() (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.users), nil
}

type fakeInvites struct {
	mu   sync.Mutex
	made []InviteOptions
	x    fakeInviteStore // landing_test.go: Lookup, Redeem, …
	// chat: the box has the browser chat; handoffs: user → password of
	// each ChatHandoff (landing_test.go).
	chat     bool
	handoffs map[string]string
}

func (i *fakeInvites) Create(o InviteOptions) (Invite, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.made = append(i.made, o)
	return Invite{Token: "tok", URI: "xmpp:hearth.local?register;preauth=tok", Expires: time.Now().Add(o.TTL)}, nil
}

type fakeConfig struct {
	mu sync.Mutex
	c  config.Config
}

func (f *fakeConfig) Load() (*config.Config, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.c
	return &c, nil
}

func (f *fakeConfig) Update(fn func(*config.Config) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.c
	if err := fn(&c); err != nil {
		return err
	}
	f.c = c
	return nil
}

type fakeNet struct {
	mu      sync.Mutex
	reloads int
}

func (n *fakeNet) Status(context.Context) (status.Report, error) {
	return status.Report{Checks: []status.Check{
		{ID: "lan", Level: status.OK, Message: "The box is on the home network at 192.168.1.20."},
		{ID: "onion", Level: status.Off, Message: "Tor is off."},
	}}, nil
}

func (n *fakeNet) Reload(context.Context) error {
	n.mu.Lock()
	n.reloads++
	n.mu.Unlock()
	return nil
}

type fixture struct {
	ui   *UI
	acc  *fakeAccounts
	inv  *fakeInvites
	cfg  *fakeConfig
	net  *fakeNet
	srv  *httptest.Server
	code string
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{acc: &fakeAccounts{users: map[string]fakeUser{}}, inv: &fakeInvites{}, cfg: &fakeConfig{c: *config.Default()}, net: &fakeNet{}, code: testCode}
	ui, err := New(Deps{Accounts: f.acc, Invites: f.inv, Config: f.cfg, Network: f.net,
		SetupCode: func() string { return f.code }, Fingerprint: func() string { return "AA:BB" },
		Domain: func() string { return "hearth.local" }})
	if err != nil {
		t.Fatal(err)
	}
	f.ui = ui
	f.srv = httptest.NewServer(ui)
	t.Cleanup(f.srv.Close)
	return f
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t *testing.T
	c *http.Client
	f *fixture
}

func (f *fixture) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t, &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, f}
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.f.srv.URL + path)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// token loads path and returns the form's CSRF token.
func (b *browser) token(path string) string {
	b.t.Helper()
	_, body := b.get(path)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("no csrf token on %s", path)
	}
	return m[1]
}

func (b *browser) post(path string, form url.Values, hdr ...string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.f.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.f.srv.URL)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func wantStatus(t *testing.T, resp *http.Response, code int, what string) {
	t.Helper()
	if resp.StatusCode != code {
		t.Fatalf("%s: status %d, want %d", what, resp.StatusCode, code)
	}
}

func wantRedirect(t *testing.T, resp *http.Response, to string) {
	t.Helper()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != to {
		t.Fatalf("status %d Location %q, want 303 to %s", resp.StatusCode, resp.Header.Get("Location"), to)
	}
}

// claim walks steps 1 and 2 and returns the browser logged in as admin.
func (f *fixture) claim(t *testing.T) *browser {
	b := f.browser(t)
	tok := b.token("/setup")
	resp, _ := b.post("/setup", url.Values{"csrf": {tok}, "code": {"abcd efgh jkmn pqrs"}, "name": {"Riverside Rowing"}})
	wantRedirect(t, resp, "/setup/account")
	tok = b.token("/setup/account")
	resp, _ = b.post("/setup/account", url.Values{"csrf": {tok}, "display": {"Anna Miller"}, "password_shown": {"correct horse"}})
	wantRedirect(t, resp, "/setup/reach")
	return b
}

func TestWizard(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	// Before claiming, every other page leads to /setup.
	resp, _ := b.get("/")
	wantRedirect(t, resp, "/setup")
	resp, _ = b.get("/login")
	wantRedirect(t, resp, "/setup")

	// A wrong code: refused, nothing saved, no way to step 2.
	tok := b.token("/setup?code=ABCD")
	resp, body := b.post("/setup", url.Values{"csrf": {tok}, "code": {"ABCD-EFGH-JKMN-PQRT"}, "name": {"Club"}})
	wantStatus(t, resp, http.StatusForbidden, "wrong code")
	if !strings.Contains(body, "not right") {
		t.Errorf("wrong code page: %s", body)
	}
	if c, _ := f.cfg.Load(); c.Site.Name != "" {
		t.Errorf("name saved after a wrong code: %q", c.Site.Name)
	}
	resp, _ = b.get("/setup/account")
	wantRedirect(t, resp, "/setup")

	b = f.claim(t)
	c, _ := f.cfg.Load()
	if !c.Claimed || c.Site.Name != "Riverside Rowing" || c.Site.Admin != "anna" {
		t.Fatalf("after step 2: claimed %v name %q admin %q", c.Claimed, c.Site.Name, c.Site.Admin)
	}
	if u, ok := f.acc.users["anna"]; !ok || !u.admin || u.pw != "correct horse" {
		t.Fatalf("admin account %+v", f.acc.users)
	}

	// Step 3: live checks and the fingerprint are on the page.
	resp, body = b.get("/setup/reach")
	wantStatus(t, resp, 200, "reach")
	for _, want := range []string{"192.168.1.20", "AA:BB", "Tor is off."} {
		if !strings.Contains(body, want) {
			t.Errorf("reach page lacks %q", want)
		}
	}
	tok = csrfRE.FindStringSubmatch(body)[1]
	resp, _ = b.post("/setup/reach", url.Values{"csrf": {tok}, "reach": {"internet"}, "provider": {"desec"}, "domain": {"myclub"}, "s_desec_token": {"secret"}, "upnp": {"yes"}})
	wantRedirect(t, resp, "/setup/invite")
	c, _ = f.cfg.Load()
	if c.Domain != "myclub.dedyn.io" || c.Net.DNS.Provider != "desec" || c.Net.DNS.Settings["token"] != "secret" || !c.Net.UPnP || !c.Net.ACME.Enabled || c.Site.Reach != "internet" {
		t.Errorf("reach saved %+v", c)
	}
	if f.net.reloads != 1 {
		t.Errorf("netconf reloads %d, want 1", f.net.reloads)
	}

	// Step 4: an invite, with its QR code inline.
	tok = b.token("/setup/invite")
	resp, body = b.post("/setup/invite", url.Values{"csrf": {tok}, "who": {"group"}, "valid": {"1w"}})
	wantStatus(t, resp, http.StatusCreated, "invite")
	if !strings.Contains(body, "preauth=tok") || !strings.Contains(body, "<svg") {
		t.Errorf("invite page lacks the link or the QR code")
	}
	if len(f.inv.made) != 1 || f.inv.made[0].Uses != 50 || f.inv.made[0].Inviter != "anna" || f.inv.made[0].TTL != 7*24*time.Hour {
		t.Errorf("invites %+v", f.inv.made)
	}
	resp, body = b.get("/setup/done")
	wantStatus(t, resp, 200, "done")
	if !strings.Contains(body, "anna@myclub.dedyn.io") {
		t.Errorf("done page: %s", body)
	}

	// The code is spent: closed for good, whoever tries.
	b2 := f.browser(t)
	tok = b2.token("/login")
	resp, _ = b2.post("/setup", url.Values{"csrf": {tok}, "code": {testCode}, "name": {"x"}})
	wantStatus(t, resp, http.StatusGone, "code after claim")
	resp, _ = b2.get("/setup/account")
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("account page after claim: %d", resp.StatusCode)
	}

	// Login works and renews the session.
	resp, _ = b2.post("/login", url.Values{"csrf": {tok}, "user": {"anna"}, "password": {"correct horse"}, "next": {"/setup/done"}})
	wantRedirect(t, resp, "/setup/done")
	resp, _ = b2.get("/setup/done")
	wantStatus(t, resp, 200, "done after login")
}

func TestDomainChangeRefusedWithMembers(t *testing.T) {
	f := newFixture(t)
	b := f.claim(t)
	f.acc.Create("bob", "pw-pw-pw-pw", false)
	tok := b.token("/setup/reach")
	resp, body := b.post("/setup/reach", url.Values{"csrf": {tok}, "reach": {"internet"}, "provider": {"duckdns"}, "domain": {"myclub.duckdns.org"}, "s_duckdns_api_token": {"t"}})
	wantStatus(t, resp, http.StatusConflict, "domain change with members")
	if !strings.Contains(body, "already has members") {
		t.Errorf("no explanation: %s", body)
	}
	if c, _ := f.cfg.Load(); c.Domain != "hearth.local" || c.Net.DNS.Provider != "" {
		t.Errorf("config changed: %+v", c)
	}
	// Home network only keeps the domain: allowed.
	resp, _ = b.post("/setup/reach", url.Values{"csrf": {tok}, "reach": {"home"}})
	wantRedirect(t, resp, "/setup/invite")
}

// TestRouteTable calls every route that is not public without a session
// and expects a refusal or a redirect to a login page — on a claimed and
// an unclaimed box.
func TestRouteTable(t *testing.T) {
	for _, claimed := range []bool{false, true} {
		f := newFixture(t)
		f.cfg.c.Claimed = claimed
		n := 0
		for _, rt := range f.ui.routes() {
			if rt.access == public {
				continue
			}
			n++
			method, path, _ := strings.Cut(rt.pattern, " ")
			for _, p := range []string{path, path + "/", strings.Replace(path, "/setup", "//setup", 1), "/x/.." + path} {
				req, _ := http.NewRequest(method, f.srv.URL+p, strings.NewReader("csrf=x"))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := f.browser(t).c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				loc := resp.Header.Get("Location")
				switch {
				case resp.StatusCode == 401 || resp.StatusCode == 403 || resp.StatusCode == 404 || resp.StatusCode == 405:
				case resp.StatusCode == 303 && (strings.HasPrefix(loc, "/login") || loc == "/setup"):
				case resp.StatusCode == 301 || resp.StatusCode == 307 || resp.StatusCode == 308:
					// ServeMux's clean-path redirect; the web server in
					// front redirects these before any handler runs.
				default:
					t.Errorf("claimed=%v %s %s without a session: %d %s", claimed, method, p, resp.StatusCode, loc)
				}
			}
		}
		if n < 8 {
			t.Fatalf("only %d protected routes found", n)
		}
	}
}

func TestStateChangesRefused(t *testing.T) {
	f := newFixture(t)
	b := f.browser(t)
	tok := b.token("/setup")
	good := url.Values{"csrf": {tok}, "code": {testCode}, "name": {"Club"}}
	cases := []struct {
		name string
		form url.Values
		hdr  []string
		code int
	}{
		{"no token", url.Values{"code": {testCode}, "name": {"Club"}}, nil, 403},
		{"wrong token", url.Values{"csrf": {"x" + tok}, "code": {testCode}, "name": {"Club"}}, nil, 403},
		{"foreign origin", good, []string{"Origin", "http://evil.example"}, 403},
		// Origin null without Sec-Fetch-Site is our own form over plain
		// HTTP (page.SameOrigin); with a same-site fetch it is not.
		{"null origin, same-site", good, []string{"Origin", "null", "Sec-Fetch-Site", "same-site"}, 403},
		{"null origin from another site", good, []string{"Origin", "null", "Sec-Fetch-Site", "cross-site"}, 403},
		{"cross-site fetch", good, []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"oversized", url.Values{"csrf": {tok}, "code": {testCode}, "name": {strings.Repeat("x", 20000)}}, nil, 413},
		{"malformed", nil, []string{"X-Raw", "csrf=%zz"}, 400},
	}
	for _, c := range cases {
		var resp *http.Response
		if c.form == nil {
			req, _ := http.NewRequest("POST", f.srv.URL+"/setup", strings.NewReader("csrf="+tok+"&name=%zz"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r, err := b.c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			resp = r
		} else {
			resp, _ = b.post("/setup", c.form, c.hdr...)
		}
		if resp.StatusCode != c.code {
			t.Errorf("%s: status %d, want %d", c.name, resp.StatusCode, c.code)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("%s: %s, want the error page", c.name, ct)
		}
		if cfg, _ := f.cfg.Load(); cfg.Site.Name != "" {
			t.Fatalf("%s: config changed", c.name)
		}
	}
	resp, _ := b.get("/setup/account")
	wantRedirect(t, resp, "/setup")
	// And the real thing still works afterwards, as a browser sends it
	// under Referrer-Policy no-referrer.
	resp, _ = b.post("/setup", good, "Origin", "null", "Sec-Fetch-Site", "same-origin")
	wantRedirect(t, resp, "/setup/account")
}

func TestSetupCodeGuards(t *testing.T) {
	f := newFixture(t)
	// From the internet: refused before the code is even looked at.
	b := f.browser(t)
	tok := b.token("/setup")
	ck := b.c.Jar.Cookies(mustURL(f.srv.URL))
	req := httptest.NewRequest("POST", "/setup", strings.NewReader(url.Values{"csrf": {tok}, "code": {testCode}, "name": {"C"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = "203.0.113.7:5555"
	for _, c := range ck {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	f.ui.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "home network") {
		t.Errorf("public source: %d", rec.Code)
	}
	if c, _ := f.cfg.Load(); c.Site.Name != "" {
		t.Fatal("public source changed the config")
	}
	// Over Tor (connections arrive from loopback): refused by name.
	req = httptest.NewRequest("POST", "/setup", strings.NewReader(url.Values{"csrf": {tok}, "code": {testCode}, "name": {"C"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Host = "abcdefgh.onion"
	req.RemoteAddr = "127.0.0.1:5555"
	for _, c := range ck {
		req.AddCookie(c)
	}
	rec = httptest.NewRecorder()
	f.ui.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("onion name: %d", rec.Code)
	}
	// Ten wrong tries per source, then even the right code waits.
	for i := 0; i < 10; i++ {
		resp, _ := b.post("/setup", url.Values{"csrf": {tok}, "code": {"WRONG"}, "name": {"C"}})
		wantStatus(t, resp, http.StatusForbidden, "wrong code")
	}
	resp, _ := b.post("/setup", url.Values{"csrf": {tok}, "code": {testCode}, "name": {"C"}})
	wantStatus(t, resp, http.StatusTooManyRequests, "right code after 10 wrong")
	// A box without a code cannot be claimed with an empty one.
	f2 := newFixture(t)
	f2.code = ""
	b2 := f2.browser(t)
	tok = b2.token("/setup")
	resp, _ = b2.post("/setup", url.Values{"csrf": {tok}, "code": {""}, "name": {"C"}})
	wantStatus(t, resp, http.StatusForbidden, "empty code")
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestLoginRateLimit(t *testing.T) {
	f := newFixture(t)
	f.claim(t)
	b := f.browser(t)
	tok := b.token("/login")
	for i := 0; i < 10; i++ {
		resp, _ := b.post("/login", url.Values{"csrf": {tok}, "user": {"anna"}, "password": {"nope"}})
		wantStatus(t, resp, http.StatusUnauthorized, "wrong password")
	}
	resp, _ := b.post("/login", url.Values{"csrf": {tok}, "user": {"anna"}, "password": {"correct horse"}})
	wantStatus(t, resp, http.StatusTooManyRequests, "11th try")
}

func TestCodes(t *testing.T) {
	for in, want := range map[string]string{"abcd efgh jkmn pqrs": testCode, "ABCDEFGHJKMNPQRS": testCode, " ABCD-EFGH-JKMN-PQRS\n": testCode} {
		if got := NormalizeCode(in); got != want {
			t.Errorf("NormalizeCode(%q) = %q", in, got)
		}
	}
	re := regexp.MustCompile(`^[2-9A-HJKMNP-Z]{4}(-[2-9A-HJKMNP-Z]{4}){3}$`)
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		c, err := NewCode()
		if err != nil || !re.MatchString(c) || seen[c] {
			t.Fatalf("NewCode %q %v", c, err)
		}
		seen[c] = true
	}
	path := t.TempDir() + "/setup-code"
	c1, made, err := LoadOrCreateCode(path)
	if err != nil || !made {
		t.Fatal(made, err)
	}
	c2, made, err := LoadOrCreateCode(path)
	if err != nil || made || c2 != c1 {
		t.Fatalf("second load %q %v %v, want %q kept", c2, made, err, c1)
	}
	if SuggestUser("Anna Müller") != "anna" {
		t.Error(SuggestUser("Anna Müller"))
	}
}

func TestReachOwnDomain(t *testing.T) {
	f := newFixture(t)
	b := f.claim(t)
	tok := b.token("/setup/reach")
	// A missing token is named; nothing saved.
	resp, body := b.post("/setup/reach", url.Values{"csrf": {tok}, "reach": {"internet"}, "provider": {"cloudflare"}, "domain": {"Chat.Club.Example."}})
	wantStatus(t, resp, http.StatusBadRequest, "no token")
	if !strings.Contains(body, "Cloudflare API token") {
		t.Errorf("missing field not named: %s", body)
	}
	if c, _ := f.cfg.Load(); c.Net.DNS.Provider != "" {
		t.Fatal("saved without a token")
	}
	// The zone may stay empty.
	resp, _ = b.post("/setup/reach", url.Values{"csrf": {tok}, "reach": {"internet"}, "provider": {"cloudflare"}, "domain": {"Chat.Club.Example."}, "s_cloudflare_api_token": {"cf"}})
	wantRedirect(t, resp, "/setup/invite")
	c, _ := f.cfg.Load()
	if c.Domain != "chat.club.example" || c.Net.DNS.Settings["api_token"] != "cf" || len(c.Net.DNS.Settings) != 1 {
		t.Errorf("saved %q %v", c.Domain, c.Net.DNS.Settings)
	}
	// A name that is not one.
	resp, _ = b.post("/setup/reach", url.Values{"csrf": {tok}, "reach": {"internet"}, "provider": {"desec"}, "domain": {"my club"}, "s_desec_token": {"x"}})
	wantStatus(t, resp, http.StatusBadRequest, "bad name")
}

func TestAdminInviteIsForOnePerson(t *testing.T) {
	f := newFixture(t)
	b := f.claim(t)
	tok := b.token("/setup/invite?admin=1")
	resp, _ := b.post("/setup/invite", url.Values{"csrf": {tok}, "who": {"group"}, "valid": {"1d"}, "admin": {"yes"}})
	wantStatus(t, resp, http.StatusCreated, "admin invite")
	if len(f.inv.made) != 1 || !f.inv.made[0].Admin || f.inv.made[0].Uses != 1 {
		t.Errorf("admin invite %+v, want one use", f.inv.made)
	}
	resp, _ = b.post("/setup/invite", url.Values{"csrf": {tok}, "valid": {"10y"}})
	wantStatus(t, resp, http.StatusBadRequest, "unknown validity")
	if len(f.inv.made) != 1 {
		t.Error("an invite was made from a bad form")
	}
}
