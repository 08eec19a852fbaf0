package offline_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/offline"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

func isMessage(el *stream.Element) bool { return el.Local == "message" }

// delayOf checks a delivered message's XEP-0203 stamp and returns it.
func delayOf(t *testing.T, el *stream.Element) time.Time {
	t.Helper()
	dl := el.Child("urn:xmpp:delay", "delay")
	if dl == nil || dl.Get("from") != xmpptest.Domain {
		t.Fatalf("no delay from the domain: %s", el)
	}
	ts, err := time.Parse(time.RFC3339, dl.Get("stamp"))
	if err != nil || ts.Location() != time.UTC || dl.Get("stamp")[len(dl.Get("stamp"))-1] != 'Z' {
		t.Fatalf("stamp %q is not UTC RFC 3339 with Z: %v", dl.Get("stamp"), err)
	}
	return ts
}

func count(t *testing.T, d *xmppd.Daemon, user string) uint64 {
	t.Helper()
	n, _, err := offline.Count(d.Store, user)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestStoreAndDeliver(t *testing.T) {
	d := xmpptest.Start(t, nil)
	if !slices.Contains(d.Server.Features(server.ToServer), "msgoffline") {
		t.Fatalf("msgoffline not advertised: %v", d.Server.Features(server.ToServer))
	}
	t0 := time.Now().Add(-time.Second)
	a := login(t, d, "alice", "a")
	a.Send("<message to='bob@example.test' type='chat' id='m1'><body>one</body></message>")
	a.Send("<message to='bob@example.test' id='m2'><body>two</body></message>")
	// Not worth storing: a standalone chat state, a headline.
	a.Send("<message to='bob@example.test' type='chat' id='cs'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
	a.Send("<message to='bob@example.test' type='headline' id='h'><body>news</body></message>")
	// Chat to a resource that is not online falls back to the bare JID.
	a.Send("<message to='bob@example.test/gone' type='chat' id='m3'><body>three</body></message>")
	// Asked not to store: bounced.
	a.Send("<message to='bob@example.test' type='chat' id='ns'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>")
	if e := a.Expect("no-store bounce", isMessage); e.Get("id") != "ns" || errCond(e) != "service-unavailable" {
		t.Fatalf("no-store: %s", e)
	}
	// To nobody: service-unavailable.
	a.Send("<message to='nobody@example.test' type='chat' id='nb'><body>x</body></message>")
	if e := a.Expect("bounce", isMessage); e.Get("id") != "nb" || errCond(e) != "service-unavailable" {
		t.Fatalf("to a missing account: %s", e)
	}
	a.Quiet("stored messages are not bounced")
	if n := count(t, d, "bob"); n != 3 {
		t.Fatalf("stored %d messages, want 3", n)
	}

	b := login(t, d, "bob", "b")
	b.Quiet("nothing before initial presence")
	b.Send("<presence/>")
	var ids []string
	var last time.Time
	for range 3 {
		m := b.Expect("offline message", isMessage)
		ids = append(ids, m.Get("id"))
		ts := delayOf(t, m)
		if ts.Before(t0) || ts.After(time.Now()) || ts.Before(last) {
			t.Fatalf("stamp %v out of order or range", ts)
		}
		last = ts
		if m.Get("from") != a.JID || m.Get("to") != b.JID {
			t.Fatalf("addresses changed: %s", m)
		}
	}
	if !slices.Equal(ids, []string{"m1", "m2", "m3"}) {
		t.Fatalf("order %v", ids)
	}
	b.Quiet("exactly the stored messages")
	if n := count(t, d, "bob"); n != 0 {
		t.Fatalf("%d messages left after delivery", n)
	}
	b.Close()
	b2 := login(t, d, "bob", "b")
	b2.Send("<presence/>")
	b2.Expect("own presence", func(el *stream.Element) bool { return el.Local == "presence" })
	b2.Quiet("delivered messages come only once")
}

// TestNegativePriority: XEP-0160 — a resource with negative priority gets
// no offline messages (and no messages to the bare JID); raising it does.
func TestNegativePriority(t *testing.T) {
	d := xmpptest.Start(t, nil)
	b := login(t, d, "bob", "b")
	b.Send("<presence><priority>-1</priority></presence>")
	b.Expect("own presence", func(el *stream.Element) bool { return el.Local == "presence" })
	a := login(t, d, "alice", "a")
	a.Send("<message to='bob@example.test' type='chat' id='m1'><body>one</body></message>")
	a.Quiet("stored, not bounced")
	b.Quiet("negative priority: no delivery")
	if n := count(t, d, "bob"); n != 1 {
		t.Fatalf("stored %d", n)
	}
	b.Send("<presence><priority>1</priority></presence>")
	m := b.Expect("offline message", isMessage)
	delayOf(t, m)
	// Now available with a non-negative priority: live delivery, no delay.
	a.Send("<message to='bob@example.test' type='chat' id='m2'><body>two</body></message>")
	if m := b.Expect("live message", isMessage); m.Get("id") != "m2" || m.Child("urn:xmpp:delay", "delay") != nil {
		t.Fatalf("live message: %s", m)
	}
}

// TestUnavailableThenBack: messages stored while a session was
// unavailable reach it when it is available again.
func TestUnavailableThenBack(t *testing.T) {
	d := xmpptest.Start(t, nil)
	b := login(t, d, "bob", "b")
	b.Send("<presence/>")
	b.Expect("own presence", func(el *stream.Element) bool { return el.Local == "presence" })
	b.Send("<presence type='unavailable'/>")
	b.Expect("own unavailable", func(el *stream.Element) bool { return el.Local == "presence" })
	a := login(t, d, "alice", "a")
	a.Send("<message to='bob@example.test' type='chat' id='m1'><body>one</body></message>")
	a.Quiet("stored, not bounced")
	b.Quiet("unavailable: nothing delivered")
	b.Send("<presence/>")
	if m := b.Expect("stored message", isMessage); m.Get("id") != "m1" {
		t.Fatalf("got %s", m)
	}
}

func TestFullStorageBounces(t *testing.T) {
	d := xmpptest.Start(t, nil)
	if err := offline.SetUsageForTest(d.Store, "bob", offline.MaxMessages, 1000); err != nil {
		t.Fatal(err)
	}
	a := login(t, d, "alice", "a")
	a.Send("<message to='bob@example.test' type='chat' id='m1'><body>one</body></message>")
	e := a.Expect("bounce", isMessage)
	if e.Get("type") != "error" || errCond(e) != "resource-constraint" {
		t.Fatalf("full storage: %s", e)
	}
	if err := offline.SetUsageForTest(d.Store, "bob", 1, offline.MaxBytes-10); err != nil {
		t.Fatal(err)
	}
	a.Send("<message to='bob@example.test' type='chat' id='m2'><body>too big for what is left</body></message>")
	if e := a.Expect("bounce", isMessage); errCond(e) != "resource-constraint" {
		t.Fatalf("size cap: %s", e)
	}
}

// TestLargeBacklogInOrder: more than one delivery chunk arrives complete
// and in order.
func TestLargeBacklogInOrder(t *testing.T) {
	d := xmpptest.Start(t, nil)
	if err := d.Store.CreateAccount("carol", "carol-pw", false); err != nil {
		t.Fatal(err)
	}
	// Two senders: one may hold only a share of bob's storage.
	a, c := login(t, d, "alice", "a"), login(t, d, "carol", "c")
	const n = 320
	for i := range n {
		if i == n/2 {
			a.Quiet("alice's half stored before carol's")
		}
		[]*cl{a, c}[i*2/n].Sendf("<message to='bob@example.test' type='chat' id='m%d'><body>%d</body></message>", i, i)
	}
	c.Quiet("all stored")
	b := login(t, d, "bob", "b")
	b.Send("<presence/>")
	for i := range n {
		m := b.Expect("message", isMessage)
		if want := fmt.Sprintf("m%d", i); m.Get("id") != want {
			t.Fatalf("got %s, want %s", m.Get("id"), want)
		}
	}
	// The last chunk is deleted just after it was handed over.
	for deadline := time.Now().Add(5 * time.Second); count(t, d, "bob") != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d left after delivery", count(t, d, "bob"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRestart: stored messages survive a restart, and delivered ones are
// not delivered again after one.
func TestRestart(t *testing.T) {
	dir := state.Dir(t.TempDir())
	start := func() *xmppd.Daemon {
		d, err := xmppd.Start(xmppd.Options{State: dir, Domain: xmpptest.Domain, C2S: "127.0.0.1:0", C2STLS: "127.0.0.1:0",
			Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	stop := func(d *xmppd.Daemon) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	}
	d := start()
	for _, u := range []string{"alice", "bob"} {
		if err := d.Store.CreateAccount(u, u+"-pw", false); err != nil {
			t.Fatal(err)
		}
	}
	a := login(t, d, "alice", "a")
	a.Send("<message to='bob@example.test' type='chat' id='m1'><body>one</body></message>")
	a.Send("<message to='bob@example.test' type='chat' id='m2'><body>two</body></message>")
	a.Quiet("stored")
	stop(d)

	d = start()
	b := login(t, d, "bob", "b")
	b.Send("<presence/>")
	for _, id := range []string{"m1", "m2"} {
		if m := b.Expect("message", isMessage); m.Get("id") != id {
			t.Fatalf("after restart got %s, want %s", m, id)
		}
	}
	b.Quiet("two messages")
	stop(d)

	d = start()
	defer stop(d)
	b = login(t, d, "bob", "b")
	b.Send("<presence/>")
	b.Expect("own presence", func(el *stream.Element) bool { return el.Local == "presence" })
	b.Quiet("no message twice across restarts")
}

// TestUnackedOfflineMessagesComeBack: a client with stream management that
// leaves without acknowledging the offline messages it was sent gets them
// again at its next login (the smacks module re-routes them here), with
// their first delay stamp only.
func TestUnackedOfflineMessagesComeBack(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := login(t, d, "alice", "a")
	a.Send("<message to='bob@example.test' type='chat' id='m1'><body>one</body></message>")
	a.Send("<message to='bob@example.test' type='chat' id='m2'><body>two</body></message>")
	a.Quiet("stored")

	b := login(t, d, "bob", "b")
	b.Send("<enable xmlns='urn:xmpp:sm:3'/>")
	b.Expect("enabled", func(el *stream.Element) bool { return el.Local == "enabled" })
	b.Send("<presence/>")
	var stamps []string
	for _, id := range []string{"m1", "m2"} {
		m := b.Expect("message", isMessage)
		if m.Get("id") != id {
			t.Fatalf("got %s, want %s", m, id)
		}
		delayOf(t, m)
		stamps = append(stamps, m.Child("urn:xmpp:delay", "delay").Get("stamp"))
	}
	// Handed over, so deleted from storage.
	for deadline := time.Now().Add(5 * time.Second); count(t, d, "bob") != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still stored after delivery", count(t, d, "bob"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Close() // without <a/>: the client never confirmed them

	for deadline := time.Now().Add(5 * time.Second); count(t, d, "bob") != 2; {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages stored again, want 2", count(t, d, "bob"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	b2 := login(t, d, "bob", "b")
	b2.Send("<presence/>")
	for i, id := range []string{"m1", "m2"} {
		m := b2.Expect("message", isMessage)
		if m.Get("id") != id {
			t.Fatalf("second login got %s, want %s", m, id)
		}
		n := 0
		for _, c := range m.Children() {
			if c.Space == "urn:xmpp:delay" {
				n++
			}
		}
		if n != 1 || m.Child("urn:xmpp:delay", "delay").Get("stamp") != stamps[i] {
			t.Fatalf("re-stored message should keep its one first stamp %s: %s", stamps[i], m)
		}
	}
	b2.Quiet("each message once")
}

// TestUnackedGoToOtherResource: offline messages handed to a phone that
// vanishes without confirming them reach the account's other resource.
func TestUnackedGoToOtherResource(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := login(t, d, "alice", "a")
	a.Send("<message to='bob@example.test' type='chat' id='m1'><body>one</body></message>")
	a.Quiet("stored")

	phone := login(t, d, "bob", "phone")
	phone.Send("<enable xmlns='urn:xmpp:sm:3'/>")
	phone.Expect("enabled", func(el *stream.Element) bool { return el.Local == "enabled" })
	phone.Send("<presence/>")
	phone.Expect("message", isMessage)
	laptop := login(t, d, "bob", "laptop")
	laptop.Send("<presence/>")
	laptop.Expect("phone's presence", func(el *stream.Element) bool { return el.Local == "presence" && el.Get("from") == phone.JID })
	laptop.Sync()
	phone.Close()
	if m := laptop.Expect("the message the phone never confirmed", isMessage); m.Get("id") != "m1" {
		t.Fatalf("laptop got %s", m)
	}
}
