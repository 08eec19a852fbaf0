package ping_test

import (
	"testing"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
)

func TestPing(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := iqtest.Login(t, d, "alice", "r")
	const ping = "<ping xmlns='urn:xmpp:ping'/>"
	for _, tc := range []struct{ name, typ, to, cond string }{
		{"server", "get", iqtest.Domain, ""},
		{"own account", "get", "", ""},
		{"other account", "get", "bob@" + iqtest.Domain, ""},
		{"no such account", "get", "nobody@" + iqtest.Domain, "service-unavailable"},
		{"set is not a ping", "set", iqtest.Domain, "service-unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.IQ(tc.typ, tc.to, ping)
			if got := iqtest.Cond(r); got != tc.cond {
				t.Fatalf("condition %q, want %q: %s", got, tc.cond, r)
			}
			if tc.cond == "" && (r.FirstChild() != nil || r.Get("type") != "result") {
				t.Errorf("want an empty result, got %s", r)
			}
		})
	}
}
