package invites_test

import (
	"testing"

	"github.com/hearthchat/hearth/xmppd/stream"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/invites"
)

// TestLimitedIsLocalOnly: a limited account's stanzas for another server
// are refused as not allowed (a member's get the ordinary answer), while
// it chats with people on the box.
func TestLimitedIsLocalOnly(t *testing.T) {
	d := xmpptest.Start(t, nil)
	inv, _ := invites.Create(d.Store, invites.Options{Role: invites.RoleLimited})
	if _, err := invites.Redeem(d.Store, inv.Token, "lim", "lim-pw"); err != nil {
		t.Fatal(err)
	}
	lim := xmpptest.Login(t, d, "lim", "phone")
	alice := xmpptest.Login(t, d, "alice", "phone")
	alice.Send("<presence/>")
	lim.Send("<message to='someone@elsewhere.example' id='m1' type='chat'><body>hi</body></message>")
	if el := next(lim, "m1"); el.Get("type") != "error" || condition(el) != "not-allowed" {
		t.Fatalf("limited account's message out: %s", el)
	}
	alice.Send("<message to='someone@elsewhere.example' id='m2' type='chat'><body>hi</body></message>")
	if el := next(alice, "m2"); el.Get("type") != "error" || condition(el) == "not-allowed" {
		t.Fatalf("member's message out: %s", el)
	}
	lim.Send("<message to='alice@" + xmpptest.Domain + "/phone' id='m3' type='chat'><body>hello alice</body></message>")
	for {
		el := alice.El()
		if el.Local == "message" && el.ChildText("", "body") == "hello alice" {
			break
		}
	}
}

// next skips presence and returns the next stanza with id.
func next(c *xmpptest.Client, id string) *stream.Element {
	for {
		if el := c.El(); el.Get("id") == id {
			return el
		}
	}
}
