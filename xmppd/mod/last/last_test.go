package last_test

import (
	"encoding/binary"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
	"github.com/hearthchat/hearth/xmppd/mod/roster"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const lastQ = "<query xmlns='jabber:iq:last'/>"

func seconds(t *testing.T, q *stream.Element) int {
	t.Helper()
	n, err := strconv.Atoi(q.Get("seconds"))
	if err != nil || n < 0 {
		t.Fatalf("seconds in %s: %v", q, err)
	}
	return n
}

func TestLastActivity(t *testing.T) {
	d := xmpptest.Start(t, nil)
	if err := d.Store.CreateAccount("carol", "carol-pw", false); err != nil {
		t.Fatal(err)
	}
	if err := roster.Befriend(d.Server, "alice", "bob"); err != nil {
		t.Fatal(err)
	}
	aliceJID := "alice@" + iqtest.Domain
	bob := iqtest.Login(t, d, "bob", "r")
	carol := iqtest.Login(t, d, "carol", "r")

	// Server uptime.
	if s := seconds(t, bob.Result("get", iqtest.Domain, lastQ)); s > 60 {
		t.Errorf("uptime %d s for a server just started", s)
	}

	// Never logged in: nothing to tell.
	if got := iqtest.Cond(bob.IQ("get", aliceJID, lastQ)); got != "item-not-found" {
		t.Errorf("never logged out: %q", got)
	}

	alice := iqtest.Login(t, d, "alice", "r")
	alice.Send("<presence/>")
	// A session's stanzas are handled in order: once this ping is
	// answered, alice is available.
	alice.Result("get", iqtest.Domain, "<ping xmlns='urn:xmpp:ping'/>")
	for _, tc := range []struct {
		name string
		c    *iqtest.Client
		to   string
		cond string
	}{
		{"online, asked by a contact", bob, aliceJID, ""},
		{"online, own account", alice, "", ""},
		{"stranger", carol, aliceJID, "forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.c.IQ("get", tc.to, lastQ)
			if got := iqtest.Cond(r); got != tc.cond {
				t.Fatalf("condition %q, want %q: %s", got, tc.cond, r)
			}
			if tc.cond == "" && seconds(t, r.FirstChild()) != 0 {
				t.Errorf("online account: %s, want seconds='0'", r)
			}
		})
	}

	// Logout with a status; the record is written when the server has
	// noticed the end of the stream, so poll for a bounded time.
	alice.Send("<presence type='unavailable'><status>gone fishing</status></presence></stream:stream>")
	alice.C.Close()
	// Until then alice is either still online (seconds='0', no text) or
	// gone without a record yet (item-not-found).
	var q *stream.Element
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if r := bob.IQ("get", aliceJID, lastQ); iqtest.Cond(r) == "" && r.FirstChild().Text() != "" {
			q = r.FirstChild()
			break
		}
	}
	if q == nil || q.Text() != "gone fishing" || seconds(t, q) > 5 {
		t.Fatalf("after logout: %v", q)
	}
	if got := iqtest.Cond(carol.IQ("get", aliceJID, lastQ)); got != "forbidden" {
		t.Errorf("stranger after logout: %q", got)
	}

	// The seconds count from the stored logout time.
	if err := d.Store.Update(func(tx *bolt.Tx) error {
		v := binary.BigEndian.AppendUint64(nil, uint64(time.Now().Add(-100*time.Second).Unix()))
		return tx.Bucket([]byte("last_logout")).Put([]byte("alice"), append(v, "away"...))
	}); err != nil {
		t.Fatal(err)
	}
	q = bob.Result("get", aliceJID, lastQ)
	if s := seconds(t, q); s < 100 || s > 103 || q.Text() != "away" {
		t.Errorf("100 s after logout: %s", q)
	}
}
