package muc_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd/mod/internal/modtest"
	"github.com/hearthchat/hearth/xmppd/mod/muc"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// memberList is the room's muc#admin member list as c gets it: JID →
// nick.
func memberList(t *testing.T, c *modtest.Client, roomJID string) map[string]string {
	t.Helper()
	r := iq(t, c, "get", roomJID, "<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'/></query>")
	if modtest.ErrCond(r) != "" {
		t.Fatalf("%s lists the members of %s: %s", c.JID, roomJID, r)
	}
	out := map[string]string{}
	for _, it := range r.FirstChild().Children() {
		if it.Get("affiliation") != "member" {
			t.Fatalf("member list item %s", it)
		}
		out[it.Get("jid")] = it.Get("nick")
	}
	return out
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// affMessage matches the room's message telling its occupants that bare
// now has affiliation aff (XEP-0045 §9.3).
func affMessage(roomJID, bare, aff string) func(*stream.Element) bool {
	return func(el *stream.Element) bool {
		if el.Local != "message" || el.Get("from") != roomJID {
			return false
		}
		it := item(el)
		return it != nil && it.Get("jid") == bare && it.Get("affiliation") == aff
	}
}

// TestClubRoomMemberList: the member list of the club's room holds every
// account of the box (its members are implicit, and Converse encrypts a
// room message with OMEMO only to the devices of listed members: with
// the list empty it found none), with a registered nickname or the nick
// in the room; it follows accounts added and removed, whose changes the
// room's occupants are told of; the room is members-only and
// non-anonymous, as OMEMO in Converse requires. A circle's room lists
// the circle's members and tells its occupants of changes too.
func TestClubRoomMemberList(t *testing.T) {
	d := start(t) // alice, bob, carol
	alice, bob, carol := login(t, d, "alice"), login(t, d, "bob"), login(t, d, "carol")
	everyone := muc.DefaultRoom + "@" + host
	info := iq(t, bob, "get", everyone, "<query xmlns='http://jabber.org/protocol/disco#info'/>").String()
	for _, f := range []string{"muc_membersonly", "muc_nonanonymous", "muc_persistent"} {
		if !strings.Contains(info, "'"+f+"'") && !strings.Contains(info, `"`+f+`"`) {
			t.Fatalf("the club's room lacks %s: %s", f, info)
		}
	}
	if r := iq(t, carol, "set", everyone, "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>"+
		"<field var='muc#register_roomnick'><value>Caro</value></field></x></query>"); modtest.ErrCond(r) != "" {
		t.Fatalf("carol registers a nick: %s", r)
	}
	join(t, alice, everyone, "Al", "")

	want := map[string]string{"alice@example.test": "Al", "bob@example.test": "", "carol@example.test": "Caro"}
	got := memberList(t, bob, everyone)
	for j, n := range want {
		if g, ok := got[j]; !ok || g != n {
			t.Fatalf("member list %v, want %v", got, want)
		}
	}
	for j := range got {
		if _, ok := want[j]; !ok && !strings.HasPrefix(j, "_") {
			t.Fatalf("member list has %s: %v", j, got)
		}
		if strings.HasPrefix(j, "_") {
			t.Fatalf("the box's own account %s is listed: %v", j, got)
		}
	}

	// An account added: in the list, and the occupants are told.
	if err := d.Store.CreateAccount("dave", "dave-pw", false); err != nil {
		t.Fatal(err)
	}
	server.AccountRegistered.Fire(d.Server, server.Registration{User: "dave"})
	alice.Expect("dave became a member", affMessage(everyone, "dave@example.test", "member"))
	if got := keys(memberList(t, bob, everyone)); !slices.Contains(got, "dave@example.test") {
		t.Fatalf("member list after dave's account was made: %v", got)
	}
	// Removed: gone from the list, and the occupants are told.
	if err := d.Server.DeleteAccount("dave"); err != nil {
		t.Fatal(err)
	}
	alice.Expect("dave is no member", affMessage(everyone, "dave@example.test", "none"))
	if got := keys(memberList(t, bob, everyone)); slices.Contains(got, "dave@example.test") {
		t.Fatalf("member list after dave's account was deleted: %v", got)
	}

	// A circle's room: its members, and changes told to its occupants.
	svc := muc.Of(d.Server)
	name := muc.CircleRoom("Book club")
	if err := svc.EnsureRoom(name, "Book club", false); err != nil {
		t.Fatal(err)
	}
	circle := name + "@" + host
	if err := svc.SetMember(name, "alice", true); err != nil {
		t.Fatal(err)
	}
	join(t, alice, circle, "alice", "")
	if err := svc.SetMember(name, "bob", true); err != nil {
		t.Fatal(err)
	}
	alice.Expect("bob joined the circle", affMessage(circle, "bob@example.test", "member"))
	if got := keys(memberList(t, alice, circle)); !slices.Equal(got, []string{"alice@example.test", "bob@example.test"}) {
		t.Fatalf("circle member list %v", got)
	}
	if err := svc.SetMember(name, "bob", false); err != nil {
		t.Fatal(err)
	}
	alice.Expect("bob left the circle", affMessage(circle, "bob@example.test", "none"))
	if got := keys(memberList(t, alice, circle)); !slices.Equal(got, []string{"alice@example.test"}) {
		t.Fatalf("circle member list after bob was taken out %v", got)
	}
	// A member whose account is deleted: gone from the circle's list, and
	// its occupants are told (they were not: the stored affiliation was
	// dropped silently, so Converse kept encrypting to the deleted
	// account's devices).
	if err := svc.SetMember(name, "carol", true); err != nil {
		t.Fatal(err)
	}
	alice.Expect("carol joined the circle", affMessage(circle, "carol@example.test", "member"))
	if err := d.Server.DeleteAccount("carol"); err != nil {
		t.Fatal(err)
	}
	alice.Expect("carol's account is gone", affMessage(circle, "carol@example.test", "none"))
	if got := keys(memberList(t, alice, circle)); !slices.Equal(got, []string{"alice@example.test"}) {
		t.Fatalf("circle member list after carol's account was deleted %v", got)
	}
}
