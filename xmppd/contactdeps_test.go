package xmppd_test

import (
	"slices"
	"testing"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
)

// abuseAddresses asks the server's disco#info for the XEP-0157
// abuse-addresses field.
func abuseAddresses(t *testing.T, d *xmppd.Daemon) []string {
	t.Helper()
	c := xmpptest.Login(t, d, "alice", "r")
	c.Send("<iq type='get' id='info' to='" + xmpptest.Domain + "'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	r := c.El()
	for r.Local != "iq" || r.Get("id") != "info" {
		r = c.El()
	}
	q := r.FirstChild()
	if r.Get("type") != "result" || q == nil {
		t.Fatalf("disco#info: %s", r)
	}
	for _, x := range q.Children() {
		if x.Local != "x" || x.Space != "jabber:x:data" {
			continue
		}
		for _, f := range x.Children() {
			if f.Get("var") == "abuse-addresses" {
				var out []string
				for _, v := range f.Children() {
					out = append(out, v.Text())
				}
				return out
			}
		}
	}
	return nil
}

// TestAbuseFromConfig: the config's site.abuse is the server's abuse
// address; without one, the admins are.
func TestAbuseFromConfig(t *testing.T) {
	d := xmpptest.Start(t, func(o *xmppd.Options) {
		c := config.Default()
		c.Site.Abuse = []string{"abuse@example.org"}
		if err := config.Save(o.State.Config(), c); err != nil {
			t.Fatal(err)
		}
	})
	if got := abuseAddresses(t, d); !slices.Equal(got, []string{"mailto:abuse@example.org"}) {
		t.Fatalf("abuse-addresses %v, want the config's", got)
	}

	d = xmpptest.Start(t, nil)
	if err := d.Store.CreateAccount("root", "root-pw", true); err != nil {
		t.Fatal(err)
	}
	if got := abuseAddresses(t, d); !slices.Equal(got, []string{"xmpp:root@example.test"}) {
		t.Fatalf("abuse-addresses %v, want the admin's", got)
	}
}
