package admin_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd/admin"
	"github.com/hearthchat/hearth/xmppd/portable"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
)

// TestExport: `xmppd export NAME` while the server runs gets the account's
// XEP-0227 document from the admin socket, the same as the package writes
// it; an unknown account is 404.
func TestExport(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := server.New("hearth.example", st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAccount("anna", "pw", false); err != nil {
		t.Fatal(err)
	}
	h := admin.Handler(admin.Deps{Server: srv, Store: st})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/users/Anna/export", nil))
	var want bytes.Buffer
	if err := portable.Export(st, "hearth.example", []string{"anna"}, &want); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusOK || rec.Body.String() != want.String() || !strings.Contains(want.String(), "<user name='anna'>") {
		t.Fatalf("%d %s, want %s", rec.Code, rec.Body, &want)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/users/nobody/export", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("unknown account: %d %s", rec.Code, rec.Body)
	}
}
