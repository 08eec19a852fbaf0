package contact_test

import (
	"slices"
	"testing"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/contact"
	"github.com/hearthchat/hearth/xmppd/mod/disco"
	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const nsData = "jabber:x:data"

// serverinfo returns the fields of the XEP-0157 form in q (nil if none).
func serverinfo(t *testing.T, q *stream.Element) map[string][]string {
	t.Helper()
	var out map[string][]string
	for _, x := range q.Children() {
		if x.Space != nsData || x.Local != "x" {
			continue
		}
		fields := map[string][]string{}
		for _, f := range x.Children() {
			var vals []string
			for _, v := range f.Children() {
				vals = append(vals, v.Text())
			}
			fields[f.Get("var")] = vals
			if f.Get("var") == "FORM_TYPE" && f.Get("type") != "hidden" {
				t.Errorf("FORM_TYPE not hidden: %s", x)
			}
		}
		if slices.Equal(fields["FORM_TYPE"], []string{"http://jabber.org/network/serverinfo"}) {
			if out != nil {
				t.Errorf("two serverinfo forms in %s", q)
			}
			out = fields
		}
	}
	return out
}

func TestContactAddresses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		admins []string
		extra  map[string][]string
		abuse  []string            // from the config (SetAbuse); nil: no source
		want   map[string][]string // nil: no form at all
	}{
		{"no admins, nothing configured", nil, nil, nil, nil},
		// The admins are the abuse contacts unless someone else is named.
		{"admins", []string{"root", "mum"}, nil, nil, map[string][]string{
			"admin-addresses": {"xmpp:mum@example.test", "xmpp:root@example.test"},
			"abuse-addresses": {"xmpp:mum@example.test", "xmpp:root@example.test"}}},
		{"admins and configured addresses", []string{"root"}, map[string][]string{
			"abuse-addresses": {"mailto:abuse@example.test"}, "admin-addresses": {"mailto:root@example.test"}}, nil,
			map[string][]string{
				"abuse-addresses": {"mailto:abuse@example.test"},
				"admin-addresses": {"mailto:root@example.test", "xmpp:root@example.test"}}},
		{"abuse addresses from the config", []string{"root"}, nil,
			[]string{"abuse@example.org", "https://example.org/abuse", "xmpp:mod@example.test", "not an address", ""},
			map[string][]string{
				"abuse-addresses": {"https://example.org/abuse", "mailto:abuse@example.org", "xmpp:mod@example.test"},
				"admin-addresses": {"xmpp:root@example.test"}}},
		{"config names none", []string{"root"}, nil, []string{},
			map[string][]string{
				"abuse-addresses": {"xmpp:root@example.test"},
				"admin-addresses": {"xmpp:root@example.test"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := xmpptest.Start(t, nil)
			for k, v := range tc.extra {
				contact.AddAddresses(d.Server, k, v...)
			}
			if tc.abuse != nil {
				contact.SetAbuse(d.Server, func() []string { return tc.abuse })
			}
			for _, a := range tc.admins {
				if err := d.Store.CreateAccount(a, a+"-pw", true); err != nil {
					t.Fatal(err)
				}
			}
			// Log in by hand to see the caps in the stream features: the
			// form is part of what the hash covers.
			raw := xmpptest.Dial(t, d.C2STLSAddr, true)
			raw.Open()
			if el := raw.Auth("SCRAM-SHA-256", "alice", "alice-pw"); el.Local != "success" {
				t.Fatalf("auth: %s", el)
			}
			caps := raw.Open().Child(disco.NSCaps, "c")
			raw.Bind("r")
			c := &iqtest.Client{Client: raw, JID: "alice@example.test/r"}
			q := c.Result("get", iqtest.Domain, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
			got := serverinfo(t, q)
			if tc.want == nil {
				if got != nil {
					t.Fatalf("form %v, want none", got)
				}
			} else {
				delete(got, "FORM_TYPE")
				if len(got) != len(tc.want) {
					t.Errorf("fields %v, want %v", got, tc.want)
				}
				for k, v := range tc.want {
					if !slices.Equal(got[k], v) {
						t.Errorf("%s = %q, want %q", k, got[k], v)
					}
				}
			}
			if caps == nil || disco.Ver(q) != caps.Get("ver") {
				t.Errorf("caps %v do not match the disco#info answer (ver %s)", caps, disco.Ver(q))
			}
			// Accounts' disco#info carries no server contact form.
			if f := serverinfo(t, c.Result("get", "", "<query xmlns='http://jabber.org/protocol/disco#info'/>")); f != nil {
				t.Errorf("account info has the server's form: %v", f)
			}
		})
	}
}
