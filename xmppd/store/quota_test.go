package store

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func charge(s *Store, user, kind string, db, di int64, lim Limit) error {
	return s.Update(func(tx *bolt.Tx) error { return Charge(tx, user, kind, db, di, lim) })
}

func usage(t *testing.T, s *Store, user string) map[string]Usage {
	t.Helper()
	u, err := s.Usage(user)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestChargeLimitsAndTotal(t *testing.T) {
	s := openTest(t)
	lim := Limit{Bytes: 1000, Items: 3}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(charge(s, "alice", "private", 400, 1, lim))
	must(charge(s, "alice", "roster", 50, 2, Limit{}))
	must(charge(s, "alice", "private", 500, 1, lim))
	// Another account and a name that extends alice's are separate.
	must(charge(s, "alice2", "private", 999, 3, lim))

	before := usage(t, s, "alice")
	// Refused: bytes over, items over. Nothing changes.
	if err := charge(s, "alice", "private", 101, 1, lim); !errors.Is(err, ErrQuota) {
		t.Fatalf("over the byte limit: %v", err)
	}
	if err := charge(s, "alice", "private", 1, 2, lim); !errors.Is(err, ErrQuota) {
		t.Fatalf("over the item limit: %v", err)
	}
	// A refused charge inside a transaction that also wrote: the caller
	// returns the error and the whole transaction is gone.
	err := s.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucketIfNotExists([]byte("data"))
		if err := b.Put([]byte("k"), []byte("v")); err != nil {
			return err
		}
		return Charge(tx, "alice", "private", 200, 1, lim)
	})
	if !errors.Is(err, ErrQuota) {
		t.Fatalf("charge in a transaction: %v", err)
	}
	s.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("data")) != nil {
			t.Error("the refused transaction's write stayed")
		}
		return nil
	})
	if got := usage(t, s, "alice"); !equal(got, before) {
		t.Fatalf("refused charges changed usage: %v, was %v", got, before)
	}
	want := map[string]Usage{"private": {900, 2}, "roster": {50, 2}, "": {950, 4}}
	if !equal(before, want) {
		t.Fatalf("usage %v, want %v", before, want)
	}

	// Exactly at the limit is allowed.
	must(charge(s, "alice", "private", 100, 1, lim))
	// Freeing always works; a mixed charge that only grows items is
	// checked on items only.
	must(charge(s, "alice", "private", -300, -1, lim))
	must(charge(s, "alice", "private", -50, 1, lim))
	if got := usage(t, s, "alice")["private"]; got != (Usage{650, 3}) {
		t.Fatalf("after freeing: %v", got)
	}
	// Over-freeing a kind stops at zero and takes from the total only
	// what the kind had: the total stays the sum of the kinds.
	must(charge(s, "alice", "roster", -500, -9, Limit{}))
	got := usage(t, s, "alice")
	if _, ok := got["roster"]; ok {
		t.Fatalf("a kind freed to zero keeps a record: %v", got)
	}
	if got[""] != (Usage{650, 3}) {
		t.Fatalf("total %v, want the private usage {650 3}", got[""])
	}
	// An account over a lowered limit may still shrink.
	must(charge(s, "alice", "private", -10, 0, Limit{Bytes: 100, Items: 1}))
	if err := charge(s, "alice", "private", 1, 0, Limit{Bytes: 100, Items: 1}); !errors.Is(err, ErrQuota) {
		t.Fatalf("growth over a lowered limit: %v", err)
	}
	if err := charge(s, "alice", "", 1, 1, lim); err == nil || errors.Is(err, ErrQuota) {
		t.Fatalf("charge without a kind: %v", err)
	}
	if got := usage(t, s, "alice2"); !equal(got, map[string]Usage{"private": {999, 3}, "": {999, 3}}) {
		t.Fatalf("alice2: %v", got)
	}
}

func TestChargeAccountTotal(t *testing.T) {
	s := openTest(t)
	if err := charge(s, "bob", "a", AccountBytes-10, 1, Limit{}); err != nil {
		t.Fatal(err)
	}
	if err := charge(s, "bob", "b", 11, 1, Limit{}); !errors.Is(err, ErrQuota) {
		t.Fatalf("past AccountBytes in another kind: %v", err)
	}
	if err := charge(s, "bob", "b", 10, 1, Limit{}); err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *bolt.Tx) error {
		if u := UsageOf(tx, "bob", ""); u != (Usage{AccountBytes, 2}) {
			t.Errorf("total %v", u)
		}
		if u := UsageOf(tx, "nobody", "a"); u != (Usage{}) {
			t.Errorf("unknown account %v", u)
		}
		return nil
	})
}

func TestDeleteAccountForgetsUsage(t *testing.T) {
	s := openTest(t)
	for _, u := range []string{"carol", "carol2"} {
		if err := s.CreateAccount(u, "pw", false); err != nil {
			t.Fatal(err)
		}
		if err := charge(s, u, "private", 10, 1, Limit{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteAccount("carol"); err != nil {
		t.Fatal(err)
	}
	// A module's deletion hook that frees after the account is gone
	// leaves no record behind.
	if err := charge(s, "carol", "private", -10, -1, Limit{}); err != nil {
		t.Fatal(err)
	}
	if got := usage(t, s, "carol"); len(got) != 0 {
		t.Fatalf("usage after deletion: %v", got)
	}
	if got := usage(t, s, "carol2"); got[""] != (Usage{10, 1}) {
		t.Fatalf("carol2 lost usage: %v", got)
	}
}

func equal(a, b map[string]Usage) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
