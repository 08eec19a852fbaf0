package private_test

import (
	"fmt"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
	"github.com/hearthchat/hearth/xmppd/mod/private"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

func q(inner string) string { return "<query xmlns='jabber:iq:private'>" + inner + "</query>" }

// el is a stored element in namespace urn:t:<n> with about size bytes of text.
func el(n, size int) string {
	return fmt.Sprintf("<x xmlns='urn:t:%d'>%s</x>", n, strings.Repeat("a", size))
}

func errType(r *stream.Element) string {
	if e := r.Child(stream.NSClient, "error"); e != nil {
		return e.Get("type")
	}
	return ""
}

func usage(t *testing.T, st *store.Store, user string) store.Usage {
	t.Helper()
	u, err := st.Usage(user)
	if err != nil {
		t.Fatal(err)
	}
	return u[private.Kind]
}

// TestKeyLimit: every new namespace was a new key with no per-account
// total (one member grew the database by 68 MB in under three minutes).
// Now the 65th namespace is refused with resource-constraint, a refused set
// stores nothing, and clearing a namespace (its empty element) frees room.
func TestKeyLimit(t *testing.T) {
	d := xmpptest.Start(t, nil)
	alice := iqtest.Login(t, d, "alice", "r")
	bob := iqtest.Login(t, d, "bob", "r")
	for i := 0; i < private.MaxKeys; i += private.MaxPerSet {
		var b strings.Builder
		for j := i; j < i+private.MaxPerSet; j++ {
			b.WriteString(el(j, 10))
		}
		if r := alice.IQ("set", "", q(b.String())); iqtest.Cond(r) != "" {
			t.Fatalf("set %d: %s", i, r)
		}
	}
	if u := usage(t, d.Store, "alice"); u.Items != private.MaxKeys {
		t.Fatalf("usage %+v after %d namespaces", u, private.MaxKeys)
	}
	over := 1000
	r := alice.IQ("set", "", q(el(over, 10)))
	if iqtest.Cond(r) != "resource-constraint" || errType(r) != "wait" {
		t.Fatalf("namespace %d: want resource-constraint (wait), got %s", private.MaxKeys+1, r)
	}
	// All or none: a set that replaces a stored namespace and adds a new
	// one changes neither.
	before := usage(t, d.Store, "alice")
	r = alice.IQ("set", "", q(el(0, 50)+el(over, 10)))
	if iqtest.Cond(r) != "resource-constraint" {
		t.Fatalf("mixed set: %s", r)
	}
	if got := alice.Result("get", "", q("<x xmlns='urn:t:0'/>")).FirstChild(); got.Text() != strings.Repeat("a", 10) {
		t.Fatalf("refused set changed a stored element: %s", got)
	}
	if got := alice.Result("get", "", q(fmt.Sprintf("<x xmlns='urn:t:%d'/>", over))).FirstChild(); got.Text() != "" {
		t.Fatalf("refused set stored an element: %s", got)
	}
	if u := usage(t, d.Store, "alice"); u != before {
		t.Fatalf("refused set changed usage: %+v, was %+v", u, before)
	}
	// Replacing a stored namespace is no new key.
	if r := alice.IQ("set", "", q(el(0, 50))); iqtest.Cond(r) != "" {
		t.Fatalf("replace: %s", r)
	}
	if u := usage(t, d.Store, "alice"); u.Items != private.MaxKeys || u.Bytes != before.Bytes+40 {
		t.Fatalf("replace by 40 more bytes: usage %+v, was %+v", u, before)
	}
	// Clearing frees a key; then a new namespace fits.
	if r := alice.IQ("set", "", q("<x xmlns='urn:t:3'/>")); iqtest.Cond(r) != "" {
		t.Fatalf("clear: %s", r)
	}
	if got := alice.Result("get", "", q("<x xmlns='urn:t:3'/>")).FirstChild(); got == nil || got.Local != "x" || got.Text() != "" {
		t.Fatalf("cleared namespace: %v", got)
	}
	if r := alice.IQ("set", "", q(el(over, 10))); iqtest.Cond(r) != "" {
		t.Fatalf("after clearing one: %s", r)
	}
	// Another member's budget is their own.
	if r := bob.IQ("set", "", q(el(1, 10))); iqtest.Cond(r) != "" {
		t.Fatalf("bob: %s", r)
	}
}

// TestByteLimit: bytes count too (key and value), replacing charges the
// difference. The account is put near the limit directly: sending a real
// megabyte takes the reader's rate limit about 15 s.
func TestByteLimit(t *testing.T) {
	d := xmpptest.Start(t, nil)
	alice := iqtest.Login(t, d, "alice", "r")
	if r := alice.IQ("set", "", q(el(1, 100))); iqtest.Cond(r) != "" {
		t.Fatalf("set: %s", r)
	}
	used := usage(t, d.Store, "alice").Bytes
	fill := int64(private.MaxBytes) - used - 2000
	err := d.Store.Update(func(tx *bolt.Tx) error {
		return store.Charge(tx, "alice", private.Kind, fill, 0, store.Limit{})
	})
	if err != nil {
		t.Fatal(err)
	}
	// 2,000 bytes left: growing the stored element by 3,000 is refused,
	// by 1,000 accepted.
	if r := alice.IQ("set", "", q(el(1, 3100))); iqtest.Cond(r) != "resource-constraint" || errType(r) != "wait" {
		t.Fatalf("over the byte limit: %s", r)
	}
	if r := alice.IQ("set", "", q(el(1, 1100))); iqtest.Cond(r) != "" {
		t.Fatalf("within the byte limit: %s", r)
	}
	if u := usage(t, d.Store, "alice"); u.Bytes != private.MaxBytes-1000 || u.Items != 1 {
		t.Fatalf("usage %+v, want %d bytes, 1 item", u, private.MaxBytes-1000)
	}
	if r := alice.IQ("set", "", q(el(2, 1000))); iqtest.Cond(r) != "resource-constraint" {
		t.Fatalf("new key over the byte limit: %s", r)
	}
}

// TestDeleteAccountFreesPrivate: deleting the account deletes its data and
// its usage.
func TestDeleteAccountFreesPrivate(t *testing.T) {
	d := xmpptest.Start(t, nil)
	alice := iqtest.Login(t, d, "alice", "r")
	if r := alice.IQ("set", "", q(el(1, 10))); iqtest.Cond(r) != "" {
		t.Fatalf("set: %s", r)
	}
	if err := d.Server.DeleteAccount("alice"); err != nil {
		t.Fatal(err)
	}
	u, err := d.Store.Usage("alice")
	if err != nil || len(u) != 0 {
		t.Fatalf("usage after deletion %v, %v", u, err)
	}
	d.Store.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("private"))
		k, _ := b.Cursor().Seek(store.Key("alice", ""))
		if k != nil && strings.HasPrefix(string(k), "alice\x00") {
			t.Errorf("data left: %q", k)
		}
		return nil
	})
}
