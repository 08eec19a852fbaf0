package pep_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
	"github.com/hearthchat/hearth/xmppd/mod/pep"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const (
	devicelist = "eu.siacs.conversations.axolotl.devicelist"
	devices2   = "urn:xmpp:omemo:2:devices"
)

func openOpts(extra string) string {
	return "<publish-options><x xmlns='jabber:x:data' type='submit'>" +
		"<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
		extra + "</x></publish-options>"
}

func field(v, val string) string { return "<field var='" + v + "'><value>" + val + "</value></field>" }

func publish(node, id, payload, opts string) string {
	return "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='" + node + "'><item id='" + id + "'>" +
		payload + "</item></publish>" + opts + "</pubsub>"
}

func items(node, extra string) string {
	return "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='" + node + "'" + extra + "/></pubsub>"
}

// online sends available presence with caps ver and answers the server's
// disco#info with feats (the +notify list), as a client would.
func online(t *testing.T, c *iqtest.Client, ver string, feats ...string) {
	t.Helper()
	c.Send("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://test' ver='" + ver + "'/></presence>")
	for range 50 {
		el := c.El()
		q := el.Child("http://jabber.org/protocol/disco#info", "query")
		if el.Local != "iq" || el.Get("type") != "get" || q == nil {
			continue
		}
		if q.Get("node") != "https://test#"+ver {
			t.Fatalf("disco#info for node %q", q.Get("node"))
		}
		var b strings.Builder
		for _, f := range feats {
			b.WriteString("<feature var='" + f + "'/>")
		}
		c.Send("<iq type='result' id='" + el.Get("id") + "' to='" + el.Get("from") + "'><query xmlns='http://jabber.org/protocol/disco#info'>" + b.String() + "</query></iq>")
		return
	}
	t.Fatal("the server never asked for the caps")
}

// event reads until a pubsub event for node arrives and returns its
// <items/> (or purge/delete) child.
func event(t *testing.T, c *iqtest.Client, node string) *stream.Element {
	t.Helper()
	for range 50 {
		el := c.El()
		if el.Local != "message" {
			continue
		}
		if ev := el.Child(pep.NSEvent, "event"); ev != nil && ev.FirstChild().Get("node") == node {
			return ev.FirstChild()
		}
	}
	t.Fatalf("no event for %s", node)
	return nil
}

// noEvent checks nothing for node arrived before the answer to a ping.
func noEvent(t *testing.T, c *iqtest.Client, node string) {
	t.Helper()
	id := "sync"
	c.Send("<iq type='get' id='" + id + "'><ping xmlns='urn:xmpp:ping'/></iq>")
	for range 50 {
		el := c.El()
		if el.Local == "iq" && el.Get("id") == id {
			return
		}
		if ev := el.Child(pep.NSEvent, "event"); ev != nil && ev.FirstChild().Get("node") == node {
			t.Fatalf("%s got an event it must not: %s", c.JID, el)
		}
	}
	t.Fatal("no ping answer")
}

func start(t *testing.T) (*xmppd.Daemon, *iqtest.Client, *iqtest.Client) {
	d := xmpptest.Start(t, nil)
	if err := d.Server.Contacts().Befriend("alice", "bob", ""); err != nil {
		t.Fatal(err)
	}
	return d, iqtest.Login(t, d, "alice", "a"), iqtest.Login(t, d, "bob", "b")
}

// TestOMEMONotifyAndFetch: the device list with Conversations' options
// (open access) reaches a contact that asked +notify, which can fetch
// it and the bundle; the last item comes on the contact's next presence.
func TestOMEMONotifyAndFetch(t *testing.T) {
	d, alice, bob := start(t)
	online(t, bob, "v1", devicelist+"+notify", devices2+"+notify")
	online(t, alice, "v1", devicelist+"+notify")
	alice2 := iqtest.Login(t, d, "alice", "a2")
	online(t, alice2, "v1b", devicelist+"+notify")
	list := "<list xmlns='eu.siacs.conversations.axolotl'><device id='1234'/></list>"
	alice.Result("set", "", publish(devicelist, "current", list, openOpts(field("pubsub#access_model", "open"))))
	ev := event(t, bob, devicelist)
	if it := ev.Child(pep.NSEvent, "item"); it == nil || it.Get("id") != "current" || it.Child("eu.siacs.conversations.axolotl", "list") == nil {
		t.Fatalf("bob's event: %s", ev)
	}
	event(t, alice2, devicelist) // own resources too
	bundle := "eu.siacs.conversations.axolotl.bundles:1234"
	alice.Result("set", "", publish(bundle, "current", "<bundle xmlns='eu.siacs.conversations.axolotl'><signedPreKeyPublic signedPreKeyId='1'>AAAA</signedPreKeyPublic></bundle>", openOpts(field("pubsub#access_model", "open"))))
	noEvent(t, bob, bundle) // no +notify for bundles

	aj := "alice@" + iqtest.Domain
	got := bob.Result("get", aj, items(bundle, "")).Child(pep.NS, "items")
	if len(got.Children()) != 1 || got.FirstChild().Get("id") != "current" {
		t.Fatalf("bob fetched %s", got)
	}
	// A stranger reads the open node (OMEMO from non-contacts) but not a
	// presence node.
	if err := d.Store.CreateAccount("carol", "carol-pw", false); err != nil {
		t.Fatal(err)
	}
	carol := iqtest.Login(t, d, "carol", "c")
	carol.Result("get", aj, items(devicelist, ""))
	alice.Result("set", "", publish("urn:xmpp:avatar:metadata", "x", "<metadata xmlns='urn:xmpp:avatar:metadata'/>", ""))
	if c := iqtest.Cond(carol.IQ("get", aj, items("urn:xmpp:avatar:metadata", ""))); c != "not-authorized" {
		t.Fatalf("stranger on a presence node: %q", c)
	}
	bob.Result("get", aj, items("urn:xmpp:avatar:metadata", ""))

	// omemo:2 with max_items max keeps many items, latest-N and by id.
	opts2 := openOpts(field("pubsub#access_model", "open") + field("pubsub#max_items", "max"))
	for i := range 5 {
		alice.Result("set", "", publish("urn:xmpp:omemo:2:bundles", fmt.Sprint(i), "<bundle xmlns='urn:xmpp:omemo:2'/>", opts2))
	}
	if got := bob.Result("get", aj, items("urn:xmpp:omemo:2:bundles", "")).FirstChild(); len(got.Children()) != 5 {
		t.Fatalf("all items: %s", got)
	}
	if got := bob.Result("get", aj, items("urn:xmpp:omemo:2:bundles", " max_items='2'")).FirstChild(); len(got.Children()) != 2 || got.Children()[1].Get("id") != "4" {
		t.Fatalf("latest 2: %s", got)
	}
	byID := "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:omemo:2:bundles'><item id='1'/></items></pubsub>"
	if got := bob.Result("get", aj, byID).FirstChild(); len(got.Children()) != 1 || got.FirstChild().Get("id") != "1" {
		t.Fatalf("by id: %s", got)
	}

	// Last item on presence: bob's new resource with a new ver.
	bob2 := iqtest.Login(t, d, "bob", "b2")
	online(t, bob2, "v2", devicelist+"+notify")
	if it := event(t, bob2, devicelist).FirstChild(); it.Get("id") != "current" {
		t.Fatalf("last item: %s", it)
	}
	// A known ver (cached per account) needs no disco round trip.
	bob3 := iqtest.Login(t, d, "bob", "b3")
	bob3.Send("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://test' ver='v2'/></presence>")
	event(t, bob3, devicelist)

	// Retract with notify, purge, delete.
	alice.Result("set", "", "<pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='"+devicelist+"' notify='true'><item id='current'/></retract></pubsub>")
	if r := event(t, bob, devicelist).Child(pep.NSEvent, "retract"); r == nil || r.Get("id") != "current" {
		t.Fatal("no retract event")
	}
	alice.Result("set", "", publish(devicelist, "current", list, ""))
	alice.Result("set", "", "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><purge node='"+devicelist+"'/></pubsub>")
	if got := bob.Result("get", aj, items(devicelist, "")).FirstChild(); len(got.Children()) != 0 {
		t.Fatalf("after purge: %s", got)
	}
	alice.Result("set", "", "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='"+devicelist+"'/></pubsub>")
	if c := iqtest.Cond(bob.IQ("get", aj, items(devicelist, ""))); c != "item-not-found" {
		t.Fatalf("after delete: %q", c)
	}
}

// TestConfigure: get and set the configuration; Conversations' recovery
// from precondition-not-met (reconfigure, publish again) works.
func TestConfigure(t *testing.T) {
	_, alice, bob := start(t)
	alice.Result("set", "", publish("n", "1", "<x xmlns='urn:t'/>", ""))
	cfg := alice.Result("get", "", "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n'/></pubsub>")
	if !strings.Contains(cfg.String(), "presence") {
		t.Fatalf("default access model: %s", cfg)
	}
	r := alice.IQ("set", "", publish("n", "2", "<x xmlns='urn:t'/>", openOpts(field("pubsub#access_model", "open"))))
	if iqtest.Cond(r) != "conflict" || !strings.Contains(r.String(), "precondition-not-met") {
		t.Fatalf("precondition: %s", r)
	}
	alice.Result("set", "", "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>"+field("pubsub#access_model", "open")+field("pubsub#max_items", "3")+"</x></configure></pubsub>")
	alice.Result("set", "", publish("n", "2", "<x xmlns='urn:t'/>", openOpts(field("pubsub#access_model", "open"))))
	if got := bob.Result("get", "alice@"+iqtest.Domain, items("n", "")).FirstChild(); len(got.Children()) != 2 {
		t.Fatalf("items: %s", got)
	}
	// Another's configuration is not ours to read or change.
	if c := iqtest.Cond(bob.IQ("get", "alice@"+iqtest.Domain, "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='n'/></pubsub>")); c != "forbidden" {
		t.Fatalf("bob reads alice's config: %q", c)
	}
}

// TestBadInput: each bad request gets its error and changes nothing.
func TestBadInput(t *testing.T) {
	d, alice, bob := start(t)
	aj := "alice@" + iqtest.Domain
	alice.Result("set", "", publish("n", "1", "<x xmlns='urn:t'>one</x>", ""))
	huge := strings.Repeat("A", pep.MaxItemSize)
	for _, tc := range []struct {
		name string
		c    *iqtest.Client
		to   string
		q    string
		cond string
		app  string
	}{
		{"another's node", bob, aj, publish("n", "1", "<x xmlns='urn:t'>evil</x>", ""), "forbidden", ""},
		{"no node", alice, "", publish("", "1", "<x xmlns='urn:t'/>", ""), "bad-request", "nodeid-required"},
		{"no item", alice, "", "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'/></pubsub>", "bad-request", "item-required"},
		{"two payloads", alice, "", publish("n", "1", "<x xmlns='urn:t'/><y xmlns='urn:t'/>", ""), "bad-request", "invalid-payload"},
		{"no payload", alice, "", publish("n", "1", "", ""), "bad-request", "payload-required"},
		{"item over the cap", alice, "", publish("n", "1", "<data xmlns='urn:xmpp:avatar:data'>"+huge+"</data>", ""), "not-acceptable", "payload-too-big"},
		{"unknown access model", alice, "", publish("new", "1", "<x xmlns='urn:t'/>", openOpts(field("pubsub#access_model", "everyone"))), "not-acceptable", "unsupported-access-model"},
		{"precondition", alice, "", publish("n", "1", "<x xmlns='urn:t'>two</x>", openOpts(field("pubsub#access_model", "whitelist"))), "conflict", "precondition-not-met"},
		{"max_items past the cap", alice, "", publish("new", "1", "<x xmlns='urn:t'/>", openOpts(field("pubsub#max_items", "100000"))), "not-acceptable", ""},
		{"another's retract", bob, aj, "<pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='n'><item id='1'/></retract></pubsub>", "forbidden", ""},
		{"another's purge", bob, aj, "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><purge node='n'/></pubsub>", "forbidden", ""},
		{"another's delete", bob, aj, "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='n'/></pubsub>", "forbidden", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.c.IQ("set", tc.to, tc.q)
			if got := iqtest.Cond(r); got != tc.cond {
				t.Fatalf("condition %q, want %q: %.300s", got, tc.cond, r)
			}
			if tc.app != "" && r.Child(stream.NSClient, "error").Child("http://jabber.org/protocol/pubsub#errors", tc.app) == nil {
				t.Fatalf("no %s: %.300s", tc.app, r)
			}
			got := alice.Result("get", "", items("n", "")).FirstChild()
			if len(got.Children()) != 1 || got.FirstChild().FirstChild().Text() != "one" {
				t.Fatalf("the node changed: %.300s", got)
			}
			if c := iqtest.Cond(alice.IQ("get", "", items("new", ""))); c != "item-not-found" {
				t.Fatalf("node 'new' exists: %q", c)
			}
		})
	}
	// Nodes: the cap, then resource-constraint, and nothing more stored.
	for i := 1; i < pep.MaxNodes; i++ {
		alice.Result("set", "", publish(fmt.Sprint("node", i), "1", "<x xmlns='urn:t'/>", ""))
	}
	before, _ := d.Store.Usage("alice")
	for i := range 20 {
		r := alice.IQ("set", "", publish(fmt.Sprint("extra", i), "1", "<x xmlns='urn:t'/>", ""))
		if c := iqtest.Cond(r); c != "resource-constraint" {
			t.Fatalf("node %d past the cap: %q", pep.MaxNodes+i, c)
		}
	}
	after, _ := d.Store.Usage("alice")
	if before[pep.Kind] != after[pep.Kind] || after[pep.Kind].Items == 0 {
		t.Fatalf("usage changed by refused writes: %v → %v", before[pep.Kind], after[pep.Kind])
	}
	// Deleting a node makes room again.
	alice.Result("set", "", "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='node1'/></pubsub>")
	alice.Result("set", "", publish("extra0", "1", "<x xmlns='urn:t'/>", ""))
}

// TestHugeAvatar: a 10 MB avatar never reaches PEP (the stanza limit
// ends the stream) and nothing is stored.
func TestHugeAvatar(t *testing.T) {
	d, alice, _ := start(t)
	alice.Result("set", "", publish("urn:xmpp:avatar:data", "1", "<data xmlns='urn:xmpp:avatar:data'>small</data>", ""))
	huge := strings.Repeat("A", 10<<20)
	go alice.C.Write([]byte("<iq type='set' id='big'>" + publish("urn:xmpp:avatar:data", "2", "<data xmlns='urn:xmpp:avatar:data'>"+huge+"</data>", "") + "</iq>"))
	alice.StreamError("policy-violation")
	again := iqtest.Login(t, d, "alice", "again")
	got := again.Result("get", "", items("urn:xmpp:avatar:data", "")).FirstChild()
	if len(got.Children()) != 1 || got.FirstChild().Get("id") != "1" {
		t.Fatalf("after the 10 MB avatar: %.200s", got)
	}
}
