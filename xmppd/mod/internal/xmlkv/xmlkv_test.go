package xmlkv

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

func usage(t *testing.T, st *store.Store, user string) store.Usage {
	t.Helper()
	u, err := st.Usage(user)
	if err != nil {
		t.Fatal(err)
	}
	return u["k"]
}

// TestCharged: data an older build stored uncharged is charged once when
// the bucket is opened charged (and not again on the next start), empty
// elements delete, and the limits refuse growth only.
func TestCharged(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := func(s string) *stream.Element {
		el, err := stream.ParseElement([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return el
	}
	old := New(st, "b")
	k1, k2 := store.Key("ann", "urn:a", "x"), store.Key("ann", "urn:b", "x")
	v := e("<x xmlns='urn:a'>hello</x>")
	if err := old.PutAll([]Put{{k1, v}, {k2, v}}); err != nil {
		t.Fatal(err)
	}
	want := store.Usage{Bytes: int64(len(k1) + len(k2) + 2*len(v.Append(nil, ""))), Items: 2}
	lim := store.Limit{Bytes: want.Bytes + 10, Items: 3}
	for range 2 {
		kv, err := NewCharged(st, "b", "k", lim)
		if err != nil {
			t.Fatal(err)
		}
		if u := usage(t, st, "ann"); u != want {
			t.Fatalf("charged %+v, want %+v", u, want)
		}
		old = kv
	}
	kv := old
	k3 := store.Key("ann", "urn:c", "x")
	if err := kv.Put(k3, e("<x xmlns='urn:c'>0123456789</x>")); !errors.Is(err, store.ErrQuota) {
		t.Fatalf("over the byte limit: %v", err)
	}
	if el, _ := kv.Get(k3); el != nil {
		t.Fatalf("refused put stored %s", el)
	}
	if err := kv.Put(k1, e("<x xmlns='urn:a'> </x>")); err != nil {
		t.Fatal(err)
	}
	if el, _ := kv.Get(k1); el != nil {
		t.Fatalf("empty element kept: %s", el)
	}
	if u := usage(t, st, "ann"); u.Items != 1 {
		t.Fatalf("after clearing: %+v", u)
	}
	if err := kv.DeleteUser("ann"); err != nil {
		t.Fatal(err)
	}
	if u := usage(t, st, "ann"); u != (store.Usage{}) {
		t.Fatalf("after DeleteUser: %+v", u)
	}
}
