package roster_test

import (
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const ns = "jabber:iq:roster"

func result(id string) func(*stream.Element) bool {
	return func(el *stream.Element) bool { return el.Local == "iq" && el.Get("id") == id }
}

func TestStreamFeatures(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	c.Auth("SCRAM-SHA-256", "alice", "alice-pw")
	f := c.Open()
	if f.Child("urn:xmpp:features:rosterver", "ver") == nil {
		t.Errorf("no roster versioning feature: %s", f)
	}
	if f.Child("urn:xmpp:features:pre-approval", "sub") == nil {
		t.Errorf("no pre-approval feature: %s", f)
	}
}

func TestVersioning(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := login(t, d, "alice", "phone")
	a2 := login(t, d, "alice", "laptop")
	a2.Sync() // laptop is interested: gets pushes

	a.Sendf("<iq type='get' id='g1'><query xmlns='jabber:iq:roster' ver=''/></iq>")
	r := a.Expect("roster result", result("g1"))
	q := r.Child(ns, "query")
	if q == nil || q.Get("ver") == "" || len(q.Children()) != 0 {
		t.Fatalf("empty roster with versioning: %s", r)
	}
	v0 := q.Get("ver")

	a.Sendf("<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='carol@example.test' name='Carol'><group>Family</group><group>Club</group></item></query></iq>")
	push := a.Expect("push", isPush("carol@example.test"))
	v1 := push.Child(ns, "query").Get("ver")
	if v1 == "" || v1 == v0 {
		t.Fatalf("push without a new ver: %s", push)
	}
	it := item(push)
	if it.Get("name") != "Carol" || it.Get("subscription") != "none" || len(it.Children()) != 2 {
		t.Fatalf("pushed item: %s", it)
	}
	a.Expect("set result", result("s1"))
	// RFC 6121 §2.1.6: every interested resource gets the push.
	if p := a2.Expect("push on the other resource", isPush("carol@example.test")); p.Child(ns, "query").Get("ver") != v1 {
		t.Fatalf("other resource got %s", p)
	}

	// Current ver: empty result.
	a.Sendf("<iq type='get' id='g2'><query xmlns='jabber:iq:roster' ver='%s'/></iq>", v1)
	if r := a.Expect("result", result("g2")); r.Get("type") != "result" || r.FirstChild() != nil {
		t.Fatalf("current ver should give an empty result: %s", r)
	}
	// Old ver: the whole roster with the current ver.
	a.Sendf("<iq type='get' id='g3'><query xmlns='jabber:iq:roster' ver='%s'/></iq>", v0)
	r = a.Expect("result", result("g3"))
	if q := r.Child(ns, "query"); q == nil || q.Get("ver") != v1 || len(q.Children()) != 1 {
		t.Fatalf("stale ver should give the roster: %s", r)
	}
	// Without ver: the roster, no ver attribute.
	a.Sendf("<iq type='get' id='g4'><query xmlns='jabber:iq:roster'/></iq>")
	r = a.Expect("result", result("g4"))
	if q := r.Child(ns, "query"); q == nil || q.Has("ver") || len(q.Children()) != 1 {
		t.Fatalf("unversioned get: %s", r)
	}

	// Removing bumps the version and pushes subscription='remove'.
	a.Sendf("<iq type='set' id='s2'><query xmlns='jabber:iq:roster'><item jid='carol@example.test' subscription='remove'/></query></iq>")
	push = a.Expect("remove push", isPush("carol@example.test"))
	if item(push).Get("subscription") != "remove" || push.Child(ns, "query").Get("ver") == v1 {
		t.Fatalf("remove push: %s", push)
	}
	a.Expect("remove result", result("s2"))

	// The version after the removal is current.
	a.Sendf("<iq type='get' id='g5'><query xmlns='jabber:iq:roster' ver='%s'/></iq>", push.Child(ns, "query").Get("ver"))
	if r := a.Expect("result", result("g5")); r.FirstChild() != nil {
		t.Fatalf("ver after remove not current: %s", r)
	}
}

func TestSetErrors(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := login(t, d, "alice", "r")
	cases := []struct {
		name, iq, cond string
	}{
		{"two items", "<iq type='set' id='x'><query xmlns='jabber:iq:roster'><item jid='b@example.test'/><item jid='c@example.test'/></query></iq>", "bad-request"},
		{"no item", "<iq type='set' id='x'><query xmlns='jabber:iq:roster'/></iq>", "bad-request"},
		{"empty group", "<iq type='set' id='x'><query xmlns='jabber:iq:roster'><item jid='b@example.test'><group/></item></query></iq>", "not-acceptable"},
		{"duplicate group", "<iq type='set' id='x'><query xmlns='jabber:iq:roster'><item jid='b@example.test'><group>g</group><group>g</group></item></query></iq>", "bad-request"},
		{"long name", "<iq type='set' id='x'><query xmlns='jabber:iq:roster'><item jid='b@example.test' name='" + strings.Repeat("n", 2000) + "'/></query></iq>", "not-acceptable"},
		{"own jid", "<iq type='set' id='x'><query xmlns='jabber:iq:roster'><item jid='alice@example.test'/></query></iq>", "not-allowed"},
		{"bad jid", "<iq type='set' id='x'><query xmlns='jabber:iq:roster'><item jid='@@'/></query></iq>", "jid-malformed"},
		{"full jid", "<iq type='set' id='x'><query xmlns='jabber:iq:roster'><item jid='b@example.test/res'/></query></iq>", "bad-request"},
		{"remove unknown", "<iq type='set' id='x'><query xmlns='jabber:iq:roster'><item jid='nobody@example.test' subscription='remove'/></query></iq>", "item-not-found"},
		{"other's roster get", "<iq type='get' id='x' to='bob@example.test'><query xmlns='jabber:iq:roster'/></iq>", "forbidden"},
		{"other's roster set", "<iq type='set' id='x' to='bob@example.test'><query xmlns='jabber:iq:roster'><item jid='c@example.test'/></query></iq>", "forbidden"},
	}
	for _, c := range cases {
		a.Send(c.iq)
		r := a.Expect(c.name, result("x"))
		if r.Get("type") != "error" || errCond(r) != c.cond {
			t.Errorf("%s: got %s, want %s", c.name, r, c.cond)
		}
	}
	// A client's subscription/ask/approved values are ignored (§2.3.3).
	a.Send("<iq type='set' id='y'><query xmlns='jabber:iq:roster'><item jid='b@example.test' subscription='both' ask='subscribe' approved='true'/></query></iq>")
	a.Expect("result", result("y"))
	a.Send("<iq type='get' id='z'><query xmlns='jabber:iq:roster'/></iq>")
	r := a.Expect("roster", result("z"))
	it := r.Child(ns, "query").Child(ns, "item")
	if it == nil || it.Get("subscription") != "none" || it.Has("ask") || it.Has("approved") {
		t.Fatalf("client-set subscription state taken over: %s", r)
	}
}

// TestRemoveCancelsSubscriptions: RFC 6121 §2.5.2 — removing a contact with
// a mutual subscription sends unsubscribe and unsubscribed, so the
// contact's roster shows none.
func TestRemoveCancelsSubscriptions(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := login(t, d, "alice", "r")
	b := login(t, d, "bob", "r")
	for _, c := range []*cl{a, b} {
		c.Sync()
		c.Send("<presence/>")
	}
	a.Send("<presence to='bob@example.test' type='subscribe'/>")
	b.Expect("request", isPresence("subscribe", "alice@example.test"))
	b.Send("<presence to='alice@example.test' type='subscribed'/>")
	b.Send("<presence to='alice@example.test' type='subscribe'/>")
	a.Expect("request", isPresence("subscribe", "bob@example.test"))
	a.Send("<presence to='bob@example.test' type='subscribed'/>")
	a.Expect("both", func(el *stream.Element) bool {
		return isPush("bob@example.test")(el) && item(el).Get("subscription") == "both"
	})
	b.Expect("both", func(el *stream.Element) bool {
		return isPush("alice@example.test")(el) && item(el).Get("subscription") == "both"
	})

	a.Send("<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='bob@example.test' subscription='remove'/></query></iq>")
	a.Expect("result", result("rm"))
	b.Expect("unavailable from alice", isPresence("unavailable", "alice@example.test/r"))
	b.Expect("unsubscribe", isPresence("unsubscribe", "alice@example.test"))
	b.Expect("unsubscribed", isPresence("unsubscribed", "alice@example.test"))
	b.Send("<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>")
	r := b.Expect("roster", result("g"))
	it := r.Child(ns, "query").Child(ns, "item")
	if it == nil || it.Get("subscription") != "none" || it.Has("ask") {
		t.Fatalf("bob's item after alice removed him: %s", r)
	}
}
