package version_test

import (
	"testing"

	appversion "github.com/hearthchat/hearth/appliance/version"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
)

func TestVersion(t *testing.T) {
	old := appversion.Version
	appversion.Version = "1.2.3-test"
	t.Cleanup(func() { appversion.Version = old })
	d := xmpptest.Start(t, nil)
	c := iqtest.Login(t, d, "alice", "r")
	q := c.Result("get", iqtest.Domain, "<query xmlns='jabber:iq:version'/>")
	const ns = "jabber:iq:version"
	if q.Space != ns || q.ChildText(ns, "name") != "Hearth" || q.ChildText(ns, "version") != "1.2.3-test" {
		t.Errorf("answer %s", q)
	}
	if q.Child(ns, "os") != nil {
		t.Errorf("the OS is not for strangers: %s", q)
	}
	// To an account's bare JID the server does not answer for the clients.
	if got := iqtest.Cond(c.IQ("get", "bob@"+iqtest.Domain, "<query xmlns='jabber:iq:version'/>")); got != "service-unavailable" {
		t.Errorf("version of a bare JID: %q", got)
	}
}
