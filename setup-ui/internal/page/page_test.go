package page

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestSessionsIdleAndChange(t *testing.T) {
	s := NewSessions()
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	x := s.create()
	if s.get(x.ID) != x {
		t.Fatal("fresh session not found")
	}
	now = now.Add(29 * time.Minute)
	if s.get(x.ID) == nil {
		t.Fatal("session gone before its idle timeout")
	}
	rec := httptest.NewRecorder()
	n := s.Change(rec, httptest.NewRequest("GET", "/", nil), x, func(x *Session) { x.User = "anna" })
	if n.ID == x.ID || n.CSRF == x.CSRF || s.get(x.ID) != nil || s.get(n.ID) != n || n.User != "anna" {
		t.Fatal("Change kept the old ID or token, or lost the change")
	}
	if c := rec.Result().Cookies(); len(c) != 1 || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode || c[0].Secure {
		t.Errorf("cookie %+v", c)
	}
	now = now.Add(31 * time.Minute)
	if s.get(n.ID) != nil {
		t.Fatal("session alive after 31 idle minutes")
	}
	s.Max = 3
	for i := 0; i < 10; i++ {
		s.create()
	}
	if len(s.m) > 3 {
		t.Errorf("%d sessions, max 3", len(s.m))
	}
}

func TestLimiter(t *testing.T) {
	l := NewLimiter(3, time.Minute)
	now := time.Unix(0, 0)
	l.now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		if !l.Allow("a") {
			t.Fatal("within the limit refused")
		}
	}
	if l.Allow("a") || !l.Allow("b") {
		t.Fatal("limit per key")
	}
	now = now.Add(time.Minute)
	if !l.Allow("a") {
		t.Fatal("new window refused")
	}
	if LimitKey(netip.MustParseAddr("2001:db8::1")) != LimitKey(netip.MustParseAddr("2001:db8::ffff")) {
		t.Error("one /64 is one key")
	}
}

func TestSameOrigin(t *testing.T) {
	for _, c := range []struct {
		origin, site string
		tls, want    bool
	}{
		{"", "", false, true},
		{"http://box", "same-origin", false, true},
		{"http://box", "", false, true},
		{"https://box", "", false, false}, // scheme differs
		{"http://box", "", true, false},
		{"http://evil", "", false, false},
		{"http://box", "cross-site", false, false},
		{"http://box", "same-site", false, false},
		{"null", "same-origin", false, true},
		{"null", "", false, true}, // plain HTTP: no Sec-Fetch-* (CSRF token + SameSite=Strict cookie stop other sites)
		{"null", "", true, false},
		{"null", "cross-site", false, false},
		{"", "cross-site", false, false},
	} {
		r := httptest.NewRequest("POST", "http://box/x", nil)
		if c.tls {
			r = httptest.NewRequest("POST", "https://box/x", nil)
		}
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if c.site != "" {
			r.Header.Set("Sec-Fetch-Site", c.site)
		}
		if got := SameOrigin(r); got != c.want {
			t.Errorf("Origin %q Sec-Fetch-Site %q tls %v: %v", c.origin, c.site, c.tls, got)
		}
	}
}

func TestPrivate(t *testing.T) {
	for a, want := range map[string]bool{"127.0.0.1": true, "192.168.1.5": true, "10.0.0.1": true, "fd00::1": true, "fe80::1": true, "::1": true,
		"100.64.0.1": false, "203.0.113.1": false, "2001:db8::1": false} {
		if Private(netip.MustParseAddr(a)) != want {
			t.Errorf("%s: %v", a, !want)
		}
	}
}

func TestRequireLogin(t *testing.T) {
	s := NewSessions()
	h := s.Middleware(RequireAdmin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/admin", nil))
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/login?next=%2Fadmin" {
		t.Errorf("GET without login: %d %s", rec.Code, rec.Header().Get("Location"))
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/admin", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("POST without login: %d", rec.Code)
	}
}
