package moved_test

import (
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/modtest"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const (
	romeo  = "romeo@example.test"
	oldJul = "juliet@example.test"
	newJul = "julia@example.test"
	eve    = "eve@example.test"
)

func start(t *testing.T) *xmppd.Daemon {
	d := xmpptest.Start(t, nil)
	for _, u := range []string{"romeo", "juliet", "julia", "eve"} {
		if err := d.Store.CreateAccount(u, u+"-pw", false); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func online(t *testing.T, c *modtest.Client) {
	t.Helper()
	c.Sync()
	c.Send("<presence/>")
	c.Expect("own presence", modtest.IsPresence("", c.JID))
}

// befriend makes a and b subscribe to each other through the protocol.
func befriend(t *testing.T, a, b *modtest.Client, aBare, bBare string) {
	t.Helper()
	a.Sendf("<presence to='%s' type='subscribe'/>", bBare)
	b.Expect("request", modtest.IsPresence("subscribe", aBare))
	b.Sendf("<presence to='%s' type='subscribed'/>", aBare)
	b.Sendf("<presence to='%s' type='subscribe'/>", aBare)
	a.Expect("request back", modtest.IsPresence("subscribe", bBare))
	a.Sendf("<presence to='%s' type='subscribed'/>", bBare)
	a.Sync()
	b.Sync()
}

func rosterItem(t *testing.T, c *modtest.Client, jid string) *stream.Element {
	t.Helper()
	c.Send("<iq type='get' id='rg'><query xmlns='jabber:iq:roster'/></iq>")
	r := c.Expect("roster", func(el *stream.Element) bool { return el.Get("id") == "rg" })
	for _, it := range r.FirstChild().Children() {
		if it.Get("jid") == jid {
			return it
		}
	}
	return nil
}

// The whole XEP-0283 flow on one server: juliet moves to julia; romeo's
// server checks juliet's statement and switches romeo's roster over with
// nothing for romeo's devices to approve; a forged notification from eve
// is an ordinary request.
func TestMoveSwitchesContactOver(t *testing.T) {
	d := start(t)
	r := modtest.Login(t, d, "romeo", "phone")
	j := modtest.Login(t, d, "juliet", "old")
	online(t, r)
	online(t, j)
	befriend(t, r, j, romeo, oldJul)
	// Romeo files juliet under a name and a group; the new address must
	// inherit both.
	r.Send("<iq type='set' id='name'><query xmlns='jabber:iq:roster'><item jid='" + oldJul + "' name='Juliet'><group>Family</group></item></query></iq>")
	r.Expect("set", func(el *stream.Element) bool { return el.Get("id") == "name" })
	r.Sync()

	// Juliet publishes the statement on her old account (the default
	// "presence" access model: romeo, a subscriber, may read it).
	j.Send("<iq type='set' id='pub'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:moved:1'>" +
		"<item id='current'><moved xmlns='urn:xmpp:moved:1'><new-jid>" + newJul + "</new-jid></moved></item></publish></pubsub></iq>")
	j.Expect("published", func(el *stream.Element) bool { return el.Get("id") == "pub" && el.Get("type") == "result" })

	// Eve forges a notification first: the statement names julia, so
	// romeo gets eve's request as an ordinary one, <moved/> kept.
	e := modtest.Login(t, d, "eve", "x")
	online(t, e)
	e.Send("<presence to='" + romeo + "' type='subscribe'><moved xmlns='urn:xmpp:moved:1'><old-jid>" + oldJul + "</old-jid></moved></presence>")
	req := r.Expect("eve's request, delivered", modtest.IsPresence("subscribe", eve))
	if req.Child("urn:xmpp:moved:1", "moved") == nil {
		t.Errorf("the <moved/> of a failed check was stripped: %s", req)
	}
	if it := rosterItem(t, r, eve); it != nil && it.Get("subscription") != "none" {
		t.Fatalf("eve got a subscription from a forged move: %s", it)
	}

	// Julia, the new address, notifies romeo.
	n := modtest.Login(t, d, "julia", "new")
	online(t, n)
	n.Send("<presence to='" + romeo + "' type='subscribe'><moved xmlns='urn:xmpp:moved:1'><old-jid>" + oldJul + "</old-jid></moved></presence>")
	n.Expect("subscribed, from romeo's server", modtest.IsPresence("subscribed", romeo))
	n.Expect("romeo asks back (he had both)", modtest.IsPresence("subscribe", romeo))
	j.Expect("the old address is unsubscribed", modtest.IsPresence("unsubscribed", romeo))

	got := r.Sync()
	for _, el := range got {
		if el.Local == "presence" && el.Get("type") == "subscribe" && el.Get("from") == newJul {
			t.Fatalf("romeo's device was asked to approve a verified move: %s", el)
		}
	}
	it := rosterItem(t, r, newJul)
	if it == nil {
		t.Fatal("julia is not in romeo's roster")
	}
	if it.Get("subscription") != "from" || it.Get("ask") != "subscribe" || it.Get("name") != "Juliet" || it.ChildText("jabber:iq:roster", "group") != "Family" {
		t.Errorf("julia's item: %s", it)
	}
	if old := rosterItem(t, r, oldJul); old == nil || old.Get("subscription") != "to" {
		t.Errorf("juliet's old item after the move: %v", old)
	}
	// Each address moves once: a second notification is an ordinary
	// request now that the old address has no subscription from romeo.
	if err := d.Store.CreateAccount("zed", "zed-pw", false); err != nil {
		t.Fatal(err)
	}
	z := modtest.Login(t, d, "zed", "x")
	online(t, z)
	j.Send("<iq type='set' id='pub2'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:moved:1'>" +
		"<item id='current'><moved xmlns='urn:xmpp:moved:1'><new-jid>zed@example.test</new-jid></moved></item></publish></pubsub></iq>")
	j.Expect("published again", func(el *stream.Element) bool { return el.Get("id") == "pub2" && el.Get("type") == "result" })
	z.Send("<presence to='" + romeo + "' type='subscribe'><moved xmlns='urn:xmpp:moved:1'><old-jid>" + oldJul + "</old-jid></moved></presence>")
	r.Expect("a second move of the same address, delivered as a request", modtest.IsPresence("subscribe", "zed@example.test"))
}

// Without an approved subscription of the old address, the <moved/> is
// ignored entirely (no statement is even asked for).
func TestMoveFromAStrangerIsAnOrdinaryRequest(t *testing.T) {
	d := start(t)
	r := modtest.Login(t, d, "romeo", "phone")
	online(t, r)
	n := modtest.Login(t, d, "julia", "new")
	online(t, n)
	n.Send("<presence to='" + romeo + "' type='subscribe'><moved xmlns='urn:xmpp:moved:1'><old-jid>" + oldJul + "</old-jid></moved></presence>")
	req := r.Expect("an ordinary request", modtest.IsPresence("subscribe", newJul))
	if !strings.Contains(req.String(), "old-jid") {
		t.Errorf("request changed: %s", req)
	}
}
