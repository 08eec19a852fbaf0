package roster_test

import (
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/invites"
	"github.com/hearthchat/hearth/xmppd/mod/roster"
)

// TestInviteBefriends: an account created from a member's invite starts
// with a mutual subscription to the inviter (the roster answers the
// invites module's server.AccountRegistered event).
func TestInviteBefriends(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := login(t, d, "alice", "a")
	a.Sync() // interested: gets the push
	inv, err := invites.Create(d.Store, invites.Options{TTL: time.Hour, Inviter: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	c.Send("<iq type='set' id='pa'><preauth xmlns='urn:xmpp:pars:0' token='" + inv.Token + "'/></iq>")
	if el := c.El(); el.Get("type") != "result" {
		t.Fatalf("preauth: %s", el)
	}
	c.Send("<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>carol</username><password>carol-password</password></query></iq>")
	if el := c.El(); el.Get("type") != "result" {
		t.Fatalf("register: %s", el)
	}
	p := a.Expect("push for carol", isPush("carol@example.test"))
	if item(p).Get("subscription") != "both" {
		t.Fatalf("inviter's push: %s", p)
	}
	it, ok, err := roster.Get(d.Store, "carol", "alice@example.test")
	if err != nil || !ok || it.Sub != roster.Both || !it.Listed {
		t.Fatalf("member's item for the inviter: %+v %v %v", it, ok, err)
	}
}
