package setupui

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The move page: a member gives the old address and password; the page
// says what was done, or in words what went wrong; tries are bounded per
// member; strangers are sent to log in.
func TestMovePage(t *testing.T) {
	f, _, _, bob := adminFixture(t)
	var calls []string
	f.ui.d.Admin.Move = func(_ context.Context, user, old, pw string) (MoveResult, error) {
		calls = append(calls, user+" "+old+" "+pw)
		switch pw {
		case "wrong":
			return MoveResult{}, ErrMoveLogin
		case "down":
			return MoveResult{}, ErrMoveUnreachable
		}
		return MoveResult{Contacts: 12, Notified: 9, Statement: true, Problems: []string{"x@y could not be added."}}, nil
	}
	resp, body := bob.get("/move")
	wantStatus(t, resp, 200, "move form")
	if !strings.Contains(body, `name="old"`) || !strings.Contains(body, `autocomplete="current-password"`) {
		t.Fatalf("move form: %s", body)
	}
	tok := bob.token("/move")
	resp, body = bob.post("/move", url.Values{"csrf": {tok}, "old": {"juliet@old.example"}, "password": {"wrong"}})
	wantStatus(t, resp, http.StatusBadRequest, "wrong password")
	if !strings.Contains(body, "did not accept that address and password") || !strings.Contains(body, `value="juliet@old.example"`) {
		t.Errorf("wrong password page: %s", body)
	}
	resp, body = bob.post("/move", url.Values{"csrf": {tok}, "old": {"juliet@old.example"}, "password": {"down"}})
	wantStatus(t, resp, http.StatusBadRequest, "unreachable")
	if !strings.Contains(body, "could not reach your old server") {
		t.Errorf("unreachable page: %s", body)
	}
	resp, body = bob.post("/move", url.Values{"csrf": {tok}, "old": {"juliet@old.example"}, "password": {"right"}})
	wantStatus(t, resp, 200, "moved")
	for _, want := range []string{"12 contacts are in your list here now", "9 were asked to follow you", "switch over by themselves", "x@y could not be added.", `href="/chat/"`} {
		if !strings.Contains(body, want) {
			t.Errorf("result page lacks %q", want)
		}
	}
	if len(calls) != 3 || calls[2] != "bob juliet@old.example right" {
		t.Fatalf("calls %q", calls)
	}
	// Not an address: refused before anything is tried.
	resp, _ = bob.post("/move", url.Values{"csrf": {tok}, "old": {"juliet"}, "password": {"right"}})
	wantStatus(t, resp, http.StatusBadRequest, "no @")
	// Five tries an hour per member.
	for range 2 {
		bob.post("/move", url.Values{"csrf": {tok}, "old": {"juliet@old.example"}, "password": {"wrong"}})
	}
	resp, body = bob.post("/move", url.Values{"csrf": {tok}, "old": {"juliet@old.example"}, "password": {"right"}})
	wantStatus(t, resp, http.StatusTooManyRequests, "sixth try")
	if len(calls) != 5 {
		t.Errorf("%d moves tried, want 5", len(calls))
	}
	// Without the token, nothing is tried.
	resp, _ = bob.post("/move", url.Values{"old": {"juliet@old.example"}, "password": {"right"}})
	if resp.StatusCode == 200 {
		t.Error("move without CSRF token accepted")
	}
	// A stranger is sent to log in.
	anon := f.browser(t)
	resp, _ = anon.get("/move")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("stranger: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}
