package roster

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
)

// fillMaximal gives user as big a roster as the limits allow: MaxItems
// listed items with a long name and several groups each, until the item
// cap or the byte budget stops it. sub is every item's subscription.
func fillMaximal(t testing.TB, srv *server.Server, user string, sub Sub) (n int) {
	t.Helper()
	groups := make([]string, 12)
	for i := range groups {
		groups[i] = fmt.Sprintf("group-%02d", i)
	}
	err := srv.Store.Update(func(tx *bolt.Tx) error {
		for i := range MaxItems {
			it := &Item{Listed: true, Sub: sub, Name: strings.Repeat("n", 200), Groups: groups}
			err := put(tx, user, fmt.Sprintf("c%04d@example.test", i), it, budget)
			if errors.Is(err, store.ErrQuota) {
				return nil
			}
			if err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// corrupt overwrites every stored item of user with bytes that are not
// JSON: any path that still decodes records fails loudly.
func corrupt(t testing.TB, srv *server.Server, user string) {
	t.Helper()
	err := srv.Store.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketItems)
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(prefix(user)); k != nil && strings.HasPrefix(string(k), string(prefix(user))); k, _ = c.Next() {
			keys = append(keys, slices.Clone(k))
		}
		for _, k := range keys {
			if err := b.Put(k, []byte("not json")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPresenceRulesReadOnlyTheIndex: broadcasts, probes and the
// who-may-see rule must not decode roster records (a probe found a bare
// <presence/> costing 0.5 s of CPU on a 66 MB roster). With every record
// of a maximal roster made unreadable, they still answer from the index.
func TestPresenceRulesReadOnlyTheIndex(t *testing.T) {
	srv := newServer(t)
	Register(srv)
	n := fillMaximal(t, srv, "alice", Both)
	if n < MaxItems*9/10 {
		t.Fatalf("only %d items fit the budget: the test roster is not maximal", n)
	}
	corrupt(t, srv, "alice")
	c := srv.Contacts()
	for name, list := range map[string]func(string, func(string)) error{
		"subscribers": c.Subscribers, "subscriptions": c.Subscriptions,
	} {
		got := 0
		if err := list("alice", func(string) { got++ }); err != nil || got != n {
			t.Errorf("%s: %d of %d, err %v", name, got, n, err)
		}
	}
	if r, err := c.Relation("alice", "c0007@example.test"); err != nil || !r.To || !r.From {
		t.Errorf("relation: %+v %v", r, err)
	}
	if !c.MayViewPresence("alice", jid.MustParse("c0007@example.test/phone")) {
		t.Error("a subscriber may not see alice's presence")
	}
	if c.MayViewPresence("alice", jid.MustParse("stranger@example.test")) {
		t.Error("a stranger may see alice's presence")
	}
	if err := c.PendingRequests("alice", func(string, []byte) { t.Error("a pending request out of nowhere") }); err != nil {
		t.Errorf("pending requests: %v", err)
	}
	// Adding one more item counts from the index too.
	if _, err := Update(srv, "alice", "one-more@example.test", func(it *Item) error { it.Listed = true; return nil }); !errors.Is(err, ErrFull) && !errors.Is(err, ErrTooBig) {
		t.Errorf("item past the limits: %v", err)
	}
}

// TestBudget: a roster's records are charged to the account's storage
// budget at the larger of their stored and their wire size, and given back
// when they go.
func TestBudget(t *testing.T) {
	srv := newServer(t)
	usage := func() store.Usage {
		var u store.Usage
		srv.Store.View(func(tx *bolt.Tx) error { u = store.UsageOf(tx, "alice", quotaKind); return nil })
		return u
	}
	// Apostrophes cost 1 byte in JSON and 6 in a result (&apos;): the
	// wire size is what counts.
	if _, err := Update(srv, "alice", "a@example.test", func(it *Item) error {
		it.Listed, it.Name = true, strings.Repeat("'", maxText)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if u := usage(); u.Items != 1 || u.Bytes < 6*maxText {
		t.Fatalf("usage %+v, want 1 item and at least %d bytes", u, 6*maxText)
	}
	// Fill up with big items until the budget refuses.
	big := make([]string, maxGroups)
	for i := range big {
		big[i] = fmt.Sprintf("%02d", i) + strings.Repeat("g", maxText-2)
	}
	var err error
	i := 0
	for ; i < MaxItems && err == nil; i++ {
		_, err = Update(srv, "alice", fmt.Sprintf("c%d@example.test", i), func(it *Item) error {
			it.Listed, it.Name, it.Groups = true, strings.Repeat("n", maxText), big
			return nil
		})
	}
	if !errors.Is(err, ErrTooBig) {
		t.Fatalf("after %d items of %d KiB: %v, want %v", i, 66, err, ErrTooBig)
	}
	if u := usage(); u.Bytes > MaxBytes {
		t.Fatalf("usage %d bytes past the budget %d", u.Bytes, MaxBytes)
	}
	if _, ok, _ := Get(srv.Store, "alice", fmt.Sprintf("c%d@example.test", i-1)); ok {
		t.Fatal("the refused item was stored")
	}
	// Everything given back when the items go, and on account deletion.
	for j := range i - 1 {
		if _, err := Update(srv, "alice", fmt.Sprintf("c%d@example.test", j), func(it *Item) error { *it = Item{}; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if u := usage(); u.Items != 1 || u.Bytes >= 8*maxText {
		t.Fatalf("after removals: %+v", u)
	}
	if err := deleteUser(srv, "alice"); err != nil {
		t.Fatal(err)
	}
	if u := usage(); u != (store.Usage{}) {
		t.Fatalf("after deletion: %+v", u)
	}
}

// TestMigrateBuildsIndex: a database from before the index gets one (and
// its rosters charged) when the module registers.
func TestMigrateBuildsIndex(t *testing.T) {
	srv := newServer(t)
	err := srv.Store.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketItems)
		if err != nil {
			return err
		}
		for k, v := range map[string]string{
			"bob@example.test":   `{"sub":"both","listed":true}`,
			"carol@example.test": `{"sub":"to","listed":true,"name":"Carol"}`,
			"eve@example.test":   `{"in":true,"req":"PHByZXNlbmNlLz4="}`,
		} {
			if err := b.Put(store.Key("alice", k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	Register(srv)
	c := srv.Contacts()
	var subs, to []string
	c.Subscribers("alice", func(s string) { subs = append(subs, s) })
	c.Subscriptions("alice", func(s string) { to = append(to, s) })
	if !slices.Equal(subs, []string{"bob@example.test"}) || !slices.Equal(to, []string{"bob@example.test", "carol@example.test"}) {
		t.Fatalf("subscribers %v, subscriptions %v", subs, to)
	}
	var req string
	c.PendingRequests("alice", func(from string, r []byte) { req = from + " " + string(r) })
	if req != "eve@example.test <presence/>" {
		t.Fatalf("pending: %q", req)
	}
	u, _ := srv.Store.Usage("alice")
	if u[quotaKind].Items != 3 || u[quotaKind].Bytes == 0 {
		t.Fatalf("usage after migration: %+v", u)
	}
	// Idempotent: a second registration charges nothing more.
	Register(newServerOn(t, srv.Store))
	if u2, _ := srv.Store.Usage("alice"); u2[quotaKind] != u[quotaKind] {
		t.Fatalf("usage after a second start: %+v, was %+v", u2[quotaKind], u[quotaKind])
	}
}

// TestLocksDoNotGrow: the per-account roster locks hold an entry only
// while in use (they were a map with one mutex for every account ever
// changed).
func TestLocksDoNotGrow(t *testing.T) {
	srv := newServer(t)
	for i := range 300 {
		user := fmt.Sprintf("u%d", i)
		if _, err := Update(srv, user, "x@example.test", func(it *Item) error { it.Listed = true; return nil }); err != nil {
			t.Fatal(err)
		}
		if err := deleteUser(srv, user); err != nil {
			t.Fatal(err)
		}
	}
	if n := stateOf(srv).locks.Len(); n != 0 {
		t.Fatalf("%d lock entries left after 300 accounts", n)
	}
}

// TestLongRequestNotKept: a subscription request is kept for the next
// login only up to maxRequest bytes (strangers could otherwise spend a
// member's roster budget with padded requests); a longer one is delivered
// as a plain subscribe.
func TestLongRequestNotKept(t *testing.T) {
	srv := newServer(t)
	Register(srv)
	c := srv.Contacts()
	short := []byte("<presence type='subscribe'/>")
	long := []byte("<presence type='subscribe'><status>" + strings.Repeat("x", maxRequest) + "</status></presence>")
	for from, req := range map[string][]byte{"short@example.test": short, "long@example.test": long} {
		if o, err := c.Subscribe("alice", from, "subscribe", false, req); err != nil || !o.Forward {
			t.Fatalf("%s: %+v %v", from, o, err)
		}
	}
	got := map[string]string{}
	c.PendingRequests("alice", func(from string, req []byte) { got[from] = string(req) })
	if got["short@example.test"] != string(short) || got["long@example.test"] != "" || len(got) != 2 {
		t.Fatalf("kept requests: %q", got)
	}
}
