package server

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"mellium.im/xmpp/jid"
)

// TestStatePerServer: a module's state is made once per server and two
// servers never share it (presence and disco kept maps keyed by *Server,
// invites one process-wide hook list).
func TestStatePerServer(t *testing.T) {
	type key struct{}
	a, b := newServer(t), newServer(t)
	var made atomic.Int32
	mk := func() *int { made.Add(1); return new(int) }
	var wg sync.WaitGroup
	ptrs := make([]*int, 8)
	for i := range ptrs {
		wg.Add(1)
		go func() { defer wg.Done(); ptrs[i] = State(a, key{}, mk) }()
	}
	wg.Wait()
	for _, p := range ptrs {
		if p != ptrs[0] {
			t.Fatal("two values for one key on one server")
		}
	}
	if State(b, key{}, mk) == ptrs[0] {
		t.Fatal("two servers share a module's state")
	}
	if n := made.Load(); n > 8+1 || State(a, key{}, mk) != ptrs[0] {
		t.Fatalf("init ran %d times", n)
	}
}

func TestEventPerServer(t *testing.T) {
	ev := NewEvent[string]("test")
	a, b := newServer(t), newServer(t)
	var got []string
	ev.On(a, func(v string) { got = append(got, "1:"+v) })
	ev.On(a, func(v string) { got = append(got, "2:"+v) })
	ev.Fire(b, "for b") // nobody listens on b
	ev.Fire(a, "x")
	if fmt.Sprint(got) != "[1:x 2:x]" {
		t.Fatalf("listeners saw %v", got)
	}
}

// TestLocksBounded: an entry lives only while its key is held or waited
// for (the roster's and offline's lock maps grew by one mutex per account
// ever seen), and a key is still exclusive.
func TestLocksBounded(t *testing.T) {
	var l Locks
	for i := range 10000 {
		l.Lock(fmt.Sprintf("user%d", i))()
	}
	if n := l.Len(); n != 0 {
		t.Fatalf("%d entries after 10000 keys were locked and released", n)
	}
	var in, max atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				unlock := l.Lock("alice")
				if n := in.Add(1); n > max.Load() {
					max.Store(n)
				}
				in.Add(-1)
				unlock()
			}
		}()
	}
	wg.Wait()
	if max.Load() != 1 || l.Len() != 0 {
		t.Fatalf("%d holders at once, %d entries left", max.Load(), l.Len())
	}
}

// TestNoContacts: without a roster module nobody but the owner sees an
// account's presence, and subscriptions are refused.
func TestNoContacts(t *testing.T) {
	s := newServer(t)
	c := s.Contacts()
	if !c.MayViewPresence("alice", jid.MustParse("alice@example.test/phone")) {
		t.Error("the owner may not see its own presence")
	}
	for _, v := range []string{"bob@example.test", "alice@other.example", "example.test"} {
		if c.MayViewPresence("alice", jid.MustParse(v)) {
			t.Errorf("%s may see alice's presence", v)
		}
	}
	if _, err := c.Subscribe("alice", "bob@example.test", "subscribe", true, nil); err == nil {
		t.Error("a subscription without a roster module")
	}
}
