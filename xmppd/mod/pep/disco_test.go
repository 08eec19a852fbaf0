package pep_test

import (
	"testing"

	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
)

const (
	nsInfo  = "http://jabber.org/protocol/disco#info"
	nsItems = "http://jabber.org/protocol/disco#items"
)

// TestDisco: the account is a pubsub/pep service with the features
// clients check (XEP-0163 §8; Conversations looks for publish-options),
// and its disco#items lists the nodes the asker may read.
func TestDisco(t *testing.T) {
	_, alice, bob := start(t)
	aj := "alice@" + iqtest.Domain
	q := bob.Result("get", aj, "<query xmlns='"+nsInfo+"'/>")
	pep := false
	feats := map[string]bool{}
	for _, c := range q.Children() {
		if c.Local == "identity" && c.Get("category") == "pubsub" && c.Get("type") == "pep" {
			pep = true
		}
		feats[c.Get("var")] = true
	}
	if !pep {
		t.Errorf("no pubsub/pep identity: %s", q)
	}
	for _, f := range []string{"http://jabber.org/protocol/pubsub#publish", "http://jabber.org/protocol/pubsub#publish-options",
		"http://jabber.org/protocol/pubsub#auto-create", "urn:xmpp:bookmarks:1#compat", "urn:xmpp:pep-vcard-conversion:0"} {
		if !feats[f] {
			t.Errorf("no feature %s", f)
		}
	}
	alice.Result("set", "", publish("visible", "1", "<x xmlns='urn:t'/>", ""))
	alice.Result("set", "", publish("private", "1", "<x xmlns='urn:t'/>", openOpts(field("pubsub#access_model", "whitelist"))))
	list := func(c *iqtest.Client) []string {
		var out []string
		for _, it := range c.Result("get", aj, "<query xmlns='"+nsItems+"'/>").Children() {
			out = append(out, it.Get("node"))
		}
		return out
	}
	if got := list(bob); len(got) != 1 || got[0] != "visible" {
		t.Errorf("bob sees %v", got)
	}
	if got := list(alice); len(got) != 2 {
		t.Errorf("alice sees %v", got)
	}
}

// TestAccountDeleted: the account's nodes and their charge go with it.
func TestAccountDeleted(t *testing.T) {
	d, alice, bob := start(t)
	alice.Result("set", "", publish("n", "1", "<x xmlns='urn:t'/>", openOpts(field("pubsub#access_model", "open"))))
	if err := d.Server.DeleteAccount("alice"); err != nil {
		t.Fatal(err)
	}
	if err := d.Store.CreateAccount("alice", "alice-pw", false); err != nil {
		t.Fatal(err)
	}
	if c := iqtest.Cond(bob.IQ("get", "alice@"+iqtest.Domain, items("n", ""))); c != "item-not-found" {
		t.Fatalf("node survived the account: %q", c)
	}
	if u, _ := d.Store.Usage("alice"); u["pep"].Items != 0 {
		t.Fatalf("pep usage after deletion: %v", u)
	}
}
