package mam_test

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/modtest"
	"github.com/hearthchat/hearth/xmppd/mod/mam"
	"github.com/hearthchat/hearth/xmppd/mod/offline"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const nsSM = "urn:xmpp:sm:3"

func stanzaID(el *stream.Element, by string) string {
	for _, c := range el.Children() {
		if c.Space == "urn:xmpp:sid:0" && c.Local == "stanza-id" && c.Get("by") == by {
			return c.Get("id")
		}
	}
	return ""
}

// queryAll pages through c's archive and returns the ids and bodies.
func queryAll(t *testing.T, c *modtest.Client, n *int) (ids, bodies []string) {
	t.Helper()
	after := ""
	for range 100 {
		*n++
		rsm := "<max>50</max>"
		if after != "" {
			rsm += "<after>" + after + "</after>"
		}
		c.Sendf("<iq type='set' id='mq%d'><query xmlns='urn:xmpp:mam:2' queryid='q%d'><set xmlns='http://jabber.org/protocol/rsm'>%s</set></query></iq>", *n, *n, rsm)
		for {
			el := c.El()
			if el.Local == "message" {
				if res := el.Child("urn:xmpp:mam:2", "result"); res != nil {
					inner := res.Child("urn:xmpp:forward:0", "forwarded").Child("jabber:client", "message")
					ids = append(ids, res.Get("id"))
					bodies = append(bodies, inner.ChildText("jabber:client", "body"))
					continue
				}
			}
			if el.Local == "iq" && el.Get("id") == fmt.Sprintf("mq%d", *n) {
				if el.Get("type") != "result" {
					t.Fatalf("query failed: %s", el)
				}
				fin := el.Child("urn:xmpp:mam:2", "fin")
				if fin.Get("complete") == "true" {
					return ids, bodies
				}
				after = fin.Child("http://jabber.org/protocol/rsm", "set").ChildText("http://jabber.org/protocol/rsm", "last")
				break
			}
			t.Fatalf("unexpected while querying: %s", el)
		}
	}
	t.Fatal("archive never complete")
	return nil, nil
}

// Offline storage and the archive agree: offline copies carry the
// archive's stanza-ids, and a client that read its messages from the
// archive before its initial presence is not sent them again.
func TestOfflineAndArchiveAgree(t *testing.T) {
	d := xmpptest.Start(t, nil)
	bob := modtest.Login(t, d, "bob", "b")
	for i := 1; i <= 60; i++ {
		bob.Sendf("<message to='alice@%s' type='chat' id='m%d'><body>m%d</body></message>", xmpptest.Domain, i, i)
	}
	bob.Sync() // handled in order: all stored

	// A client that syncs from the archive first.
	n := 0
	phone := modtest.Login(t, d, "alice", "phone")
	ids, bodies := queryAll(t, phone, &n)
	want := make([]string, 60)
	for i := range want {
		want[i] = "m" + strconv.Itoa(i+1)
	}
	if !slices.Equal(bodies, want) {
		t.Fatalf("archive: %v", bodies)
	}
	phone.Send("<presence/>")
	for _, el := range phone.Sync() {
		if el.Local == "message" {
			t.Fatalf("after reading the archive the client was sent an offline copy again: %s", el)
		}
	}

	// A client that does not use the archive gets offline copies with the
	// archive's ids.
	phone.Close()
	// Until the server has unbound it, the phone could still be given
	// the next messages instead of offline storage.
	for deadline := time.Now().Add(10 * time.Second); len(d.Server.Router.Sessions("alice")) != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the phone's session never ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := 61; i <= 62; i++ {
		bob.Sendf("<message to='alice@%s' type='chat' id='m%d'><body>m%d</body></message>", xmpptest.Domain, i, i)
	}
	bob.Sync()
	laptop := modtest.Login(t, d, "alice", "laptop")
	laptop.Send("<presence/>")
	var got []*stream.Element
	for _, el := range laptop.Sync() {
		if el.Local == "message" && el.Child("jabber:client", "body") != nil {
			got = append(got, el)
		}
	}
	n2 := 0
	ids2, _ := queryAll(t, laptop, &n2)
	if len(got) != 2 || len(ids2) != 62 || !slices.Equal(ids2[:60], ids) {
		t.Fatalf("laptop got %d offline messages, archive has %d", len(got), len(ids2))
	}
	for i, el := range got {
		if id := stanzaID(el, "alice@"+xmpptest.Domain); id != ids2[60+i] {
			t.Errorf("offline copy %s has stanza-id %q, archive id %q", el.ChildText("jabber:client", "body"), id, ids2[60+i])
		}
	}
}

// A message to an online recipient is acknowledged (XEP-0198 <a h/>) only
// once it is in the archive: with the store's commit queue held, bob's
// client gets answers that stop short of its messages, and the owed
// acknowledgement arrives unasked once the commit is done.
func TestAckedMessageIsArchived(t *testing.T) {
	d := xmpptest.Start(t, nil)
	alice := modtest.Login(t, d, "alice", "a")
	alice.Send("<presence/>")
	alice.Sync()
	bob := modtest.Login(t, d, "bob", "b")
	bob.Send("<enable xmlns='" + nsSM + "'/>")
	bob.Expect("enabled", func(el *stream.Element) bool { return el.Local == "enabled" })

	release, started := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	free := func() { released.Do(func() { close(release) }) }
	t.Cleanup(free) // runs before the server's shutdown, which waits for the queue
	d.Store.Enqueue(func(*bolt.Tx) error { once.Do(func() { close(started) }); <-release; return nil }, nil)
	<-started
	for i := 1; i <= 20; i++ {
		bob.Sendf("<message to='alice@%s' type='chat'><body>live%d</body></message><r xmlns='%s'/>", xmpptest.Domain, i, nsSM)
	}
	// Delivered at once, before the commit…
	for range 20 {
		el := alice.Expect("message", func(el *stream.Element) bool { return el.Local == "message" })
		if stanzaID(el, "alice@"+xmpptest.Domain) == "" {
			t.Fatalf("delivered without a stanza-id: %s", el)
		}
	}
	// …but not acknowledged: every answer to the 20 <r/> stops short.
	for range 20 {
		el := bob.Expect("<a/>", func(el *stream.Element) bool { return el.Local == "a" && el.Space == nsSM })
		if el.Get("h") != "0" {
			t.Fatalf("acknowledged h=%s while the archive commit was held", el.Get("h"))
		}
	}
	if got := mam.Archived(d.Store, "alice"); got != 0 {
		t.Fatalf("archive holds %d with the queue held", got)
	}
	free()
	el := bob.Expect("the owed <a/>", func(el *stream.Element) bool { return el.Local == "a" && el.Space == nsSM })
	if el.Get("h") != "20" {
		t.Fatalf("after the commit: %s, want h=20", el)
	}
	if got := mam.Archived(d.Store, "alice"); got != 20 {
		t.Fatalf("acknowledged 20 messages, archive holds %d", got)
	}
}

// A phone that syncs from the archive and vanishes past its resume window
// (the shorter one it asked for, XEP-0198 max) does not get its archived
// but unacknowledged messages a second time from offline storage: like
// Prosody's mod_smacks with mam_requested, they are not re-routed. A
// client that never queried the archive still gets them offline.
func TestExpiredSessionOfArchiveClient(t *testing.T) {
	d := xmpptest.Start(t, nil)
	// Registered after the modules' hooks, so it runs after smacks has
	// re-routed what the session never acknowledged.
	closed := make(chan string, 4)
	d.Server.OnClosed(func(s *session.Session) { closed <- s.JID.String() })
	bob := modtest.Login(t, d, "bob", "b")
	for _, syncs := range []bool{true, false} {
		phone := modtest.Login(t, d, "alice", "phone")
		phone.Send("<enable xmlns='" + nsSM + "' resume='true' max='1'/>")
		en := phone.Expect("enabled", func(el *stream.Element) bool { return el.Local == "enabled" })
		if en.Get("max") != "1" {
			t.Fatalf("asked for max='1', enabled says %s", en)
		}
		if syncs {
			n := 0
			queryAll(t, phone, &n)
		}
		phone.Send("<presence/>")
		phone.Sync()
		for i := 1; i <= 3; i++ {
			bob.Sendf("<message to='alice@%s' type='chat'><body>unacked%d</body></message>", xmpptest.Domain, i)
		}
		bob.Sync()
		for range 3 {
			phone.Expect("message", func(el *stream.Element) bool { return el.Local == "message" })
		}
		phone.Raw.Close() // no ack, no goodbye: the session hibernates, then expires
		select {
		case j := <-closed:
			if j != phone.JID {
				t.Fatalf("%s closed, want %s", j, phone.JID)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the hibernating session never expired")
		}
		n, _, err := offline.Count(d.Store, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if syncs && n != 0 {
			t.Errorf("archive client: %d archived messages stored offline again when its session expired", n)
		}
		if !syncs && n != 3 {
			t.Errorf("client without the archive: %d of 3 unacknowledged messages stored offline", n)
		}
	}
}
