package presence_test

import (
	"testing"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/roster"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const (
	alice = "alice@example.test"
	bob   = "bob@example.test"
)

func subState(jid, sub string, ask bool) func(*stream.Element) bool {
	return func(el *stream.Element) bool {
		return isPush(jid)(el) && item(el).Get("subscription") == sub && item(el).Has("ask") == ask
	}
}

func online(t *testing.T, c *cl, prio string) {
	t.Helper()
	c.Sync()
	c.Sendf("<presence><priority>%s</priority><status>here</status></presence>", prio)
	// The server reflects the broadcast to the sender (RFC 6121 §4.2.2).
	c.Expect("own presence", isPresence("", c.JID))
}

// TestSubscriptionHandshake: RFC 6121 §3.1 between two online accounts,
// then presence flows only in the subscribed direction.
func TestSubscriptionHandshake(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := login(t, d, "alice", "a")
	b := login(t, d, "bob", "b")
	online(t, a, "1")
	online(t, b, "1")

	a.Send("<presence to='bob@example.test/b' type='subscribe'><status>hi</status></presence>")
	a.Expect("push none+ask", subState(bob, "none", true))
	req := b.Expect("request", isPresence("subscribe", alice))
	if req.Get("to") != bob || req.ChildText(stream.NSClient, "status") != "hi" {
		t.Fatalf("request not stamped to the bare JIDs or status lost: %s", req)
	}
	// A pending request is not a roster item (RFC 6121 §3.1.3).
	b.Send("<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
	if r := b.Expect("roster", func(el *stream.Element) bool { return el.Get("id") == "r" }); len(r.FirstChild().Children()) != 0 {
		t.Fatalf("pending request listed: %s", r)
	}

	b.Send("<presence to='alice@example.test' type='subscribed'/>")
	b.Expect("push from", subState(alice, "from", false))
	a.Expect("push to", subState(bob, "to", false))
	a.Expect("subscribed", isPresence("subscribed", bob))
	// §3.1.5: the contact's server sends its presence right away.
	if p := a.Expect("bob's presence", isPresence("", bob+"/b")); p.ChildText(stream.NSClient, "status") != "here" {
		t.Fatalf("presence: %s", p)
	}

	// Bob's changes reach alice; alice's do not reach bob (he has no
	// subscription to her).
	b.Send("<presence><show>away</show></presence>")
	a.Expect("bob away", func(el *stream.Element) bool {
		return isPresence("", bob+"/b")(el) && el.ChildText(stream.NSClient, "show") == "away"
	})
	b.Sync()
	a.Send("<presence><show>dnd</show></presence>")
	a.Expect("own", isPresence("", a.JID))
	a.Sync()
	b.Quiet("alice's presence must not reach a non-subscriber")

	// Bob's logout reaches alice as unavailable.
	b.Close()
	a.Expect("bob unavailable", isPresence("unavailable", bob+"/b"))

	// A second login of bob: alice's server probes on his behalf? No:
	// bob has no subscription to alice, so his login shows him nothing
	// of her, but alice sees bob again.
	b2 := login(t, d, "bob", "b2")
	online(t, b2, "0")
	a.Expect("bob back", isPresence("", bob+"/b2"))
	b2.Quiet("bob is not subscribed to alice")

	// A login of alice gets bob's presence through the probe.
	a2 := login(t, d, "alice", "a2")
	a2.Sync()
	a2.Send("<presence/>")
	a2.Expect("probe answer", isPresence("", bob+"/b2"))
	// and the presence of alice's other resource.
	a.Expect("own other resource", isPresence("", alice+"/a2"))
}

// TestPendingRequestRedelivered: a request to an offline account waits in
// storage and is delivered at its next initial presence (§3.1.3).
func TestPendingRequestRedelivered(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := login(t, d, "alice", "a")
	online(t, a, "0")
	a.Send("<presence to='bob@example.test' type='subscribe'><nick xmlns='http://jabber.org/protocol/nick'>Alice</nick></presence>")
	a.Expect("push", subState(bob, "none", true))
	a.Sync()

	b := login(t, d, "bob", "b")
	b.Sync()
	b.Send("<presence/>")
	req := b.Expect("stored request", isPresence("subscribe", alice))
	if req.Child("http://jabber.org/protocol/nick", "nick") == nil {
		t.Fatalf("stored request lost its payload: %s", req)
	}
	b.Close()
	// Unanswered: delivered again at the next login.
	b2 := login(t, d, "bob", "b")
	b2.Send("<presence/>")
	b2.Expect("request again", isPresence("subscribe", alice))
	// Refusing it ends it: alice's ask goes away.
	b2.Send("<presence to='alice@example.test' type='unsubscribed'/>")
	a.Expect("ask cleared", subState(bob, "none", false))
	a.Expect("refusal", isPresence("unsubscribed", bob))
	b2.Close()
	b3 := login(t, d, "bob", "b")
	b3.Send("<presence/>")
	b3.Expect("own presence", isPresence("", b3.JID))
	b3.Quiet("a refused request is not delivered again")
}

// TestPreApproval: §3.4 — bob approves alice before she asks.
func TestPreApproval(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := login(t, d, "alice", "a")
	b := login(t, d, "bob", "b")
	online(t, a, "0")
	online(t, b, "0")
	b.Send("<presence to='alice@example.test' type='subscribed'/>")
	p := b.Expect("pre-approved push", isPush(alice))
	if it := item(p); it.Get("approved") != "true" || it.Get("subscription") != "none" {
		t.Fatalf("pre-approval push: %s", p)
	}
	b.Sync()
	a.Quiet("a pre-approval is not routed")

	a.Send("<presence to='bob@example.test' type='subscribe'/>")
	a.Expect("subscribed at once", isPresence("subscribed", bob))
	a.Expect("bob's presence", isPresence("", b.JID))
	b.Expect("from", subState(alice, "from", false))
	b.Sync()
	for _, el := range b.Sync() {
		if el.Get("type") == "subscribe" {
			t.Fatalf("bob was asked although he pre-approved: %s", el)
		}
	}
}

// TestDirectedPresence: §4.6 — directed presence reaches a non-contact,
// and so does the unavailable presence when the session ends.
func TestDirectedPresence(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := login(t, d, "alice", "a")
	b := login(t, d, "bob", "b")
	online(t, a, "0")
	online(t, b, "0")
	a.Send("<presence to='bob@example.test/b'><status>psst</status></presence>")
	if p := b.Expect("directed", isPresence("", a.JID)); p.ChildText(stream.NSClient, "status") != "psst" {
		t.Fatalf("directed presence: %s", p)
	}
	// A broadcast does not reach bob (he is no subscriber).
	a.Send("<presence><show>xa</show></presence>")
	a.Expect("own", isPresence("", a.JID))
	a.Sync()
	b.Quiet("a broadcast must not reach a directed-presence recipient")
	// Presence to a full JID that is offline is dropped without error.
	a.Send("<presence to='bob@example.test/nowhere'/>")
	a.Quiet("presence to an offline resource is dropped silently")
	// The end of the session reaches bob.
	a.Close()
	b.Expect("unavailable", isPresence("unavailable", a.JID))
}

// TestExplicitUnavailable: unavailable presence goes to subscribers and
// the other resources, and the session stops receiving messages for the
// bare JID.
func TestExplicitUnavailable(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := login(t, d, "alice", "a")
	a2 := login(t, d, "alice", "a2")
	online(t, a, "5")
	online(t, a2, "1")
	a2.Expect("a's presence at login", isPresence("", a.JID))
	a.Expect("a2's presence", isPresence("", a2.JID))

	b := login(t, d, "bob", "b")
	b.Send("<message to='alice@example.test' type='chat' id='m1'><body>1</body></message>")
	a.Expect("message to the top priority", func(el *stream.Element) bool { return el.Local == "message" && el.Get("id") == "m1" })
	a.Send("<presence type='unavailable'/>")
	a2.Expect("a unavailable", isPresence("unavailable", a.JID))
	b.Send("<message to='alice@example.test' type='chat' id='m2'><body>2</body></message>")
	a2.Expect("message now to the other resource", func(el *stream.Element) bool { return el.Local == "message" && el.Get("id") == "m2" })
}

func TestProbeAndErrors(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := login(t, d, "alice", "a")
	online(t, a, "0")
	// A subscription request to an account that does not exist is
	// answered with unsubscribed (§3.1.3).
	a.Send("<presence to='nobody@example.test' type='subscribe'/>")
	a.Expect("ask cleared", subState("nobody@example.test", "none", false))
	a.Expect("refusal", isPresence("unsubscribed", "nobody@example.test"))
	// An unknown presence type is a bad request.
	a.Send("<presence to='bob@example.test' type='bogus' id='p1'/>")
	e := a.Expect("error", isPresence("error", bob))
	if errCond(e) != "bad-request" {
		t.Fatalf("unknown type: %s", e)
	}
	// A probe from a client for a contact it is not subscribed to
	// reveals nothing.
	b := login(t, d, "bob", "b")
	online(t, b, "0")
	a.Send("<presence to='bob@example.test' type='probe'/>")
	a.Quiet("probe without subscription")
}

func msgID(id string) func(*stream.Element) bool {
	return func(el *stream.Element) bool { return el.Local == "message" && el.Get("id") == id }
}

// TestMessageRouting: RFC 6121 §8.5 rules that depend on the availability
// and priorities this module records.
func TestMessageRouting(t *testing.T) {
	d := xmpptest.Start(t, nil)
	hi := login(t, d, "bob", "hi")
	lo := login(t, d, "bob", "lo")
	neg := login(t, d, "bob", "neg")
	online(t, hi, "5")
	online(t, lo, "1")
	online(t, neg, "-1")
	for _, c := range []*cl{hi, lo, neg} {
		c.Sync()
	}
	a := login(t, d, "alice", "a")

	// chat/normal to the bare JID: only the highest priority.
	a.Send("<message to='bob@example.test' type='chat' id='c1'><body>x</body></message>")
	a.Send("<message to='bob@example.test' id='n1'><body>x</body></message>")
	hi.Expect("chat", msgID("c1"))
	hi.Expect("normal", msgID("n1"))
	// headline to the bare JID: every non-negative resource.
	a.Send("<message to='bob@example.test' type='headline' id='h1'><body>x</body></message>")
	hi.Expect("headline", msgID("h1"))
	lo.Expect("headline", msgID("h1"))
	// To a full JID: that resource, even with a negative priority.
	a.Send("<message to='bob@example.test/neg' type='chat' id='f1'><body>x</body></message>")
	neg.Expect("full JID", msgID("f1"))
	// groupchat to a user: service-unavailable.
	a.Send("<message to='bob@example.test' type='groupchat' id='g1'><body>x</body></message>")
	if e := a.Expect("bounce", msgID("g1")); e.Get("type") != "error" || errCond(e) != "service-unavailable" {
		t.Fatalf("groupchat: %s", e)
	}
	a.Sync()
	lo.Quiet("lower priority gets no chat/normal")
	neg.Quiet("negative priority gets nothing for the bare JID")

	// Equal top priorities: both.
	lo.Send("<presence><priority>5</priority></presence>")
	lo.Expect("own", isPresence("", lo.JID))
	a.Send("<message to='bob@example.test' type='chat' id='c2'><body>x</body></message>")
	hi.Expect("chat", msgID("c2"))
	lo.Expect("chat", msgID("c2"))
}

// TestClientProbe: a client's own probe of a contact it is subscribed to
// gets the contact's presence.
func TestClientProbe(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := login(t, d, "alice", "a")
	b := login(t, d, "bob", "b")
	online(t, a, "0")
	online(t, b, "0")
	b.Send("<presence to='alice@example.test' type='subscribed'/>") // pre-approve
	a.Send("<presence to='bob@example.test' type='subscribe'/>")
	a.Expect("bob's presence", isPresence("", b.JID))
	a.Sync()
	a.Send("<presence to='bob@example.test' type='probe'/>")
	a.Expect("probe answer", isPresence("", b.JID))
	// Bob is not subscribed to alice: his probe gets nothing.
	b.Sync()
	b.Send("<presence to='alice@example.test' type='probe'/>")
	b.Quiet("no subscription, no presence")
}

// TestRemoteContacts: without federation, stanzas to other domains come
// back as remote-server-not-found errors; nothing else breaks.
func TestRemoteContacts(t *testing.T) {
	d := xmpptest.Start(t, nil)
	const remote = "friend@remote.example"
	if _, err := roster.Update(d.Server, "alice", remote, func(it *roster.Item) error {
		it.Listed, it.Sub = true, roster.Both
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	a := login(t, d, "alice", "a")
	a.Sync()
	a.Send("<presence/>")
	e := a.Expect("bounce of the broadcast or probe", isPresence("error", remote))
	if errCond(e) != "remote-server-not-found" {
		t.Fatalf("remote: %s", e)
	}
	a.Send("<presence to='other@remote.example' type='subscribe'/>")
	a.Expect("ask", subState("other@remote.example", "none", true))
	if e := a.Expect("bounce", isPresence("error", "other@remote.example")); errCond(e) != "remote-server-not-found" {
		t.Fatalf("remote subscribe: %s", e)
	}
}
