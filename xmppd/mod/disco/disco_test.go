package disco_test

import (
	"crypto/sha1"
	"slices"
	"testing"

	mdisco "mellium.im/xmpp/disco"
	"mellium.im/xmpp/disco/info"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/disco"
	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
	"github.com/hearthchat/hearth/xmppd/mod/roster"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const infoQ = "<query xmlns='http://jabber.org/protocol/disco#info'/>"

func vars(q *stream.Element, local, attr string) []string {
	var out []string
	for _, c := range q.Children() {
		if c.Space == disco.NSInfo && c.Local == local {
			out = append(out, c.Get(attr))
		}
	}
	return out
}

func TestServerInfo(t *testing.T) {
	d := xmpptest.Start(t, nil)
	// A second module registering a feature already there must not make
	// it appear twice (XEP-0115 §5.4 treats duplicates as ill-formed).
	d.Server.AddFeature(server.ToServer, "urn:xmpp:ping")
	c := iqtest.Login(t, d, "alice", "r")
	q := c.Result("get", iqtest.Domain, infoQ)
	if q.Space != disco.NSInfo || q.Local != "query" {
		t.Fatalf("payload %s", q)
	}
	ids := q.Children()[0]
	if ids.Local != "identity" || ids.Get("category") != "server" || ids.Get("type") != "im" || ids.Get("name") != "Hearth" {
		t.Errorf("first identity %s, want server/im Hearth", ids)
	}
	got := vars(q, "feature", "var")
	if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Errorf("features not sorted and unique: %q", got)
	}
	want := slices.Compact(d.Server.Features(server.ToServer))
	if !slices.Equal(got, want) {
		t.Errorf("features\n got %q\nwant %q (every registered one)", got, want)
	}
	for _, f := range []string{disco.NSInfo, disco.NSItems, disco.NSCaps, "urn:xmpp:ping", "jabber:iq:version",
		"urn:xmpp:time", "vcard-temp", "jabber:iq:private", "jabber:iq:last"} {
		if !slices.Contains(got, f) {
			t.Errorf("feature %s missing", f)
		}
	}

	for _, tc := range []struct{ name, payload, cond string }{
		{"unknown node", "<query xmlns='http://jabber.org/protocol/disco#info' node='nope'/>", "item-not-found"},
		{"items", "<query xmlns='http://jabber.org/protocol/disco#items'/>", ""},
		{"items of a node", "<query xmlns='http://jabber.org/protocol/disco#items' node='x'/>", "item-not-found"},
		{"set", infoQ, "service-unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ := "get"
			if tc.name == "set" {
				typ = "set"
			}
			if got := iqtest.Cond(c.IQ(typ, iqtest.Domain, tc.payload)); got != tc.cond {
				t.Errorf("condition %q, want %q", got, tc.cond)
			}
		})
	}

	d.Server.AddDiscoItem(server.DiscoItem{JID: "upload." + iqtest.Domain, Name: "Files"})
	items := c.Result("get", iqtest.Domain, "<query xmlns='http://jabber.org/protocol/disco#items'/>")
	// Other services (groups.<domain>) are listed too; find the one added.
	var it *stream.Element
	for _, x := range items.Children() {
		if x.Space == disco.NSItems && x.Local == "item" && x.Get("jid") == "upload."+iqtest.Domain {
			it = x
		}
	}
	if it == nil || it.Get("name") != "Files" {
		t.Errorf("items %s", items)
	}
}

func TestAccountInfo(t *testing.T) {
	d := xmpptest.Start(t, nil)
	if err := d.Store.CreateAccount("carol", "carol-pw", false); err != nil {
		t.Fatal(err)
	}
	if err := roster.Befriend(d.Server, "alice", "bob"); err != nil {
		t.Fatal(err)
	}
	alice := iqtest.Login(t, d, "alice", "r")
	carol := iqtest.Login(t, d, "carol", "r")
	bob := iqtest.Login(t, d, "bob", "r")
	for _, tc := range []struct {
		name    string
		c       *iqtest.Client
		to      string
		payload string
		cond    string
	}{
		{"own account, no to", alice, "", infoQ, ""},
		{"own bare JID", alice, "alice@" + iqtest.Domain, infoQ, ""},
		{"subscribed contact", bob, "alice@" + iqtest.Domain, infoQ, ""},
		{"stranger", carol, "alice@" + iqtest.Domain, infoQ, "service-unavailable"},
		{"no such account", alice, "nobody@" + iqtest.Domain, infoQ, "service-unavailable"},
		{"node", alice, "", "<query xmlns='http://jabber.org/protocol/disco#info' node='x'/>", "item-not-found"},
		{"items, own", alice, "", "<query xmlns='http://jabber.org/protocol/disco#items'/>", ""},
		{"items, stranger", carol, "alice@" + iqtest.Domain, "<query xmlns='http://jabber.org/protocol/disco#items'/>", "service-unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.c.IQ("get", tc.to, tc.payload)
			if got := iqtest.Cond(r); got != tc.cond {
				t.Fatalf("condition %q, want %q: %s", got, tc.cond, r)
			}
			if tc.cond != "" || r.FirstChild().Space != disco.NSInfo {
				return
			}
			q := r.FirstChild()
			if id := q.Child(disco.NSInfo, "identity"); id == nil || id.Get("category") != "account" || id.Get("type") != "registered" {
				t.Errorf("identity: %s", q)
			}
			if got, want := vars(q, "feature", "var"), slices.Compact(d.Server.Features(server.ToAccount)); !slices.Equal(got, want) {
				t.Errorf("features %q, want %q", got, want)
			}
		})
	}
}

// TestCaps checks the XEP-0115 stream feature against the disco#info
// answer a client would verify it with.
func TestCaps(t *testing.T) {
	d := xmpptest.Start(t, nil)
	raw := xmpptest.Dial(t, d.C2STLSAddr, true)
	raw.Open()
	if el := raw.Auth("SCRAM-SHA-256", "alice", "alice-pw"); el.Local != "success" {
		t.Fatalf("auth: %s", el)
	}
	feats := raw.Open()
	caps := feats.Child(disco.NSCaps, "c")
	if caps == nil {
		t.Fatalf("no caps in %s", feats)
	}
	if caps.Get("hash") != "sha-1" || caps.Get("node") != disco.CapsNode || caps.Get("ver") == "" {
		t.Fatalf("caps %s", caps)
	}
	raw.Bind("r")
	c := &iqtest.Client{Client: raw, JID: "alice@" + iqtest.Domain + "/r"}
	node := disco.CapsNode + "#" + caps.Get("ver")
	q := c.Result("get", iqtest.Domain, "<query xmlns='http://jabber.org/protocol/disco#info' node='"+node+"'/>")
	if q.Get("node") != node {
		t.Errorf("node %q, want %q", q.Get("node"), node)
	}
	if got := disco.Ver(q); got != caps.Get("ver") {
		t.Errorf("ver of the disco#info answer %s, caps say %s", got, caps.Get("ver"))
	}
	// And computed independently (there are no admins, so no forms).
	var mi mdisco.Info
	for _, id := range q.Children() {
		switch id.Local {
		case "identity":
			mi.Identity = append(mi.Identity, info.Identity{Category: id.Get("category"), Type: id.Get("type"), Name: id.Get("name")})
		case "feature":
			mi.Features = append(mi.Features, info.Feature{Var: id.Get("var")})
		default:
			t.Fatalf("unexpected %s", id)
		}
	}
	if want := mi.Hash(sha1.New()); caps.Get("ver") != want {
		t.Errorf("ver %s, mellium computes %s", caps.Get("ver"), want)
	}
}
