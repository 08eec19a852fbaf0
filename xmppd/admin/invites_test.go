package admin_test

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd/admin"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
)

// TestInviteBounds: an invite the invites module refuses (validity past 4
// weeks, more uses than a group may have) is the caller's mistake (400),
// not the server's (it was 500).
func TestInviteBounds(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := server.New("hearth.example", st, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := admin.Handler(admin.Deps{Server: srv, Store: st})
	for _, c := range []struct {
		body string
		code int
	}{
		{`{"hours": 24}`, http.StatusCreated},
		{`{"hours": 10000}`, http.StatusBadRequest},
		{`{"uses": 1000}`, http.StatusBadRequest},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/invites", strings.NewReader(c.body)))
		if rec.Code != c.code {
			t.Errorf("%s: %d %s, want %d", c.body, rec.Code, rec.Body, c.code)
		}
	}
}
