package invites_test

import (
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/invites"
	"github.com/hearthchat/hearth/xmppd/stream"
)

func register(t *testing.T, d *xmppd.Daemon, token, user, pw string) *stream.Element {
	t.Helper()
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	f := c.Open()
	if f.Child("http://jabber.org/features/iq-register", "register") == nil {
		t.Fatalf("registration feature not offered: %s", f)
	}
	if token != "" {
		c.Send("<iq type='set' id='pa'><preauth xmlns='urn:xmpp:pars:0' token='" + token + "'/></iq>")
		if el := c.El(); el.Get("type") != "result" {
			return el
		}
	}
	c.Send("<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>" + user + "</username><password>" + pw + "</password></query></iq>")
	return c.El()
}

func condition(el *stream.Element) string {
	if e := el.Child("", "error"); e != nil {
		if c := e.FirstChild(); c != nil {
			return c.Local
		}
	}
	return ""
}

func TestRegisterWithInvite(t *testing.T) {
	d := xmpptest.Start(t, nil)
	inv, err := invites.Create(d.Store, invites.Options{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if el := register(t, d, "", "carol", "carol-password"); condition(el) != "not-allowed" {
		t.Fatalf("registration without invite: %s", el)
	}
	if el := register(t, d, "bogus", "carol", "carol-password"); condition(el) != "item-not-found" {
		t.Fatalf("registration with a bogus token: %s", el)
	}
	// A taken name does not spend the invite.
	if el := register(t, d, inv.Token, "alice", "some-password"); condition(el) != "conflict" {
		t.Fatalf("taken name: %s", el)
	}
	if el := register(t, d, inv.Token, "carol", "short"); condition(el) != "not-acceptable" {
		t.Fatalf("short password: %s", el)
	}
	if el := register(t, d, inv.Token, "carol", "carol-password"); el.Get("type") != "result" {
		t.Fatalf("registration: %s", el)
	}
	if el := register(t, d, inv.Token, "dave", "dave-password"); condition(el) != "item-not-found" {
		t.Fatalf("second use of a single-use invite: %s", el)
	}
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	if el := c.Auth("SCRAM-SHA-256", "carol", "carol-password"); el.Local != "success" {
		t.Fatalf("new account cannot log in: %s", el)
	}
}

func TestExpiredAndReservedInvites(t *testing.T) {
	d := xmpptest.Start(t, nil)
	old, _ := invites.Create(d.Store, invites.Options{TTL: time.Hour})
	if err := invites.Expire(d.Store, old.Token); err != nil {
		t.Fatal(err)
	}
	if el := register(t, d, old.Token, "erin", "erin-password"); condition(el) != "item-not-found" {
		t.Fatalf("expired invite: %s", el)
	}
	named, _ := invites.Create(d.Store, invites.Options{User: "frank"})
	if el := register(t, d, named.Token, "mallory", "mallory-password"); condition(el) != "not-acceptable" {
		t.Fatalf("invite for another name: %s", el)
	}
	if el := register(t, d, named.Token, "frank", "frank-password"); el.Get("type") != "result" {
		t.Fatalf("named invite: %s", el)
	}
}

// TestTokenGuessing: after MaxBadTokens unknown tokens from one address,
// even a good token from there is refused until the window ends.
func TestTokenGuessing(t *testing.T) {
	d := xmpptest.Start(t, nil)
	inv, _ := invites.Create(d.Store, invites.Options{})
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	for i := 0; i < invites.MaxBadTokens; i++ {
		c.Send("<iq type='set' id='g'><preauth xmlns='urn:xmpp:pars:0' token='guess" + string(rune('a'+i)) + "'/></iq>")
		if el := c.El(); condition(el) != "item-not-found" {
			t.Fatalf("guess %d: %s", i+1, el)
		}
	}
	if el := register(t, d, inv.Token, "carol", "carol-password"); condition(el) != "policy-violation" {
		t.Fatalf("good token after %d guesses: %s", invites.MaxBadTokens, el)
	}
}
