package muc

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Room archives keep messages for the server's retention unless the room
// says otherwise; the sweep deletes older ones and keeps the bookkeeping
// right.
func TestRoomArchiveRetention(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	m, _, _ := newService(t, Options{Now: func() time.Time { return now }, NoDefaultRoom: true})
	m.retention.Store(int64(7 * 24 * time.Hour))
	post := func(room string, n int) {
		t.Helper()
		m.mu.Lock()
		r := m.rooms[room]
		m.mu.Unlock()
		r.mu.Lock()
		defer r.mu.Unlock()
		for i := range n {
			el := stream.New(stream.NSClient, "message", "type", "groupchat", "from", room+"@groups.example.test/a")
			el.Add(stream.New(stream.NSClient, "body").AddText(fmt.Sprintf("message %d at %s", i, now)))
			if _, err := m.archive(r, el); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range []string{"short", "long"} {
		r, _, err := m.create(name, "alice@example.test", "alice", defaultConfig(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if name == "long" {
			r.st.Config.RetentionDays = 60
		}
		r.mu.Unlock()
	}
	post("short", 1200) // over one transaction's chunk
	post("long", 10)
	now = now.Add(10 * 24 * time.Hour)
	post("short", 3)
	post("long", 3)
	n, err := m.sweepArchives()
	if err != nil {
		t.Fatal(err)
	}
	if n != 1200 {
		t.Fatalf("swept %d records, want the 1200 older than 7 days", n)
	}
	for name, want := range map[string]int{"short": 3, "long": 13} {
		recs, _, err := m.read(name, 0, 0, time.Time{}, time.Time{}, 2000, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != want {
			t.Errorf("%s: %d records left, want %d", name, len(recs), want)
		}
		// The stored bookkeeping matches (reloaded as at a restart).
		again := &Service{srv: m.srv, o: m.o, rooms: map[string]*room{}}
		if err := again.load(); err != nil {
			t.Fatal(err)
		}
		arc := again.rooms[name].st.arc
		if arc.Items != int64(want) || arc.First != recs[0].seq {
			t.Errorf("%s: bookkeeping %+v after the sweep, first record %d", name, arc, recs[0].seq)
		}
	}
	if n, _ := m.sweepArchives(); n != 0 {
		t.Fatalf("a second sweep deleted %d", n)
	}
}

func TestRoomRetentionField(t *testing.T) {
	c := defaultConfig()
	got, err := applyConfig(c, map[string][]string{fieldRetention: {"90"}})
	if err != nil || got.RetentionDays != 90 {
		t.Fatalf("90 days: %+v, %v", got.RetentionDays, err)
	}
	for _, bad := range []string{"-1", "ten", "3651"} {
		var se *server.StanzaError
		if _, err := applyConfig(c, map[string][]string{fieldRetention: {bad}}); !errors.As(err, &se) || se.Condition != "bad-request" {
			t.Errorf("%q: %v, want bad-request", bad, err)
		}
	}
	r := &room{st: roomState{Config: got}}
	found := false
	for _, f := range r.configForm().Children() {
		if f.Get("var") == fieldRetention && f.ChildText(nsData, "value") == "90" {
			found = true
		}
	}
	if !found {
		t.Fatal("the room form does not show the retention")
	}
}
