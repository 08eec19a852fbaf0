package server

import (
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

func newServer(t *testing.T) *Server {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := New("example.test", st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// pipeSession returns a bound session and what its client reads.
func pipeSession(t *testing.T, srv *Server, full string) (*session.Session, <-chan string) {
	server, client := net.Pipe()
	t.Cleanup(func() { client.Close() })
	j := jid.MustParse(full)
	s := session.New(server, j, stream.NSClient)
	srv.Router.Bind(s)
	out := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(client)
		out <- string(b)
	}()
	return s, out
}

func TestHandlerPanicEndsOnlyThatSession(t *testing.T) {
	srv := newServer(t)
	srv.HandleIQ(ToServer, "get", "urn:example:boom", "query", func(*Stanza) (*stream.Element, error) {
		panic("bug in a module")
	})
	srv.HandleIQ(ToServer, "get", "urn:example:fine", "query", func(*Stanza) (*stream.Element, error) {
		return nil, nil
	})
	bad, badOut := pipeSession(t, srv, "alice@example.test/a")
	good, _ := pipeSession(t, srv, "bob@example.test/b")
	iq := func(ns string) *stream.Element {
		return stream.New(stream.NSClient, "iq", "type", "get", "id", "1", "to", "example.test").
			Add(stream.New(ns, "query"))
	}
	srv.FromClient(bad, iq("urn:example:boom")) // must not panic
	select {
	case out := <-badOut:
		if !strings.Contains(out, "internal-server-error") {
			t.Fatalf("panicking session got %q", out)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("panicking session was not closed")
	}
	srv.FromClient(good, iq("urn:example:fine"))
	if good.Closing() {
		t.Fatal("another session was affected")
	}
}

func TestIQRules(t *testing.T) {
	srv := newServer(t)
	s, out := pipeSession(t, srv, "alice@example.test/a")
	for _, el := range []*stream.Element{
		// no payload
		stream.New(stream.NSClient, "iq", "type", "get", "id", "1"),
		// unknown namespace
		stream.New(stream.NSClient, "iq", "type", "get", "id", "2").Add(stream.New("urn:nope", "q")),
		// bad type
		stream.New(stream.NSClient, "iq", "type", "sideways", "id", "3").Add(stream.New("urn:nope", "q")),
	} {
		srv.FromClient(s, el)
	}
	s.CloseWithError("", "")
	got := <-out
	for _, want := range []string{"id='1' type='error'", "bad-request", "id='2' type='error'", "service-unavailable", "id='3' type='error'"} {
		if !strings.Contains(got, want) {
			t.Errorf("replies lack %q:\n%s", want, got)
		}
	}
}
