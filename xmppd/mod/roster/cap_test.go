package roster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
)

func newServer(t testing.TB) *server.Server {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newServerOn(t, st)
}

func newServerOn(t testing.TB, st *store.Store) *server.Server {
	t.Helper()
	srv, err := server.New("example.test", st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func TestRosterCap(t *testing.T) {
	srv := newServer(t)
	// Fill the roster in one transaction (MaxItems group commits would
	// only slow the test down).
	err := srv.Store.Update(func(tx *bolt.Tx) error {
		for i := range MaxItems {
			if err := put(tx, "alice", fmt.Sprintf("c%d@example.test", i), &Item{Listed: true, Sub: Both}, budget); err != nil {
				return err
			}
		}
		// A pending request is no roster item and does not count.
		return put(tx, "alice", "stranger@example.test", &Item{PendingIn: true}, budget)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Update(srv, "alice", "one-more@example.test", func(it *Item) error { it.Listed = true; return nil })
	if !errors.Is(err, ErrFull) {
		t.Fatalf("item %d: err %v, want %v", MaxItems+1, err, ErrFull)
	}
	// Changing an existing item and recording a request still work.
	if _, err := Update(srv, "alice", "c5@example.test", func(it *Item) error { it.Name = "Five"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := Update(srv, "alice", "other@example.test", func(it *Item) error { it.PendingIn = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := Get(srv.Store, "alice", "one-more@example.test"); ok {
		t.Fatal("refused item was stored")
	}
	items, ver, err := Items(srv.Store, "alice")
	if err != nil || len(items) != MaxItems || ver != 1 {
		t.Fatalf("roster: %d items, ver %d, %v", len(items), ver, err)
	}
	// Another account is unaffected.
	if _, err := Update(srv, "bob", "one-more@example.test", func(it *Item) error { it.Listed = true; return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateDeletesEmptyRecords(t *testing.T) {
	srv := newServer(t)
	ch, err := Update(srv, "alice", "x@example.test", func(it *Item) error { it.PendingIn = true; it.Request = []byte("<presence/>"); return nil })
	if err != nil || ch.Pushed {
		t.Fatalf("hidden request: pushed=%v err=%v", ch.Pushed, err)
	}
	if items, _, _ := Items(srv.Store, "alice"); len(items) != 0 {
		t.Fatalf("a pending request is listed: %v", items)
	}
	if p, _ := PendingIn(srv.Store, "alice"); len(p) != 1 || string(p[0].Request) != "<presence/>" {
		t.Fatalf("pending: %v", p)
	}
	ch, err = Update(srv, "alice", "x@example.test", func(it *Item) error { Apply(it, InUnsubscribe); return nil })
	if err != nil || ch.Pushed {
		t.Fatalf("withdrawn request: pushed=%v err=%v", ch.Pushed, err)
	}
	if _, ok, _ := Get(srv.Store, "alice", "x@example.test"); ok {
		t.Fatal("empty record kept")
	}
}

func TestDeleteUserKeepsVersionMoving(t *testing.T) {
	srv := newServer(t)
	if _, err := Update(srv, "alice", "x@example.test", func(it *Item) error { it.Listed = true; return nil }); err != nil {
		t.Fatal(err)
	}
	_, v1, _ := Items(srv.Store, "alice")
	if err := deleteUser(srv, "alice"); err != nil {
		t.Fatal(err)
	}
	items, v2, _ := Items(srv.Store, "alice")
	if len(items) != 0 || v2 <= v1 {
		t.Fatalf("after delete: %d items, ver %d (was %d)", len(items), v2, v1)
	}
}

func TestBefriend(t *testing.T) {
	srv := newServer(t)
	if err := Befriend(srv, "alice", "bob"); err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]string{{"alice", "bob"}, {"bob", "alice"}} {
		it, ok, err := Get(srv.Store, p[0], p[1]+"@example.test")
		if err != nil || !ok || !it.Listed || it.Sub != Both || it.Ask {
			t.Fatalf("%s's item for %s: %+v %v %v", p[0], p[1], it, ok, err)
		}
	}
}

func TestRecordCap(t *testing.T) {
	srv := newServer(t)
	err := srv.Store.Update(func(tx *bolt.Tx) error {
		for i := range maxRecords {
			if err := put(tx, "alice", fmt.Sprintf("s%d@spam.example", i), &Item{PendingIn: true}, budget); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Update(srv, "alice", "one-more@spam.example", func(it *Item) error { Apply(it, InSubscribe); return nil })
	if !errors.Is(err, ErrFull) {
		t.Fatalf("request %d: %v", maxRecords+1, err)
	}
	// Answering a stored request still works.
	if _, err := Update(srv, "alice", "s1@spam.example", func(it *Item) error { Apply(it, OutUnsubscribed); return nil }); err != nil {
		t.Fatal(err)
	}
}
