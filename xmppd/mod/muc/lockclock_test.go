package muc

import (
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// TestLockTimeout: a room nobody configured opens after LockTimeout (as
// Prosody's muc_room_lock_timeout: a bot that only joins does not make a
// room nobody can ever enter); the lock is stored, so a restart does not
// open it early; an old-protocol join and LockTimeout < 0 do not lock.
func TestLockTimeout(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	m, _, _ := newService(t, Options{Now: func() time.Time { return now }, NoDefaultRoom: true})
	joinEl := func(withX bool) *server.Stanza {
		el := stream.New(stream.NSClient, "presence")
		if withX {
			el.Add(stream.New(NS, "x"))
		}
		return &server.Stanza{El: el, From: jid.MustParse("alice@example.test/r"), To: jid.MustParse("r@groups.example.test/alice")}
	}
	if got := m.lockUntil(joinEl(false)); got != 0 {
		t.Fatalf("old-protocol join locks until %d", got)
	}
	r, _, err := m.create("r", "alice@example.test", "alice", defaultConfig(), m.lockUntil(joinEl(true)))
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Unlock()
	if !r.lockedFor("bob@example.test", now) || r.lockedFor("alice@example.test", now) {
		t.Fatal("a new room is not locked for others only")
	}
	again := &Service{srv: m.srv, o: m.o, rooms: map[string]*room{}}
	if err := again.load(); err != nil {
		t.Fatal(err)
	}
	if got := again.rooms["r"]; got == nil || !got.lockedFor("bob@example.test", now.Add(DefaultLockTimeout-time.Second)) {
		t.Fatal("the lock did not survive a reload")
	}
	if r.lockedFor("bob@example.test", now.Add(DefaultLockTimeout)) {
		t.Fatal("still locked after the timeout")
	}
	off, _, _ := newService(t, Options{LockTimeout: -1, NoDefaultRoom: true})
	if got := off.lockUntil(joinEl(true)); got != 0 {
		t.Fatalf("LockTimeout < 0 locks until %d", got)
	}
}
