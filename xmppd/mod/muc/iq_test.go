package muc_test

import (
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd/mod/internal/modtest"
	"github.com/hearthchat/hearth/xmppd/stream"
)

func isIQ(typ string) func(*stream.Element) bool {
	return func(el *stream.Element) bool { return el.Local == "iq" && el.Get("type") == typ }
}

func setAllowPM(t *testing.T, c *modtest.Client, v string) {
	t.Helper()
	if r := iq(t, c, "set", room, "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"+
		"<field var='muc#roomconfig_allowpm'><value>"+v+"</value></field></x></query>"); r.Get("type") != "result" {
		t.Fatalf("allowpm %s: %s", v, r)
	}
}

// TestOccupantIQ: an iq to room/nick reaches that occupant's client from
// the asker's occupant JID (the real JID stays hidden) and the answer
// comes back from room/nick with the asker's id; a forged answer goes
// nowhere; a vCard query is answered by the occupant's account; a
// non-occupant gets not-acceptable, an absent nick item-not-found, and
// allowpm refuses iqs and private messages alike.
func TestOccupantIQ(t *testing.T) {
	d := start(t)
	alice, bob, carol := login(t, d, "alice"), login(t, d, "bob"), login(t, d, "carol")
	create(t, alice, room, "alice", "")
	join(t, bob, room, "bob", "")
	alice.Sync()

	alice.Sendf("<iq type='get' id='v1' to='%s/bob'><query xmlns='jabber:iq:version'/></iq>", room)
	got := bob.Expect("forwarded iq", isIQ("get"))
	if got.Get("from") != room+"/alice" || got.Get("to") != "bob@example.test/r" || got.Get("id") == "v1" {
		t.Fatalf("forwarded iq addresses: %s", got)
	}
	if strings.Contains(got.String(), "alice@example.test") {
		t.Fatalf("the asker's real JID reached the occupant: %s", got)
	}
	// A forged answer (another id) is dropped; the true one goes back.
	bob.Sendf("<iq type='result' id='%sX' to='%s/alice'><query xmlns='jabber:iq:version'><name>forged</name></query></iq>", got.Get("id"), room)
	bob.Sendf("<iq type='result' id='%s' to='%s/alice'><query xmlns='jabber:iq:version'><name>bobclient</name></query></iq>", got.Get("id"), room)
	res := alice.Expect("answer", isIQ("result"))
	if res.Get("id") != "v1" || res.Get("from") != room+"/bob" || !strings.Contains(res.String(), "bobclient") {
		t.Fatalf("answer: %s", res)
	}
	alice.Quiet("the forged answer went nowhere")
	// An answer from another occupant with bob's id: dropped.
	carol.Sendf("<iq type='result' id='%s' to='%s/alice'/>", got.Get("id"), room)
	carol.Sync()
	alice.Quiet("an answer from someone else went nowhere")

	// vCard: answered by bob's account, not his client.
	if r := iq(t, bob, "set", "", "<vCard xmlns='vcard-temp'><FN>Bob Builder</FN></vCard>"); r.Get("type") != "result" {
		t.Fatalf("bob's vCard: %s", r)
	}
	if r := iq(t, alice, "get", room+"/bob", "<vCard xmlns='vcard-temp'/>"); r.Get("from") != room+"/bob" || !strings.Contains(r.String(), "Bob Builder") {
		t.Fatalf("occupant vCard: %s", r)
	}
	bob.Quiet("the vCard query was the account's")

	if r := iq(t, carol, "get", room+"/bob", "<query xmlns='jabber:iq:version'/>"); modtest.ErrCond(r) != "not-acceptable" {
		t.Fatalf("non-occupant: %s", r)
	}
	if r := iq(t, alice, "get", room+"/nobody", "<query xmlns='jabber:iq:version'/>"); modtest.ErrCond(r) != "item-not-found" {
		t.Fatalf("absent occupant: %s", r)
	}
	// The occupant's client answers with an error: it comes back.
	alice.Sendf("<iq type='get' id='v2' to='%s/bob'><query xmlns='urn:example:unknown'/></iq>", room)
	got = bob.Expect("forwarded iq", isIQ("get"))
	bob.Sendf("<iq type='error' id='%s' to='%s/alice'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>", got.Get("id"), room)
	if e := alice.Expect("error answer", isIQ("error")); e.Get("id") != "v2" || modtest.ErrCond(e) != "service-unavailable" {
		t.Fatalf("error answer: %s", e)
	}

	// allowpm: moderators only, then nobody.
	setAllowPM(t, alice, "moderators")
	bob.Sync()
	if info := iq(t, bob, "get", room, "<query xmlns='http://jabber.org/protocol/disco#info'/>"); !strings.Contains(info.String(),
		"<field var='muc#roomconfig_allowpm' type='list-single'><value>moderators</value></field>") {
		t.Fatalf("allowpm not in the room's disco#info: %s", info)
	}
	if r := iq(t, bob, "get", room+"/alice", "<query xmlns='jabber:iq:version'/>"); modtest.ErrCond(r) != "forbidden" {
		t.Fatalf("participant iq with allowpm=moderators: %s", r)
	}
	bob.Sendf("<message to='%s/alice' type='chat'><body>psst</body></message>", room)
	if e := bob.Expect("error", isErrorMsg); modtest.ErrCond(e) != "forbidden" {
		t.Fatalf("participant pm with allowpm=moderators: %s", e)
	}
	alice.Sendf("<iq type='get' id='v3' to='%s/bob'><query xmlns='jabber:iq:version'/></iq>", room)
	bob.Expect("a moderator's iq", isIQ("get"))
	setAllowPM(t, alice, "none")
	if r := iq(t, alice, "get", room+"/bob", "<query xmlns='jabber:iq:version'/>"); modtest.ErrCond(r) != "forbidden" {
		t.Fatalf("iq with allowpm=none: %s", r)
	}
}
