package muc_test

import (
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd/mod/internal/modtest"
	"github.com/hearthchat/hearth/xmppd/mod/muc"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// TestRoomLocked: a room made by a join is locked (XEP-0045 §10.1.1):
// others joining get item-not-found, it is neither listed nor described
// to them, the owner's other client gets in; the instant-room request
// opens it without a 104; cancelling the first form destroys the room
// (§10.1.3), a cancel later changes nothing; a join without the MUC <x/>
// (the old groupchat protocol) and the server's own rooms are not
// locked.
func TestRoomLocked(t *testing.T) {
	d := start(t)
	alice, bob, carol := login(t, d, "alice"), login(t, d, "bob"), login(t, d, "carol")
	phone := modtest.Login(t, d, "alice", "phone")
	phone.Send("<presence/>")
	phone.Sync()

	self, _ := join(t, alice, room, "alice", "")
	if !codes(self)["201"] {
		t.Fatalf("no 201 for the room's creation: %s", self)
	}
	if got := joinErr(t, bob, room, "bob", ""); got != "item-not-found" {
		t.Fatalf("bob joining the locked room: %s, want item-not-found", got)
	}
	if r := iq(t, bob, "get", room, "<query xmlns='http://jabber.org/protocol/disco#info'/>"); modtest.ErrCond(r) != "item-not-found" {
		t.Fatalf("disco#info of a locked room to another: %s", r)
	}
	if items := iq(t, bob, "get", host, "<query xmlns='http://jabber.org/protocol/disco#items'/>"); strings.Contains(items.String(), room) {
		t.Fatalf("locked room listed: %s", items)
	}
	if r := iq(t, alice, "get", room, "<query xmlns='http://jabber.org/protocol/disco#info'/>"); r.Get("type") != "result" {
		t.Fatalf("disco#info of a locked room to its owner: %s", r)
	}
	join(t, phone, room, "alice", "") // the owner's other client
	alice.Sync()

	alice.Sendf("<iq type='set' id='instant1' to='%s'>%s</iq>", room, instantRoom)
	answered := false
	for _, el := range alice.Sync() {
		switch {
		case el.Local == "iq" && el.Get("id") == "instant1" && el.Get("type") == "result":
			answered = true
		default:
			t.Fatalf("accepting the defaults sent %s (no 104: nothing changed)", el)
		}
	}
	if !answered {
		t.Fatal("no answer to the instant-room request")
	}
	self, _ = join(t, bob, room, "bob", "")
	if codes(self)["201"] {
		t.Fatalf("201 for a room that existed: %s", self)
	}
	alice.Sync()
	// A cancel once the room is configured: nothing happens.
	if r := iq(t, alice, "set", room, "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='cancel'/></query>"); r.Get("type") != "result" {
		t.Fatalf("late cancel: %s", r)
	}
	bob.Quiet("a late cancel destroys nothing")

	// Cancelling the first form destroys the new room.
	other := "other@" + host
	join(t, carol, other, "carol", "")
	carol.Sendf("<iq type='set' id='cancel1' to='%s'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='cancel'/></query></iq>", other)
	p := carol.Expect("destroyed", modtest.IsPresence("unavailable", other+"/carol"))
	if mucX(p).Child("http://jabber.org/protocol/muc#user", "destroy") == nil {
		t.Fatalf("cancel did not destroy the room: %s", p)
	}
	if r := carol.Expect("cancel answer", isIQ("result")); r.Get("id") != "cancel1" {
		t.Fatalf("cancel: %s", r)
	}
	if self, _ := join(t, bob, other, "bob", ""); !codes(self)["201"] {
		t.Fatalf("the cancelled room still existed: %s", self)
	}

	// The old protocol (no MUC <x/>): not locked.
	old := "old@" + host
	carol.Sendf("<presence to='%s/carol'/>", old)
	if p := carol.Expect("self", modtest.IsPresence("", old+"/carol")); !codes(p)["201"] {
		t.Fatalf("old-protocol creation: %s", p)
	}
	carol.Sync() // the rest of the join
	join(t, alice, old, "alice", "")

	// The server's rooms: never locked.
	svc := muc.Of(d.Server)
	name := muc.CircleRoom("Choir")
	if err := svc.EnsureRoom(name, "Choir", false); err != nil {
		t.Fatal(err)
	}
	if err := svc.SetMember(name, "bob", true); err != nil {
		t.Fatal(err)
	}
	join(t, bob, name+"@"+host, "bob", "")
	join(t, carol, muc.DefaultRoom+"@"+host, "carol", "")
}

// TestConfigFormUnlocks: submitting the configuration form (what
// Conversations and Gajim do on 201) opens the room; the form offers
// allowpm with its four values.
func TestConfigFormUnlocks(t *testing.T) {
	d := start(t)
	alice, bob := login(t, d, "alice"), login(t, d, "bob")
	join(t, alice, room, "alice", "")
	form := iq(t, alice, "get", room, "<query xmlns='http://jabber.org/protocol/muc#owner'/>")
	f := form.Child("http://jabber.org/protocol/muc#owner", "query").Child("jabber:x:data", "x")
	var pm *stream.Element
	for _, c := range f.Children() {
		if c.Get("var") == "muc#roomconfig_allowpm" {
			pm = c
		}
	}
	if pm == nil || pm.ChildText("jabber:x:data", "value") != "anyone" || strings.Count(pm.String(), "<option") != 4 {
		t.Fatalf("allowpm field: %v", pm)
	}
	if r := iq(t, alice, "set", room, "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"+
		"<field var='muc#roomconfig_roomname'><value>Tea</value></field></x></query>"); r.Get("type") != "result" {
		t.Fatalf("config: %s", r)
	}
	join(t, bob, room, "bob", "")
}
