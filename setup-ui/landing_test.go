package setupui

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// fakeInviteStore backs fakeInvites' landing-page methods: invites by
// token, and the accounts redeemed or reset with them.
type fakeInviteStore struct {
	live     map[string]Invite
	redeemed map[string]string // user → password
	mayNot   map[string]bool   // accounts that may not invite
}

func (i *fakeInvites) put(inv Invite) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.x.live == nil {
		i.x.live = map[string]Invite{}
	}
	i.x.live[inv.Token] = inv
}

func (i *fakeInvites) List() ([]Invite, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	var out []Invite
	for _, inv := range i.x.live {
		out = append(out, inv)
	}
	return out, nil
}

func (i *fakeInvites) Revoke(token string) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if _, ok := i.x.live[token]; !ok {
		return ErrInvite
	}
	delete(i.x.live, token)
	return nil
}

func (i *fakeInvites) get(token string, reset bool) (Invite, error) {
	inv, ok := i.x.live[token]
	if !ok || inv.Uses <= 0 || time.Now().After(inv.Expires) || (inv.Reset != "") != reset {
		return Invite{}, ErrInvite
	}
	return inv, nil
}

func (i *fakeInvites) Lookup(token string) (Invite, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.get(token, false)
}

func (i *fakeInvites) LookupReset(token string) (Invite, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.get(token, true)
}

func (i *fakeInvites) Redeem(token, user, pw string) (string, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	inv, err := i.get(token, false)
	if err != nil {
		return "", err
	}
	user = strings.ToLower(user)
	if strings.ContainsAny(user, " @/") {
		return "", ErrBadName
	}
	if _, ok := i.x.redeemed[user]; ok {
		return "", ErrExists
	}
	if i.x.redeemed == nil {
		i.x.redeemed = map[string]string{}
	}
	i.x.redeemed[user] = pw
	inv.Uses--
	i.x.live[token] = inv
	return user, nil
}

func (i *fakeInvites) ResetPassword(token, pw string) (string, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	inv, err := i.get(token, true)
	if err != nil {
		return "", err
	}
	delete(i.x.live, token)
	if i.x.redeemed == nil {
		i.x.redeemed = map[string]string{}
	}
	i.x.redeemed[inv.Reset] = pw
	return inv.Reset, nil
}

func (i *fakeInvites) MayInvite(user string) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return !i.x.mayNot[user]
}

// ChatHandoff stands in for xmppd/webchat's Handoffs.Put + Redirect.
func (i *fakeInvites) ChatHandoff(w http.ResponseWriter, r *http.Request, user, pw string) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	if !i.chat {
		return false
	}
	if i.handoffs == nil {
		i.handoffs = map[string]string{}
	}
	i.handoffs[user] = pw
	http.SetCookie(w, &http.Cookie{Name: "hearth_chat_handoff", Value: "tok-" + user, Path: "/chat/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/chat/#handoff", http.StatusSeeOther)
	return true
}

func (i *fakeInvites) accounts() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return len(i.x.redeemed)
}

func claimedFixture(t *testing.T) *fixture {
	f := newFixture(t)
	f.cfg.c.Claimed = true
	f.cfg.c.Site.Name = "Riverside Rowing Club"
	return f
}

func groupInvite(f *fixture, tok string) Invite {
	inv := Invite{Token: tok, URI: "xmpp:hearth.local?register;preauth=" + tok, Expires: time.Now().Add(time.Hour),
		Inviter: "sue", Uses: 5, MaxUses: 5, Role: "member", Note: "private: the juniors"}
	f.inv.put(inv)
	return inv
}

func TestLandingPage(t *testing.T) {
	f := claimedFixture(t)
	groupInvite(f, "goodtoken")
	for _, c := range []struct{ ua, first string }{
		{"Mozilla/5.0 (Linux; Android 14; Pixel 7)", `id="android"`},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)", `id="iphone"`},
		{"Mozilla/5.0 (X11; Linux x86_64)", `id="desktop"`},
	} {
		req, _ := http.NewRequest("GET", f.srv.URL+"/i/goodtoken", nil)
		req.Header.Set("User-Agent", c.ua)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readBody(resp)
		wantStatus(t, resp, 200, "landing "+c.ua)
		if got := resp.Header.Get("Link"); got != `<xmpp:hearth.local?register;preauth=goodtoken>; rel="alternate"` {
			t.Errorf("Link header %q", got)
		}
		// Every way stays on the page; the visitor's comes first.
		first := len(body)
		for _, id := range []string{`id="android"`, `id="iphone"`, `id="desktop"`, `id="web"`} {
			i := strings.Index(body, id)
			if i < 0 {
				t.Fatalf("%s: %s missing", c.ua, id)
			}
			if i < first {
				first = i
			}
		}
		if strings.Index(body, c.first) != first {
			t.Errorf("%s: %s is not first", c.ua, c.first)
		}
		for _, want := range []string{"sue invites you", "Riverside Rowing Club", "<svg", "/i/goodtoken/join", "/i/goodtoken/poster",
			"f-droid.org", "referrer=xmpp%3Ahearth.local%3Fregister%3Bpreauth%3Dgoodtoken", "Monal", "Siskin", "Dino", "Gajim", "Come back to this page after installing"} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: page lacks %q", c.ua, want)
			}
		}
		if !strings.Contains(body, `href="xmpp:hearth.local?register;preauth=goodtoken"`) {
			t.Errorf("%s: no app link (html/template filters xmpp: URLs unless marked safe)", c.ua)
		}
		for _, bad := range []string{"XMPP", "JID", "<script", "ZgotmplZ", "private: the juniors"} {
			if strings.Contains(body, bad) {
				t.Errorf("page says %q", bad)
			}
		}
	}
	resp, body := f.browser(t).get("/i/goodtoken/poster")
	wantStatus(t, resp, 200, "poster")
	if !strings.Contains(body, `class="poster"`) || !strings.Contains(body, "<svg") {
		t.Fatal("poster lacks the QR code")
	}
}

func readBody(resp *http.Response) string {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	return b.String()
}

// TestGoneInvites: unknown, expired, used-up, revoked and reset tokens on
// the invite pages all get the friendly 404 page, and nothing is created.
func TestGoneInvites(t *testing.T) {
	f := claimedFixture(t)
	f.inv.put(Invite{Token: "expired", Expires: time.Now().Add(-time.Minute), Uses: 1, MaxUses: 1})
	f.inv.put(Invite{Token: "usedup", Expires: time.Now().Add(time.Hour), Uses: 0, MaxUses: 3})
	f.inv.put(Invite{Token: "resetlink", Expires: time.Now().Add(time.Hour), Uses: 1, MaxUses: 1, Reset: "ann"})
	groupInvite(f, "revoked")
	if err := f.inv.Revoke("revoked"); err != nil {
		t.Fatal(err)
	}
	b := f.browser(t)
	for _, tok := range []string{"unknown", "expired", "usedup", "revoked", "resetlink", strings.Repeat("x", 100)} {
		for _, p := range []string{"/i/" + tok, "/i/" + tok + "/join", "/i/" + tok + "/poster"} {
			resp, body := b.get(p)
			wantStatus(t, resp, 404, p)
			if !strings.Contains(body, "This link no longer works") {
				t.Errorf("%s: not the friendly page", p)
			}
		}
		csrf := b.token("/login")
		resp, _ := b.post("/i/"+tok+"/join", url.Values{"csrf": {csrf}, "user": {"mallory"}, "password": {"long-enough"}})
		wantStatus(t, resp, 404, "join with "+tok)
	}
	if n := f.inv.accounts(); n != 0 {
		t.Fatalf("%d accounts made with dead links", n)
	}
	// A group invite used up by the web form is gone afterwards too.
	f.inv.put(Invite{Token: "last", Expires: time.Now().Add(time.Hour), Uses: 1, MaxUses: 2})
	csrf := b.token("/i/last/join")
	resp, _ := b.post("/i/last/join", url.Values{"csrf": {csrf}, "user": {"zoe"}, "password": {"zoe-password"}})
	wantStatus(t, resp, 201, "last use")
	resp, _ = b.get("/i/last")
	wantStatus(t, resp, 404, "after the last use")
}

func TestWebRegistration(t *testing.T) {
	f := claimedFixture(t)
	groupInvite(f, "club")
	b := f.browser(t)
	resp, body := b.get("/i/club/join")
	wantStatus(t, resp, 200, "join form")
	for _, want := range []string{`type="password"`, `id="pwshow"`, `name="password_shown"`} {
		if !strings.Contains(body, want) {
			t.Errorf("join form lacks %s", want)
		}
	}
	csrf := csrfRE.FindStringSubmatch(body)[1]

	// Refused forms change nothing.
	for _, c := range []struct {
		name string
		form url.Values
		hdr  []string
		code int
		says string
	}{
		{"no csrf", url.Values{"user": {"ann"}, "password": {"ann-password"}}, nil, 403, ""},
		{"foreign origin", url.Values{"csrf": {csrf}, "user": {"ann"}, "password": {"ann-password"}}, []string{"Origin", "http://evil.example"}, 403, ""},
		{"no name", url.Values{"csrf": {csrf}, "password": {"ann-password"}}, nil, 400, "Please choose a user name"},
		{"short password", url.Values{"csrf": {csrf}, "user": {"ann"}, "password": {"short"}}, nil, 400, "at least 8"},
		{"bad name", url.Values{"csrf": {csrf}, "user": {"ann smith"}, "password": {"ann-password"}}, nil, 400, "cannot be used"},
		{"oversized", url.Values{"csrf": {csrf}, "user": {strings.Repeat("a", 20000)}, "password": {"ann-password"}}, nil, 413, ""},
	} {
		resp, body := b.post("/i/club/join", c.form, c.hdr...)
		wantStatus(t, resp, c.code, c.name)
		if !strings.Contains(body, c.says) {
			t.Errorf("%s: page does not say %q", c.name, c.says)
		}
		if n := f.inv.accounts(); n != 0 {
			t.Fatalf("%s: an account was made", c.name)
		}
	}
	// A body that is not a form at all.
	req, _ := http.NewRequest("POST", f.srv.URL+"/i/club/join", strings.NewReader("csrf="+csrf+"&user=%zz&password=ann-password"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	raw, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(raw); raw.StatusCode != 400 || !strings.Contains(body, "Nothing was changed") || f.inv.accounts() != 0 {
		t.Fatalf("malformed form: %d, %d accounts", raw.StatusCode, f.inv.accounts())
	}
	resp, body = b.post("/i/club/join", url.Values{"csrf": {csrf}, "user": {"Ann"}, "password_shown": {"ann-password"}})
	wantStatus(t, resp, 201, "registration")
	for _, want := range []string{"ann@hearth.local", "exists now", "sue are already contacts"} {
		if !strings.Contains(body, want) {
			t.Errorf("welcome page lacks %q", want)
		}
	}
	if f.inv.x.redeemed["ann"] != "ann-password" || len(f.inv.handoffs) != 0 {
		t.Fatalf("redeemed: %v, handed off: %v", f.inv.x.redeemed, f.inv.handoffs)
	}
	// The new member is logged in on this browser.
	if resp, _ := b.get("/"); resp.StatusCode != 200 {
		t.Fatalf("home after registration: %d", resp.StatusCode)
	}
	// A taken name: the form again, with the name kept.
	b2 := f.browser(t)
	csrf2 := b2.token("/i/club/join")
	resp, body = b2.post("/i/club/join", url.Values{"csrf": {csrf2}, "user": {"ann"}, "password": {"other-password"}})
	wantStatus(t, resp, 409, "taken name")
	if !strings.Contains(body, "taken") || !strings.Contains(body, `value="ann"`) {
		t.Error("taken name: form not shown again")
	}
}

// TestWebRegistrationIntoChat (issue 10): with the browser chat on the
// box, the web form ends in /chat/ logged in through Invites.ChatHandoff
// (never the password in the page or the address), and the member is
// logged in on the box's pages too. TestWebRegistration is the box
// without it (the "account exists" page).
func TestWebRegistrationIntoChat(t *testing.T) {
	f := claimedFixture(t)
	f.inv.chat = true
	groupInvite(f, "club")
	b := f.browser(t)
	csrf := b.token("/i/club/join")
	resp, body := b.post("/i/club/join", url.Values{"csrf": {csrf}, "user": {"Ann"}, "password": {"ann-password"}})
	wantStatus(t, resp, 303, "registration")
	if loc := resp.Header.Get("Location"); loc != "/chat/#handoff" {
		t.Fatalf("registration redirects to %q", loc)
	}
	if f.inv.handoffs["ann"] != "ann-password" || f.inv.x.redeemed["ann"] != "ann-password" {
		t.Fatalf("hand-off %v, redeemed %v", f.inv.handoffs, f.inv.x.redeemed)
	}
	if strings.Contains(body, "ann-password") || strings.Contains(resp.Header.Get("Location"), "ann-password") {
		t.Fatal("the password is in the redirect")
	}
	if resp, _ := b.get("/"); resp.StatusCode != 200 {
		t.Fatalf("home after registration: %d", resp.StatusCode)
	}
	// A refused form hands nothing over.
	csrf = b.token("/i/club/join")
	resp, _ = b.post("/i/club/join", url.Values{"csrf": {csrf}, "user": {"ann"}, "password": {"other-password"}})
	wantStatus(t, resp, 409, "taken name")
	if len(f.inv.handoffs) != 1 {
		t.Fatalf("hand-offs: %v", f.inv.handoffs)
	}
}

func TestResetLinkPage(t *testing.T) {
	f := claimedFixture(t)
	f.inv.put(Invite{Token: "rst", Expires: time.Now().Add(time.Hour), Uses: 1, MaxUses: 1, Reset: "ann"})
	groupInvite(f, "inv")
	b := f.browser(t)
	if resp, _ := b.get("/reset/inv"); resp.StatusCode != 404 {
		t.Fatalf("an invite as a reset link: %d", resp.StatusCode)
	}
	resp, body := b.get("/reset/rst")
	wantStatus(t, resp, 200, "reset form")
	if !strings.Contains(body, "ann") {
		t.Fatal("reset page does not name the account")
	}
	csrf := csrfRE.FindStringSubmatch(body)[1]
	resp, _ = b.post("/reset/rst", url.Values{"csrf": {csrf}, "password": {"short"}})
	wantStatus(t, resp, 400, "short password")
	resp, body = b.post("/reset/rst", url.Values{"csrf": {csrf}, "password": {"new-password"}})
	wantStatus(t, resp, 200, "reset")
	if !strings.Contains(body, "new password is saved") || f.inv.x.redeemed["ann"] != "new-password" {
		t.Fatal("password not reset")
	}
	resp, _ = b.get("/reset/rst")
	wantStatus(t, resp, 404, "second use")
}

func TestTokenLookupsLimited(t *testing.T) {
	f := claimedFixture(t)
	b := f.browser(t)
	limited := false
	for i := 0; i < 100; i++ {
		resp, _ := b.get("/i/guess" + string(rune('a'+i%26)))
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("100 token guesses from one address were all answered")
	}
}

// TestInviteRoutesBeforeClaim: before the box is claimed invite links
// lead to the setup page, like everything else.
func TestInviteRoutesBeforeClaim(t *testing.T) {
	f := newFixture(t)
	groupInvite(f, "early")
	resp, _ := f.browser(t).get("/i/early")
	wantRedirect(t, resp, "/setup")
}

// TestPublicRoutes extends TestRouteTable: a route reachable without a
// session must be on this list, so a new public route is a decision made
// here, not a slip in routes.go.
func TestPublicRoutes(t *testing.T) {
	known := map[string]bool{
		"GET /{$}": true, "GET /setup": true, "POST /setup": true, "GET /login": true, "POST /login": true, "/": true,
		"GET /i/{token}": true, "GET /i/{token}/join": true, "POST /i/{token}/join": true, "GET /i/{token}/poster": true,
		"GET /reset/{token}": true, "POST /reset/{token}": true,
	}
	// Not public: /invite (members), /invite/members (admins).
	f := newFixture(t)
	for _, rt := range f.ui.routes() {
		if rt.access == public && !known[rt.pattern] && !strings.HasPrefix(rt.pattern, "GET /static/") && !strings.Contains(rt.pattern, ".css") {
			t.Errorf("public route %q is not on the list", rt.pattern)
		}
	}
}

func loginAs(t *testing.T, f *fixture, user string, admin bool) *browser {
	f.acc.mu.Lock()
	f.acc.users[user] = fakeUser{user + "-password", admin}
	f.acc.mu.Unlock()
	b := f.browser(t)
	resp, _ := b.post("/login", url.Values{"csrf": {b.token("/login")}, "user": {user}, "password": {user + "-password"}, "next": {"/"}})
	wantRedirect(t, resp, "/")
	return b
}

// TestMemberInvitePage: members invite when the admin allows it (the
// Invites dependency says who may), always as plain members; only admins
// switch the setting.
func TestMemberInvitePage(t *testing.T) {
	f := claimedFixture(t)
	f.inv.x.mayNot = map[string]bool{"lim": true}
	lim := loginAs(t, f, "lim", false)
	resp, _ := lim.get("/invite")
	wantStatus(t, resp, 403, "invite page for an account that may not invite")
	resp, _ = lim.post("/invite", url.Values{"csrf": {lim.token("/login")}, "who": {"group"}, "valid": {"1w"}})
	wantStatus(t, resp, 403, "invite by an account that may not invite")
	if len(f.inv.made) != 0 {
		t.Fatal("an invite was made")
	}

	ann := loginAs(t, f, "ann", false)
	csrf := ann.token("/invite")
	resp, _ = ann.post("/invite", url.Values{"csrf": {csrf}, "who": {"group"}, "valid": {"1y"}})
	wantStatus(t, resp, 400, "unknown validity")
	resp, body := ann.post("/invite", url.Values{"csrf": {csrf}, "who": {"group"}, "valid": {"4w"}, "note": {"Bring boots"}})
	wantStatus(t, resp, 201, "member's invite")
	if !strings.Contains(body, f.srv.URL+"/i/tok") || !strings.Contains(body, "<svg") || !strings.Contains(body, "/i/tok/poster") {
		t.Error("result page lacks the landing link, its QR code or the poster")
	}
	o := f.inv.made[0]
	if o.Inviter != "ann" || o.Uses != groupUses || o.Role != "member" || o.Admin || o.TTL != 28*24*time.Hour || o.Note != "Bring boots" {
		t.Fatalf("invite made: %+v", o)
	}
	resp, _ = ann.post("/invite/members", url.Values{"csrf": {csrf}, "members": {"yes"}})
	wantStatus(t, resp, 403, "a member switching who may invite")

	adm := loginAs(t, f, "sue", true)
	resp, _ = adm.post("/invite/members", url.Values{"csrf": {adm.token("/invite")}, "members": {"yes"}})
	wantRedirect(t, resp, "/invite?saved=1")
	if !f.cfg.c.Site.MembersInvite {
		t.Fatal("setting not saved")
	}
}

// TestReservedName: an invite that keeps a name (made for someone by
// name) shows it fixed on the form and makes that account, whatever the
// form sent.
func TestReservedName(t *testing.T) {
	f := claimedFixture(t)
	f.inv.put(Invite{Token: "forgran", Expires: time.Now().Add(time.Hour), Uses: 1, MaxUses: 1, User: "gran"})
	b := f.browser(t)
	resp, body := b.get("/i/forgran/join")
	wantStatus(t, resp, 200, "join form")
	if !strings.Contains(body, `value="gran"`) || !strings.Contains(body, "readonly") {
		t.Fatal("the kept name is not shown fixed")
	}
	csrf := csrfRE.FindStringSubmatch(body)[1]
	resp, _ = b.post("/i/forgran/join", url.Values{"csrf": {csrf}, "user": {"mallory"}, "password": {"gran-password"}})
	wantStatus(t, resp, 201, "registration")
	if _, ok := f.inv.x.redeemed["gran"]; !ok || len(f.inv.x.redeemed) != 1 {
		t.Fatalf("accounts made: %v", f.inv.x.redeemed)
	}
}

// TestHomeLinksInvite: the home page offers "Invite people" to those who
// may invite, and not to the others.
func TestHomeLinksInvite(t *testing.T) {
	f := claimedFixture(t)
	f.inv.x.mayNot = map[string]bool{"lim": true}
	for _, c := range []struct {
		user  string
		admin bool
		want  bool
	}{{"sue", true, true}, {"ann", false, true}, {"lim", false, false}} {
		_, body := loginAs(t, f, c.user, c.admin).get("/")
		if got := strings.Contains(body, `href="/invite"`); got != c.want {
			t.Errorf("%s: invite link %v, want %v", c.user, got, c.want)
		}
	}
}
