package router

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

func sess(t *testing.T, full string) *session.Session {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return session.New(a, jid.MustParse(full), stream.NSClient)
}

func available(s *session.Session, prio int) {
	s.SetPresence(stream.New(stream.NSClient, "presence"), true, prio)
}

func TestBindUnbindCount(t *testing.T) {
	r := New()
	a := sess(t, "alice@example.test/a")
	b := sess(t, "alice@example.test/b")
	for _, s := range []*session.Session{a, b} {
		if old, err := r.Bind(s); old != nil || err != nil {
			t.Fatalf("bind: %v %v", old, err)
		}
	}
	if r.Count() != 2 || len(r.Sessions("alice")) != 2 || r.Session("alice", "b") != b || !r.HasResource("alice", "a") {
		t.Fatal("bound sessions not found")
	}
	if !r.Unbind(a) || r.Unbind(a) {
		t.Fatal("unbind must succeed once")
	}
	if r.Count() != 1 || r.HasResource("alice", "a") {
		t.Fatal("unbound session still counted")
	}
	r.Unbind(b)
	if r.Count() != 0 || r.Sessions("alice") != nil {
		t.Fatal("account left behind")
	}
}

// The newest connection for a resource wins; the old session is returned
// for the caller to close, and its later Unbind must not remove the new one.
func TestBindReplacesSameResource(t *testing.T) {
	r := New()
	old := sess(t, "alice@example.test/phone")
	r.Bind(old)
	nw := sess(t, "alice@example.test/phone")
	replaced, err := r.Bind(nw)
	if err != nil || replaced != old {
		t.Fatalf("replaced %v, %v", replaced, err)
	}
	if r.Count() != 1 || r.Session("alice", "phone") != nw {
		t.Fatal("the new session is not the bound one")
	}
	if r.Unbind(old) {
		t.Fatal("unbinding the replaced session removed something")
	}
	if r.Session("alice", "phone") != nw {
		t.Fatal("the replaced session's end unbound the new one")
	}
}

func TestMaxResources(t *testing.T) {
	r := New()
	for i := range MaxResources {
		if _, err := r.Bind(sess(t, fmt.Sprintf("alice@example.test/r%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Bind(sess(t, "alice@example.test/one-too-many")); !errors.Is(err, ErrTooMany) {
		t.Fatalf("bind past the limit: %v", err)
	}
	// Replacing an existing resource is not a new one.
	if _, err := r.Bind(sess(t, "alice@example.test/r0")); err != nil {
		t.Fatalf("replacing at the limit: %v", err)
	}
	// Another account is not affected.
	if _, err := r.Bind(sess(t, "bob@example.test/b")); err != nil {
		t.Fatal(err)
	}
	if r.Count() != MaxResources+1 {
		t.Fatalf("count %d", r.Count())
	}
}

// RFC 6121 §8.5.2.1.1: bare-JID messages go to the available resources of
// the highest non-negative priority; negative priority never gets them.
func TestAvailablePriorities(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prios   []int // -100: not available
		wantAll int
		wantTop []int // indexes
	}{
		{"none available", []int{-100, -100}, 0, nil},
		{"highest wins", []int{1, 5, 3}, 3, []int{1}},
		{"ties share", []int{5, 5, 0}, 3, []int{0, 1}},
		{"negative never top", []int{-1, -5}, 2, nil},
		{"zero beats negative", []int{-1, 0}, 2, []int{1}},
		{"unavailable ignored", []int{-100, 2}, 1, []int{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := New()
			var ss []*session.Session
			for i, p := range tc.prios {
				s := sess(t, fmt.Sprintf("alice@example.test/r%d", i))
				if p != -100 {
					available(s, p)
				}
				r.Bind(s)
				ss = append(ss, s)
			}
			all, top := r.Available("alice")
			if len(all) != tc.wantAll {
				t.Fatalf("all: %d, want %d", len(all), tc.wantAll)
			}
			if len(top) != len(tc.wantTop) {
				t.Fatalf("top: %d, want %v", len(top), tc.wantTop)
			}
			for i, idx := range tc.wantTop {
				if top[i] != ss[idx] {
					t.Fatalf("top[%d] is not r%d", i, idx)
				}
			}
		})
	}
}

// Sessions and All hand out copies: the caller may keep them while the
// router changes (run with -race).
func TestConcurrentBindAndRead(t *testing.T) {
	r := New()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				s := sess(t, fmt.Sprintf("u%d@example.test/r%d", g, i%MaxResources))
				available(s, i%3)
				r.Bind(s)
				r.Available(fmt.Sprintf("u%d", (g+1)%4))
				r.All(func(*session.Session) {})
				if i%2 == 0 {
					r.Unbind(s)
				}
			}
		}()
	}
	wg.Wait()
	n := 0
	r.All(func(*session.Session) { n++ })
	if n != r.Count() {
		t.Fatalf("All saw %d, Count says %d", n, r.Count())
	}
}
