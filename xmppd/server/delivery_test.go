package server

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// offlineRecorder stands in for the offline module: it records the ids of
// the messages it "stores".
type offlineRecorder struct {
	mu  sync.Mutex
	ids map[string]int
}

func recordOffline(srv *Server) *offlineRecorder {
	o := &offlineRecorder{ids: map[string]int{}}
	srv.Hook(MessageOffline, 0, func(st *Stanza) bool {
		o.mu.Lock()
		o.ids[st.El.Get("id")]++
		o.mu.Unlock()
		return true
	})
	return o
}

func (o *offlineRecorder) count(id string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ids[id]
}

func (o *offlineRecorder) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.ids)
}

func chat(to, id string) *stream.Element {
	return stream.New(stream.NSClient, "message", "type", "chat", "to", to, "id", id).
		Add(stream.New(stream.NSClient, "body").AddText("hello " + id))
}

func online(s *session.Session, prio int) {
	s.SetPresence(stream.New(stream.NSClient, "presence"), true, prio)
}

// closed waits until s stopped taking stanzas (Kill closes at once).
func closed(t *testing.T, s *session.Session) {
	t.Helper()
	s.Kill()
	<-s.Done()
}

// issue 9, item 2: the top resource is closing; the message must reach the
// next resource down instead of vanishing.
func TestDeliverBareSkipsClosingResource(t *testing.T) {
	srv := newServer(t)
	recordOffline(srv)
	phone, _ := pipeSession(t, srv, "alice@example.test/phone")
	laptop, laptopOut := pipeSession(t, srv, "alice@example.test/laptop")
	bob, _ := pipeSession(t, srv, "bob@example.test/b")
	online(phone, 5)
	online(laptop, 0)
	closed(t, phone)
	srv.FromClient(bob, chat("alice@example.test", "m1"))
	laptop.CloseWithError("", "")
	if out := <-laptopOut; !strings.Contains(out, "id='m1'") {
		t.Fatalf("laptop did not get the message the closing phone refused: %q", out)
	}
}

// Every available resource closing: storage, and without storage a bounce.
func TestDeliverBareAllClosing(t *testing.T) {
	for _, withOffline := range []bool{true, false} {
		t.Run(fmt.Sprint("offline=", withOffline), func(t *testing.T) {
			srv := newServer(t)
			var o *offlineRecorder
			if withOffline {
				o = recordOffline(srv)
			}
			a, _ := pipeSession(t, srv, "alice@example.test/a")
			online(a, 0)
			bob, bobOut := pipeSession(t, srv, "bob@example.test/b")
			closed(t, a)
			srv.FromClient(bob, chat("alice@example.test", "m1"))
			// Addressed to the full JID of a closing resource: the bare
			// rules apply (RFC 6121 §8.5.3.2.1).
			srv.FromClient(bob, chat("alice@example.test/a", "m2"))
			bob.CloseWithError("", "")
			out := <-bobOut
			for _, id := range []string{"m1", "m2"} {
				bounced := strings.Contains(out, "id='"+id+"' type='error'") || strings.Contains(out, "type='error' id='"+id+"'")
				if withOffline && (o.count(id) != 1 || bounced) {
					t.Errorf("%s: stored %d times, bounced %v; want stored once", id, o.count(id), bounced)
				}
				if !withOffline && !bounced {
					t.Errorf("%s: neither stored nor bounced: %q", id, out)
				}
			}
		})
	}
}

// A session without stream management whose client stops reading
// overflows; everything it had queued, and everything sent after, must end
// in storage — exactly once each.
func TestOverflowReroutedToOffline(t *testing.T) {
	srv := newServer(t)
	o := recordOffline(srv)
	server, client := net.Pipe() // alice never reads
	t.Cleanup(func() { client.Close() })
	alice := session.New(server, jid.MustParse("alice@example.test/a"), stream.NSClient)
	srv.Router.Bind(alice)
	srv.Bound(alice)
	online(alice, 0)
	bob, _ := pipeSession(t, srv, "bob@example.test/b")
	const n = 2000
	big := strings.Repeat("x", 1000)
	for i := range n {
		m := chat("alice@example.test", fmt.Sprintf("m%d", i))
		m.Child(stream.NSClient, "body").AddText(big)
		srv.FromClient(bob, m)
	}
	if !alice.Closing() {
		t.Fatal("the stalled session never overflowed")
	}
	deadline := time.Now().Add(10 * time.Second)
	for o.len() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for i := range n {
		if c := o.count(fmt.Sprintf("m%d", i)); c != 1 {
			t.Fatalf("m%d stored %d times (of %d, %d distinct stored)", i, c, n, o.len())
		}
	}
}

// issue 9, item 4: shutdown, the connection's end and the resumption
// timer end a session at once; the close hooks must run exactly once.
func TestEndSessionOnce(t *testing.T) {
	srv := newServer(t)
	var runs atomic.Int32
	srv.OnClosed(func(*session.Session) {
		runs.Add(1)
		// Real close hooks write to storage (last activity, offline):
		// they take long enough for another ender to arrive meanwhile.
		time.Sleep(time.Millisecond)
	})
	for round := range 30 {
		runs.Store(0)
		s, _ := pipeSession(t, srv, fmt.Sprintf("alice@example.test/r%d", round%5))
		gen := s.Gen()
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				switch i % 3 {
				case 0:
					srv.EndSession(s)
				case 1:
					srv.EndSessionAt(s, gen)
				default:
					srv.EndHibernated(s, gen) // not detached: does nothing
				}
			}()
		}
		close(start)
		wg.Wait()
		if n := runs.Load(); n != 1 {
			t.Fatalf("round %d: close hooks ran %d times", round, n)
		}
		if srv.Router.Session("alice", fmt.Sprintf("r%d", round%5)) == s {
			t.Fatal("ended session still bound")
		}
		s.Kill()
	}
}

// Two resources of the same priority both get every bare-JID message; when
// both stall and overflow, neither may count on the other's copy: every
// message must still end in storage (at least once).
func TestBothTopResourcesOverflow(t *testing.T) {
	srv := newServer(t)
	o := recordOffline(srv)
	var stalled []*session.Session
	for _, res := range []string{"a", "b"} {
		server, client := net.Pipe() // never read
		t.Cleanup(func() { client.Close() })
		s := session.New(server, jid.MustParse("alice@example.test/"+res), stream.NSClient)
		srv.Router.Bind(s)
		srv.Bound(s)
		online(s, 0)
		stalled = append(stalled, s)
	}
	bob, _ := pipeSession(t, srv, "bob@example.test/b")
	const n = 1500
	big := strings.Repeat("x", 1000)
	for i := range n {
		m := chat("alice@example.test", fmt.Sprintf("m%d", i))
		m.Child(stream.NSClient, "body").AddText(big)
		srv.FromClient(bob, m)
	}
	for _, s := range stalled {
		if !s.Closing() {
			t.Fatal("a stalled session never overflowed")
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for o.len() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for i := range n {
		if o.count(fmt.Sprintf("m%d", i)) == 0 {
			t.Fatalf("m%d lost (%d of %d stored)", i, o.len(), n)
		}
	}
}

// Shutdown waits for messages a session handed back before closing
// storage: WaitRedeliveries returns only once they were routed.
func TestWaitRedeliveries(t *testing.T) {
	srv := newServer(t)
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	var stored atomic.Int32
	srv.Hook(MessageOffline, 0, func(st *Stanza) bool {
		entered <- struct{}{}
		<-release // a slow storage write
		stored.Add(1)
		return true
	})
	server, client := net.Pipe()
	t.Cleanup(func() { client.Close() })
	alice := session.New(server, jid.MustParse("alice@example.test/a"), stream.NSClient)
	srv.Router.Bind(alice)
	srv.Bound(alice)
	online(alice, 0)
	bob, _ := pipeSession(t, srv, "bob@example.test/b")
	srv.FromClient(bob, chat("alice@example.test", "m1")) // the writer blocks on the pipe
	alice.Kill()                                          // the write fails: m1 handed back
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("m1 was never routed again")
	}
	if srv.WaitRedeliveries(50 * time.Millisecond) {
		t.Fatal("nothing in flight while the storage write is held")
	}
	close(release)
	if !srv.WaitRedeliveries(10*time.Second) || stored.Load() != 1 {
		t.Fatalf("after waiting: stored %d", stored.Load())
	}
}
