package xmppd

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	setupui "github.com/hearthchat/hearth/setup-ui"
	"github.com/hearthchat/hearth/xmppd/webchat"
)

// TestWebRegistrationIntoChat (issue 10): the invite page's web form,
// through the box's own web server, ends in /chat/#handoff with the
// one-time cookie for /chat/ only; /chat/handoff gives that page the new
// login once (same origin), and the account logs in with it. A build
// without the browser chat keeps the "account exists" page.
func TestWebRegistrationIntoChat(t *testing.T) {
	if !webchat.Built() {
		t.Skip("Converse's files are not in this build (make webchat-assets)")
	}
	dir := state.Dir(t.TempDir())
	if err := dir.Ensure(); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Claimed = true
	if err := config.Save(dir.Config(), cfg); err != nil {
		t.Fatal(err)
	}
	d, err := Start(Options{State: dir, Domain: "hearth.localhost", C2S: "127.0.0.1:0", Web: freeAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	inv, err := webInvites{d}.Create(setupui.InviteOptions{Uses: 3})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + d.Web.Addr.String()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, form url.Values) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(form.Encode()))
		if method == "POST" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", base)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	register := func(user, pw string) (*http.Response, string) {
		t.Helper()
		_, body := do("GET", "/i/"+inv.Token+"/join", nil)
		m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no form on the join page:\n%s", body)
		}
		return do("POST", "/i/"+inv.Token+"/join", url.Values{"csrf": {m[1]}, "user": {user}, "password": {pw}})
	}

	resp, body := register("bert", "bert likes boats")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/chat/#handoff" {
		t.Fatalf("registration: %d → %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	var handoff *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == webchat.HandoffCookie {
			handoff = k
		}
	}
	if handoff == nil || handoff.Path != "/chat/" || !handoff.HttpOnly || handoff.SameSite != http.SameSiteStrictMode ||
		handoff.MaxAge <= 0 || handoff.MaxAge > 120 {
		t.Fatalf("hand-off cookie: %+v", handoff)
	}
	if strings.Contains(body, "bert likes boats") || strings.Contains(resp.Header.Get("Location"), "boats") ||
		strings.Contains(handoff.Value, "boats") {
		t.Fatal("the password left the server in the redirect")
	}
	// What /chat/ asks for: once, same origin only.
	resp, body = do("POST", "/chat/handoff", nil)
	var got struct{ JID, Password string }
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &got) != nil {
		t.Fatalf("hand-off: %d %s", resp.StatusCode, body)
	}
	if got.JID != "bert@hearth.localhost" || got.Password != "bert likes boats" {
		t.Fatalf("hand-off gave %+v", got)
	}
	if err := login(t, d, "bert", got.Password); err != nil {
		t.Fatalf("login with the hand-off: %v", err)
	}
	jar.SetCookies(&url.URL{Scheme: "http", Host: d.Web.Addr.String(), Path: "/chat/"}, []*http.Cookie{handoff})
	if resp, _ = do("POST", "/chat/handoff", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("second hand-off: %d", resp.StatusCode)
	}

	// No browser chat in the build: the page that says the account exists.
	chatBuilt = func() bool { return false }
	defer func() { chatBuilt = webchat.Built }()
	jar2, _ := cookiejar.New(nil)
	c.Jar = jar2
	resp, body = register("carla", "carla rows fast")
	if resp.StatusCode != http.StatusCreated || !strings.Contains(body, "carla@hearth.localhost") {
		t.Fatalf("fallback: %d\n%s", resp.StatusCode, body)
	}
	for _, k := range resp.Cookies() {
		if k.Name == webchat.HandoffCookie {
			t.Fatalf("fallback set a hand-off cookie: %+v", k)
		}
	}
}
