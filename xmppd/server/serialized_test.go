package server

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// givenBytes is a hook's serialization of a stanza (the archive's, in
// production), marked so that the test can tell it from the session's own.
type givenBytes struct {
	b     []byte
	dones atomic.Int32
}

func (g *givenBytes) Bytes() []byte { return g.b }
func (g *givenBytes) Done()         { g.dones.Add(1) }

// serializeAt hooks MessageFull and MessageBare at priority 50 and gives
// the core the element's serialization, with a marker attribute in it
// that the element does not have: whoever receives the marker got the
// given bytes, not a serialization of the element.
func serializeAt(t *testing.T, srv *Server) *[]*givenBytes {
	// The marker makes the given bytes differ from the element on
	// purpose: make test's check would end the process.
	was := checkSerialized
	checkSerialized = false
	t.Cleanup(func() { checkSerialized = was })
	var given []*givenBytes
	hook := func(st *Stanza) bool {
		b := st.El.Append(nil, "")
		b = []byte(strings.Replace(string(b), "<message ", "<message x-given='1' ", 1))
		g := &givenBytes{b: b}
		given = append(given, g)
		st.SetSerialized(g)
		return false
	}
	srv.Hook(MessageFull, 50, hook)
	srv.Hook(MessageBare, 50, hook)
	return &given
}

// A message with a serialization given is delivered as those bytes, to a
// full JID and to a bare one, and the hook hears Done once each.
func TestSerializedDelivered(t *testing.T) {
	srv := newServer(t)
	given := serializeAt(t, srv)
	alice, aliceOut := pipeSession(t, srv, "alice@example.test/a")
	online(alice, 0)
	bob, _ := pipeSession(t, srv, "bob@example.test/b")
	srv.FromClient(bob, chat("alice@example.test/a", "m1"))
	srv.FromClient(bob, chat("alice@example.test", "m2"))
	alice.CloseWithError("", "")
	out := <-aliceOut
	if n := strings.Count(out, "x-given='1'"); n != 2 {
		t.Errorf("%d messages delivered as the given bytes, want 2: %q", n, out)
	}
	for i, g := range *given {
		if n := g.dones.Load(); n != 1 {
			t.Errorf("message %d: Done called %d times", i+1, n)
		}
	}
}

// A hook after the one that serialized changes the element (carbons takes
// <private/> out): the element is serialized again, the stale bytes are
// not sent, and Done is still called once.
func TestSerializedStaleAfterChange(t *testing.T) {
	for _, change := range []struct {
		name string
		fn   func(el *stream.Element)
	}{
		{"child removed", func(el *stream.Element) { el.RemoveChildren("urn:xmpp:carbons:2", "private") }},
		{"child added", func(el *stream.Element) { el.Add(stream.New("urn:xmpp:delay", "delay")) }},
		{"attribute set", func(el *stream.Element) { el.Set("id", "changed") }},
	} {
		t.Run(change.name, func(t *testing.T) {
			srv := newServer(t)
			given := serializeAt(t, srv)
			srv.Hook(MessageFull, 10, func(st *Stanza) bool { change.fn(st.El); return false })
			alice, aliceOut := pipeSession(t, srv, "alice@example.test/a")
			online(alice, 0)
			bob, _ := pipeSession(t, srv, "bob@example.test/b")
			el := chat("alice@example.test/a", "m1").Add(stream.New("urn:xmpp:carbons:2", "private"))
			srv.FromClient(bob, el)
			alice.CloseWithError("", "")
			out := <-aliceOut
			if strings.Contains(out, "x-given") || !strings.Contains(out, "hello m1") {
				t.Fatalf("stale given bytes sent, or nothing: %q", out)
			}
			if n := (*given)[0].dones.Load(); n != 1 {
				t.Errorf("Done called %d times", n)
			}
		})
	}
}

// Nobody online: the message goes to storage (or bounces) as the element,
// and Done is called all the same.
func TestSerializedReleasedWhenStored(t *testing.T) {
	srv := newServer(t)
	given := serializeAt(t, srv)
	o := recordOffline(srv)
	alice, _ := pipeSession(t, srv, "alice@example.test/a")
	online(alice, 0)
	closed(t, alice) // listed, but takes nothing: storage
	bob, _ := pipeSession(t, srv, "bob@example.test/b")
	srv.FromClient(bob, chat("alice@example.test", "m1"))
	if o.count("m1") != 1 {
		t.Fatalf("stored %d times", o.count("m1"))
	}
	if n := (*given)[0].dones.Load(); n != 1 {
		t.Errorf("Done called %d times", n)
	}
}
