package setupui

import (
	"context"
	"errors"
	"github.com/hearthchat/hearth/appliance/diskuse"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
)

type fakeMembers struct {
	mu    sync.Mutex
	m     map[string]*Member
	calls int
}

func (f *fakeMembers) List() ([]Member, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Member
	for _, x := range f.m {
		out = append(out, *x)
	}
	return out, nil
}

func (f *fakeMembers) get(user string) (*Member, error) {
	f.calls++
	x := f.m[user]
	if x == nil {
		return nil, ErrNoMember
	}
	return x, nil
}

func (f *fakeMembers) SetRole(user string, r Role) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	x, err := f.get(user)
	if err == nil {
		x.Role = r
	}
	return err
}

func (f *fakeMembers) Remove(user string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	x, err := f.get(user)
	if err == nil {
		x.Removing, x.DeleteAt = true, time.Now().Add(7*24*time.Hour)
	}
	return err
}

func (f *fakeMembers) Undo(user string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	x, err := f.get(user)
	if err == nil {
		x.Removing = false
	}
	return err
}

type fakeCircles struct {
	mu sync.Mutex
	c  map[string][]string
}

func (f *fakeCircles) List() ([]Circle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Circle
	for n, m := range f.c {
		out = append(out, Circle{n, slices.Clone(m)})
	}
	return out, nil
}

func (f *fakeCircles) Create(n string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.c[n]; ok {
		return errors.New("a circle with that name exists already")
	}
	f.c[n] = nil
	return nil
}

func (f *fakeCircles) Delete(n string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.c, n)
	return nil
}

func (f *fakeCircles) Add(n, u string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.c[n]; !ok {
		return errors.New("there is no such circle")
	}
	f.c[n] = append(f.c[n], u)
	return nil
}

func (f *fakeCircles) Leave(n, u string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.c[n] = slices.DeleteFunc(f.c[n], func(x string) bool { return x == u })
	return nil
}

type fakeDevices struct {
	mu      sync.Mutex
	d       map[string][]Device
	signOut []string // whose devices were signed out
}

func (f *fakeDevices) List(user string) ([]Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.d[user]), nil
}

func (f *fakeDevices) SignOutAll(user string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signOut = append(f.signOut, user)
	if user == "zed" {
		return 0, ErrNoMember
	}
	return len(f.d[user]), nil
}

type adminFakes struct {
	devices   *fakeDevices
	members   *fakeMembers
	circles   *fakeCircles
	announced []string
	checks    int
	retention int
	update    UpdateStatus
	backup    Nightly
}

// adminFixture is a claimed box (admin anna, logged in) with members bob
// (member, logged in too in the second browser) and carol.
func adminFixture(t *testing.T) (*fixture, *adminFakes, *browser, *browser) {
	f := newFixture(t)
	a := &adminFakes{
		members: &fakeMembers{m: map[string]*Member{
			"anna":  {User: "anna", Role: RoleAdmin, Online: true},
			"bob":   {User: "bob", Role: RoleMember, LastSeen: time.Now().Add(-3 * 24 * time.Hour)},
			"carol": {User: "carol", Role: RoleLimited},
		}},
		circles: &fakeCircles{c: map[string][]string{"Rowers": {"bob"}}},
		devices: &fakeDevices{d: map[string][]Device{"bob": {
			{ID: "ua-1", Software: "Conversations", Device: "Pixel 7", LastUsed: time.Now().Add(-2*time.Hour - time.Minute), TokenExpiry: time.Now().Add(10 * 24 * time.Hour)},
			{ID: "ua-2", Software: "Dino", LastUsed: time.Now().Add(-5 * 24 * time.Hour)},
		}}},
		update: UpdateStatus{Known: true, Running: "3", State: "idle", Message: "up to date (release 3)", LastCheck: time.Now()},
	}
	var mu sync.Mutex
	f.ui.d.Admin = Admin{
		Members: a.members, Circles: a.circles, Devices: a.devices,
		Announce: func(text string) (AnnounceResult, error) {
			mu.Lock()
			defer mu.Unlock()
			a.announced = append(a.announced, text)
			return AnnounceResult{Delivered: 1, Stored: 1, Failed: []string{"carol"}}, nil
		},
		Health: func(context.Context) Health {
			return Health{StorageTotal: 29e9, StorageFree: 27e9, Database: 12e6, MemTotal: 512e6, MemAvailable: 300e6, MemChat: 40e6,
				BoxUp: 50 * time.Hour, ChatUp: 3 * time.Hour, Devices: 2, CertExpires: time.Now().Add(60 * 24 * time.Hour),
				Disk: diskuse.Report{Known: true, Span: 10 * 24 * time.Hour, GrowthPerDay: 500e6, WrittenPerDay: 2e9, FullIn: 20 * 24 * time.Hour,
					Warn: "At the rate of the last 10 days, the box's storage is full in about 20 days."}, Backup: a.backup}
		},
		Updates:   func(context.Context) UpdateStatus { return a.update },
		CheckNow:  func(context.Context) error { mu.Lock(); a.checks++; mu.Unlock(); return nil },
		Retention: func() error { mu.Lock(); a.retention++; mu.Unlock(); return nil },
	}
	admin := f.claim(t)
	f.acc.Create("bob", "bob-password", false)
	bob := f.browser(t)
	tok := bob.token("/login")
	resp, _ := bob.post("/login", url.Values{"csrf": {tok}, "user": {"bob"}, "password": {"bob-password"}, "next": {"/"}})
	wantRedirect(t, resp, "/")
	return f, a, admin, bob
}

// TestAdminRoutesRefuseMembers: every admin route refuses a logged-in
// member who is not an admin (TestRouteTable covers no session at all).
func TestAdminRoutesRefuseMembers(t *testing.T) {
	f, a, _, bob := adminFixture(t)
	tok := bob.token("/")
	n := 0
	for _, rt := range f.ui.routes() {
		if rt.access != admin {
			continue
		}
		n++
		method, path, _ := strings.Cut(rt.pattern, " ")
		path = strings.TrimSuffix(path, "{$}")
		var resp *http.Response
		if method == "POST" {
			resp, _ = bob.post(path, url.Values{"csrf": {tok}, "user": {"carol"}, "role": {"admin"}, "circle": {"Rowers"}, "text": {"hi"}, "auto": {"on"}, "window": {""}})
		} else {
			resp, _ = bob.get(path)
		}
		wantStatus(t, resp, http.StatusForbidden, "member "+rt.pattern)
	}
	if n < 15 {
		t.Fatalf("only %d admin routes", n)
	}
	if a.members.calls != 0 || len(a.announced) != 0 || a.checks != 0 || a.members.m["carol"].Role != RoleLimited || len(a.devices.signOut) != 0 {
		t.Fatalf("a member's requests changed something: %d calls, %v announced, %d checks, signed out %v", a.members.calls, a.announced, a.checks, a.devices.signOut)
	}
}

func TestAdminMembers(t *testing.T) {
	f, a, admin, bob := adminFixture(t)
	resp, body := admin.get("/admin/members")
	wantStatus(t, resp, 200, "members")
	for _, want := range []string{"anna (you)", "Online now.", "Last here: 3 days ago.", "Limited", `aria-current="page"`} {
		if !strings.Contains(body, want) {
			t.Errorf("members page lacks %q", want)
		}
	}
	tok := csrfRE.FindStringSubmatch(body)[1]

	// Make bob an admin: saved, and bob's open session ends (it was
	// made with the old rights).
	resp, _ = admin.post("/admin/members/role", url.Values{"csrf": {tok}, "user": {"bob"}, "role": {"admin"}})
	wantRedirect(t, resp, "/admin/members?done=role")
	if a.members.m["bob"].Role != RoleAdmin {
		t.Errorf("bob's role %s", a.members.m["bob"].Role)
	}
	resp, _ = bob.get("/admin/members")
	wantRedirect(t, resp, "/login?next=%2Fadmin%2Fmembers")

	// Remove and undo.
	resp, _ = admin.post("/admin/members/remove", url.Values{"csrf": {tok}, "user": {"carol"}})
	wantRedirect(t, resp, "/admin/members?done=remove")
	_, body = admin.get("/admin/members?done=remove")
	if !a.members.m["carol"].Removing || !strings.Contains(body, "Deleted for good in 7 days") || !strings.Contains(body, "Undo removal of carol") {
		t.Errorf("after remove: %+v\n%s", a.members.m["carol"], body)
	}
	resp, _ = admin.post("/admin/members/undo", url.Values{"csrf": {tok}, "user": {"carol"}})
	wantRedirect(t, resp, "/admin/members?done=undo")
	if a.members.m["carol"].Removing {
		t.Error("undo did not undo")
	}

	// One's own account, unknown members and unknown roles: refused.
	for _, c := range []struct {
		path string
		form url.Values
		code int
	}{
		{"/admin/members/remove", url.Values{"user": {"anna"}}, http.StatusConflict},
		{"/admin/members/role", url.Values{"user": {"anna"}, "role": {"member"}}, http.StatusConflict},
		{"/admin/members/role", url.Values{"user": {"bob"}, "role": {"king"}}, http.StatusBadRequest},
		{"/admin/members/remove", url.Values{"user": {"zed"}}, http.StatusNotFound},
		{"/admin/members/undo", url.Values{}, http.StatusBadRequest},
	} {
		c.form.Set("csrf", tok)
		resp, _ := admin.post(c.path, c.form)
		wantStatus(t, resp, c.code, c.path+" "+c.form.Encode())
	}
	if a.members.m["anna"].Role != RoleAdmin || a.members.m["anna"].Removing {
		t.Error("the admin changed their own account")
	}

	// A password link: made by the invites store for bob, shown once.
	resp, body = admin.post("/admin/members/reset", url.Values{"csrf": {tok}, "user": {"bob"}})
	wantStatus(t, resp, http.StatusCreated, "reset link")
	if !strings.Contains(body, "Password link for bob") || !strings.Contains(body, "<svg") {
		t.Errorf("reset page: %s", body)
	}
	if m := f.inv.made; len(m) != 1 || m[0].ResetFor != "bob" || m[0].Inviter != "anna" {
		t.Errorf("reset link made as %+v", m)
	}
}

// TestAdminFormsRefused: a POST from another site, without this
// session's token or with a body past the limit changes nothing.
func TestAdminFormsRefused(t *testing.T) {
	f, a, ab, _ := adminFixture(t)
	tok := ab.token("/admin/members")
	forms := map[string]url.Values{
		"/admin/members/role":     {"user": {"bob"}, "role": {"admin"}},
		"/admin/members/remove":   {"user": {"bob"}},
		"/admin/members/undo":     {"user": {"bob"}},
		"/admin/members/reset":    {"user": {"bob"}},
		"/admin/members/signout":  {"user": {"bob"}},
		"/admin/circles":          {"circle": {"New"}},
		"/admin/circles/add":      {"circle": {"Rowers"}, "user": {"carol"}},
		"/admin/circles/leave":    {"circle": {"Rowers"}, "user": {"bob"}},
		"/admin/circles/delete":   {"circle": {"Rowers"}},
		"/admin/announce":         {"text": {"hello"}},
		"/admin/updates/check":    {},
		"/admin/updates/settings": {"auto": {"off"}, "window": {"02:00-05:00"}},
		"/admin/storage/settings": {"messages": {"7"}, "files": {"7"}},
		"/admin/invites":          {"valid": {"1w"}, "role": {"member"}},
		"/admin/invites/revoke":   {"token": {"live"}},
		"/admin/federation":       {"federation": {"off"}, "block": {"spam.example"}},
		"/admin/backup":           {"passphrase": {"long enough words"}, "passphrase2": {"long enough words"}},
		"/admin/backup/nightly":   {"dir": {"/mnt/usb"}, "keep": {"3"}, "hour": {"2"}, "passphrase": {"long enough words"}, "passphrase2": {"long enough words"}},
		"/admin/data/export":      {},
		"/admin/data/import":      {},
	}
	f.inv.put(Invite{Token: "live", Uses: 1, MaxUses: 1, Expires: time.Now().Add(time.Hour)})
	for _, rt := range f.ui.routes() {
		if rt.access == admin && strings.HasPrefix(rt.pattern, "POST /admin/") {
			if _, ok := forms[strings.TrimPrefix(rt.pattern, "POST ")]; !ok {
				t.Errorf("no refusal case for %s", rt.pattern)
			}
		}
	}
	for path, form := range forms {
		withTok := url.Values{"csrf": {tok}}
		for k, v := range form {
			withTok[k] = v
		}
		for _, c := range []struct {
			name string
			form url.Values
			hdr  []string
			code int
		}{
			{"no token", form, nil, 403},
			{"foreign origin", withTok, []string{"Origin", "http://evil.example"}, 403},
			{"cross-site", withTok, []string{"Sec-Fetch-Site", "cross-site"}, 403},
			{"oversized", func() url.Values {
				v := url.Values{"pad": {strings.Repeat("x", 20000)}}
				for k, x := range withTok {
					v[k] = x
				}
				return v
			}(), nil, 413},
		} {
			resp, _ := ab.post(path, c.form, c.hdr...)
			wantStatus(t, resp, c.code, c.name+" "+path)
		}
	}
	cfg, _ := f.cfg.Load()
	if len(a.devices.signOut) != 0 {
		t.Fatalf("refused forms signed out %v", a.devices.signOut)
	}
	if live, _ := f.inv.List(); a.members.calls != 0 || len(a.announced) != 0 || a.checks != 0 || !cfg.Update.Auto || cfg.Update.Window != "" ||
		len(a.circles.c) != 1 || len(a.circles.c["Rowers"]) != 1 || len(f.inv.made) != 0 || len(live) != 1 ||
		cfg.Federation.Off || len(cfg.Federation.Block) != 0 || cfg.Archive.RetentionDays == 7 || a.retention != 0 {
		t.Fatalf("refused forms changed something: calls %d announced %v checks %d update %+v circles %v",
			a.members.calls, a.announced, a.checks, cfg.Update, a.circles.c)
	}
}

// TestAdminMemberDevices: a member's page lists their apps in plain
// words, and "sign out all devices" reaches the box (and ends the
// member's own page sessions) only from an admin with the form's token.
func TestAdminMemberDevices(t *testing.T) {
	_, a, admin, bob := adminFixture(t)
	_, body := admin.get("/admin/members")
	if !strings.Contains(body, `href="/admin/members/bob"`) {
		t.Errorf("members page has no link to bob's devices")
	}
	resp, body := admin.get("/admin/members/bob")
	wantStatus(t, resp, 200, "bob's page")
	for _, want := range []string{"Conversations on Pixel 7", "Last used: 2 hours ago.", "Keeps a login key until", "Dino", "Last used: 5 days ago.", "No login key", "Sign out all of bob's devices"} {
		if !strings.Contains(body, want) {
			t.Errorf("bob's page lacks %q", want)
		}
	}
	if i, j := strings.Index(body, "Pixel 7"), strings.Index(body, "Dino"); i > j {
		t.Errorf("devices not in the store's order (most recent first)")
	}
	_, body = admin.get("/admin/members/carol")
	if !strings.Contains(body, "No devices known yet") {
		t.Errorf("carol's page: %s", body)
	}
	resp, _ = admin.get("/admin/members/zed")
	wantStatus(t, resp, http.StatusNotFound, "unknown member's page")
	_, body = admin.get("/admin/members/anna")
	if strings.Contains(body, `action="/admin/members/signout"`) {
		t.Errorf("the admin's own page offers to sign themselves out")
	}

	// Without the form's token: nothing happens.
	resp, _ = admin.post("/admin/members/signout", url.Values{"user": {"bob"}})
	wantStatus(t, resp, http.StatusForbidden, "sign out without token")
	if len(a.devices.signOut) != 0 {
		t.Fatalf("signed out without a token: %v", a.devices.signOut)
	}
	tok := admin.token("/admin/members/bob")
	resp, _ = admin.post("/admin/members/signout", url.Values{"csrf": {tok}, "user": {"bob"}})
	wantRedirect(t, resp, "/admin/members/bob?done=signout")
	if len(a.devices.signOut) != 1 || a.devices.signOut[0] != "bob" {
		t.Fatalf("signed out %v, want [bob]", a.devices.signOut)
	}
	_, body = admin.get("/admin/members/bob?done=signout")
	if !strings.Contains(body, "All their apps are signed out.") {
		t.Errorf("no confirmation after sign out")
	}
	// bob's open page session on the box ended too.
	resp, _ = bob.get("/invite")
	wantRedirect(t, resp, "/login?next=%2Finvite")

	for _, c := range []struct {
		user string
		code int
	}{{"anna", http.StatusConflict}, {"zed", http.StatusNotFound}, {"", http.StatusBadRequest}} {
		resp, _ = admin.post("/admin/members/signout", url.Values{"csrf": {tok}, "user": {c.user}})
		wantStatus(t, resp, c.code, "sign out "+c.user)
	}
}

// TestOwnDevices: a member lists their own apps at /devices and signs
// them all out with the form's token; that browser stays logged in, the
// member's other page sessions end.
func TestOwnDevices(t *testing.T) {
	f, a, _, bob := adminFixture(t)
	_, body := bob.get("/")
	if !strings.Contains(body, `href="/devices"`) {
		t.Errorf("start page has no link to the member's devices")
	}
	resp, body := bob.get("/devices")
	wantStatus(t, resp, 200, "bob's devices")
	for _, want := range []string{"Conversations on Pixel 7", "Last used: 2 hours ago.", "Dino", "Sign out all my devices"} {
		if !strings.Contains(body, want) {
			t.Errorf("bob's devices page lacks %q", want)
		}
	}
	// bob also logged in from another browser.
	bob2 := f.browser(t)
	tok := bob2.token("/login")
	resp, _ = bob2.post("/login", url.Values{"csrf": {tok}, "user": {"bob"}, "password": {"bob-password"}, "next": {"/devices"}})
	wantRedirect(t, resp, "/devices")

	resp, _ = bob.post("/devices/signout", url.Values{})
	wantStatus(t, resp, http.StatusForbidden, "sign out without token")
	if len(a.devices.signOut) != 0 {
		t.Fatalf("signed out without a token: %v", a.devices.signOut)
	}
	tok = bob.token("/devices")
	resp, _ = bob.post("/devices/signout", url.Values{"csrf": {tok}, "user": {"carol"}})
	wantRedirect(t, resp, "/devices?done=signout")
	if len(a.devices.signOut) != 1 || a.devices.signOut[0] != "bob" {
		t.Fatalf("signed out %v, want [bob] (the form's user is not used)", a.devices.signOut)
	}
	resp, body = bob.get("/devices?done=signout")
	wantStatus(t, resp, 200, "bob's devices after sign out")
	if !strings.Contains(body, "All your apps are signed out.") {
		t.Errorf("no confirmation after sign out")
	}
	resp, _ = bob2.get("/devices")
	wantRedirect(t, resp, "/login?next=%2Fdevices")
}

func TestAdminCircles(t *testing.T) {
	_, a, admin, _ := adminFixture(t)
	resp, body := admin.get("/admin/circles")
	wantStatus(t, resp, 200, "circles")
	if !strings.Contains(body, "Rowers") || !strings.Contains(body, "<option>carol</option>") || strings.Contains(body, "<option>bob</option>") {
		t.Errorf("circles page: %s", body)
	}
	tok := csrfRE.FindStringSubmatch(body)[1]
	steps := []struct {
		path string
		form url.Values
		want string
	}{
		{"/admin/circles", url.Values{"circle": {" Committee "}}, "create"},
		{"/admin/circles/add", url.Values{"circle": {"Committee"}, "user": {"carol"}}, "add"},
		{"/admin/circles/leave", url.Values{"circle": {"Rowers"}, "user": {"bob"}}, "leave"},
		{"/admin/circles/delete", url.Values{"circle": {"Rowers"}}, "delete"},
	}
	for _, s := range steps {
		s.form.Set("csrf", tok)
		resp, _ := admin.post(s.path, s.form)
		wantRedirect(t, resp, "/admin/circles?done="+s.want)
	}
	if _, ok := a.circles.c["Rowers"]; ok || !slices.Equal(a.circles.c["Committee"], []string{"carol"}) {
		t.Errorf("circles %v", a.circles.c)
	}
	for _, name := range []string{"", strings.Repeat("x", 41), "a\nb"} {
		resp, _ := admin.post("/admin/circles", url.Values{"csrf": {tok}, "circle": {name}})
		wantStatus(t, resp, http.StatusBadRequest, "circle name "+name)
	}
	resp, _ = admin.post("/admin/circles", url.Values{"csrf": {tok}, "circle": {"Committee"}})
	wantStatus(t, resp, http.StatusBadRequest, "duplicate circle")
}

func TestAdminAnnounce(t *testing.T) {
	_, a, admin, _ := adminFixture(t)
	tok := admin.token("/admin/announce")
	resp, body := admin.post("/admin/announce", url.Values{"csrf": {tok}, "text": {"  The boat house is closed on Sunday.  "}})
	wantStatus(t, resp, 200, "announce")
	if !slices.Equal(a.announced, []string{"The boat house is closed on Sunday."}) {
		t.Errorf("announced %q", a.announced)
	}
	if !strings.Contains(body, "Sent. 1 member has it now; 1 will get it") || !strings.Contains(body, "could not get it") || !strings.Contains(body, "carol") {
		t.Errorf("result page: %s", body)
	}
	for _, text := range []string{"   ", strings.Repeat("é", 2001)} {
		resp, _ := admin.post("/admin/announce", url.Values{"csrf": {tok}, "text": {text}})
		wantStatus(t, resp, http.StatusBadRequest, "bad announcement")
	}
	if len(a.announced) != 1 {
		t.Errorf("a refused announcement was sent: %d", len(a.announced))
	}
}

func TestAdminHealth(t *testing.T) {
	f, a, admin, _ := adminFixture(t)
	resp, body := admin.get("/admin/health")
	wantStatus(t, resp, 200, "health")
	for _, want := range []string{"2.0 GB used of 29.0 GB (27.0 GB free)", "12 MB", "2 days", "2 phones and computers", "192.168.1.20", "Tor is off.",
		"no update address", "up to date (release 3)", "Look for an update now",
		"500 MB more in use each day (over the last 10 days).", "full in about 20 days", "2.0 GB a day written to the box&#39;s storage", `role="alert">At the rate`} {
		if !strings.Contains(body, want) {
			t.Errorf("health page lacks %q", want)
		}
	}
	a.update.FeedURL = "https://updates.example.org/stable/"
	_, body = admin.get("/admin/health")
	if strings.Contains(body, "no update address") || !strings.Contains(body, "updates.example.org") {
		t.Errorf("with a feed: %s", body)
	}
	tok := csrfRE.FindStringSubmatch(body)[1]
	resp, _ = admin.post("/admin/updates/check", url.Values{"csrf": {tok}})
	wantRedirect(t, resp, "/admin/health?done=check")
	if a.checks != 1 {
		t.Errorf("checks %d", a.checks)
	}
	resp, _ = admin.post("/admin/updates/settings", url.Values{"csrf": {tok}, "auto": {"off"}, "window": {"02:00-05:00"}})
	wantRedirect(t, resp, "/admin/health?done=settings")
	if c, _ := f.cfg.Load(); c.Update.Auto || c.Update.Window != "02:00-05:00" {
		t.Errorf("update settings %+v", c.Update)
	}
	for _, form := range []url.Values{{"auto": {"maybe"}, "window": {""}}, {"auto": {"on"}, "window": {"13:00-14:00"}}} {
		form.Set("csrf", tok)
		resp, _ := admin.post("/admin/updates/settings", form)
		wantStatus(t, resp, http.StatusBadRequest, "bad settings "+form.Encode())
	}
	if c, _ := f.cfg.Load(); c.Update.Auto || c.Update.Window != "02:00-05:00" {
		t.Errorf("refused settings saved: %+v", c.Update)
	}
	// A window set by hand in the config is offered and kept.
	f.cfg.Update(func(c *config.Config) error { c.Update.Window = "13:00-14:00"; return nil })
	_, body = admin.get("/admin/health")
	if !strings.Contains(body, `value="13:00-14:00" selected`) {
		t.Errorf("hand-set window not offered")
	}
	resp, _ = admin.post("/admin/updates/settings", url.Values{"csrf": {tok}, "auto": {"on"}, "window": {"13:00-14:00"}})
	wantRedirect(t, resp, "/admin/health?done=settings")
}

// TestAdminHealthBackup: the health page says when and where the last
// backup was written, or that there is none, and warns when the last try
// failed, with a link to the backup page.
func TestAdminHealthBackup(t *testing.T) {
	_, a, admin, _ := adminFixture(t)
	_, body := admin.get("/admin/health")
	for _, want := range []string{`<dd class="warn">No backup yet. <a href="/admin/backup">`} {
		if !strings.Contains(body, want) {
			t.Errorf("without a backup the health page lacks %q", want)
		}
	}
	ok := time.Date(2026, 12, 6, 3, 0, 0, 0, time.Local)
	a.backup = Nightly{Attempt: ok, OK: ok, File: "/mnt/usb/hearth-backups/hearth.local-2026-12-06.hearth-backup", Bytes: 12e6}
	_, body = admin.get("/admin/health")
	if want := `<dd>Last backup: 6 December 2026, 03:00, /mnt/usb/hearth-backups/hearth.local-2026-12-06.hearth-backup (12 MB). <a href="/admin/backup">`; !strings.Contains(body, want) {
		t.Errorf("after a backup the health page lacks %q", want)
	}
	a.backup.Attempt, a.backup.Error = ok.Add(24*time.Hour), "the backup folder /mnt/usb is not there (is the USB stick plugged in?)"
	_, body = admin.get("/admin/health")
	if want := `<dd class="warn">Last backup: 6 December 2026, 03:00, /mnt/usb/hearth-backups/hearth.local-2026-12-06.hearth-backup (12 MB). The last try (7 December 2026, 03:00) failed: the backup folder /mnt/usb is not there (is the USB stick plugged in?) <a href="/admin/backup">`; !strings.Contains(body, want) {
		t.Errorf("after a failed try the health page lacks %q", want)
	}
}

func TestAdminStorageSettings(t *testing.T) {
	f, a, admin, _ := adminFixture(t)
	_, body := admin.get("/admin/health")
	if !strings.Contains(body, `name="messages" type="number" inputmode="numeric" min="1" max="3650" required value="30"`) {
		t.Fatalf("health page lacks the retention form with 30 days: %s", body)
	}
	tok := csrfRE.FindStringSubmatch(body)[1]
	resp, _ := admin.post("/admin/storage/settings", url.Values{"csrf": {tok}, "messages": {"90"}, "files": {"14"}})
	wantRedirect(t, resp, "/admin/health?done=storage")
	if c, _ := f.cfg.Load(); c.Archive.RetentionDays != 90 || c.Archive.FileRetentionDays != 14 {
		t.Errorf("archive settings %+v", c.Archive)
	}
	if a.retention != 1 {
		t.Errorf("the chat server was told %d times", a.retention)
	}
	for _, form := range []url.Values{{"messages": {"0"}, "files": {"14"}}, {"messages": {"30"}, "files": {"forever"}}, {"messages": {"4000"}, "files": {"1"}}} {
		form.Set("csrf", tok)
		resp, _ := admin.post("/admin/storage/settings", form)
		wantStatus(t, resp, http.StatusBadRequest, "bad storage settings "+form.Encode())
	}
	if c, _ := f.cfg.Load(); c.Archive.RetentionDays != 90 || c.Archive.FileRetentionDays != 14 || a.retention != 1 {
		t.Errorf("refused settings changed something: %+v, told %d", c.Archive, a.retention)
	}
	// Without a token the form is refused.
	resp, _ = admin.post("/admin/storage/settings", url.Values{"messages": {"5"}, "files": {"5"}})
	if resp.StatusCode == http.StatusSeeOther {
		t.Errorf("storage settings saved without a CSRF token")
	}
}

func TestAdminInvites(t *testing.T) {
	f, _, admin, _ := adminFixture(t)
	f.inv.put(Invite{Token: "t1", Uses: 48, MaxUses: 50, Role: "member", Inviter: "anna", Note: "rowers", Expires: time.Now().Add(time.Hour)})
	f.inv.put(Invite{Token: "t2", Uses: 1, MaxUses: 1, Reset: "bob", Expires: time.Now().Add(time.Hour)})
	resp, body := admin.get("/admin/invites")
	wantStatus(t, resp, 200, "invites")
	if !strings.Contains(body, "48 of 50 left") || !strings.Contains(body, "Note: rowers") || !strings.Contains(body, "1 password link") || strings.Contains(body, `value="t2"`) {
		t.Errorf("invites page: %s", body)
	}
	tok := csrfRE.FindStringSubmatch(body)[1]
	resp, body = admin.post("/admin/invites", url.Values{"csrf": {tok}, "who": {"group"}, "valid": {"4w"}, "role": {"limited"}, "note": {"juniors"}})
	wantStatus(t, resp, http.StatusCreated, "create")
	if m := f.inv.made; len(m) != 1 || m[0].Uses != 50 || m[0].Role != "limited" || m[0].TTL != 28*24*time.Hour || m[0].Note != "juniors" || m[0].Inviter != "anna" {
		t.Errorf("made %+v", m)
	}
	if !strings.Contains(body, "preauth=tok") || !strings.Contains(body, "<svg") {
		t.Errorf("no link or QR code")
	}
	// An admin invite is for one person, whatever was ticked.
	admin.post("/admin/invites", url.Values{"csrf": {tok}, "who": {"group"}, "valid": {"1d"}, "role": {"admin"}})
	if m := f.inv.made; len(m) != 2 || m[1].Uses != 1 || !m[1].Admin {
		t.Errorf("admin invite %+v", m[1])
	}
	for _, form := range []url.Values{{"valid": {"9y"}, "role": {"member"}}, {"valid": {"1w"}, "role": {"king"}}, {"valid": {"1w"}, "role": {"member"}, "note": {strings.Repeat("n", 201)}}} {
		form.Set("csrf", tok)
		resp, _ := admin.post("/admin/invites", form)
		wantStatus(t, resp, http.StatusBadRequest, "bad invite "+form.Encode())
	}
	resp, _ = admin.post("/admin/invites/revoke", url.Values{"csrf": {tok}, "token": {"t1"}})
	wantRedirect(t, resp, "/admin/invites?done=revoke")
	resp, _ = admin.post("/admin/invites/revoke", url.Values{"csrf": {tok}, "token": {"t1"}})
	wantStatus(t, resp, http.StatusNotFound, "revoke twice")
	if live, _ := f.inv.List(); len(live) != 1 || len(f.inv.made) != 2 {
		t.Errorf("after revoke: %v made %d", live, len(f.inv.made))
	}
}
