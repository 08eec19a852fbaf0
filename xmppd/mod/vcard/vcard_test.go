package vcard_test

import (
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
	"github.com/hearthchat/hearth/xmppd/mod/vcard"
)

const ns = "vcard-temp"

func TestVCard(t *testing.T) {
	d := xmpptest.Start(t, nil)
	alice := iqtest.Login(t, d, "alice", "r")
	bob := iqtest.Login(t, d, "bob", "r")
	aliceJID := "alice@" + iqtest.Domain
	card := "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>al</NICKNAME></vCard>"

	// Nothing stored yet: an empty card.
	if q := alice.Result("get", "", "<vCard xmlns='vcard-temp'/>"); q.Local != "vCard" || len(q.Children()) != 0 {
		t.Fatalf("empty card: %s", q)
	}
	if q := alice.Result("set", "", card); q != nil {
		t.Fatalf("set answered %s", q)
	}
	big := "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>" +
		strings.Repeat("A", vcard.MaxSize) + "</BINVAL></PHOTO></vCard>"
	for _, tc := range []struct {
		name     string
		c        *iqtest.Client
		typ, to  string
		payload  string
		cond, fn string
	}{
		{"own, no to", alice, "get", "", "<vCard xmlns='vcard-temp'/>", "", "Alice Liddell"},
		{"own, bare JID", alice, "get", aliceJID, "<vCard xmlns='vcard-temp'/>", "", "Alice Liddell"},
		{"another member reads it", bob, "get", aliceJID, "<vCard xmlns='vcard-temp'/>", "", "Alice Liddell"},
		{"another member cannot write it", bob, "set", aliceJID, "<vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard>", "forbidden", ""},
		{"too large", alice, "set", "", big, "not-acceptable", ""},
		{"still the old card", bob, "get", aliceJID, "<vCard xmlns='vcard-temp'/>", "", "Alice Liddell"},
		{"no such account", alice, "get", "nobody@" + iqtest.Domain, "<vCard xmlns='vcard-temp'/>", "service-unavailable", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.c.IQ(tc.typ, tc.to, tc.payload)
			if got := iqtest.Cond(r); got != tc.cond {
				t.Fatalf("condition %q, want %q: %.300s", got, tc.cond, r)
			}
			if tc.fn != "" {
				if got := r.FirstChild().ChildText(ns, "FN"); got != tc.fn {
					t.Errorf("FN %q, want %q: %s", got, tc.fn, r)
				}
			}
		})
	}
	// A card just under the cap is kept whole.
	photo := strings.Repeat("B", vcard.MaxSize-200)
	alice.Result("set", "", "<vCard xmlns='vcard-temp'><PHOTO><BINVAL>"+photo+"</BINVAL></PHOTO></vCard>")
	if got := bob.Result("get", aliceJID, "<vCard xmlns='vcard-temp'/>").Child(ns, "PHOTO").ChildText(ns, "BINVAL"); got != photo {
		t.Errorf("photo of %d bytes came back as %d bytes", len(photo), len(got))
	}
	// The card is gone with the account.
	if err := d.Server.DeleteAccount("alice"); err != nil {
		t.Fatal(err)
	}
	if err := d.Store.CreateAccount("alice", "alice-pw", false); err != nil {
		t.Fatal(err)
	}
	if q := bob.Result("get", aliceJID, "<vCard xmlns='vcard-temp'/>"); len(q.Children()) != 0 {
		t.Errorf("card survived the account: %.200s", q)
	}
}

// TestVCard4View: vcard-temp readers get the name from the account's
// vCard4 (XEP-0292) and what vCard4 does not map from the stored card; a
// vCard4 publish drops the stored name, so it stays gone when the vCard4
// is deleted.
func TestVCard4View(t *testing.T) {
	d := xmpptest.Start(t, nil)
	alice := iqtest.Login(t, d, "alice", "r")
	bob := iqtest.Login(t, d, "bob", "r")
	aliceJID := "alice@" + iqtest.Domain
	alice.Result("set", "", "<vCard xmlns='vcard-temp'><FN>Old</FN><NOTE>kept</NOTE></vCard>")
	alice.Result("set", "", "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:vcard4'><item id='current'>"+
		"<vcard xmlns='urn:ietf:params:xml:ns:vcard-4.0'><fn><text>Alice</text></fn></vcard></item></publish></pubsub>")
	q := bob.Result("get", aliceJID, "<vCard xmlns='vcard-temp'/>")
	if q.ChildText(ns, "FN") != "Alice" || q.ChildText(ns, "NOTE") != "kept" || len(q.Children()) != 2 {
		t.Fatalf("vcard-temp view of the vCard4: %s", q)
	}
	alice.Result("set", "", "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='urn:xmpp:vcard4'/></pubsub>")
	if q := bob.Result("get", aliceJID, "<vCard xmlns='vcard-temp'/>"); q.Child(ns, "FN") != nil || q.ChildText(ns, "NOTE") != "kept" {
		t.Fatalf("after the vCard4 was deleted: %s", q)
	}
}
