package pep_test

import (
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
	"github.com/hearthchat/hearth/xmppd/mod/pep"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const (
	nsV4       = "urn:ietf:params:xml:ns:vcard-4.0"
	vcardTempQ = "<vCard xmlns='vcard-temp'/>"
)

func vcard4(props string) string { return "<vcard xmlns='" + nsV4 + "'>" + props + "</vcard>" }

// fnOf is the FN text of the vCard4 in a pubsub items answer or event.
func fnOf(items *stream.Element) string {
	it := items.FirstChild()
	if it == nil || it.FirstChild() == nil {
		return ""
	}
	return it.FirstChild().Child(nsV4, "fn").ChildText(nsV4, "text")
}

// accessOf is alice's configured access model of node.
func accessOf(t *testing.T, c *iqtest.Client, node string) string {
	t.Helper()
	x := c.Result("get", "", "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='"+node+"'/></pubsub>").FirstChild().FirstChild()
	for _, f := range x.Children() {
		if f.Get("var") == "pubsub#access_model" {
			return f.ChildText("jabber:x:data", "value")
		}
	}
	return ""
}

// TestVCard4: a vCard4 published as Gajim does (presence access) reaches
// a contact that asked urn:xmpp:vcard4+notify, which reads it by PEP and
// through vcard-temp; a stranger gets neither. A vcard-temp set rewrites
// the mapped properties (keeping GENDER) under the member's access model
// and is notified, once; after the vCard4 is deleted, vcard-temp does
// not bring back the name.
func TestVCard4(t *testing.T) {
	d, alice, bob := start(t)
	if err := d.Store.CreateAccount("carol", "carol-pw", false); err != nil {
		t.Fatal(err)
	}
	carol := iqtest.Login(t, d, "carol", "c")
	aj := "alice@" + iqtest.Domain
	online(t, bob, "v4", pep.NodeVCard4+"+notify")

	feats := map[string]bool{}
	for _, f := range bob.Result("get", aj, "<query xmlns='"+nsInfo+"'/>").Children() {
		feats[f.Get("var")] = true
	}
	if !feats[nsV4] {
		t.Errorf("alice's account does not advertise %s", nsV4)
	}

	gajim := openOpts(field("pubsub#persist_items", "true") + field("pubsub#access_model", "presence"))
	alice.Result("set", "", publish(pep.NodeVCard4, "current",
		vcard4("<fn><text>Alice</text></fn><nickname><text>al</text></nickname><gender><sex><text>F</text></sex></gender>"), gajim))
	if got := fnOf(event(t, bob, pep.NodeVCard4)); got != "Alice" {
		t.Fatalf("event FN %q", got)
	}
	if got := fnOf(bob.Result("get", aj, items(pep.NodeVCard4, "")).FirstChild()); got != "Alice" {
		t.Fatalf("bob read FN %q", got)
	}
	r := carol.IQ("get", aj, items(pep.NodeVCard4, ""))
	if c := iqtest.Cond(r); c != "not-authorized" {
		t.Fatalf("stranger's PEP read: %q %.300s", c, r)
	}
	card := bob.Result("get", aj, vcardTempQ)
	if card.ChildText("vcard-temp", "FN") != "Alice" || card.ChildText("vcard-temp", "NICKNAME") != "al" {
		t.Fatalf("bob's vcard-temp view: %s", card)
	}
	if card := carol.Result("get", aj, vcardTempQ); card.Child("vcard-temp", "FN") != nil {
		t.Fatalf("the card kept to contacts reached a stranger through vcard-temp: %s", card)
	}

	// A vcard-temp client renames her.
	alice.Result("set", "", "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>al</NICKNAME><NOTE>hi</NOTE></vCard>")
	ev := event(t, bob, pep.NodeVCard4)
	if got := fnOf(ev); got != "Alice Liddell" {
		t.Fatalf("event after the vcard-temp set: %s", ev)
	}
	v4 := alice.Result("get", "", items(pep.NodeVCard4, "")).FirstChild()
	if it := v4.FirstChild(); len(v4.Children()) != 1 || it.Get("id") != "current" || it.FirstChild().Child(nsV4, "gender") == nil {
		t.Fatalf("vCard4 after the vcard-temp set: %s", v4)
	}
	if a := accessOf(t, alice, pep.NodeVCard4); a != "presence" {
		t.Fatalf("access model became %q", a)
	}
	// The same names again (only NOTE changed): no vCard4 event.
	alice.Result("set", "", "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>al</NICKNAME><NOTE>hello</NOTE></vCard>")
	noEvent(t, bob, pep.NodeVCard4)
	if card := bob.Result("get", aj, vcardTempQ); card.ChildText("vcard-temp", "NOTE") != "hello" || card.ChildText("vcard-temp", "FN") != "Alice Liddell" {
		t.Fatalf("vcard-temp after the second set: %s", card)
	}

	alice.Result("set", "", "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='"+pep.NodeVCard4+"'/></pubsub>")
	card = bob.Result("get", aj, vcardTempQ)
	if card.Child("vcard-temp", "FN") != nil || card.ChildText("vcard-temp", "NOTE") != "hello" {
		t.Fatalf("vcard-temp after the vCard4 was deleted: %s", card)
	}
}

// TestVCard4FromLegacy: an account with no vCard4 gets one, open like
// vcard-temp, from its first vcard-temp set with a name; one with only a
// PHOTO makes none.
func TestVCard4FromLegacy(t *testing.T) {
	d, alice, _ := start(t)
	if err := d.Store.CreateAccount("carol", "carol-pw", false); err != nil {
		t.Fatal(err)
	}
	carol := iqtest.Login(t, d, "carol", "c")
	aj := "alice@" + iqtest.Domain
	b64, _ := image("photo only")
	alice.Result("set", "", "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>"+b64+"</BINVAL></PHOTO></vCard>")
	if c := iqtest.Cond(alice.IQ("get", "", items(pep.NodeVCard4, ""))); c != "item-not-found" {
		t.Fatalf("a PHOTO-only card made a vCard4: %q", c)
	}
	alice.Result("set", "", "<vCard xmlns='vcard-temp'><FN>Alice</FN><TEL><CELL/><NUMBER>+44 1865 0</NUMBER></TEL></vCard>")
	got := carol.Result("get", aj, items(pep.NodeVCard4, "")).FirstChild()
	if fnOf(got) != "Alice" || got.FirstChild().FirstChild().Child(nsV4, "tel").ChildText(nsV4, "text") != "+44 1865 0" {
		t.Fatalf("vCard4 from vcard-temp: %s", got)
	}
	if a := accessOf(t, alice, pep.NodeVCard4); a != "open" {
		t.Fatalf("access model %q, want open", a)
	}
}

// TestVCard4BadInput: the node holds vCard4 cards only, under PEP's size
// limit; a refused publish changes nothing.
func TestVCard4BadInput(t *testing.T) {
	_, alice, _ := start(t)
	huge := strings.Repeat("A", pep.MaxItemSize)
	for _, tc := range []struct {
		name, payload, cond, app string
	}{
		{"vcard-temp payload", "<vCard xmlns='vcard-temp'><FN>A</FN></vCard>", "bad-request", "invalid-payload"},
		{"wrong namespace", "<vcard xmlns='urn:example:vcard'/>", "bad-request", "invalid-payload"},
		{"vcards root", "<vcards xmlns='" + nsV4 + "'>" + vcard4("") + "</vcards>", "bad-request", "invalid-payload"},
		{"over the cap", vcard4("<note><text>" + huge + "</text></note>"), "not-acceptable", "payload-too-big"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := alice.IQ("set", "", publish(pep.NodeVCard4, "current", tc.payload, ""))
			if c := iqtest.Cond(r); c != tc.cond {
				t.Fatalf("condition %q, want %q: %.300s", c, tc.cond, r)
			}
			if r.Child(stream.NSClient, "error").Child("http://jabber.org/protocol/pubsub#errors", tc.app) == nil {
				t.Fatalf("no %s: %.300s", tc.app, r)
			}
			if c := iqtest.Cond(alice.IQ("get", "", items(pep.NodeVCard4, ""))); c != "item-not-found" {
				t.Fatalf("the refused publish made the node: %q", c)
			}
		})
	}
	// The same payloads go to other nodes as before.
	alice.Result("set", "", publish("urn:example:other", "1", "<vCard xmlns='vcard-temp'/>", ""))
}
