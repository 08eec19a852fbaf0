package carbons_test

import (
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/mod/carbons"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// pipeSession is a bound session on a pipe and what its client reads
// (all of it, once the session ends).
func pipeSession(t *testing.T, srv *server.Server, full string) (*session.Session, <-chan string) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { b.Close() })
	s := session.New(a, jid.MustParse(full), stream.NSClient)
	srv.Router.Bind(s)
	out := make(chan string, 1)
	go func() {
		got, _ := io.ReadAll(b)
		out <- string(got)
	}()
	return s, out
}

// TestFullJIDFallback: a message to a resource that refuses it (closing)
// falls back to the bare JID (route.go); the other device gets one copy
// from the full-JID attempt, not a second from the fallback.
func TestFullJIDFallback(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := server.New("example.test", st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	carbons.Register(srv)
	phone, _ := pipeSession(t, srv, "alice@example.test/phone")
	laptop, laptopOut := pipeSession(t, srv, "alice@example.test/laptop")
	bob, _ := pipeSession(t, srv, "bob@example.test/b")
	for _, s := range []*session.Session{phone, laptop} {
		server.EnableCarbons.Fire(srv, s)
	}
	laptop.SetPresence(stream.New(stream.NSClient, "presence"), true, 0)
	phone.Kill() // still bound, refuses everything
	<-phone.Done()
	srv.FromClient(bob, stream.New(stream.NSClient, "message", "type", "chat", "to", "alice@example.test/phone", "id", "m1").
		Add(stream.New(stream.NSClient, "body").AddText("hi")))
	laptop.CloseWithError("", "")
	out := <-laptopOut
	if n := strings.Count(out, "<received xmlns='urn:xmpp:carbons:2'>"); n != 1 {
		t.Fatalf("laptop got %d copies, want 1:\n%s", n, out)
	}
}
