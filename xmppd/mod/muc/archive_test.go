package muc

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

func newService(t *testing.T, o Options) (*Service, *store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := server.New("example.test", st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := RegisterWith(srv, o)
	if err != nil {
		t.Fatal(err)
	}
	return m, st, path
}

// TestArchiveBounded: a room's archive keeps at most ArchiveItems
// messages and ArchiveBytes bytes, dropping the oldest, and its
// bookkeeping matches what is stored.
func TestArchiveBounded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		o     Options
		check func(items, bytes int64) bool
	}{
		{"items", Options{ArchiveItems: 10}, func(items, _ int64) bool { return items == 10 }},
		{"bytes", Options{ArchiveBytes: 4000}, func(_, bytes int64) bool { return bytes <= 4000 && bytes > 3000 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _, _ := newService(t, tc.o)
			r, _, err := m.create("r", "alice@example.test", "alice", defaultConfig(), 0)
			if err != nil {
				t.Fatal(err)
			}
			defer r.mu.Unlock()
			for i := range 100 {
				el := stream.New(stream.NSClient, "message", "type", "groupchat", "from", "r@groups.example.test/a")
				el.Add(stream.New(stream.NSClient, "body").AddText(fmt.Sprintf("message %03d with some padding to make it longer", i)))
				if _, err := m.archive(r, el); err != nil {
					t.Fatal(err)
				}
			}
			recs, _, err := m.read("r", 0, 0, time.Time{}, time.Time{}, 1000, false)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(recs)) != r.st.arc.Items || !tc.check(r.st.arc.Items, r.st.arc.Bytes) {
				t.Fatalf("%d stored, bookkeeping %d items %d bytes", len(recs), r.st.arc.Items, r.st.arc.Bytes)
			}
			if last := recs[len(recs)-1].el.ChildText(stream.NSClient, "body"); last[:11] != "message 099" {
				t.Fatalf("newest kept is %q", last)
			}
			if recs[0].seq != r.st.arc.First {
				t.Fatalf("first %d, bookkeeping %d", recs[0].seq, r.st.arc.First)
			}
			// The bookkeeping is stored, not only in memory.
			again := &Service{srv: m.srv, o: m.o, rooms: map[string]*room{}}
			if err := again.load(); err != nil {
				t.Fatal(err)
			}
			if got := again.rooms["r"]; got == nil || got.st.arc != r.st.arc {
				t.Fatalf("reloaded bookkeeping %+v, want %+v", got, r.st.arc)
			}
		})
	}
}
